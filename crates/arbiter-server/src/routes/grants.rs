//! `/v1/permissions`: resource grants in the wire format of the aisvc resource-permission API
//! (`_resourceDesc._irn`, `_resourceDesc._criteria`, `_namespace`, `_user._type`, `_user._id`,
//! `_actions`), answered per item.

use std::sync::Arc;

use arbiter_core::condition::Condition;
use arbiter_core::engine::{resolve_subject, ResourceQuery};
use arbiter_core::grants::map_actions;
use arbiter_core::index::Index;
use arbiter_core::irn::{IrnPattern, Segment};
use arbiter_core::model::{
    GrantSubject, GroupKind, Object, ObjectKey, ObjectKind, Op, Properties, ResourceGrant,
};
use arbiter_core::permission::Permission;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{json_of, new_id, written};
use crate::error::ApiError;
use crate::extract::{organization_of, resource, Caller, Ctx, JsonBody, Path, Query};
use crate::state::{AppState, Prepared};

/// The most grants one `PUT` may hold: each is validated under the write lock.
pub const MAX_GRANTS_PER_REQUEST: usize = 1000;

/// The wire name of an action.
fn wire_action(action: &str) -> String {
    action.to_ascii_uppercase()
}

fn wire_subject(index: &Index, subject: &GrantSubject) -> Value {
    match subject {
        GrantSubject::User(id) => json!({"_type": "user", "_id": id}),
        GrantSubject::Group(id) => {
            let t = match index.groups.get(id).map(|g| g.kind) {
                Some(GroupKind::PermissionProfile) => "permprofile",
                _ => "usergroup",
            };
            json!({"_type": t, "_id": id})
        }
    }
}

/// A grant in the wire format.
pub fn grant_json(index: &Index, g: &ResourceGrant) -> Value {
    let mut desc = json!({"_irn": g.irn});
    let mut criteria: Map<String, Value> = g.criteria.clone();
    if let Some(c) = &g.condition {
        criteria.insert("_condition".to_owned(), json!(c));
    }
    if !criteria.is_empty() {
        desc["_criteria"] = Value::Object(criteria);
    }
    json!({
        "_id": g.id,
        "_namespace": g.organization_id,
        "_resourceDesc": desc,
        "_user": wire_subject(index, &g.subject),
        "_actions": g.actions.iter().map(|a| wire_action(a)).collect::<Vec<_>>(),
        "_status": 200,
    })
}

/// A grant item as sent; fields are checked one by one so that each failure names its reason.
#[derive(Deserialize)]
pub struct GrantItem {
    #[serde(rename = "_actions")]
    actions: Option<Vec<String>>,
    #[serde(rename = "_namespace")]
    namespace: Option<String>,
    #[serde(rename = "_resourceDesc")]
    resource_desc: Option<ResourceDesc>,
    #[serde(rename = "_user")]
    user: Option<WireUser>,
}

#[derive(Deserialize)]
struct ResourceDesc {
    #[serde(rename = "_irn")]
    irn: Option<String>,
    #[serde(rename = "_criteria", default)]
    criteria: Properties,
}

#[derive(Deserialize)]
struct WireUser {
    #[serde(rename = "_type")]
    user_type: Option<String>,
    #[serde(rename = "_id")]
    id: Option<String>,
}

/// Why an item failed, with its status.
struct ItemFailure {
    status: StatusCode,
    reason: String,
}

fn fail(status: StatusCode, reason: impl Into<String>) -> ItemFailure {
    ItemFailure {
        status,
        reason: reason.into(),
    }
}

impl From<ApiError> for ItemFailure {
    fn from(e: ApiError) -> Self {
        let (status, _) = e.status_and_code();
        fail(status, e.to_string())
    }
}

