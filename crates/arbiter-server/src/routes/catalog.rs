//! `GET /v1/permissions/catalog`: the resource types, their actions and the predefined roles.

use axum::Json;
use serde_json::{json, Value};

use crate::extract::Ctx;

/// Any member may read the catalog.
pub async fn get(ctx: Ctx) -> Json<Value> {
    let catalog = &ctx.index().catalog;
    let types: Vec<_> = catalog.types().values().collect();
    Json(json!({"types": types, "roles": catalog.predefined_roles()}))
}
