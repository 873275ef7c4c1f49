//! `/v1/users`: users, the caller itself, and invitations.

use std::sync::Arc;

use arbiter_core::engine::{effective_grants, resolve_subject};
use arbiter_core::index::Index;
use arbiter_core::model::{
    pair_key, ApiKey, Membership, MembershipStatus, Node, Object, ObjectKey, ObjectKind, Op,
    Properties, RoleBinding, RoleKind, SubjectRef, User,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::bindings::require_holds_role;
use super::{double_option, json_of, new_id, written, Paging};
use crate::error::ApiError;
use crate::extract::{organization_of, Caller, Ctx, JsonBody, Path, Query};
use crate::state::{AppState, Prepared};

fn valid_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim();
    let ok = email.len() <= 320
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
    if ok {
        Ok(email.to_owned())
    } else {
        Err(ApiError::field("email", "must be an email address"))
    }
}

fn valid_external_ids(ids: &[String]) -> Result<(), ApiError> {
    for id in ids {
        if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
            return Err(ApiError::field(
                "external_ids",
                "must be non-empty strings of at most 256 characters",
            ));
        }
    }
    Ok(())
}

/// A member of the context organization, or 404.
fn member(ctx: &Ctx, index: &Index, id: &str) -> Result<Arc<User>, ApiError> {
    index
        .users
        .get(id)
        .filter(|u| index.is_member(ctx.org_id(), &u.id))
        .cloned()
        .ok_or(ApiError::NotFound {
            what: "user",
            id: id.to_owned(),
        })
}

/// `GET /v1/users`: the organization's members; `user:read`.
pub async fn list(ctx: Ctx, Query(paging): Query<Paging>) -> Result<Json<Value>, ApiError> {
    ctx.require_in_org("user:read")?;
    let index = ctx.index();
    let mut users: Vec<Value> = index
        .organization_users
        .get(ctx.org_id())
        .into_iter()
        .flatten()
        .filter_map(|id| index.users.get(id))
        .map(|u| user_in_org(index, ctx.org_id(), u))
        .collect();
    users.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Ok(Json(json!(paging.page(users)?)))
}

fn user_in_org(index: &Index, org: &str, user: &User) -> Value {
    let mut value = json!(user);
    if let Some(m) = index.memberships.get(&pair_key(org, &user.id)) {
        value["membership_status"] = json!(m.status);
    }
    value
}

#[derive(Deserialize)]
pub struct CreateUser {
    email: String,
    name: Option<String>,
    #[serde(default)]
    external_ids: Vec<String>,
    #[serde(default)]
    properties: Properties,
}

/// `POST /v1/users`: creates a user as a member of the organization; `user:write`.
pub async fn create(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    JsonBody(body): JsonBody<CreateUser>,
) -> Result<Response, ApiError> {
    ctx.require_in_org("user:write")?;
    let email = valid_email(&body.email)?;
    valid_external_ids(&body.external_ids)?;
    let (user, revision) = state
        .write(|index| {
            let now = Utc::now();
            let user = User {
                id: new_id("usr"),
                email: email.clone(),
                name: body.name.clone(),
                external_ids: body.external_ids.clone(),
                properties: body.properties.clone(),
                created_at: now,
                updated_at: now,
            };
            let membership = Membership {
                organization_id: ctx.org_id().to_owned(),
                user_id: user.id.clone(),
                status: MembershipStatus::Active,
                created_at: now,
            };
            no_identity_theft(index, &user)?;
            Ok(Prepared {
                ops: vec![
                    Op::Put {
                        object: Object::User(user.clone()),
                    },
                    Op::Put {
                        object: Object::Membership(membership),
                    },
                ],
                audit: vec![ctx.audit("user.create", "user", &user.id, None, json_of(&user))],
                output: user,
            })
        })
        .await?;
    Ok(written(StatusCode::CREATED, revision, user))
}

/// `GET /v1/users/{id}`: `user:read` on the user (every member may read itself).
pub async fn get(ctx: Ctx, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let user = member(&ctx, ctx.index(), &id)?;
    ctx.require("user:read", "user", &user.id)?;
    Ok(Json(user_in_org(ctx.index(), ctx.org_id(), &user)))
}

#[derive(Deserialize)]
pub struct PatchUser {
    email: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    name: Option<Option<String>>,
    external_ids: Option<Vec<String>>,
    properties: Option<Properties>,
}