/// True when the caller holds `action` on every IRN the pattern matches: through a role entry
/// held on the whole organization, through one of its own grants whose pattern covers this one,
/// or, for a single IRN, through any grant or binding that reaches that resource.
fn holds_on_pattern(ctx: &Ctx, index: &Index, pattern: &IrnPattern, action: &str) -> bool {
    let org = ctx.org_id();
    let resource_type = match pattern.resource_type() {
        Segment::Exact(t) => t.as_str(),
        _ => "*",
    };
    let permission = match Permission::parse(&format!("{resource_type}:{action}")) {
        Ok(p) => p,
        Err(_) => return false,
    };
    // A role entry that reaches everything of the type in the organization.
    if ctx
        .caller
        .decide(Some(org), &permission, &resource("organization", org))
        .allowed
    {
        return true;
    }
    // A single IRN: ask the engine about that resource.
    if let (Segment::Exact(t), Segment::Exact(id)) = (pattern.resource_type(), pattern.id()) {
        if index
            .type_service(org, t)
            .is_some_and(|s| pattern.service().matches(s))
        {
            let query = ResourceQuery {
                resource_type: t.clone(),
                id: id.clone(),
                properties: Properties::new(),
            };
            if ctx.caller.decide(Some(org), &permission, &query).allowed {
                return true;
            }
        }
    }
    // One of the caller's own unconditional grants whose pattern covers this one.
    let Some(subject) = resolve_subject(index, &ctx.caller.subject(), Utc::now()) else {
        return false;
    };
    subject
        .refs
        .iter()
        .filter_map(|r| index.grants_by_subject.get(r).map(|_| r))
        .any(|r| {
            index
                .grants_by_organization
                .get(org)
                .into_iter()
                .flatten()
                .any(|g| {
                    &g.grant.subject.as_subject_ref() == r
                        && g.grant.condition.is_none()
                        && g.grant.criteria.is_empty()
                        && g.gives(action)
                        && g.pattern.as_ref().is_some_and(|p| p.covers(pattern))
                })
        })
}

/// [`holds_on_pattern`] for a stored grant's IRN (`*` means every action of its type).
pub fn holds_on_pattern_of(ctx: &Ctx, irn: &str, action: &str) -> bool {
    let Ok(pattern) = IrnPattern::parse(irn) else {
        return false;
    };
    if action == "*" {
        let actions = match pattern.resource_type() {
            Segment::Exact(t) => ctx
                .index()
                .type_actions(ctx.org_id(), t)
                .unwrap_or_default(),
            _ => return ctx.caller.holds_on_platform("*:*"),
        };
        return actions
            .iter()
            .all(|a| holds_on_pattern(ctx, ctx.index(), &pattern, a));
    }
    holds_on_pattern(ctx, ctx.index(), &pattern, action)
}

