//! `/v1/groups` and `/v1/permission-profiles`: named sets of users that act as one subject. Both
//! are managed with `group:*`; they differ only in their route.

use std::sync::Arc;

use arbiter_core::index::Index;
use arbiter_core::model::{
    pair_key, Group, GroupKind, GroupMember, Object, ObjectKey, ObjectKind, Op, SubjectRef,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{json_of, new_id, valid_name, written, Paging};
use crate::error::ApiError;
use crate::extract::{Ctx, JsonBody, Path, Query};
use crate::state::{AppState, Prepared};

fn what(kind: GroupKind) -> &'static str {
    match kind {
        GroupKind::Group => "group",
        GroupKind::PermissionProfile => "permission profile",
    }
}

fn find(ctx: &Ctx, index: &Index, kind: GroupKind, id: &str) -> Result<Group, ApiError> {
    index
        .groups
        .get(id)
        .filter(|g| g.organization_id == ctx.org_id() && g.kind == kind)
        .map(|g| (**g).clone())
        .ok_or(ApiError::NotFound {
            what: what(kind),
            id: id.to_owned(),
        })
}

fn with_members(index: &Index, group: &Group) -> Value {
    let mut value = json!(group);
    let members: Vec<&String> = index
        .group_members
        .get(&group.id)
        .map(|m| m.iter().collect())
        .unwrap_or_default();
    value["members"] = json!(members);
    value
}

async fn list(ctx: Ctx, kind: GroupKind, paging: Paging) -> Result<Json<Value>, ApiError> {
    ctx.require_in_org("group:read")?;
    let index = ctx.index();
    let mut groups: Vec<&Group> = index
        .groups
        .values()
        .filter(|g| g.organization_id == ctx.org_id() && g.kind == kind)
        .map(|g| &**g)
        .collect();
    groups.sort_by(|a, b| a.id.cmp(&b.id));
    let items: Vec<Value> = groups.into_iter().map(|g| with_members(index, g)).collect();
    Ok(Json(json!(paging.page(items)?)))
}

#[derive(Deserialize)]
pub struct CreateGroup {
    name: String,
    #[serde(default)]
    description: String,
}

async fn create(
    state: Arc<AppState>,
    ctx: Ctx,
    kind: GroupKind,
    body: CreateGroup,
) -> Result<Response, ApiError> {
    ctx.require_in_org("group:write")?;
    let name = valid_name("name", &body.name)?;
    let (group, revision) = state
        .write(|_| {
            let now = Utc::now();
            let prefix = if kind == GroupKind::Group {
                "grp"
            } else {
                "prf"
            };
            let group = Group {
                id: new_id(prefix),
                organization_id: ctx.org_id().to_owned(),
                kind,
                name: name.clone(),
                description: body.description.clone(),
                created_at: now,
                updated_at: now,
            };
            Ok(Prepared {
                ops: vec![Op::Put {
                    object: Object::Group(group.clone()),
                }],
                audit: vec![ctx.audit(
                    "group.create",
                    what(kind),
                    &group.id,
                    None,
                    json_of(&group),
                )],
                output: group,
            })
        })
        .await?;
    Ok(written(
        StatusCode::CREATED,
        revision,
        with_members(&state.index(), &group),
    ))
}

async fn get(ctx: Ctx, kind: GroupKind, id: String) -> Result<Json<Value>, ApiError> {
    let group = find(&ctx, ctx.index(), kind, &id)?;
    ctx.require_in_org("group:read")?;
    Ok(Json(with_members(ctx.index(), &group)))
}

#[derive(Deserialize)]
pub struct PatchGroup {
    name: Option<String>,
    description: Option<String>,
}

