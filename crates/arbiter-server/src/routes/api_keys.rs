//! `/v1/api-keys`: bearer keys. The secret is in the create and rotate answers only; the store
//! keeps its SHA-256.

use std::sync::Arc;

use arbiter_core::bundle::hash_secret;
use arbiter_core::catalog::PROJECT_KEY_ROLE;
use arbiter_core::index::Index;
use arbiter_core::model::{ApiKey, ApiKeyKind, Node, Object, Op, RoleBinding, SubjectRef};
use arbiter_core::permission::Permission;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::bindings::require_holds_role;
use super::{json_of, new_id, valid_name, written, Paging};
use crate::error::ApiError;
use crate::extract::{
    organization_of, resource, Caller, Ctx, JsonBody, Path, Query, ORGANIZATION_HEADER,
};
use crate::keys;
use crate::state::{AppState, Prepared};

/// A key as the API shows it: never its secret or hash.
pub fn key_json(key: &ApiKey, last_used_at: Option<DateTime<Utc>>) -> Value {
    json!({
        "id": key.id, "name": key.name, "kind": key.kind, "user_id": key.user_id, "project_id": key.project_id,
        "organization_id": key.organization_id, "prefix": key.display_prefix, "expires_at": key.expires_at,
        "revoked_at": key.revoked_at, "last_used_at": last_used_at, "created_at": key.created_at, "updated_at": key.updated_at,
    })
}

/// A user's own user keys, or the calling key itself. A project key belongs to its project, not
/// to whoever created it.
fn own(caller: &Caller, key: &ApiKey) -> bool {
    (key.kind == ApiKeyKind::User && caller.user.as_ref().is_some_and(|u| u.id == key.user_id))
        || caller.key.id == key.id
}

/// True when a user, or one of its keys, holds a binding on the platform: only platform
/// administrators may obtain or revoke such a user's keys.
fn platform_bound(index: &Index, user_id: &str) -> bool {
    let bound = |subject: &arbiter_core::model::SubjectRef| {
        index
            .subject_bindings(subject)
            .iter()
            .any(|b| b.organization_id().is_none())
    };
    bound(&arbiter_core::model::SubjectRef::User(user_id.to_owned()))
        || index
            .user_keys(user_id)
            .into_iter()
            .flatten()
            .any(|k| bound(&arbiter_core::model::SubjectRef::ApiKey(k.clone())))
}

fn in_org(index: &Index, org: &str, key: &ApiKey) -> bool {
    match key.kind {
        ApiKeyKind::Project => key.organization_id.as_deref() == Some(org),
        ApiKeyKind::User => index.is_member(org, &key.user_id),
    }
}

/// The context organization, when the call needs one (keys of others).
fn ctx_of(caller: &Caller, headers: &HeaderMap) -> Result<Ctx, ApiError> {
    let header = headers
        .get(ORGANIZATION_HEADER)
        .and_then(|v| v.to_str().ok());
    let org_id = organization_of(caller, header)?;
    let org = caller
        .index
        .organizations
        .get(&org_id)
        .cloned()
        .ok_or(ApiError::NotFound {
            what: "organization",
            id: org_id,
        })?;
    Ok(Ctx {
        caller: caller.clone(),
        org,
    })
}

/// A key the caller may see: its own, or one of its organization's with `permission`.
fn visible_key(
    caller: &Caller,
    headers: &HeaderMap,
    id: &str,
    permission: &str,
) -> Result<(Arc<ApiKey>, Option<Ctx>), ApiError> {
    let not_found = || ApiError::NotFound {
        what: "api key",
        id: id.to_owned(),
    };
    let key = caller
        .index
        .api_keys
        .get(id)
        .cloned()
        .ok_or_else(not_found)?;
    if own(caller, &key) {
        return Ok((key, ctx_of(caller, headers).ok()));
    }
    let ctx = ctx_of(caller, headers).map_err(|_| not_found())?;
    if !in_org(&caller.index, ctx.org_id(), &key) {
        return Err(not_found());
    }
    ctx.require(permission, "api_key", id)?;
    if platform_bound(&caller.index, &key.user_id) && !caller.holds_on_platform(permission) {
        return Err(ApiError::Forbidden {
            permission: permission.to_owned(),
            resource: "a key of a platform-bound user".to_owned(),
        });
    }
    Ok((key, Some(ctx)))
}