/// Validates one item and builds its grant.
fn prepare_item(
    caller: &Caller,
    index: &Index,
    item: &GrantItem,
    existing: &mut Vec<(String, String)>,
) -> Result<(ResourceGrant, bool), ItemFailure> {
    let namespace = item
        .namespace
        .as_deref()
        .ok_or_else(|| fail(StatusCode::BAD_REQUEST, "`_namespace` is required"))?;
    let org_id = organization_of(caller, Some(namespace)).map_err(|_| {
        fail(
            StatusCode::NOT_FOUND,
            format!("namespace `{namespace}` was not found"),
        )
    })?;
    let org = index.organizations.get(&org_id).cloned().ok_or_else(|| {
        fail(
            StatusCode::NOT_FOUND,
            format!("namespace `{namespace}` was not found"),
        )
    })?;
    let ctx = Ctx {
        caller: caller.clone(),
        org,
    };
    let desc = item
        .resource_desc
        .as_ref()
        .ok_or_else(|| fail(StatusCode::BAD_REQUEST, "`_resourceDesc._irn` is required"))?;
    let irn = desc
        .irn
        .as_deref()
        .ok_or_else(|| fail(StatusCode::BAD_REQUEST, "`_resourceDesc._irn` is required"))?;
    let pattern =
        IrnPattern::parse(irn).map_err(|e| fail(StatusCode::BAD_REQUEST, e.to_string()))?;
    let type_actions = match pattern.resource_type() {
        Segment::Exact(t) => {
            let actions = index.type_actions(&org_id, t).ok_or_else(|| {
                fail(
                    StatusCode::BAD_REQUEST,
                    format!("`{t}` is not a resource type of the catalog"),
                )
            })?;
            if let (Segment::Exact(service), Some(owner)) =
                (pattern.service(), index.type_service(&org_id, t))
            {
                if service != owner {
                    return Err(fail(
                        StatusCode::BAD_REQUEST,
                        format!("type `{t}` belongs to service `{owner}`, not `{service}`"),
                    ));
                }
            }
            Some(actions)
        }
        _ => None,
    };
    let actions = item
        .actions
        .as_deref()
        .ok_or_else(|| fail(StatusCode::BAD_REQUEST, "`_actions` is required"))?;
    let actions = map_actions(type_actions.as_ref(), actions)
        .map_err(|e| fail(StatusCode::BAD_REQUEST, e))?;
    let user = item
        .user
        .as_ref()
        .ok_or_else(|| fail(StatusCode::BAD_REQUEST, "`_user` is required"))?;
    let user_id = user
        .id
        .as_deref()
        .ok_or_else(|| fail(StatusCode::BAD_REQUEST, "`_user._id` is required"))?;
    let subject = match user.user_type.as_deref() {
        Some("user") if index.users.contains_key(user_id) && index.is_member(&org_id, user_id) => {
            GrantSubject::User(user_id.to_owned())
        }
        Some(t @ ("usergroup" | "permprofile")) => {
            let kind = if t == "usergroup" {
                GroupKind::Group
            } else {
                GroupKind::PermissionProfile
            };
            index
                .groups
                .get(user_id)
                .filter(|g| g.organization_id == org_id && g.kind == kind)
                .ok_or_else(|| {
                    fail(
                        StatusCode::NOT_FOUND,
                        format!("{t} `{user_id}` was not found"),
                    )
                })?;
            GrantSubject::Group(user_id.to_owned())
        }
        Some("user") => {
            return Err(fail(
                StatusCode::NOT_FOUND,
                format!("user `{user_id}` was not found"),
            ))
        }
        _ => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "`_user._type` must be `user`, `usergroup` or `permprofile`",
            ))
        }
    };
    let mut criteria = desc.criteria.clone();
    let condition = match criteria.remove("_condition") {
        Some(Value::String(c)) => {
            Condition::compile(&c).map_err(|e| fail(StatusCode::BAD_REQUEST, e.to_string()))?;
            Some(c)
        }
        Some(_) => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "`_criteria._condition` must be a CEL expression",
            ))
        }
        None => None,
    };
    // Authorization: `permission:write` in the namespace, or SHARE on the IRN; and in both cases
    // every action given must be held there.
    let may_write = ctx.allowed(
        &Permission::parse("permission:write").map_err(ApiError::from)?,
        &resource("organization", &org_id),
    );
    if !may_write && !holds_on_pattern(&ctx, index, &pattern, "share") {
        return Err(fail(
            StatusCode::FORBIDDEN,
            format!(
                "the caller holds neither `permission:write` in `{org_id}` nor SHARE on `{irn}`"
            ),
        ));
    }
    let every_action: Vec<String> = if actions.iter().any(|a| a == "*") {
        type_actions
            .map(|t| t.into_iter().collect())
            .unwrap_or_else(|| vec!["*".to_owned()])
    } else {
        actions.clone()
    };
    for action in &every_action {
        if !holds_on_pattern(&ctx, index, &pattern, action) {
            return Err(fail(
                StatusCode::FORBIDDEN,
                format!(
                    "the caller does not hold `{}` on `{irn}`",
                    wire_action(action)
                ),
            ));
        }
    }
    // Upsert: the same (namespace, IRN, subject) replaces its actions.
    let key = (org_id.clone(), format!("{irn}|{subject:?}"));
    if existing.contains(&key) {
        return Err(fail(
            StatusCode::CONFLICT,
            "the same grant appears twice in this request",
        ));
    }
    existing.push(key);
    let now = Utc::now();
    let previous = index
        .grants_by_organization
        .get(&org_id)
        .into_iter()
        .flatten()
        .filter(|g| g.grant.irn == irn && g.grant.subject == subject)
        // A bundle may hold two such grants (with ids of its own): the bag has no order, so
        // the one updated is chosen by id.
        .min_by(|a, b| a.grant.id.cmp(&b.grant.id))
        .map(|g| g.grant.clone());
    let grant = ResourceGrant {
        id: previous
            .as_ref()
            .map_or_else(|| new_id("grant"), |p| p.id.clone()),
        organization_id: org_id,
        irn: irn.to_owned(),
        subject,
        actions,
        criteria,
        condition,
        created_at: previous.as_ref().map_or(now, |p| p.created_at),
        updated_at: now,
    };
    Ok((grant, previous.is_some()))
}