fn patched(user: &User, body: &PatchUser) -> Result<User, ApiError> {
    if body.email.is_none()
        && body.name.is_none()
        && body.external_ids.is_none()
        && body.properties.is_none()
    {
        return Err(ApiError::field(
            "body",
            "must change at least one of email, name, external_ids, properties",
        ));
    }
    let mut next = user.clone();
    if let Some(email) = &body.email {
        next.email = valid_email(email)?;
    }
    if let Some(name) = &body.name {
        next.name = name.clone();
    }
    if let Some(ids) = &body.external_ids {
        valid_external_ids(ids)?;
        next.external_ids = ids.clone();
    }
    if let Some(props) = &body.properties {
        next.properties = props.clone();
    }
    next.updated_at = Utc::now();
    Ok(next)
}

/// An external id that is another user's id or email would let its holder own that user's
/// resources (OWN scope matches any of a subject's identities): refused.
fn no_identity_theft(index: &arbiter_core::index::Index, user: &User) -> Result<(), ApiError> {
    for e in &user.external_ids {
        if index.find_user(e).is_some_and(|other| other.id != user.id) {
            return Err(ApiError::Conflict {
                code: "already_exists",
                message: format!("external id `{e}` names another user"),
            });
        }
    }
    Ok(())
}

/// Self-service changes only a user's name: its email, external ids and properties decide what
/// it owns and which conditions it meets, so they are an administrator's to change.
fn self_service_only_name(body: &PatchUser) -> Result<(), ApiError> {
    if body.email.is_some() || body.external_ids.is_some() || body.properties.is_some() {
        return Err(ApiError::Forbidden {
            permission: "user:write".to_owned(),
            resource: "one's own email, external ids or properties (an administrator changes them)"
                .to_owned(),
        });
    }
    Ok(())
}

async fn patch_user(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    body: &PatchUser,
) -> Result<Response, ApiError> {
    let (user, revision) = state
        .write(|index| {
            let user = index.users.get(id).ok_or(ApiError::NotFound {
                what: "user",
                id: id.to_owned(),
            })?;
            let next = patched(user, body)?;
            no_identity_theft(index, &next)?;
            Ok(Prepared {
                ops: vec![Op::Put {
                    object: Object::User(next.clone()),
                }],
                audit: vec![ctx.audit("user.update", "user", id, json_of(&**user), json_of(&next))],
                output: next,
            })
        })
        .await?;
    Ok(written(StatusCode::OK, revision, user))
}

/// `PATCH /v1/users/{id}`: `user:write` on the user.
pub async fn patch(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PatchUser>,
) -> Result<Response, ApiError> {
    let user = member(&ctx, ctx.index(), &id)?;
    ctx.require("user:write", "user", &user.id)?;
    let is_self = ctx.caller.user.as_ref().is_some_and(|me| me.id == user.id);
    if is_self && ctx.require_in_org("user:write").is_err() {
        self_service_only_name(&body)?;
    }
    // A user shared with other organizations is theirs too: its email, external ids and
    // properties (which ownership and conditions rely on there) change only with `user:write`
    // in each of them.
    let others = ctx
        .index()
        .user_organizations(&user.id)
        .cloned()
        .unwrap_or_default();
    let permission = arbiter_core::permission::Permission::parse("user:write")?;
    for org in others.iter().filter(|o| o.as_str() != ctx.org_id()) {
        let query = crate::extract::resource("user", &user.id);
        if !ctx.caller.decide(Some(org), &permission, &query).allowed {
            return Err(ApiError::Forbidden {
                permission: "user:write".to_owned(),
                resource: format!("user {} in its other organizations", user.id),
            });
        }
    }
    patch_user(&state, &ctx, &id, &body).await
}

