//! The OpenID AuthZEN Authorization API 1.0: evaluation, evaluations, the three searches and
//! discovery. An action `A` on a resource of type `T` is the permission `T:A` (an action that
//! already holds a `:` is the permission itself). Evaluations run in the caller's organization.

use std::sync::Arc;

use arbiter_core::engine::{self, CheckRequest, ResourceQuery, SubjectQuery};
use arbiter_core::index::Index;
use arbiter_core::model::{Properties, User};
use arbiter_core::permission::Permission;
use arbiter_core::search::{search_actions, search_resources, search_subjects, SearchContext};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use chrono::Utc;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::extract::{Ctx, JsonBody};
use crate::state::AppState;

/// The header that asks for a decision at least as fresh as a revision.
pub use crate::extract::MIN_REVISION_HEADER;

/// A subject, resource or action as sent.
struct Entity {
    kind: String,
    id: Option<String>,
    properties: Properties,
}

fn object<'a>(
    body: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a Map<String, Value>>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(ApiError::field(field, "must be an object")),
    }
}

fn string(map: &Map<String, Value>, field: &str, path: &str) -> Result<Option<String>, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::field(
            format!("{path}.{field}"),
            "must be a string",
        )),
    }
}

fn properties(map: &Map<String, Value>, path: &str) -> Result<Properties, ApiError> {
    match map.get("properties") {
        None | Some(Value::Null) => Ok(Properties::new()),
        Some(Value::Object(p)) => Ok(p.clone()),
        Some(_) => Err(ApiError::field(
            format!("{path}.properties"),
            "must be an object",
        )),
    }
}

/// Parses `subject`, `resource` or `action`: `type` (`name` for the action) is required, and `id`
/// when `id_required`.
fn entity(
    map: Option<&Map<String, Value>>,
    path: &str,
    id_required: bool,
) -> Result<Entity, ApiError> {
    let map = map.ok_or_else(|| ApiError::field(path, "is required"))?;
    let kind_field = if path == "action" { "name" } else { "type" };
    let kind = string(map, kind_field, path)?
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::field(format!("{path}.{kind_field}"), "is required"))?;
    let id = string(map, "id", path)?;
    if id_required && id.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::field(format!("{path}.id"), "is required"));
    }
    Ok(Entity {
        kind,
        id,
        properties: properties(map, path)?,
    })
}

fn context_of(body: &Map<String, Value>) -> Result<Option<Value>, ApiError> {
    match body.get("context") {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(_) => Err(ApiError::field("context", "must be an object")),
    }
}

impl Entity {
    /// The resource as the engine takes it.
    fn resource_query(&self) -> ResourceQuery {
        ResourceQuery {
            resource_type: self.kind.clone(),
            id: self.id.clone().unwrap_or_default(),
            properties: self.properties.clone(),
        }
    }
}

/// The subject a request asks about; asking about another than the caller needs
/// `check:execute`.
fn asked_subject(ctx: &Ctx, subject: &Entity) -> Result<SubjectQuery, ApiError> {
    let query = subject_query(subject);
    if !ctx.is_caller(&query) {
        ctx.require_check_execute()?;
    }
    Ok(query)
}

/// The permission an action on a type asks for, when the organization's catalog has it.
fn known_permission(
    ctx: &Ctx,
    index: &Index,
    resource_type: &str,
    action: &str,
) -> Result<Permission, String> {
    let permission = permission_of(resource_type, action)?;
    index
        .validate_permission(Some(ctx.org_id()), &permission)
        .map_err(|e| e.to_string())?;
    Ok(permission)
}

fn subject_query(subject: &Entity) -> SubjectQuery {
    let id = subject.id.clone().unwrap_or_default();
    if subject.kind == "api_key" {
        SubjectQuery::ApiKey(id)
    } else {
        SubjectQuery::User(id)
    }
}

/// `T:A`, or `A` when it holds a `:`.
fn permission_of(resource_type: &str, action: &str) -> Result<Permission, String> {
    let text = if action.contains(':') {
        action.to_owned()
    } else {
        format!("{resource_type}:{action}")
    };
    Permission::parse(&text).map_err(|e| e.to_string())
}

