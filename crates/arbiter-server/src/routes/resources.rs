//! `/v1/resources`: the registry of the protected platform's resources (project, owner,
//! properties), which checks use to place a resource and to find its owner.

use std::sync::Arc;

use arbiter_core::index::Index;
use arbiter_core::model::{
    resource_key, Node, Object, ObjectKey, ObjectKind, Op, Properties, Resource,
};
use arbiter_core::permission::Permission;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::spaces::bindings_on;
use super::{json_of, written, Paging};
use crate::error::ApiError;
use crate::extract::{resource, Ctx, JsonBody, Path, Query};
use crate::state::{AppState, Prepared};

/// Types that name Arbiter's own objects and cannot be registered.
const RESERVED_TYPES: [&str; 6] = [
    "platform",
    "organization",
    "space",
    "project",
    "user",
    "api_key",
];

fn find(ctx: &Ctx, index: &Index, resource_type: &str, id: &str) -> Result<Resource, ApiError> {
    index
        .resource(ctx.org_id(), resource_type, id)
        .map(|r| (**r).clone())
        .ok_or(ApiError::NotFound {
            what: "resource",
            id: format!("{resource_type}:{id}"),
        })
}

#[derive(Deserialize)]
pub struct RegisterResource {
    project_id: Option<String>,
    owner_id: Option<String>,
    #[serde(default)]
    properties: Properties,
}

/// `PUT /v1/resources/{type}/{id}`: registers or replaces a resource; `resource:write` on it
/// (and on the project it is placed in).
pub async fn put(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path((resource_type, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<RegisterResource>,
) -> Result<Response, ApiError> {
    if ctx.index().catalog.resource_type(&resource_type).is_none() {
        return Err(ApiError::field(
            "type",
            format!("`{resource_type}` is not a resource type of the catalog"),
        ));
    }
    if RESERVED_TYPES.contains(&resource_type.as_str()) {
        return Err(ApiError::Unprocessable {
            code: "reserved_type",
            message: format!("`{resource_type}` objects are managed by their own routes"),
        });
    }
    if id.is_empty() || id.len() > 512 || id.chars().any(char::is_control) {
        return Err(ApiError::field(
            "id",
            "must hold 1 to 512 characters and no control characters",
        ));
    }
    // A registered resource is checked where it lies now. A new one placed in a project lies
    // under that project, where the check below is made; one with no project, in the
    // organization.
    let registered = ctx
        .index()
        .resource(ctx.org_id(), &resource_type, &id)
        .is_some();
    // An unregistered id that access already hangs on (a binding on it) is not free to capture:
    // registering it into a project needs `resource:write` where it lies now.
    let node = arbiter_core::model::Node::resource(
        ctx.org_id().to_owned(),
        resource_type.clone(),
        id.clone(),
    );
    let in_use = ctx
        .index()
        .bindings_by_node
        .get(&node)
        .is_some_and(|b| !b.is_empty());
    if registered || in_use || body.project_id.is_none() {
        ctx.require("resource:write", &resource_type, &id)?;
    }
    if let Some(project) = &body.project_id {
        super::projects::find(&ctx, ctx.index(), project)?;
        ctx.require("resource:write", "project", project)?;
    }
    let (created, resource, revision) = state
        .write(|index| {
            if let Some(project) = &body.project_id {
                super::projects::find(&ctx, index, project)?;
            }
            let now = Utc::now();
            let before = index.resource(ctx.org_id(), &resource_type, &id).cloned();
            let resource = Resource {
                organization_id: ctx.org_id().to_owned(),
                resource_type: resource_type.clone(),
                id: id.clone(),
                project_id: body.project_id.clone(),
                owner_id: body.owner_id.clone(),
                properties: body.properties.clone(),
                created_at: before.as_ref().map_or(now, |b| b.created_at),
                updated_at: now,
            };
            Ok(Prepared {
                ops: vec![Op::Put {
                    object: Object::Resource(resource.clone()),
                }],
                audit: vec![ctx.audit(
                    if before.is_some() {
                        "resource.update"
                    } else {
                        "resource.create"
                    },
                    "resource",
                    &format!("{resource_type}:{id}"),
                    before.as_deref().and_then(json_of),
                    json_of(&resource),
                )],
                output: (before.is_none(), resource),
            })
        })
        .await
        .map(|((created, resource), revision)| (created, resource, revision))?;
    Ok(written(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        revision,
        resource,
    ))
}

#[derive(Deserialize)]
pub struct ResourceFilter {
    #[serde(rename = "type")]
    resource_type: Option<String>,
    project_id: Option<String>,
    #[serde(flatten)]
    paging: Paging,
}

/// `GET /v1/resources`: the registered resources the caller may read.
pub async fn list(ctx: Ctx, Query(filter): Query<ResourceFilter>) -> Result<Json<Value>, ApiError> {
    let read = Permission::parse("resource:read")?;
    let mut items: Vec<&Resource> = ctx
        .index()
        .resources
        .values()
        .filter(|r| r.organization_id == ctx.org_id())
        .filter(|r| {
            filter
                .resource_type
                .as_ref()
                .is_none_or(|t| &r.resource_type == t)
        })
        .filter(|r| {
            filter
                .project_id
                .as_ref()
                .is_none_or(|p| r.project_id.as_ref() == Some(p))
        })
        .filter(|r| ctx.allowed(&read, &resource(&r.resource_type, &r.id)))
        .map(|r| &**r)
        .collect();
    items.sort_by(|a, b| (&a.resource_type, &a.id).cmp(&(&b.resource_type, &b.id)));
    Ok(Json(json!(filter.paging.page(items)?)))
}

/// `GET /v1/resources/{type}/{id}`: `resource:read`.
pub async fn get(
    ctx: Ctx,
    Path((resource_type, id)): Path<(String, String)>,
) -> Result<Json<Resource>, ApiError> {
    let found = find(&ctx, ctx.index(), &resource_type, &id)?;
    ctx.require("resource:read", &resource_type, &id)?;
    Ok(Json(found))
}

/// `DELETE /v1/resources/{type}/{id}`: `resource:delete`; bindings on it go with it.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path((resource_type, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    find(&ctx, ctx.index(), &resource_type, &id)?;
    ctx.require("resource:delete", &resource_type, &id)?;
    let ((), revision) = state
        .write(|index| {
            let before = find(&ctx, index, &resource_type, &id)?;
            let mut ops = vec![Op::Delete {
                key: ObjectKey {
                    kind: ObjectKind::Resource,
                    id: resource_key(ctx.org_id(), &resource_type, &id),
                },
            }];
            ops.extend(bindings_on(
                index,
                &Node::resource(ctx.org_id().to_owned(), resource_type.clone(), id.clone()),
            ));
            Ok(Prepared {
                ops,
                audit: vec![ctx.audit(
                    "resource.delete",
                    "resource",
                    &format!("{resource_type}:{id}"),
                    json_of(&before),
                    None,
                )],
                output: (),
            })
        })
        .await?;
    Ok(written(StatusCode::NO_CONTENT, revision, ()))
}