/// The ops that take a user out of an organization; and, when it is in no other organization,
/// delete it with its keys and platform bindings.
fn removal_ops(index: &Index, org: &str, user_id: &str) -> Vec<Op> {
    let mut ops = vec![Op::Delete {
        key: ObjectKey {
            kind: ObjectKind::Membership,
            id: pair_key(org, user_id),
        },
    }];
    // The user's resource grants in the organization go with its membership.
    for g in index.grants_by_organization.get(org).into_iter().flatten() {
        if g.grant.subject == arbiter_core::model::GrantSubject::User(user_id.to_owned()) {
            ops.push(Op::Delete {
                key: ObjectKey {
                    kind: ObjectKind::ResourceGrant,
                    id: g.grant.id.clone(),
                },
            });
        }
    }
    for space in index.user_spaces(user_id).into_iter().flatten() {
        if index
            .spaces
            .get(space)
            .is_some_and(|s| s.organization_id == org)
        {
            ops.push(Op::Delete {
                key: ObjectKey {
                    kind: ObjectKind::SpaceMember,
                    id: pair_key(space, user_id),
                },
            });
        }
    }
    for group in index.user_groups(user_id).into_iter().flatten() {
        if index
            .groups
            .get(group)
            .is_some_and(|g| g.organization_id == org)
        {
            ops.push(Op::Delete {
                key: ObjectKey {
                    kind: ObjectKind::GroupMember,
                    id: pair_key(group, user_id),
                },
            });
        }
    }
    let keys: Vec<Arc<ApiKey>> = index
        .user_keys(user_id)
        .into_iter()
        .flatten()
        .filter_map(|k| index.api_keys.get(k).cloned())
        .collect();
    let mut subjects = vec![SubjectRef::User(user_id.to_owned())];
    subjects.extend(keys.iter().map(|k| SubjectRef::ApiKey(k.id.clone())));
    // A user bound on the platform is not the organization's to delete, even when it leaves its
    // last organization: only its membership goes.
    let on_platform = subjects.iter().any(|subject| {
        index
            .subject_bindings(subject)
            .iter()
            .any(|b| b.organization_id().is_none())
    });
    let last = !on_platform
        && index
            .user_organizations(user_id)
            .is_none_or(|orgs| orgs.iter().all(|o| o == org));
    for subject in &subjects {
        for b in index.subject_bindings(subject) {
            if last || b.organization_id() == Some(org) {
                ops.push(Op::Delete {
                    key: ObjectKey {
                        kind: ObjectKind::RoleBinding,
                        id: b.id().to_owned(),
                    },
                });
            }
        }
    }
    for key in &keys {
        if last || key.organization_id.as_deref() == Some(org) && key.project_id.is_some() {
            ops.push(Op::Delete {
                key: ObjectKey {
                    kind: ObjectKind::ApiKey,
                    id: key.id.clone(),
                },
            });
        } else if key.organization_id.as_deref() == Some(org) {
            ops.push(Op::Put {
                object: Object::ApiKey(ApiKey {
                    organization_id: None,
                    ..(**key).clone()
                }),
            });
        }
    }
    if last {
        ops.push(Op::Delete {
            key: ObjectKey {
                kind: ObjectKind::User,
                id: user_id.to_owned(),
            },
        });
    }
    ops
}

/// `DELETE /v1/users/{id}`: takes the user out of the organization (and deletes it when that was
/// its last); `user:delete`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let user = member(&ctx, ctx.index(), &id)?;
    ctx.require("user:delete", "user", &user.id)?;
    let ((), revision) = state
        .write(|index| {
            let user = member(&ctx, index, &id)?;
            Ok(Prepared {
                ops: removal_ops(index, ctx.org_id(), &id),
                audit: vec![ctx.audit("user.delete", "user", &id, json_of(&*user), None)],
                output: (),
            })
        })
        .await?;
    Ok(written(StatusCode::NO_CONTENT, revision, ()))
}

/// `GET /v1/users/me`.
pub async fn me(caller: Caller) -> Result<Json<Value>, ApiError> {
    let user = caller.require_user()?;
    let mut value = json!(**user);
    value["organizations"] = json!(caller.member_organizations());
    Ok(Json(value))
}

/// `PATCH /v1/users/me`: any caller may update itself.
pub async fn patch_me(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<PatchUser>,
) -> Result<Response, ApiError> {
    let user = caller.require_user()?.clone();
    if !caller.holds_on_platform("user:write") {
        self_service_only_name(&body)?;
    }
    let org = organization_of(&caller, None).ok();
    let org = org.and_then(|o| caller.index.organizations.get(&o).cloned());
    let ctx = Ctx {
        org: org.unwrap_or_else(|| {
            Arc::new(arbiter_core::model::Organization {
                id: String::new(),
                name: String::new(),
                created_at: Utc::now(),
                updated_at: Utc::now(),
            })
        }),
        caller,
    };
    patch_user(&state, &ctx, &user.id, &body).await
}