/// The index a request is answered from: fresh enough for a `context.at_least_revision`
/// (`X-Arbiter-Min-Revision` was waited for already, by the caller's extractor).
async fn index_for(
    state: &AppState,
    ctx: &Ctx,
    context: Option<&Value>,
) -> Result<Arc<Index>, ApiError> {
    let from_context = context
        .and_then(|c| c.get("at_least_revision"))
        .map(|v| match v {
            Value::String(s) => s.parse::<u64>().ok(),
            Value::Number(n) => n.as_u64(),
            _ => None,
        });
    let from_context = match from_context {
        Some(None) => {
            return Err(ApiError::field(
                "context.at_least_revision",
                "must be a revision number",
            ))
        }
        Some(Some(r)) => Some(r),
        None => None,
    };
    match from_context {
        Some(wanted) if wanted > ctx.caller.index.revision => state.wait_for(wanted).await,
        _ => Ok(ctx.caller.index.clone()),
    }
}

/// One evaluation: `Ok(decision, context)` or an error for an invalid request.
fn evaluate(
    state: &AppState,
    ctx: &Ctx,
    index: &Index,
    subject: &Entity,
    action: &Entity,
    resource: &Entity,
    context: Option<&Value>,
) -> Result<Value, ApiError> {
    let subject_query = asked_subject(ctx, subject)?;
    let denied = |reason: String| json!({"decision": false, "context": {"reason": reason, "revision": index.revision.to_string()}});
    let permission = match known_permission(ctx, index, &resource.kind, &action.kind) {
        Ok(p) => p,
        Err(e) => return Ok(denied(e)),
    };
    let resource_query = resource.resource_query();
    let started = std::time::Instant::now();
    let request = |explain| CheckRequest {
        organization_id: Some(ctx.org_id()),
        subject: &subject_query,
        subject_properties: Some(&subject.properties),
        permission: &permission,
        resource: &resource_query,
        action_properties: Some(&action.properties),
        context,
        now: Utc::now(),
        explain,
    };
    // The check path first; only a deny is decided again, with its reason's one sentence.
    let mut decision = engine::check(index, &request(false));
    if !decision.allowed {
        decision = engine::check(index, &request(true));
    }
    state.decided(
        ctx,
        crate::decision_log::Decided {
            api: crate::metrics::DecisionApi::Authzen,
            subject: &subject_query,
            permission: &permission,
            resource_type: &resource_query.resource_type,
            resource_id: &resource_query.id,
            allowed: decision.allowed,
            revision: decision.revision,
        },
        started.elapsed(),
    );
    let mut answer_context = json!({"revision": decision.revision.to_string()});
    if let Some(reason) = decision.reason.filter(|_| !decision.allowed) {
        answer_context["reason"] = json!(reason.message);
    }
    Ok(json!({"decision": decision.allowed, "context": answer_context}))
}

fn body_object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object()
        .ok_or_else(|| ApiError::InvalidBody("the body must be a JSON object".to_owned()))
}

/// `POST /access/v1/evaluation`.
pub async fn evaluation(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let body = body_object(&body)?;
    let subject = entity(object(body, "subject")?, "subject", true)?;
    let action = entity(object(body, "action")?, "action", false)?;
    let resource = entity(object(body, "resource")?, "resource", true)?;
    let context = context_of(body)?;
    let index = index_for(&state, &ctx, context.as_ref()).await?;
    let answer = evaluate(
        &state,
        &ctx,
        &index,
        &subject,
        &action,
        &resource,
        context.as_ref(),
    )?;
    count(&state, &ctx, &answer);
    Ok(Json(answer))
}

