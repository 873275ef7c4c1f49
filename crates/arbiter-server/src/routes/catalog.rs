//! `GET /v1/permissions/catalog` (the resource types, their actions and the predefined roles, as
//! the organization sees them) and `POST /v1/resource-types` (declare a type, or add actions to
//! one).

use std::collections::BTreeMap;
use std::sync::Arc;

use arbiter_core::catalog::ResourceType;
use arbiter_core::model::{pair_key, DeclaredType, Object, Op};
use arbiter_core::permission::Permission;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{json_of, written};
use crate::error::ApiError;
use crate::extract::{Ctx, JsonBody};
use crate::state::{AppState, Prepared};

/// The organization's view of the catalog: built-in types merged with its declarations.
fn types(ctx: &Ctx) -> BTreeMap<String, ResourceType> {
    let index = ctx.index();
    let mut types = index.catalog.types().clone();
    for (name, declared) in index.organization_types(ctx.org_id()) {
        types
            .entry(name.clone())
            .and_modify(|t| t.actions.extend(declared.actions.iter().cloned()))
            .or_insert_with(|| declared.clone());
    }
    types
}

/// Any member may read the catalog.
pub async fn get(ctx: Ctx) -> Json<Value> {
    let types: Vec<ResourceType> = types(&ctx).into_values().collect();
    Json(json!({"types": types, "roles": ctx.index().catalog.predefined_roles()}))
}

#[derive(Deserialize)]
pub struct DeclareType {
    name: String,
    service: Option<String>,
    actions: Vec<String>,
    #[serde(default)]
    description: String,
}

/// `POST /v1/resource-types`: declares a type in the organization, or adds actions to a built-in
/// or declared one; `custom_roles:write`.
pub async fn declare(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    JsonBody(body): JsonBody<DeclareType>,
) -> Result<Response, ApiError> {
    ctx.require_in_org("custom_roles:write")?;
    if body.actions.is_empty() {
        return Err(ApiError::field("actions", "must name at least one action"));
    }
    for action in &body.actions {
        if action == "*" {
            return Err(ApiError::field("actions", "`*` is not an action"));
        }
        Permission::parse(&format!("{}:{action}", body.name)).map_err(|_| {
            ApiError::field(
                "actions",
                format!("`{action}` must be lowercase letters, digits, `_` or `-`"),
            )
        })?;
    }
    if body.name == "*" {
        return Err(ApiError::field("name", "`*` is not a type"));
    }
    let builtin = ctx.index().catalog.resource_type(&body.name).cloned();
    let known = ctx
        .index()
        .organization_types(ctx.org_id())
        .get(&body.name)
        .cloned();
    let service = match (&builtin, &known, &body.service) {
        (Some(t), _, Some(s)) | (None, Some(t), Some(s)) if &t.service != s => {
            return Err(ApiError::field(
                "service",
                format!("type `{}` belongs to service `{}`", body.name, t.service),
            ))
        }
        (Some(t), _, _) | (None, Some(t), _) => t.service.clone(),
        (None, None, Some(s)) => {
            Permission::parse(&format!("{s}:x")).map_err(|_| {
                ApiError::field("service", "must be lowercase letters, digits, `_` or `-`")
            })?;
            s.clone()
        }
        (None, None, None) => return Err(ApiError::field("service", "is required for a new type")),
    };
    let (declared, revision) = state
        .write(|index| {
            let now = Utc::now();
            let key = pair_key(ctx.org_id(), &body.name);
            let before = index.declarations.get(&key).cloned();
            let mut actions: Vec<String> = before
                .as_ref()
                .map(|d| d.actions.clone())
                .unwrap_or_default();
            for a in &body.actions {
                if !actions.contains(a) {
                    actions.push(a.clone());
                }
            }
            let declared = DeclaredType {
                organization_id: ctx.org_id().to_owned(),
                name: body.name.clone(),
                service: service.clone(),
                actions,
                description: if body.description.is_empty() {
                    before
                        .as_ref()
                        .map(|d| d.description.clone())
                        .unwrap_or_default()
                } else {
                    body.description.clone()
                },
                created_at: before.as_ref().map_or(now, |d| d.created_at),
                updated_at: now,
            };
            Ok(Prepared {
                ops: vec![Op::Put {
                    object: Object::DeclaredType(declared.clone()),
                }],
                audit: vec![ctx.audit(
                    "resource_type.declare",
                    "resource_type",
                    &body.name,
                    before.as_deref().and_then(json_of),
                    json_of(&declared),
                )],
                output: declared,
            })
        })
        .await?;
    let merged = state
        .index()
        .type_actions(ctx.org_id(), &declared.name)
        .unwrap_or_default();
    Ok(written(
        StatusCode::CREATED,
        revision,
        json!({"name": declared.name, "service": declared.service, "actions": merged, "description": declared.description, "organization_id": declared.organization_id}),
    ))
}