/// `PUT /v1/permissions`: an array of grants, each answered in `_success` or `_failures`. A
/// failed item writes nothing; the successful ones commit together, in one revision.
pub async fn put(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(items): JsonBody<Vec<Value>>,
) -> Result<Response, ApiError> {
    if items.is_empty() {
        return Err(ApiError::field(
            "body",
            "must be a non-empty array of grants",
        ));
    }
    if items.len() > MAX_GRANTS_PER_REQUEST {
        return Err(ApiError::field(
            "body",
            format!("must hold at most {MAX_GRANTS_PER_REQUEST} grants"),
        ));
    }
    let ((successes, failures), revision) = state
        .write(|index| {
            let mut ops = Vec::new();
            let mut audit = Vec::new();
            let mut successes = Vec::new();
            let mut failures = Vec::new();
            let mut seen = Vec::new();
            for raw in &items {
                let parsed: Result<GrantItem, ItemFailure> = serde_json::from_value(raw.clone())
                    .map_err(|e| fail(StatusCode::BAD_REQUEST, e.to_string()));
                match parsed.and_then(|item| prepare_item(&caller, index, &item, &mut seen)) {
                    Ok((grant, replaced)) => {
                        let before = index.grants.get(&grant.id).map(|g| g.grant.clone());
                        audit.push(arbiter_store::AuditRecord {
                            organization_id: Some(grant.organization_id.clone()),
                            actor_user_id: caller.user.as_ref().map(|u| u.id.clone()),
                            actor_key_id: Some(caller.key.id.clone()),
                            action: if replaced {
                                "grant.update"
                            } else {
                                "grant.create"
                            }
                            .to_owned(),
                            object_kind: "resource_grant".to_owned(),
                            object_id: grant.id.clone(),
                            before: before.as_ref().and_then(json_of),
                            after: json_of(&grant),
                            request_id: caller.request_id().map(str::to_owned),
                        });
                        successes.push(grant.clone());
                        ops.push(Op::Put {
                            object: Object::ResourceGrant(grant),
                        });
                    }
                    Err(f) => {
                        let mut item = raw.clone();
                        if let Value::Object(map) = &mut item {
                            map.insert("_status".to_owned(), json!(f.status.as_u16()));
                            map.insert("_reason".to_owned(), json!(f.reason));
                        } else {
                            item = json!({"_status": f.status.as_u16(), "_reason": f.reason});
                        }
                        failures.push(item);
                    }
                }
            }
            Ok(Prepared {
                ops,
                audit,
                output: (successes, failures),
            })
        })
        .await?;
    let index = state.index();
    let success: Vec<Value> = successes.iter().map(|g| grant_json(&index, g)).collect();
    Ok(written(
        StatusCode::OK,
        revision,
        json!({"_success": success, "_failures": failures}),
    ))
}

#[derive(Deserialize)]
pub struct GrantQuery {
    #[serde(rename = "_namespace")]
    namespace: Option<String>,
    #[serde(rename = "_resourceDesc._irn")]
    irn: Option<String>,
    #[serde(rename = "_user._type")]
    user_type: Option<String>,
    #[serde(rename = "_user._id")]
    user_id: Option<String>,
    /// Comma-separated; a grant must give all of them.
    #[serde(rename = "_actions")]
    actions: Option<String>,
    #[serde(rename = "_offset")]
    offset: Option<u64>,
    #[serde(rename = "_pageSize")]
    page_size: Option<u64>,
    #[serde(rename = "_includeTotal")]
    include_total: Option<bool>,
}

fn namespace_ctx(caller: Caller, namespace: &str) -> Result<Ctx, ApiError> {
    let org_id = organization_of(&caller, Some(namespace))?;
    let org = caller
        .index
        .organizations
        .get(&org_id)
        .cloned()
        .ok_or(ApiError::NotFound {
            what: "namespace",
            id: namespace.to_owned(),
        })?;
    Ok(Ctx { caller, org })
}

