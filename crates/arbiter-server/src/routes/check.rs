//! `POST /v1/check` and `POST /v1/check/batch`: decisions.

use std::sync::Arc;

use arbiter_core::engine::{self, CheckRequest, Decision, ResourceQuery, SubjectQuery};
use arbiter_core::index::Index;
use arbiter_core::irn::Irn;
use arbiter_core::model::Properties;
use arbiter_core::permission::Permission;
use arbiter_core::requirement::Expr;
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::decision_log::Decided;
use crate::error::ApiError;
use crate::extract::{parse_json, Caller, Ctx, JsonBody, JsonText, OrganizationHeader};
use crate::metrics::DecisionApi;
use crate::state::AppState;

/// The most checks one batch may hold.
pub const MAX_BATCH: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectBody {
    #[serde(rename = "type")]
    subject_type: String,
    id: String,
    #[serde(default)]
    properties: Properties,
}

#[derive(Deserialize)]
pub struct ResourceBody {
    #[serde(rename = "type")]
    resource_type: Option<String>,
    id: Option<String>,
    irn: Option<String>,
    #[serde(default)]
    properties: Properties,
}

#[derive(Deserialize)]
pub struct ActionBody {
    #[serde(default)]
    properties: Properties,
}

/// A revision given as a string (as answered) or a number.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum RevisionBody {
    Text(String),
    Number(u64),
}

impl RevisionBody {
    fn value(&self) -> Result<u64, ApiError> {
        match self {
            RevisionBody::Number(n) => Ok(*n),
            RevisionBody::Text(t) => t
                .parse()
                .map_err(|_| ApiError::field("at_least_revision", "must be a revision number")),
        }
    }
}

#[derive(Deserialize)]
pub struct CheckBody {
    subject: Option<SubjectBody>,
    permission: Option<String>,
    /// Instead of `permission`: an expression of permissions, `a:x & (b:y | c:z)`.
    requirement: Option<String>,
    resource: ResourceBody,
    action: Option<ActionBody>,
    context: Option<Value>,
    #[serde(default)]
    explain: bool,
    at_least_revision: Option<RevisionBody>,
}

/// A revision as answered: a string (JSON numbers lose precision past 2^53 in some clients),
/// written without an allocation.
#[derive(Clone, Copy)]
struct RevisionText(u64);

impl Serialize for RevisionText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

#[derive(Serialize)]
pub struct CheckAnswer {
    allowed: bool,
    revision: RevisionText,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<engine::Reason>,
    /// For a `requirement`: the decision of each of its distinct permissions.
    #[serde(skip_serializing_if = "Option::is_none")]
    leaves: Option<Vec<LeafAnswer>>,
}

#[derive(Serialize)]
pub struct LeafAnswer {
    permission: String,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<engine::Reason>,
}

impl From<Decision> for CheckAnswer {
    fn from(d: Decision) -> Self {
        Self {
            allowed: d.allowed,
            revision: RevisionText(d.revision),
            reason: d.reason,
            leaves: None,
        }
    }
}

/// What a check asks: one permission, or a requirement over several.
enum Asked {
    Permission(Permission),
    Requirement(Expr),
}

/// A check, parsed and validated.
struct Parsed {
    subject: SubjectQuery,
    subject_properties: Properties,
    asked: Asked,
    resource: ResourceQuery,
    action_properties: Properties,
    context: Value,
    explain: bool,
}

