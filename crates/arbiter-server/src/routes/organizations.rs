//! `/v1/organizations`: the tenants, their members, and the key's current organization.

use std::sync::Arc;

use arbiter_core::model::{ApiKey, Membership, MembershipStatus, Object, Op, Organization};
use arbiter_core::permission::Permission;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{json_of, new_id, valid_name, written, Paging};
use crate::error::ApiError;
use crate::extract::{organization_of, resource, Caller, Ctx, JsonBody, Path, Query};
use crate::state::{AppState, Prepared};

fn org_ctx(caller: Caller, id: &str) -> Result<Ctx, ApiError> {
    let org_id = organization_of(&caller, Some(id))?;
    let org = caller
        .index
        .organizations
        .get(&org_id)
        .cloned()
        .ok_or(ApiError::NotFound {
            what: "organization",
            id: id.to_owned(),
        })?;
    Ok(Ctx { caller, org })
}

/// `GET /v1/organizations`: every organization for holders of `organization_global:read` on the
/// platform; otherwise the caller's own.
pub async fn list(caller: Caller, Query(paging): Query<Paging>) -> Result<Json<Value>, ApiError> {
    let mut orgs: Vec<Arc<Organization>> = if caller.holds_on_platform("organization_global:read") {
        caller.index.organizations.values().cloned().collect()
    } else {
        caller
            .member_organizations()
            .iter()
            .filter_map(|id| caller.index.organizations.get(id).cloned())
            .collect()
    };
    orgs.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(json!(paging.page(orgs)?)))
}

#[derive(Deserialize)]
pub struct CreateOrganization {
    name: String,
}

/// `POST /v1/organizations`: needs `organization_global:write` on the platform.
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateOrganization>,
) -> Result<Response, ApiError> {
    caller.require_on_platform("organization_global:write")?;
    let name = valid_name("name", &body.name)?;
    let (org, revision) = state
        .write(|_| {
            let now = Utc::now();
            let org = Organization {
                id: new_id("org"),
                name: name.clone(),
                created_at: now,
                updated_at: now,
            };
            Ok(Prepared {
                ops: vec![Op::Put {
                    object: Object::Organization(org.clone()),
                }],
                audit: vec![arbiter_store::AuditRecord {
                    organization_id: Some(org.id.clone()),
                    actor_user_id: caller.user.as_ref().map(|u| u.id.clone()),
                    actor_key_id: Some(caller.key.id.clone()),
                    action: "organization.create".to_owned(),
                    object_kind: "organization".to_owned(),
                    object_id: org.id.clone(),
                    before: None,
                    after: json_of(&org),
                    request_id: caller.request_id().map(str::to_owned),
                }],
                output: org,
            })
        })
        .await?;
    Ok(written(StatusCode::CREATED, revision, org))
}

/// `GET /v1/organizations/{id}`: `organization:read`.
pub async fn get(caller: Caller, Path(id): Path<String>) -> Result<Json<Organization>, ApiError> {
    let ctx = org_ctx(caller, &id)?;
    ctx.require_in_org("organization:read")?;
    Ok(Json((*ctx.org).clone()))
}

/// Every object that belongs to an organization, for its deletion; user keys whose current
/// organization it was are kept, with no current organization.
fn organization_ops(ctx: &Ctx, index: &arbiter_core::index::Index) -> Vec<Op> {
    let org = ctx.org_id();
    let mut ops = Vec::new();
    for object in index.objects() {
        if object.organization_id() != Some(org) {
            continue;
        }
        match object {
            Object::ApiKey(key) if key.project_id.is_none() => {
                ops.push(Op::Put {
                    object: Object::ApiKey(ApiKey {
                        organization_id: None,
                        ..key
                    }),
                });
            }
            other => ops.push(Op::Delete { key: other.key() }),
        }
    }
    ops
}

/// `DELETE /v1/organizations/{id}`: `organization:delete`; removes everything in it.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let ctx = org_ctx(caller, &id)?;
    ctx.require_in_org("organization:delete")?;
    let ((), revision) = state
        .write(|index| {
            if !index.organizations.contains_key(ctx.org_id()) {
                return Err(ApiError::NotFound {
                    what: "organization",
                    id: id.clone(),
                });
            }
            Ok(Prepared {
                ops: organization_ops(&ctx, index),
                audit: vec![ctx.audit(
                    "organization.delete",
                    "organization",
                    &id,
                    json_of(&*ctx.org),
                    None,
                )],
                output: (),
            })
        })
        .await?;
    Ok(written(StatusCode::NO_CONTENT, revision, ()))
}