/// `POST /access/v1/evaluations`: the top-level `subject`, `action`, `resource` and `context`
/// are defaults that an item's own fields replace; `options.evaluations_semantic` is
/// `execute_all` (default), `deny_on_first_deny` or `permit_on_first_permit`. Without
/// `evaluations` (or with an empty one) the request is one evaluation.
pub async fn evaluations(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let body = body_object(&body)?;
    let items = match body.get("evaluations") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() > crate::routes::check::MAX_BATCH => {
            return Err(ApiError::field(
                "evaluations",
                format!(
                    "must hold at most {} items",
                    crate::routes::check::MAX_BATCH
                ),
            ))
        }
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(ApiError::field("evaluations", "must be an array")),
    };
    let semantic = match object(body, "options")?
        .map(|o| string(o, "evaluations_semantic", "options"))
        .transpose()?
        .flatten()
        .as_deref()
    {
        None | Some("execute_all") => Semantic::ExecuteAll,
        Some("deny_on_first_deny") => Semantic::DenyOnFirstDeny,
        Some("permit_on_first_permit") => Semantic::PermitOnFirstPermit,
        Some(other) => {
            return Err(ApiError::field(
                "options.evaluations_semantic",
                format!(
                    "`{other}` is not execute_all, deny_on_first_deny or permit_on_first_permit"
                ),
            ))
        }
    };
    let default_context = context_of(body)?;
    let index = index_for(&state, &ctx, default_context.as_ref()).await?;
    if items.is_empty() {
        let subject = entity(object(body, "subject")?, "subject", true)?;
        let action = entity(object(body, "action")?, "action", false)?;
        let resource = entity(object(body, "resource")?, "resource", true)?;
        let answer = evaluate(
            &state,
            &ctx,
            &index,
            &subject,
            &action,
            &resource,
            default_context.as_ref(),
        )?;
        count(&state, &ctx, &answer);
        return Ok(Json(answer));
    }
    let mut results = Vec::with_capacity(items.len());
    for item in &items {
        let outcome = (|| {
            let item = item
                .as_object()
                .ok_or_else(|| ApiError::field("evaluations", "items must be objects"))?;
            let pick = |field: &str| -> Result<Option<&Map<String, Value>>, ApiError> {
                match object(item, field)? {
                    Some(own) => Ok(Some(own)),
                    None => object(body, field),
                }
            };
            let subject = entity(pick("subject")?, "subject", true)?;
            let action = entity(pick("action")?, "action", false)?;
            let resource = entity(pick("resource")?, "resource", true)?;
            let context = context_of(item)?.or_else(|| default_context.clone());
            evaluate(
                &state,
                &ctx,
                &index,
                &subject,
                &action,
                &resource,
                context.as_ref(),
            )
        })();
        let result = match outcome {
            Ok(result) => result,
            Err(ApiError::Forbidden {
                permission,
                resource,
            }) => {
                return Err(ApiError::Forbidden {
                    permission,
                    resource,
                })
            }
            Err(e) => {
                let (status, _) = e.status_and_code();
                json!({"decision": false, "context": {"error": {"status": status.as_u16(), "message": e.to_string()}}})
            }
        };
        let decision = result["decision"].as_bool().unwrap_or(false);
        count(&state, &ctx, &result);
        results.push(result);
        match semantic {
            Semantic::DenyOnFirstDeny if !decision => break,
            Semantic::PermitOnFirstPermit if decision => break,
            _ => {}
        }
    }
    Ok(Json(json!({"evaluations": results})))
}

/// Counts a decision (not an invalid item) in the organization's usage.
fn count(state: &AppState, ctx: &Ctx, answer: &Value) {
    if answer["context"].get("error").is_none() {
        state
            .usage
            .count(ctx.org_id(), answer["decision"].as_bool().unwrap_or(false));
    }
}

enum Semantic {
    ExecuteAll,
    DenyOnFirstDeny,
    PermitOnFirstPermit,
}

/// The page of a search: `page.limit` (default 100, at most 1000) and `page.token` (the opaque
/// `next_token` of the previous page).
fn page_of(body: &Map<String, Value>) -> Result<(usize, usize), ApiError> {
    let Some(page) = object(body, "page")? else {
        return Ok((0, 100));
    };
    let limit = match page.get("limit") {
        None | Some(Value::Null) => 100,
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| ApiError::field("page.limit", "must be between 1 and 1000"))?
            as usize,
        Some(_) => return Err(ApiError::field("page.limit", "must be a number")),
    };
    let offset = match string(page, "token", "page")?.as_deref() {
        None | Some("") => 0,
        Some(token) => token
            .strip_prefix("o")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| ApiError::field("page.token", "is not a token this server gave"))?,
    };
    Ok((offset, limit))
}

fn paged(results: Vec<Value>, offset: usize, limit: usize) -> Json<Value> {
    let total = results.len();
    let page: Vec<Value> = results.into_iter().skip(offset).take(limit).collect();
    let next = if offset + page.len() < total {
        format!("o{}", offset + page.len())
    } else {
        String::new()
    };
    Json(
        json!({"results": page, "page": {"next_token": next, "count": page.len(), "total": total}}),
    )
}

