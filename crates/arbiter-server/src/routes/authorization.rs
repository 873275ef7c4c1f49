//! `/v1/authorization`: what a role holds (the Arthur table's "permissions for a role" and
//! "authorize a permission for a role"). Any member may ask.

use arbiter_core::permission::Permission;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::{Ctx, JsonBody, Query};

#[derive(Deserialize)]
pub struct RoleQuery {
    role_id: String,
}

/// `GET /v1/authorization/permissions?role_id=`.
pub async fn permissions(ctx: Ctx, Query(q): Query<RoleQuery>) -> Result<Json<Value>, ApiError> {
    let role = ctx
        .index()
        .role_in(Some(ctx.org_id()), &q.role_id)
        .ok_or(ApiError::NotFound {
            what: "role",
            id: q.role_id.clone(),
        })?;
    Ok(Json(
        json!({"role_id": role.role.id, "role_name": role.role.name, "permissions": role.role.permissions}),
    ))
}

#[derive(Deserialize)]
pub struct Authorize {
    role_id: String,
    permission: String,
}

/// `POST /v1/authorization/authorize`: does the role hold the permission (at any scope)?
pub async fn authorize(
    ctx: Ctx,
    JsonBody(body): JsonBody<Authorize>,
) -> Result<Json<Value>, ApiError> {
    let permission = Permission::parse(&body.permission)?;
    ctx.index()
        .validate_permission(Some(ctx.org_id()), &permission)?;
    let role = ctx
        .index()
        .role_in(Some(ctx.org_id()), &body.role_id)
        .ok_or(ApiError::NotFound {
            what: "role",
            id: body.role_id.clone(),
        })?;
    let authorized = role
        .role
        .permissions
        .iter()
        .any(|e| e.permission.covers(&permission));
    Ok(Json(json!({"authorized": authorized})))
}