#[derive(Deserialize)]
pub struct AddUsers {
    users: Vec<UserRef>,
}

#[derive(Deserialize)]
pub struct UserRef {
    user_id: String,
}

/// True when the caller may read the user: on the platform, or in one of the user's
/// organizations.
pub fn user_visible(caller: &Caller, user_id: &str) -> bool {
    let Ok(read) = Permission::parse("user:read") else {
        return false;
    };
    let target = resource("user", user_id);
    caller.index.users.contains_key(user_id)
        && (caller.holds_on_platform("user:read")
            || caller
                .index
                .user_organizations(user_id)
                .into_iter()
                .flatten()
                .any(|org| caller.decide(Some(org), &read, &target).allowed))
}

/// `PATCH /v1/organizations/{id}/users`: add existing users as members; `user:write`, and
/// `user:read` on each user in one of its organizations (or on the platform).
pub async fn add_users(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<AddUsers>,
) -> Result<Response, ApiError> {
    let ctx = org_ctx(caller, &id)?;
    ctx.require_in_org("user:write")?;
    if body.users.is_empty() {
        return Err(ApiError::field("users", "must list at least one user"));
    }
    // A user of organizations the caller cannot read users in is none of its business: 404,
    // as if it did not exist.
    for u in &body.users {
        if !user_visible(&ctx.caller, &u.user_id) {
            return Err(ApiError::NotFound {
                what: "user",
                id: u.user_id.clone(),
            });
        }
    }
    let (members, revision) = state
        .write(|index| {
            let mut ops = Vec::new();
            let mut audit = Vec::new();
            let mut members = Vec::new();
            for u in &body.users {
                if !index.users.contains_key(&u.user_id) {
                    return Err(ApiError::NotFound {
                        what: "user",
                        id: u.user_id.clone(),
                    });
                }
                let membership = index
                    .memberships
                    .get(&arbiter_core::model::pair_key(ctx.org_id(), &u.user_id))
                    .map(|m| m.to_membership())
                    .unwrap_or_else(|| Membership {
                        organization_id: ctx.org_id().to_owned(),
                        user_id: u.user_id.clone(),
                        status: MembershipStatus::Active,
                        created_at: Utc::now(),
                    });
                audit.push(ctx.audit(
                    "organization.add_user",
                    "membership",
                    &u.user_id,
                    None,
                    json_of(&membership),
                ));
                ops.push(Op::Put {
                    object: Object::Membership(membership.clone()),
                });
                members.push(membership);
            }
            Ok(Prepared {
                ops,
                audit,
                output: members,
            })
        })
        .await?;
    Ok(written(
        StatusCode::OK,
        revision,
        json!({"organization_id": id, "users": members}),
    ))
}

/// `GET /v1/organizations/current`.
pub async fn get_current(ctx: Ctx) -> Json<Value> {
    Json(json!({"organization_id": ctx.org.id, "organization": *ctx.org}))
}

#[derive(Deserialize)]
pub struct SetCurrent {
    organization_id: String,
}

/// `PUT /v1/organizations/current`: remembers the organization on the caller's key.
pub async fn put_current(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<SetCurrent>,
) -> Result<Response, ApiError> {
    let org_id = organization_of(&caller, Some(&body.organization_id))?;
    if caller.key.project_id.is_some() {
        return Ok(written(
            StatusCode::OK,
            caller.index.revision,
            json!({"organization_id": org_id}),
        ));
    }
    let key_id = caller.key.id.clone();
    let ((), revision) = state
        .write(|index| {
            let key = index
                .api_keys
                .get(&key_id)
                .ok_or(ApiError::Unauthenticated)?;
            let updated = ApiKey {
                organization_id: Some(org_id.clone()),
                updated_at: Utc::now(),
                ..(**key).clone()
            };
            Ok(Prepared {
                ops: vec![Op::Put {
                    object: Object::ApiKey(updated),
                }],
                audit: vec![arbiter_store::AuditRecord {
                    organization_id: Some(org_id.clone()),
                    actor_user_id: caller.user.as_ref().map(|u| u.id.clone()),
                    actor_key_id: Some(key_id.clone()),
                    action: "organization.set_current".to_owned(),
                    object_kind: "api_key".to_owned(),
                    object_id: key_id.clone(),
                    before: None,
                    after: Some(json!({"organization_id": org_id})),
                    request_id: caller.request_id().map(str::to_owned),
                }],
                output: (),
            })
        })
        .await?;
    Ok(written(
        StatusCode::OK,
        revision,
        json!({"organization_id": org_id}),
    ))
}