fn parse(ctx: &Ctx, index: &Index, body: CheckBody) -> Result<Parsed, ApiError> {
    let asked = match (body.permission, body.requirement) {
        (Some(permission), None) => {
            let permission = Permission::parse(&permission)?;
            index.validate_permission(Some(ctx.org_id()), &permission)?;
            Asked::Permission(permission)
        }
        (None, Some(requirement)) => {
            let expr = Expr::parse(&requirement)?;
            for permission in expr.permissions() {
                index.validate_permission(Some(ctx.org_id()), permission)?;
            }
            Asked::Requirement(expr)
        }
        _ => {
            return Err(ApiError::InvalidBody(
                "give either `permission` or `requirement`".to_owned(),
            ))
        }
    };
    let (subject, subject_properties) = match body.subject {
        None => (ctx.caller.subject(), Properties::new()),
        Some(s) => {
            let query = match s.subject_type.as_str() {
                "user" => SubjectQuery::User(s.id),
                "api_key" => SubjectQuery::ApiKey(s.id),
                other => {
                    return Err(ApiError::field(
                        "subject.type",
                        format!("must be `user` or `api_key`, not `{other}`"),
                    ))
                }
            };
            (query, s.properties)
        }
    };
    let (resource_type, id) = match (
        body.resource.irn,
        body.resource.resource_type,
        body.resource.id,
    ) {
        (Some(irn), None, None) => {
            let irn = Irn::parse(&irn)?;
            if let Some(t) = index.catalog.resource_type(irn.resource_type()) {
                if t.service != irn.service() {
                    return Err(ApiError::field(
                        "resource.irn",
                        format!(
                            "type `{}` belongs to service `{}`, not `{}`",
                            t.name,
                            t.service,
                            irn.service()
                        ),
                    ));
                }
            }
            (irn.resource_type().to_owned(), irn.id().to_owned())
        }
        (None, Some(t), Some(id)) => {
            if t.is_empty() || id.is_empty() {
                return Err(ApiError::field(
                    "resource",
                    "`type` and `id` must not be empty",
                ));
            }
            (t, id)
        }
        _ => {
            return Err(ApiError::field(
                "resource",
                "give either `type` and `id`, or `irn`",
            ))
        }
    };
    Ok(Parsed {
        subject,
        subject_properties,
        asked,
        resource: ResourceQuery {
            resource_type,
            id,
            properties: body.resource.properties,
        },
        action_properties: body.action.map(|a| a.properties).unwrap_or_default(),
        context: body.context.unwrap_or_else(|| json!({})),
        explain: body.explain,
    })
}

/// Decides a parsed check at `now` (a batch decides all its checks at one instant).
fn decide(ctx: &Ctx, index: &Index, p: &Parsed, now: DateTime<Utc>) -> CheckAnswer {
    let expr = match &p.asked {
        Asked::Permission(permission) => return decide_one(ctx, index, p, permission, now).into(),
        Asked::Requirement(expr) => expr,
    };
    let mut leaves = Vec::new();
    let evaluation = expr.evaluate(|permission| {
        let d = decide_one(ctx, index, p, permission, now);
        leaves.push(LeafAnswer {
            permission: permission.to_string(),
            allowed: d.allowed,
            reason: d.reason,
        });
        d.allowed
    });
    let reason = p.explain.then(|| {
        let denied: Vec<String> = leaves
            .iter()
            .filter(|l| !l.allowed)
            .map(|l| format!("`{}`", l.permission))
            .collect();
        let message = if evaluation.allowed {
            format!("`{expr}` holds")
        } else {
            format!("`{expr}` does not hold: {} denied", denied.join(", "))
        };
        engine::Reason {
            message,
            granted_by: None,
            misses: Vec::new(),
        }
    });
    CheckAnswer {
        allowed: evaluation.allowed,
        revision: RevisionText(index.revision),
        reason,
        leaves: Some(leaves),
    }
}

fn decide_one(
    ctx: &Ctx,
    index: &Index,
    p: &Parsed,
    permission: &Permission,
    now: DateTime<Utc>,
) -> Decision {
    engine::check(
        index,
        &CheckRequest {
            organization_id: Some(ctx.org_id()),
            subject: &p.subject,
            subject_properties: Some(&p.subject_properties),
            permission,
            resource: &p.resource,
            action_properties: Some(&p.action_properties),
            context: Some(&p.context),
            now,
            explain: p.explain,
        },
    )
}

/// The caller on an index at least as fresh as `wanted` (waiting, bounded, for it).
async fn fresher(
    state: &AppState,
    caller: Caller,
    wanted: Option<u64>,
) -> Result<Caller, ApiError> {
    match wanted {
        Some(rev) if rev > caller.index.revision => {
            let index = state.wait_for(rev).await?;
            Ok(Caller { index, ..caller })
        }
        _ => Ok(caller),
    }
}

/// `POST /v1/check`: `check:execute` unless the subject is the caller.
pub async fn check(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    OrganizationHeader(organization): OrganizationHeader,
    JsonBody(body): JsonBody<CheckBody>,
) -> Result<Json<CheckAnswer>, ApiError> {
    // Wait for the revision asked before anything is looked up, the organization included.
    let wanted = body
        .at_least_revision
        .as_ref()
        .map(RevisionBody::value)
        .transpose()?;
    let ctx = Ctx::resolve_header(
        fresher(&state, caller, wanted).await?,
        organization.as_ref(),
    )?;
    let parsed = parse(&ctx, ctx.index(), body)?;
    if !ctx.is_caller(&parsed.subject) {
        ctx.require_check_execute()?;
    }
    let started = std::time::Instant::now();
    let answer = decide(&ctx, ctx.index(), &parsed, Utc::now());
    state.usage.count(ctx.org_id(), answer.allowed);
    state.decided(
        &ctx,
        decided(DecisionApi::Check, &parsed, &answer),
        started.elapsed(),
    );
    Ok(Json(answer))
}

