//! `/v1/roles`: predefined and custom roles, with the Arize semantics.

use std::sync::Arc;

use arbiter_core::catalog::EntryFile;
use arbiter_core::condition::Condition;
use arbiter_core::index::Index;
use arbiter_core::model::{Node, Object, ObjectKey, ObjectKind, Op, Role, RoleEntry, RoleKind};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::bindings::require_holds_entries;
use super::{json_of, new_id, valid_name, written, Paging};
use crate::error::ApiError;
use crate::extract::{Ctx, JsonBody, Path, Query};
use crate::state::{AppState, Prepared};

#[derive(Deserialize)]
pub struct RoleFilter {
    is_predefined: Option<bool>,
    #[serde(flatten)]
    paging: Paging,
}

/// `GET /v1/roles`: `custom_roles:read`.
pub async fn list(ctx: Ctx, Query(filter): Query<RoleFilter>) -> Result<Json<Value>, ApiError> {
    ctx.require_in_org("custom_roles:read")?;
    let index = ctx.index();
    let mut roles: Vec<&Role> = index
        .roles
        .values()
        .map(|r| &r.role)
        .filter(|r| r.is_predefined || r.organization_id.as_deref() == Some(ctx.org_id()))
        .filter(|r| filter.is_predefined.is_none_or(|p| r.is_predefined == p))
        .collect();
    roles.sort_by(|a, b| (!a.is_predefined, &a.name).cmp(&(!b.is_predefined, &b.name)));
    Ok(Json(json!(filter.paging.page(roles)?)))
}

fn find(ctx: &Ctx, index: &Index, id: &str) -> Result<Role, ApiError> {
    index
        .role_in(Some(ctx.org_id()), id)
        .map(|r| r.role.clone())
        .ok_or(ApiError::NotFound {
            what: "role",
            id: id.to_owned(),
        })
}

/// `GET /v1/roles/{id}`: `custom_roles:read`.
pub async fn get(ctx: Ctx, Path(id): Path<String>) -> Result<Json<Role>, ApiError> {
    let role = find(&ctx, ctx.index(), &id)?;
    ctx.require_in_org("custom_roles:read")?;
    Ok(Json(role))
}

