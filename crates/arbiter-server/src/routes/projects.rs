//! `/v1/projects`: projects inside spaces.

use std::sync::Arc;

use arbiter_core::index::Index;
use arbiter_core::model::{ApiKeyKind, Node, Object, ObjectKey, ObjectKind, Op, Project};
use arbiter_core::permission::Permission;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::spaces::bindings_on;
use super::{json_of, new_id, valid_name, written, Paging};
use crate::error::ApiError;
use crate::extract::{resource, Ctx, JsonBody, Path, Query};
use crate::state::{AppState, Prepared};

/// A project of the context organization, or 404.
pub fn find(ctx: &Ctx, index: &Index, id: &str) -> Result<Project, ApiError> {
    index
        .project(id)
        .filter(|p| p.organization_id == ctx.org_id())
        .map(|p| (**p).clone())
        .ok_or(ApiError::NotFound {
            what: "project",
            id: id.to_owned(),
        })
}

#[derive(Deserialize)]
pub struct ProjectFilter {
    space_id: Option<String>,
    #[serde(flatten)]
    paging: Paging,
}

/// `GET /v1/projects`: the projects the caller may read.
pub async fn list(ctx: Ctx, Query(filter): Query<ProjectFilter>) -> Result<Json<Value>, ApiError> {
    let read = Permission::parse("project:read")?;
    let mut projects: Vec<&Project> = ctx
        .index()
        .projects
        .values()
        .map(|p| &p.project)
        .filter(|p| p.organization_id == ctx.org_id())
        .filter(|p| filter.space_id.as_ref().is_none_or(|s| &p.space_id == s))
        .filter(|p| ctx.allowed(&read, &resource("project", &p.id)))
        .map(|p| &**p)
        .collect();
    projects.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(json!(filter.paging.page(projects)?)))
}

#[derive(Deserialize)]
pub struct CreateProject {
    space_id: String,
    name: String,
    #[serde(default)]
    description: String,
}

/// `POST /v1/projects`: `project:create` on the space.
pub async fn create(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    JsonBody(body): JsonBody<CreateProject>,
) -> Result<Response, ApiError> {
    super::spaces::find(&ctx, ctx.index(), &body.space_id)?;
    ctx.require("project:create", "space", &body.space_id)?;
    let name = valid_name("name", &body.name)?;
    let (project, revision) = state
        .write(|index| {
            super::spaces::find(&ctx, index, &body.space_id)?;
            let now = Utc::now();
            let project = Project {
                id: new_id("prj"),
                organization_id: ctx.org_id().to_owned(),
                space_id: body.space_id.clone(),
                name: name.clone(),
                description: body.description.clone(),
                created_at: now,
                updated_at: now,
            };
            Ok(Prepared {
                ops: vec![Op::Put {
                    object: Object::Project(project.clone()),
                }],
                audit: vec![ctx.audit(
                    "project.create",
                    "project",
                    &project.id,
                    None,
                    json_of(&project),
                )],
                output: project,
            })
        })
        .await?;
    Ok(written(StatusCode::CREATED, revision, project))
}

/// `GET /v1/projects/{id}`: `project:read`.
pub async fn get(ctx: Ctx, Path(id): Path<String>) -> Result<Json<Project>, ApiError> {
    let project = find(&ctx, ctx.index(), &id)?;
    ctx.require("project:read", "project", &id)?;
    Ok(Json(project))
}

#[derive(Deserialize)]
pub struct PatchProject {
    name: Option<String>,
    description: Option<String>,
}

/// `PATCH /v1/projects/{id}`: `project:write`.
pub async fn patch(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PatchProject>,
) -> Result<Response, ApiError> {
    find(&ctx, ctx.index(), &id)?;
    ctx.require("project:write", "project", &id)?;
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
    let (project, revision) = state
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
                    object: Object::Project(next.clone()),
                }],
                audit: vec![ctx.audit(
                    "project.update",
                    "project",
                    &id,
                    json_of(&before),
                    json_of(&next),
                )],
                output: next,
            })
        })
        .await?;
    Ok(written(StatusCode::OK, revision, project))
}

/// `DELETE /v1/projects/{id}`: `project:delete`; refused with 409 while resources are registered
/// in it or project keys are bound to it. The bindings on it go with it.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    find(&ctx, ctx.index(), &id)?;
    ctx.require("project:delete", "project", &id)?;
    let ((), revision) = state
        .write(|index| {
            let project = find(&ctx, index, &id)?;
            let has_resources = index.resources.values().any(|r| r.project_id.as_deref() == Some(id.as_str()));
            let has_keys = index.api_keys.values().any(|k| k.kind == ApiKeyKind::Project && k.project_id.as_deref() == Some(id.as_str()));
            if has_resources || has_keys {
                return Err(ApiError::Conflict {
                    code: "project_not_empty",
                    message: format!("project `{id}` still holds registered resources or project keys; delete them first"),
                });
            }
            let mut ops = vec![Op::Delete { key: ObjectKey { kind: ObjectKind::Project, id: id.clone() } }];
            ops.extend(bindings_on(index, &Node::Project(id.clone())));
            Ok(Prepared { ops, audit: vec![ctx.audit("project.delete", "project", &id, json_of(&project), None)], output: () })
        })
        .await?;
    Ok(written(StatusCode::NO_CONTENT, revision, ()))
}