/// `GET /v1/permissions`: `_namespace` required; filters by IRN (a pattern lists the grants it
/// covers), subject and actions; paged by `_offset` and `_pageSize`. Needs `permission:read`.
pub async fn list(caller: Caller, Query(q): Query<GrantQuery>) -> Result<Json<Value>, ApiError> {
    let namespace = q
        .namespace
        .clone()
        .ok_or_else(|| ApiError::field("_namespace", "is required"))?;
    let ctx = namespace_ctx(caller, &namespace)?;
    ctx.require_in_org("permission:read")?;
    let filter_pattern = q.irn.as_deref().map(IrnPattern::parse).transpose()?;
    let wanted_actions: Vec<String> = q
        .actions
        .as_deref()
        .map(|a| {
            a.split(',')
                .map(|x| x.trim().to_ascii_lowercase())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let page_size = q.page_size.unwrap_or(super::DEFAULT_LIMIT);
    if page_size == 0 || page_size > super::MAX_LIMIT {
        return Err(ApiError::field(
            "_pageSize",
            format!("must be between 1 and {}", super::MAX_LIMIT),
        ));
    }
    let index = ctx.index();
    let mut grants: Vec<&ResourceGrant> = index
        .grants
        .values()
        .map(|g| &g.grant)
        .filter(|g| g.organization_id == ctx.org_id())
        .filter(|g| match &filter_pattern {
            None => true,
            Some(f) => g.irn == f.as_str() || IrnPattern::parse(&g.irn).is_ok_and(|p| f.covers(&p)),
        })
        .filter(|g| match (&q.user_type, &g.subject) {
            (None, _) => true,
            (Some(t), GrantSubject::User(_)) => t == "user",
            (Some(t), GrantSubject::Group(id)) => {
                let kind = index.groups.get(id).map(|x| x.kind);
                (t == "usergroup" && kind == Some(GroupKind::Group))
                    || (t == "permprofile" && kind == Some(GroupKind::PermissionProfile))
            }
        })
        .filter(|g| {
            q.user_id
                .as_ref()
                .is_none_or(|id| g.subject.as_subject_ref().id() == id)
        })
        .filter(|g| {
            wanted_actions
                .iter()
                .all(|a| g.actions.iter().any(|x| x == a || x == "*"))
        })
        .collect();
    grants.sort_by(|a, b| a.id.cmp(&b.id));
    let total = grants.len();
    let offset = q.offset.unwrap_or(0);
    let list: Vec<Value> = grants
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(page_size).unwrap_or(usize::MAX))
        .map(|g| grant_json(index, g))
        .collect();
    let include_total = q.include_total.unwrap_or(false);
    let mut answer = json!({"_list": list, "_offset": offset, "_pageSize": page_size, "_includeTotal": include_total});
    if include_total {
        answer["_total"] = json!(total);
    }
    Ok(Json(answer))
}

/// `DELETE /v1/permissions/{id}`: `permission:delete` in the namespace, or SHARE on the grant's
/// IRN. 204, then 404.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound {
        what: "permission",
        id: id.clone(),
    };
    let grant = caller
        .index
        .grants
        .get(&id)
        .map(|g| g.grant.clone())
        .ok_or_else(not_found)?;
    let ctx = namespace_ctx(caller, &grant.organization_id).map_err(|_| not_found())?;
    let may_delete = ctx.allowed(
        &Permission::parse("permission:delete")?,
        &resource("organization", ctx.org_id()),
    );
    let pattern = IrnPattern::parse(&grant.irn)?;
    if !may_delete && !holds_on_pattern(&ctx, ctx.index(), &pattern, "share") {
        return Err(ApiError::Forbidden {
            permission: "permission:delete".to_owned(),
            resource: format!("grant {id}"),
        });
    }
    let ((), revision) = state
        .write(|index| {
            let g = index.grants.get(&id).ok_or_else(not_found)?;
            Ok(Prepared {
                ops: vec![Op::Delete {
                    key: ObjectKey {
                        kind: ObjectKind::ResourceGrant,
                        id: id.clone(),
                    },
                }],
                audit: vec![ctx.audit(
                    "grant.delete",
                    "resource_grant",
                    &id,
                    json_of(&g.grant),
                    None,
                )],
                output: (),
            })
        })
        .await?;
    Ok(written(StatusCode::NO_CONTENT, revision, ()))
}