#[derive(Deserialize)]
struct BatchBody<'a> {
    /// Each item as its raw JSON (borrowed from the body, not copied), parsed on its own: an
    /// invalid item answers its error in place, and a valid one is read straight into a
    /// [`CheckBody`] without a `Value` tree first.
    #[serde(borrow)]
    checks: Vec<&'a serde_json::value::RawValue>,
}

/// One answer of a batch.
// Boxing the answer would cost an allocation per decision; the results live for one response.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize)]
#[serde(untagged)]
enum BatchResult {
    Decided(CheckAnswer),
    Failed {
        allowed: bool,
        revision: RevisionText,
        error: Value,
    },
}

/// `POST /v1/check/batch`: answers in the order asked; an invalid item answers its error in
/// place and the rest are still decided.
pub async fn batch(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    OrganizationHeader(organization): OrganizationHeader,
    JsonText(text): JsonText,
) -> Result<Json<BatchAnswer>, ApiError> {
    let body: BatchBody<'_> = parse_json(&text, state.settings.max_json_depth)?;
    if body.checks.len() > MAX_BATCH {
        return Err(ApiError::field(
            "checks",
            format!("must hold at most {MAX_BATCH} checks"),
        ));
    }
    let items: Vec<Result<CheckBody, ApiError>> = body
        .checks
        .iter()
        .map(|item| {
            serde_json::from_str::<CheckBody>(item.get())
                .map_err(|e| ApiError::InvalidBody(e.to_string()))
        })
        .collect();
    // The newest revision any valid item asks for.
    let wanted = items
        .iter()
        .flatten()
        .filter_map(|b| b.at_least_revision.as_ref()?.value().ok())
        .max();
    let ctx = Ctx::resolve_header(
        fresher(&state, caller, wanted).await?,
        organization.as_ref(),
    )?;
    let parsed: Vec<Result<Parsed, ApiError>> = items
        .into_iter()
        .map(|item| item.and_then(|b| parse(&ctx, ctx.index(), b)))
        .collect();
    if parsed.iter().flatten().any(|p| !ctx.is_caller(&p.subject)) {
        ctx.require_check_execute()?;
    }
    let index = ctx.caller.index.clone();
    let now = Utc::now();
    let mut allowed = 0;
    let mut tally = state.metrics.decision_tally(DecisionApi::Batch);
    // One clock reading per decision when nothing else happens between two: the end of one is
    // the start of the next. Logging a decision or answering an item's error reads it again, so
    // that neither is counted as the engine's time.
    let mut last = std::time::Instant::now();
    let results: Vec<BatchResult> = parsed
        .iter()
        .map(|p| match p {
            Ok(p) => {
                let answer = decide(&ctx, &index, p, now);
                let done = std::time::Instant::now();
                tally.decision(answer.allowed, done - last);
                allowed += u64::from(answer.allowed);
                last = if state.decision_log.is_some() {
                    state.log_decision(&ctx, &decided(DecisionApi::Batch, p, &answer));
                    std::time::Instant::now()
                } else {
                    done
                };
                BatchResult::Decided(answer)
            }
            Err(e) => {
                let (status, code) = e.status_and_code();
                let failed = BatchResult::Failed {
                    allowed: false,
                    revision: RevisionText(index.revision),
                    error: json!({"code": code, "message": e.to_string(), "status": status.as_u16()}),
                };
                last = std::time::Instant::now();
                failed
            }
        })
        .collect();
    let decisions = parsed.iter().flatten().count() as u64;
    state
        .usage
        .count_many(ctx.org_id(), allowed, decisions - allowed);
    Ok(Json(BatchAnswer { results }))
}

/// The answer of a batch, written straight from the results (not through a `Value` tree).
#[derive(Serialize)]
pub struct BatchAnswer {
    results: Vec<BatchResult>,
}

/// A decision as the metrics and the decision log take it.
fn decided<'a>(api: DecisionApi, p: &'a Parsed, answer: &CheckAnswer) -> Decided<'a> {
    let permission: &dyn std::fmt::Display = match &p.asked {
        Asked::Permission(permission) => permission,
        Asked::Requirement(expr) => expr,
    };
    Decided {
        api,
        subject: &p.subject,
        permission,
        resource_type: &p.resource.resource_type,
        resource_id: &p.resource.id,
        allowed: answer.allowed,
        revision: answer.revision.0,
    }
}