/// `GET /v1/users/me/auth_info`: the caller, its organization, keys, roles and effective
/// permissions with scopes.
pub async fn auth_info(caller: Caller) -> Result<Json<Value>, ApiError> {
    let index = &caller.index;
    let org = organization_of(&caller, None).ok();
    let now = Utc::now();
    let subject =
        resolve_subject(index, &caller.subject(), now).ok_or(ApiError::Unauthenticated)?;
    let grants = effective_grants(index, &subject, org.as_deref(), now);
    let mut roles: Vec<Value> = Vec::new();
    for g in &grants {
        let role = json!({
            "role_id": g.source.role_id, "role_name": g.source.role_name, "binding_id": g.source.binding_id,
            "resource_type": g.source.resource_type, "resource_id": g.source.resource_id, "via": g.source.via,
        });
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    let keys: Vec<Value> = match &caller.user {
        Some(user) => index
            .user_keys(&user.id)
            .into_iter()
            .flatten()
            .filter_map(|k| index.api_keys.get(k))
            .filter(|k| k.is_usable(now))
            .map(
                |k| json!({"id": k.id, "name": k.name, "kind": k.kind, "project_id": k.project_id}),
            )
            .collect(),
        None => vec![
            json!({"id": caller.key.id, "name": caller.key.name, "kind": caller.key.kind, "project_id": caller.key.project_id}),
        ],
    };
    Ok(Json(json!({
        "user": caller.user.as_deref(),
        "key": {"id": caller.key.id, "name": caller.key.name, "kind": caller.key.kind, "project_id": caller.key.project_id},
        "organization": org.as_ref().and_then(|o| index.organizations.get(o)).map(|o| &**o),
        "organizations": caller.member_organizations(),
        "keys": keys,
        "roles": roles,
        "permissions": grants,
    })))
}

#[derive(Deserialize)]
pub struct Invite {
    emails: Vec<String>,
    role_id: Option<String>,
}

/// `POST /v1/users/invite_users`: pending members, optionally bound to a role on the
/// organization; `invite_user:write`, and every permission of the role.
pub async fn invite(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    JsonBody(body): JsonBody<Invite>,
) -> Result<Response, ApiError> {
    ctx.require_in_org("invite_user:write")?;
    if body.emails.is_empty() {
        return Err(ApiError::field("emails", "must list at least one email"));
    }
    let emails = body
        .emails
        .iter()
        .map(|e| valid_email(e))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(role_id) = &body.role_id {
        let role = ctx
            .index()
            .role_in(Some(ctx.org_id()), role_id)
            .ok_or(ApiError::NotFound {
                what: "role",
                id: role_id.clone(),
            })?;
        if role.role.kind == RoleKind::System {
            return Err(ApiError::Unprocessable {
                code: "system_role",
                message: "system roles may be bound only to project keys".to_owned(),
            });
        }
        require_holds_role(&ctx, role, &Node::Organization(ctx.org_id().to_owned()))?;
    }
    let (invited, revision) = state
        .write(|index| {
            let now = Utc::now();
            let mut ops = Vec::new();
            let mut audit = Vec::new();
            let mut invited = Vec::new();
            for email in &emails {
                let user = match index.find_user(email) {
                    // An account of another organization is not the inviter's to link: only a
                    // caller who may already read it (in one of its organizations, or on the
                    // platform) may invite it.
                    Some(u) if u.email.eq_ignore_ascii_case(email) && !index.is_member(ctx.org_id(), &u.id) && !super::organizations::user_visible(&ctx.caller, &u.id) => {
                        return Err(ApiError::Conflict { code: "already_exists", message: format!("`{email}` belongs to an existing account; ask an administrator of one of its organizations to add it") });
                    }
                    Some(u) if u.email.eq_ignore_ascii_case(email) => (**u).clone(),
                    _ => {
                        let u = User { id: new_id("usr"), email: email.clone(), name: None, external_ids: Vec::new(), properties: Properties::new(), created_at: now, updated_at: now };
                        ops.push(Op::Put { object: Object::User(u.clone()) });
                        u
                    }
                };
                let status = if index.is_member(ctx.org_id(), &user.id) {
                    index.memberships.get(&pair_key(ctx.org_id(), &user.id)).map(|m| m.status).unwrap_or(MembershipStatus::Active)
                } else {
                    ops.push(Op::Put {
                        object: Object::Membership(Membership { organization_id: ctx.org_id().to_owned(), user_id: user.id.clone(), status: MembershipStatus::Pending, created_at: now }),
                    });
                    MembershipStatus::Pending
                };
                let org_node = Node::Organization(ctx.org_id().to_owned());
                let bound = |role_id: &str| {
                    index
                        .subject_bindings(&SubjectRef::User(user.id.clone()))
                        .iter()
                        .any(|b| {
                            b.role_id() == role_id
                                && b.node() == org_node.view()
                                && b.condition.is_none()
                        })
                };
                // Inviting again does not bind the role a second time.
                if let Some(role_id) = body.role_id.as_ref().filter(|r| !bound(r)) {
                    let binding = RoleBinding {
                        id: new_id("rb"),
                        role_id: role_id.clone(),
                        subject: SubjectRef::User(user.id.clone()),
                        node: Node::Organization(ctx.org_id().to_owned()),
                        organization_id: Some(ctx.org_id().to_owned()),
                        condition: None,
                        expires_at: None,
                        created_at: now,
                        updated_at: now,
                    };
                    ops.push(Op::Put { object: Object::RoleBinding(binding) });
                }
                audit.push(ctx.audit("user.invite", "user", &user.id, None, Some(json!({"email": user.email, "role_id": body.role_id}))));
                invited.push(json!({"id": user.id, "email": user.email, "membership_status": status, "role_id": body.role_id}));
            }
            Ok(Prepared { ops, audit, output: invited })
        })
        .await?;
    Ok(written(StatusCode::OK, revision, json!({"users": invited})))
}