/// Validates role entries against the catalog; conditions must compile.
pub fn entries(ctx: &Ctx, permissions: &[EntryFile]) -> Result<Vec<RoleEntry>, ApiError> {
    if permissions.is_empty() {
        return Err(ApiError::field(
            "permissions",
            "must hold at least one permission",
        ));
    }
    let mut out: Vec<RoleEntry> = Vec::new();
    for entry in permissions.iter().cloned().map(RoleEntry::from) {
        ctx.index()
            .validate_permission(Some(ctx.org_id()), &entry.permission)?;
        if let Some(c) = &entry.condition {
            Condition::compile(c)?;
        }
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    Ok(out)
}

fn reserved(ctx: &Ctx, name: &str) -> Result<(), ApiError> {
    if ctx
        .index()
        .catalog
        .predefined_roles()
        .iter()
        .any(|r| r.name.eq_ignore_ascii_case(name))
    {
        return Err(ApiError::Conflict {
            code: "reserved_name",
            message: format!("`{name}` is the name of a predefined role"),
        });
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct CreateRole {
    name: String,
    #[serde(default)]
    description: String,
    permissions: Vec<EntryFile>,
    #[serde(default)]
    kind: RoleKind,
}

/// `POST /v1/roles`: `custom_roles:write` and every permission of the role, in the organization.
pub async fn create(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    JsonBody(body): JsonBody<CreateRole>,
) -> Result<Response, ApiError> {
    ctx.require_in_org("custom_roles:write")?;
    let name = valid_name("name", &body.name)?;
    reserved(&ctx, &name)?;
    let permissions = entries(&ctx, &body.permissions)?;
    let org_node = Node::Organization(ctx.org_id().to_owned());
    require_holds_entries(&ctx, permissions.iter().map(|e| &e.permission), &org_node)?;
    let (role, revision) = state
        .write(|_| {
            let now = Utc::now();
            let role = Role {
                // Not `role_`: that prefix marks the predefined roles' ids.
                id: new_id("crole"),
                organization_id: Some(ctx.org_id().to_owned()),
                name: name.clone(),
                description: body.description.clone(),
                kind: body.kind,
                permissions: permissions.clone(),
                is_predefined: false,
                created_at: now,
                updated_at: now,
            };
            Ok(Prepared {
                ops: vec![Op::Put {
                    object: Object::Role(role.clone()),
                }],
                audit: vec![ctx.audit("role.create", "role", &role.id, None, json_of(&role))],
                output: role,
            })
        })
        .await?;
    Ok(written(StatusCode::CREATED, revision, role))
}

#[derive(Deserialize)]
pub struct PatchRole {
    name: Option<String>,
    description: Option<String>,
    permissions: Option<Vec<EntryFile>>,
}

fn immutable(role: &Role) -> Result<(), ApiError> {
    if role.is_predefined {
        return Err(ApiError::Conflict {
            code: "immutable",
            message: format!(
                "predefined role `{}` cannot be changed or deleted",
                role.name
            ),
        });
    }
    Ok(())
}

/// `PATCH /v1/roles/{id}`: at least one field; permissions are replaced whole.
pub async fn patch(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PatchRole>,
) -> Result<Response, ApiError> {
    let role = find(&ctx, ctx.index(), &id)?;
    ctx.require_in_org("custom_roles:write")?;
    immutable(&role)?;
    if body.name.is_none() && body.description.is_none() && body.permissions.is_none() {
        return Err(ApiError::field(
            "body",
            "must change at least one of name, description, permissions",
        ));
    }
    let name = body
        .name
        .as_deref()
        .map(|n| valid_name("name", n))
        .transpose()?;
    if let Some(n) = &name {
        reserved(&ctx, n)?;
    }
    let permissions = body
        .permissions
        .as_deref()
        .map(|p| entries(&ctx, p))
        .transpose()?;
    if let Some(p) = &permissions {
        let org_node = Node::Organization(ctx.org_id().to_owned());
        require_holds_entries(&ctx, p.iter().map(|e| &e.permission), &org_node)?;
    }
    let (role, revision) = state
        .write(|index| {
            let before = find(&ctx, index, &id)?;
            immutable(&before)?;
            let mut next = before.clone();
            if let Some(n) = &name {
                next.name = n.clone();
            }
            if let Some(d) = &body.description {
                next.description = d.clone();
            }
            if let Some(p) = &permissions {
                next.permissions = p.clone();
            }
            next.updated_at = Utc::now();
            Ok(Prepared {
                ops: vec![Op::Put {
                    object: Object::Role(next.clone()),
                }],
                audit: vec![ctx.audit(
                    "role.update",
                    "role",
                    &id,
                    json_of(&before),
                    json_of(&next),
                )],
                output: next,
            })
        })
        .await?;
    Ok(written(StatusCode::OK, revision, role))
}

/// `DELETE /v1/roles/{id}`: refused with 409 while the role is bound, so that deleting a role
/// never silently takes access away; delete its bindings first.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let role = find(&ctx, ctx.index(), &id)?;
    ctx.require_in_org("custom_roles:delete")?;
    immutable(&role)?;
    let ((), revision) = state
        .write(|index| {
            let role = find(&ctx, index, &id)?;
            let bound = index
                .bindings
                .values()
                .filter(|b| b.role_id() == id)
                .count();
            if bound > 0 {
                return Err(ApiError::Conflict {
                    code: "role_in_use",
                    message: format!(
                        "role `{}` is bound {bound} time(s); delete those bindings first",
                        role.name
                    ),
                });
            }
            Ok(Prepared {
                ops: vec![Op::Delete {
                    key: ObjectKey {
                        kind: ObjectKind::Role,
                        id: id.clone(),
                    },
                }],
                audit: vec![ctx.audit("role.delete", "role", &id, json_of(&role), None)],
                output: (),
            })
        })
        .await?;
    Ok(written(StatusCode::NO_CONTENT, revision, ()))
}