/// A secret for another user's key acts as that user in every one of its organizations, so
/// whoever obtains one (by creating or rotating the key) must hold `api_key:write` in each of
/// them, or on the platform: 403 otherwise.
fn require_in_every_organization_of(caller: &Caller, user_id: &str) -> Result<(), ApiError> {
    const WRITE: &str = "api_key:write";
    if caller.holds_on_platform(WRITE) {
        return Ok(());
    }
    if platform_bound(&caller.index, user_id) {
        return Err(ApiError::Forbidden {
            permission: WRITE.to_owned(),
            resource: "the platform".to_owned(),
        });
    }
    let permission = Permission::parse(WRITE)?;
    let everywhere = caller
        .index
        .user_organizations(user_id)
        .into_iter()
        .flatten()
        .all(|org| {
            caller
                .decide(Some(org), &permission, &resource("organization", org))
                .allowed
        });
    if everywhere {
        Ok(())
    } else {
        Err(ApiError::Forbidden {
            permission: WRITE.to_owned(),
            resource: format!("every organization of user {user_id}"),
        })
    }
}

#[derive(Deserialize)]
pub struct KeyFilter {
    user_id: Option<String>,
    #[serde(flatten)]
    paging: Paging,
}

/// `GET /v1/api-keys`: the caller's own keys; another user's with `?user_id=` and `api_key:read`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    Query(filter): Query<KeyFilter>,
) -> Result<Json<Value>, ApiError> {
    let index = caller.index.clone();
    let user_id = match (&filter.user_id, &caller.user) {
        (Some(u), Some(me)) if *u == me.id => me.id.clone(),
        (Some(u), _) => {
            let ctx = ctx_of(&caller, &headers)?;
            if !index.is_member(ctx.org_id(), u) {
                return Err(ApiError::NotFound {
                    what: "user",
                    id: u.clone(),
                });
            }
            ctx.require_in_org("api_key:read")?;
            u.clone()
        }
        (None, Some(me)) => me.id.clone(),
        (None, None) => caller.key.user_id.clone(),
    };
    let mut keys: Vec<Arc<ApiKey>> = index
        .user_keys(&user_id)
        .into_iter()
        .flatten()
        .filter_map(|k| index.api_keys.get(k).cloned())
        .collect();
    keys.sort_by(|a, b| a.id.cmp(&b.id));
    let page = filter.paging.page(keys)?;
    let mut items = Vec::with_capacity(page.items.len());
    for key in &page.items {
        items.push(key_json(key, state.store.key_last_used(&key.id).await?));
    }
    Ok(Json(
        json!({"items": items, "offset": page.offset, "limit": page.limit, "total": page.total}),
    ))
}

#[derive(Deserialize)]
pub struct CreateKey {
    name: String,
    #[serde(default = "user_kind")]
    kind: ApiKeyKind,
    user_id: Option<String>,
    project_id: Option<String>,
    expires_at: Option<DateTime<Utc>>,
}

fn user_kind() -> ApiKeyKind {
    ApiKeyKind::User
}

