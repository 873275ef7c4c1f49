//! `/v1/spaces`: the teams of an organization, and their members.

use std::sync::Arc;

use arbiter_core::index::Index;
use arbiter_core::model::{pair_key, Node, Object, ObjectKey, ObjectKind, Op, Space, SpaceMember};
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
use crate::extract::{resource, Ctx, JsonBody, Path, Query};
use crate::state::{AppState, Prepared};

/// A space of the context organization, or 404.
pub fn find(ctx: &Ctx, index: &Index, id: &str) -> Result<Space, ApiError> {
    index
        .spaces
        .get(id)
        .filter(|s| s.organization_id == ctx.org_id())
        .map(|s| (**s).clone())
        .ok_or(ApiError::NotFound {
            what: "space",
            id: id.to_owned(),
        })
}

/// Bindings on a node, to delete with it.
pub fn bindings_on(index: &Index, node: &Node) -> Vec<Op> {
    index
        .bindings
        .values()
        .filter(|b| b.node() == node.view())
        .map(|b| Op::Delete {
            key: ObjectKey {
                kind: ObjectKind::RoleBinding,
                id: b.id().to_owned(),
            },
        })
        .collect()
}

/// `GET /v1/spaces`: the spaces the caller may read.
pub async fn list(ctx: Ctx, Query(paging): Query<Paging>) -> Result<Json<Value>, ApiError> {
    let read = Permission::parse("space:read")?;
    let mut spaces: Vec<&Space> = ctx
        .index()
        .spaces
        .values()
        .filter(|s| s.organization_id == ctx.org_id())
        .filter(|s| ctx.allowed(&read, &resource("space", &s.id)))
        .map(|s| &**s)
        .collect();
    spaces.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(json!(paging.page(spaces)?)))
}

#[derive(Deserialize)]
pub struct CreateSpace {
    name: String,
    #[serde(default)]
    description: String,
}

/// `POST /v1/spaces`: `space:write` in the organization.
pub async fn create(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    JsonBody(body): JsonBody<CreateSpace>,
) -> Result<Response, ApiError> {
    ctx.require_in_org("space:write")?;
    let name = valid_name("name", &body.name)?;
    let (space, revision) = state
        .write(|_| {
            let now = Utc::now();
            let space = Space {
                id: new_id("spc"),
                organization_id: ctx.org_id().to_owned(),
                name: name.clone(),
                description: body.description.clone(),
                created_at: now,
                updated_at: now,
            };
            Ok(Prepared {
                ops: vec![Op::Put {
                    object: Object::Space(space.clone()),
                }],
                audit: vec![ctx.audit("space.create", "space", &space.id, None, json_of(&space))],
                output: space,
            })
        })
        .await?;
    Ok(written(StatusCode::CREATED, revision, space))
}

/// `GET /v1/spaces/{id}`: `space:read`.
pub async fn get(ctx: Ctx, Path(id): Path<String>) -> Result<Json<Space>, ApiError> {
    let space = find(&ctx, ctx.index(), &id)?;
    ctx.require("space:read", "space", &id)?;
    Ok(Json(space))
}

#[derive(Deserialize)]
pub struct PatchSpace {
    name: Option<String>,
    description: Option<String>,
}

/// `PATCH /v1/spaces/{id}`: `space:write`.
pub async fn patch(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PatchSpace>,
) -> Result<Response, ApiError> {
    find(&ctx, ctx.index(), &id)?;
    ctx.require("space:write", "space", &id)?;
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
    let (space, revision) = state
        .write(|index| {
            let before = find(&ctx, index, &id)?;
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
                    object: Object::Space(next.clone()),
                }],
                audit: vec![ctx.audit(
                    "space.update",
                    "space",
                    &id,
                    json_of(&before),
                    json_of(&next),
                )],
                output: next,
            })
        })
        .await?;
    Ok(written(StatusCode::OK, revision, space))
}

/// `DELETE /v1/spaces/{id}`: `space:delete`; refused with 409 while it holds projects. Its
/// memberships and the bindings on it go with it.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    find(&ctx, ctx.index(), &id)?;
    ctx.require("space:delete", "space", &id)?;
    let ((), revision) = state
        .write(|index| {
            let space = find(&ctx, index, &id)?;
            if index.projects.values().any(|p| p.project.space_id == id) {
                return Err(ApiError::Conflict {
                    code: "space_not_empty",
                    message: format!("space `{id}` still holds projects; delete them first"),
                });
            }
            let mut ops = vec![Op::Delete {
                key: ObjectKey {
                    kind: ObjectKind::Space,
                    id: id.clone(),
                },
            }];
            for user in index.space_members.get(&id).into_iter().flatten() {
                ops.push(Op::Delete {
                    key: ObjectKey {
                        kind: ObjectKind::SpaceMember,
                        id: pair_key(&id, user),
                    },
                });
            }
            ops.extend(bindings_on(index, &Node::Space(id.clone())));
            Ok(Prepared {
                ops,
                audit: vec![ctx.audit("space.delete", "space", &id, json_of(&space), None)],
                output: (),
            })
        })
        .await?;
    Ok(written(StatusCode::NO_CONTENT, revision, ()))
}

/// `GET /v1/spaces/{id}/members`: `space:read`.
pub async fn members(
    ctx: Ctx,
    Path(id): Path<String>,
    Query(paging): Query<Paging>,
) -> Result<Json<Value>, ApiError> {
    find(&ctx, ctx.index(), &id)?;
    ctx.require("space:read", "space", &id)?;
    let index = ctx.index();
    let users: Vec<Value> = index
        .space_members
        .get(&id)
        .into_iter()
        .flatten()
        .filter_map(|u| index.users.get(u))
        .map(|u| json!({"user_id": u.id, "email": u.email, "name": u.name}))
        .collect();
    Ok(Json(json!(paging.page(users)?)))
}

/// `PUT /v1/spaces/{id}/members/{user_id}`: `space:write`; the user must be a member of the
/// organization.
pub async fn add_member(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    find(&ctx, ctx.index(), &id)?;
    ctx.require("space:write", "space", &id)?;
    let (member, revision) = state
        .write(|index| {
            find(&ctx, index, &id)?;
            if !index.is_member(ctx.org_id(), &user_id) {
                return Err(ApiError::NotFound {
                    what: "user",
                    id: user_id.clone(),
                });
            }
            let member = SpaceMember {
                space_id: id.clone(),
                user_id: user_id.clone(),
                organization_id: ctx.org_id().to_owned(),
                created_at: Utc::now(),
            };
            if index
                .space_members
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
                    object: Object::SpaceMember(member.clone()),
                }],
                audit: vec![ctx.audit(
                    "space.add_member",
                    "space_member",
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

/// `DELETE /v1/spaces/{id}/members/{user_id}`: `space:write`.
pub async fn remove_member(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    find(&ctx, ctx.index(), &id)?;
    ctx.require("space:write", "space", &id)?;
    let ((), revision) = state
        .write(|index| {
            if !index
                .space_members
                .get(&id)
                .is_some_and(|m| m.contains(&user_id))
            {
                return Err(ApiError::NotFound {
                    what: "space member",
                    id: user_id.clone(),
                });
            }
            let key = pair_key(&id, &user_id);
            Ok(Prepared {
                ops: vec![Op::Delete {
                    key: ObjectKey {
                        kind: ObjectKind::SpaceMember,
                        id: key.clone(),
                    },
                }],
                audit: vec![ctx.audit("space.remove_member", "space_member", &key, None, None)],
                output: (),
            })
        })
        .await?;
    Ok(written(StatusCode::NO_CONTENT, revision, ()))
}