async fn patch(
    state: Arc<AppState>,
    ctx: Ctx,
    kind: GroupKind,
    id: String,
    body: PatchGroup,
) -> Result<Response, ApiError> {
    find(&ctx, ctx.index(), kind, &id)?;
    ctx.require_in_org("group:write")?;
    if body.name.is_none() && body.description.is_none() {
        return Err(ApiError::field(
            "body",
            "must change at least one of name, description",
        ));
    }
    let name = body
        .name
        .as_deref()
        .map(|n| valid_name("name", n))
        .transpose()?;
    let (group, revision) = state
        .write(|index| {
            let before = find(&ctx, index, kind, &id)?;
            let mut next = before.clone();
            if let Some(n) = &name {
                next.name = n.clone();
            }
            if let Some(d) = &body.description {
                next.description = d.clone();
            }
            next.updated_at = Utc::now();
            Ok(Prepared {
                ops: vec![Op::Put {
                    object: Object::Group(next.clone()),
                }],
                audit: vec![ctx.audit(
                    "group.update",
                    what(kind),
                    &id,
                    json_of(&before),
                    json_of(&next),
                )],
                output: next,
            })
        })
        .await?;
    Ok(written(
        StatusCode::OK,
        revision,
        with_members(&state.index(), &group),
    ))
}

async fn delete(
    state: Arc<AppState>,
    ctx: Ctx,
    kind: GroupKind,
    id: String,
) -> Result<Response, ApiError> {
    find(&ctx, ctx.index(), kind, &id)?;
    ctx.require_in_org("group:delete")?;
    let ((), revision) = state
        .write(|index| {
            let group = find(&ctx, index, kind, &id)?;
            let mut ops = vec![Op::Delete {
                key: ObjectKey {
                    kind: ObjectKind::Group,
                    id: id.clone(),
                },
            }];
            for user in index.group_members.get(&id).into_iter().flatten() {
                ops.push(Op::Delete {
                    key: ObjectKey {
                        kind: ObjectKind::GroupMember,
                        id: pair_key(&id, user),
                    },
                });
            }
            for b in index.subject_bindings(&SubjectRef::Group(id.clone())) {
                ops.push(Op::Delete {
                    key: ObjectKey {
                        kind: ObjectKind::RoleBinding,
                        id: b.id().to_owned(),
                    },
                });
            }
            Ok(Prepared {
                ops,
                audit: vec![ctx.audit("group.delete", what(kind), &id, json_of(&group), None)],
                output: (),
            })
        })
        .await?;
    Ok(written(StatusCode::NO_CONTENT, revision, ()))
}

/// Joining a group gives its roles and grants: whoever adds a member must hold every permission
/// of every role bound to the group, where it is bound, and every action of its grants.
fn require_holds_what_the_group_holds(ctx: &Ctx, id: &str) -> Result<(), ApiError> {
    let index = ctx.index();
    for b in index.subject_bindings(&SubjectRef::Group(id.to_owned())) {
        if let Some(role) = index.roles.get(b.role_id()) {
            super::bindings::require_holds_role(ctx, role, &b.node().to_node())?;
        }
    }
    for g in index
        .grants_by_organization
        .get(ctx.org_id())
        .into_iter()
        .flatten()
    {
        if g.grant.subject != arbiter_core::model::GrantSubject::Group(id.to_owned()) {
            continue;
        }
        for action in &g.grant.actions {
            if !super::grants::holds_on_pattern_of(ctx, &g.grant.irn, action) {
                return Err(ApiError::Forbidden {
                    permission: action.to_uppercase(),
                    resource: g.grant.irn.clone(),
                });
            }
        }
    }
    Ok(())
}