/// `POST /v1/api-keys`: a user key for oneself always; for another user with `api_key:write`.
/// A project key needs `api_key:write` on the project and every permission of `project_key`
/// there, to which it is bound on creation.
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<Response, ApiError> {
    let name = valid_name("name", &body.name)?;
    let now = Utc::now();
    if body.expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::Unprocessable {
            code: "expired",
            message: "`expires_at` is in the past".to_owned(),
        });
    }
    let ctx = ctx_of(&caller, &headers);
    let me = caller.user.as_ref().map(|u| u.id.clone());
    let user_id = body
        .user_id
        .clone()
        .or_else(|| me.clone())
        .unwrap_or_else(|| caller.key.user_id.clone());
    let mut project_role = None;
    let organization_id = match body.kind {
        ApiKeyKind::User => {
            if body.project_id.is_some() {
                return Err(ApiError::field("project_id", "is only for project keys"));
            }
            if Some(&user_id) != me.as_ref() {
                let ctx = ctx.as_ref().map_err(|_| ApiError::NotFound {
                    what: "user",
                    id: user_id.clone(),
                })?;
                if !caller.index.is_member(ctx.org_id(), &user_id) {
                    return Err(ApiError::NotFound {
                        what: "user",
                        id: user_id.clone(),
                    });
                }
                ctx.require_in_org("api_key:write")?;
                require_in_every_organization_of(&caller, &user_id)?;
            }
            ctx.as_ref().ok().map(|c| c.org_id().to_owned())
        }
        ApiKeyKind::Project => {
            let ctx = ctx.as_ref().map_err(|_| ApiError::OrganizationRequired)?;
            let project_id = body
                .project_id
                .clone()
                .ok_or_else(|| ApiError::field("project_id", "is required for a project key"))?;
            super::projects::find(ctx, ctx.index(), &project_id)?;
            if Some(&user_id) != me.as_ref() {
                return Err(ApiError::field(
                    "user_id",
                    "a project key is created by the caller",
                ));
            }
            ctx.require("api_key:write", "project", &project_id)?;
            let role = ctx
                .index()
                .catalog
                .predefined_role_by_name(PROJECT_KEY_ROLE)
                .and_then(|r| ctx.index().roles.get(&r.id))
                .cloned()
                .ok_or_else(|| ApiError::Internal("the project_key role is missing".to_owned()))?;
            require_holds_role(ctx, &role, &Node::Project(project_id.clone()))?;
            project_role = Some((role.role.id.clone(), project_id));
            Some(ctx.org_id().to_owned())
        }
    };
    let secret = keys::generate();
    let (key, revision) = state
        .write(|index| {
            if !index.users.contains_key(&user_id) {
                return Err(ApiError::NotFound {
                    what: "user",
                    id: user_id.clone(),
                });
            }
            let key = ApiKey {
                id: new_id("key"),
                name: name.clone(),
                kind: body.kind,
                user_id: user_id.clone(),
                project_id: body.project_id.clone(),
                organization_id: organization_id.clone(),
                secret_hash: hash_secret(&secret),
                display_prefix: keys::display_prefix(&secret),
                expires_at: body.expires_at,
                revoked_at: None,
                created_at: now,
                updated_at: now,
            };
            let mut ops = vec![Op::Put {
                object: Object::ApiKey(key.clone()),
            }];
            if let Some((role_id, project_id)) = &project_role {
                ops.push(Op::Put {
                    object: Object::RoleBinding(RoleBinding {
                        id: new_id("rb"),
                        role_id: role_id.clone(),
                        subject: SubjectRef::ApiKey(key.id.clone()),
                        node: Node::Project(project_id.clone()),
                        organization_id: organization_id.clone(),
                        condition: None,
                        expires_at: None,
                        created_at: now,
                        updated_at: now,
                    }),
                });
            }
            let audit = arbiter_store::AuditRecord {
                organization_id: organization_id.clone(),
                actor_user_id: me.clone(),
                actor_key_id: Some(caller.key.id.clone()),
                action: "api_key.create".to_owned(),
                object_kind: "api_key".to_owned(),
                object_id: key.id.clone(),
                before: None,
                after: Some(key_json(&key, None)),
                request_id: caller.request_id().map(str::to_owned),
            };
            Ok(Prepared {
                ops,
                audit: vec![audit],
                output: key,
            })
        })
        .await?;
    let mut answer = key_json(&key, None);
    answer["key"] = json!(secret);
    Ok(written(StatusCode::CREATED, revision, answer))
}