/// The id a search answers for a user: its first external id, else its id, so that an
/// enforcement point gets back the ids it sends.
fn user_id(user: &User) -> &str {
    user.external_ids
        .first()
        .map_or(user.id.as_str(), String::as_str)
}

fn search_context<'a>(ctx: &'a Ctx, context: Option<&'a Value>) -> SearchContext<'a> {
    SearchContext {
        organization_id: ctx.org_id(),
        context,
        now: Utc::now(),
    }
}

/// `POST /access/v1/search/subject`: the users who may take the action on the resource
/// (`subject.id` is ignored).
pub async fn search_subject(
    ctx: Ctx,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let body = body_object(&body)?;
    let subject = entity(object(body, "subject")?, "subject", false)?;
    let action = entity(object(body, "action")?, "action", false)?;
    let resource = entity(object(body, "resource")?, "resource", true)?;
    let context = context_of(body)?;
    let (offset, limit) = page_of(body)?;
    ctx.require_check_execute()?;
    let index = ctx.index();
    // An action the type does not have is given to nobody, as an evaluation answers.
    let Ok(permission) = known_permission(&ctx, ctx.index(), &resource.kind, &action.kind) else {
        return Ok(paged(Vec::new(), offset, limit));
    };
    if subject.kind == "api_key" {
        return Ok(paged(Vec::new(), offset, limit));
    }
    let query = resource.resource_query();
    let users = search_subjects(
        index,
        &search_context(&ctx, context.as_ref()),
        &permission,
        &query,
    );
    // Only the organization's members: a platform administrator may act here too, but is not
    // one of the organization's subjects, and its id is not the organization's to learn.
    let results = users
        .iter()
        .filter(|u| index.is_member(ctx.org_id(), &u.id))
        .map(|u| json!({"type": subject.kind, "id": user_id(u)}))
        .collect();
    Ok(paged(results, offset, limit))
}

/// `POST /access/v1/search/resource`: the resources of `resource.type` the subject may take the
/// action on (`resource.id` is ignored).
pub async fn search_resource(
    ctx: Ctx,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let body = body_object(&body)?;
    let subject = entity(object(body, "subject")?, "subject", true)?;
    let action = entity(object(body, "action")?, "action", false)?;
    let resource = entity(object(body, "resource")?, "resource", false)?;
    let context = context_of(body)?;
    let (offset, limit) = page_of(body)?;
    let subject_query = asked_subject(&ctx, &subject)?;
    // An action the type does not have is given to nobody, as an evaluation answers.
    let Ok(permission) = known_permission(&ctx, ctx.index(), &resource.kind, &action.kind) else {
        return Ok(paged(Vec::new(), offset, limit));
    };
    let ids = search_resources(
        ctx.index(),
        &search_context(&ctx, context.as_ref()),
        &subject_query,
        Some(&subject.properties),
        &permission,
    );
    let results = ids
        .into_iter()
        .map(|id| json!({"type": resource.kind, "id": id}))
        .collect();
    Ok(paged(results, offset, limit))
}

/// `POST /access/v1/search/action`: the actions the subject may take on the resource.
pub async fn search_action(
    ctx: Ctx,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let body = body_object(&body)?;
    let subject = entity(object(body, "subject")?, "subject", true)?;
    let resource = entity(object(body, "resource")?, "resource", true)?;
    let context = context_of(body)?;
    let (offset, limit) = page_of(body)?;
    let subject_query = asked_subject(&ctx, &subject)?;
    let query = resource.resource_query();
    let actions = search_actions(
        ctx.index(),
        &search_context(&ctx, context.as_ref()),
        &subject_query,
        Some(&subject.properties),
        &query,
    );
    let results = actions
        .into_iter()
        .map(|name| json!({"name": name}))
        .collect();
    Ok(paged(results, offset, limit))
}

/// `GET /.well-known/authzen-configuration`: the PDP's metadata. No key needed.
pub async fn configuration(headers: HeaderMap) -> Json<Value> {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8080");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    let base = format!("{scheme}://{host}");
    Json(json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
        "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
        "search_subject_endpoint": format!("{base}/access/v1/search/subject"),
        "search_resource_endpoint": format!("{base}/access/v1/search/resource"),
        "search_action_endpoint": format!("{base}/access/v1/search/action"),
    }))
}