async fn add_member(
    state: Arc<AppState>,
    ctx: Ctx,
    kind: GroupKind,
    id: String,
    user_id: String,
) -> Result<Response, ApiError> {
    find(&ctx, ctx.index(), kind, &id)?;
    ctx.require_in_org("group:write")?;
    require_holds_what_the_group_holds(&ctx, &id)?;
    let (member, revision) = state
        .write(|index| {
            find(&ctx, index, kind, &id)?;
            if !index.is_member(ctx.org_id(), &user_id) {
                return Err(ApiError::NotFound {
                    what: "user",
                    id: user_id.clone(),
                });
            }
            let member = GroupMember {
                group_id: id.clone(),
                user_id: user_id.clone(),
                organization_id: ctx.org_id().to_owned(),
                created_at: Utc::now(),
            };
            if index
                .group_members
                .get(&id)
                .is_some_and(|m| m.contains(&user_id))
            {
                return Ok(Prepared {
                    ops: vec![],
                    audit: vec![],
                    output: member,
                });
            }
            Ok(Prepared {
                ops: vec![Op::Put {
                    object: Object::GroupMember(member.clone()),
                }],
                audit: vec![ctx.audit(
                    "group.add_member",
                    "group_member",
                    &pair_key(&id, &user_id),
                    None,
                    json_of(&member),
                )],
                output: member,
            })
        })
        .await?;
    Ok(written(StatusCode::OK, revision, member))
}

async fn remove_member(
    state: Arc<AppState>,
    ctx: Ctx,
    kind: GroupKind,
    id: String,
    user_id: String,
) -> Result<Response, ApiError> {
    find(&ctx, ctx.index(), kind, &id)?;
    ctx.require_in_org("group:write")?;
    let ((), revision) = state
        .write(|index| {
            if !index
                .group_members
                .get(&id)
                .is_some_and(|m| m.contains(&user_id))
            {
                return Err(ApiError::NotFound {
                    what: "group member",
                    id: user_id.clone(),
                });
            }
            let key = pair_key(&id, &user_id);
            Ok(Prepared {
                ops: vec![Op::Delete {
                    key: ObjectKey {
                        kind: ObjectKind::GroupMember,
                        id: key.clone(),
                    },
                }],
                audit: vec![ctx.audit("group.remove_member", "group_member", &key, None, None)],
                output: (),
            })
        })
        .await?;
    Ok(written(StatusCode::NO_CONTENT, revision, ()))
}

macro_rules! group_handlers {
    ($module:ident, $kind:expr) => {
        /// Handlers for one kind of group.
        pub mod $module {
            use super::*;

            pub async fn list(
                ctx: Ctx,
                Query(paging): Query<Paging>,
            ) -> Result<Json<Value>, ApiError> {
                super::list(ctx, $kind, paging).await
            }
            pub async fn create(
                State(state): State<Arc<AppState>>,
                ctx: Ctx,
                JsonBody(body): JsonBody<CreateGroup>,
            ) -> Result<Response, ApiError> {
                super::create(state, ctx, $kind, body).await
            }
            pub async fn get(ctx: Ctx, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
                super::get(ctx, $kind, id).await
            }
            pub async fn patch(
                State(state): State<Arc<AppState>>,
                ctx: Ctx,
                Path(id): Path<String>,
                JsonBody(body): JsonBody<PatchGroup>,
            ) -> Result<Response, ApiError> {
                super::patch(state, ctx, $kind, id, body).await
            }
            pub async fn delete(
                State(state): State<Arc<AppState>>,
                ctx: Ctx,
                Path(id): Path<String>,
            ) -> Result<Response, ApiError> {
                super::delete(state, ctx, $kind, id).await
            }
            pub async fn add_member(
                State(state): State<Arc<AppState>>,
                ctx: Ctx,
                Path((id, user_id)): Path<(String, String)>,
            ) -> Result<Response, ApiError> {
                super::add_member(state, ctx, $kind, id, user_id).await
            }
            pub async fn remove_member(
                State(state): State<Arc<AppState>>,
                ctx: Ctx,
                Path((id, user_id)): Path<(String, String)>,
            ) -> Result<Response, ApiError> {
                super::remove_member(state, ctx, $kind, id, user_id).await
            }
        }
    };
}

group_handlers!(user_groups, GroupKind::Group);
group_handlers!(profiles, GroupKind::PermissionProfile);