fn audit_record(
    caller: &Caller,
    ctx: Option<&Ctx>,
    action: &str,
    key: &ApiKey,
    after: Option<Value>,
) -> arbiter_store::AuditRecord {
    arbiter_store::AuditRecord {
        organization_id: ctx
            .map(|c| c.org_id().to_owned())
            .or_else(|| key.organization_id.clone()),
        actor_user_id: caller.user.as_ref().map(|u| u.id.clone()),
        actor_key_id: Some(caller.key.id.clone()),
        action: action.to_owned(),
        object_kind: "api_key".to_owned(),
        object_id: key.id.clone(),
        before: Some(key_json(key, None)),
        after,
        request_id: caller.request_id().map(str::to_owned),
    }
}

/// `DELETE /v1/api-keys/{id}`: revokes the key at once; own keys always, others' with
/// `api_key:delete`.
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (_, ctx) = visible_key(&caller, &headers, &id, "api_key:delete")?;
    let ((), revision) = state
        .write(|index| {
            let key = index.api_keys.get(&id).ok_or(ApiError::NotFound {
                what: "api key",
                id: id.clone(),
            })?;
            if key.revoked_at.is_some() {
                return Ok(Prepared {
                    ops: vec![],
                    audit: vec![],
                    output: (),
                });
            }
            let now = Utc::now();
            let next = ApiKey {
                revoked_at: Some(now),
                updated_at: now,
                ..(**key).clone()
            };
            Ok(Prepared {
                audit: vec![audit_record(
                    &caller,
                    ctx.as_ref(),
                    "api_key.revoke",
                    key,
                    Some(key_json(&next, None)),
                )],
                ops: vec![Op::Put {
                    object: Object::ApiKey(next),
                }],
                output: (),
            })
        })
        .await?;
    Ok(written(StatusCode::NO_CONTENT, revision, ()))
}

/// `POST /v1/api-keys/{id}/rotate`: a new secret for the same key; the old one stops working at
/// once. Own keys always, others' with `api_key:write`.
pub async fn rotate(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (key, ctx) = visible_key(&caller, &headers, &id, "api_key:write")?;
    if key.kind == ApiKeyKind::User && !own(&caller, &key) {
        require_in_every_organization_of(&caller, &key.user_id)?;
    }
    // A new secret carries every role bound to the key: whoever rotates it must hold them.
    if !own(&caller, &key) {
        if let Some(ctx) = &ctx {
            for b in caller
                .index
                .subject_bindings(&SubjectRef::ApiKey(key.id.clone()))
            {
                if let Some(role) = caller.index.roles.get(b.role_id()) {
                    super::bindings::require_holds_role(ctx, role, &b.node().to_node())?;
                }
            }
        }
    }
    let secret = keys::generate();
    let (key, revision) = state
        .write(|index| {
            let key = index.api_keys.get(&id).ok_or(ApiError::NotFound {
                what: "api key",
                id: id.clone(),
            })?;
            if !key.is_usable(Utc::now()) {
                return Err(ApiError::Conflict {
                    code: "key_unusable",
                    message: "a revoked or expired key cannot be rotated".to_owned(),
                });
            }
            let next = ApiKey {
                secret_hash: hash_secret(&secret),
                display_prefix: keys::display_prefix(&secret),
                updated_at: Utc::now(),
                ..(**key).clone()
            };
            Ok(Prepared {
                audit: vec![audit_record(
                    &caller,
                    ctx.as_ref(),
                    "api_key.rotate",
                    key,
                    json_of(&key_json(&next, None)),
                )],
                ops: vec![Op::Put {
                    object: Object::ApiKey(next.clone()),
                }],
                output: next,
            })
        })
        .await?;
    let mut answer = key_json(&key, None);
    answer["key"] = json!(secret);
    Ok(written(StatusCode::OK, revision, answer))
}
