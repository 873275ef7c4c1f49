//! `/v1/role-bindings`: roles given to users, groups and keys on the platform, an organization,
//! a space, a project or one resource.

use std::sync::Arc;

use arbiter_core::condition::Condition;
use arbiter_core::engine::{ResourceQuery, PLATFORM_TYPE};
use arbiter_core::index::{CompiledRole, Index};
use arbiter_core::model::{
    ApiKeyKind, BindingResourceType, Node, Object, ObjectKey, ObjectKind, Op, RoleBinding,
    RoleKind, SubjectRef, SubjectRefView,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{json_of, new_id, written, Paging};
use crate::error::ApiError;
use crate::extract::{resource, Ctx, JsonBody, Path, Query};
use crate::state::{AppState, Prepared};

/// The organization and resource a check about a node is made with.
pub fn node_query(ctx: &Ctx, node: &Node) -> (Option<String>, ResourceQuery) {
    match node {
        Node::Platform => (None, resource(PLATFORM_TYPE, "platform")),
        Node::Organization(id) => (Some(id.clone()), resource("organization", id)),
        Node::Space(id) => (Some(ctx.org_id().to_owned()), resource("space", id)),
        Node::Project(id) => (Some(ctx.org_id().to_owned()), resource("project", id)),
        Node::Resource(r) => (Some(r.0.clone()), resource(&r.1, &r.2)),
    }
}

/// 403 unless the caller holds `permission` on the node.
pub fn require_on_node(ctx: &Ctx, permission: &str, node: &Node) -> Result<(), ApiError> {
    let parsed = arbiter_core::permission::Permission::parse(permission)?;
    let (org, query) = node_query(ctx, node);
    if ctx.caller.decide(org.as_deref(), &parsed, &query).allowed {
        Ok(())
    } else {
        Err(ApiError::Forbidden {
            permission: permission.to_owned(),
            resource: node.to_string(),
        })
    }
}

/// Nobody grants what they do not hold: 403 unless the caller holds every permission of the
/// role on the node (wildcards must be held as wildcards).
pub fn require_holds_role(ctx: &Ctx, role: &CompiledRole, node: &Node) -> Result<(), ApiError> {
    require_holds_entries(
        ctx,
        role.role.permissions.iter().map(|e| &e.permission),
        node,
    )
}

/// 403 unless the caller holds each permission on the node.
pub fn require_holds_entries<'a>(
    ctx: &Ctx,
    permissions: impl IntoIterator<Item = &'a arbiter_core::permission::Permission>,
    node: &Node,
) -> Result<(), ApiError> {
    let (org, query) = node_query(ctx, node);
    for permission in permissions {
        if !ctx
            .caller
            .decide(org.as_deref(), permission, &query)
            .allowed
        {
            return Err(ApiError::Forbidden {
                permission: permission.to_string(),
                resource: node.to_string(),
            });
        }
    }
    Ok(())
}

/// A binding as the API shows it.
pub fn binding_json(b: &RoleBinding) -> Value {
    let mut value = json!({
        "id": b.id,
        "role_id": b.role_id,
        "resource_type": b.node.binding_type(),
        "resource_id": b.node.api_id(),
        "organization_id": b.organization_id,
        "condition": b.condition,
        "expires_at": b.expires_at,
        "created_at": b.created_at,
        "updated_at": b.updated_at,
    });
    let (field, id) = match &b.subject {
        SubjectRef::User(id) => ("user_id", id),
        SubjectRef::Group(id) => ("group_id", id),
        SubjectRef::ApiKey(id) => ("api_key_id", id),
    };
    value[field] = json!(id);
    value
}

#[derive(Deserialize)]
pub struct CreateBinding {
    role_id: String,
    user_id: Option<String>,
    group_id: Option<String>,
    api_key_id: Option<String>,
    resource_type: BindingResourceType,
    resource_id: Option<String>,
    condition: Option<String>,
    expires_at: Option<DateTime<Utc>>,
}

fn node_of(ctx: &Ctx, index: &Index, body: &CreateBinding) -> Result<Node, ApiError> {
    let org = ctx.org_id();
    let id = || {
        body.resource_id
            .clone()
            .ok_or_else(|| ApiError::field("resource_id", "is required for this resource_type"))
    };
    let not_found = |what, id: String| ApiError::NotFound { what, id };
    Ok(match body.resource_type {
        BindingResourceType::Platform => {
            if body.resource_id.is_some() {
                return Err(ApiError::field(
                    "resource_id",
                    "must be absent for PLATFORM",
                ));
            }
            Node::Platform
        }
        BindingResourceType::Organization => {
            let id = body.resource_id.clone().unwrap_or_else(|| org.to_owned());
            if id != org {
                return Err(not_found("organization", id));
            }
            Node::Organization(id)
        }
        BindingResourceType::Space => {
            let id = id()?;
            index
                .spaces
                .get(&id)
                .filter(|s| s.organization_id == org)
                .ok_or_else(|| not_found("space", id.clone()))?;
            Node::Space(id)
        }
        BindingResourceType::Project => {
            let id = id()?;
            index
                .project(&id)
                .filter(|p| p.organization_id == org)
                .ok_or_else(|| not_found("project", id.clone()))?;
            Node::Project(id)
        }
        BindingResourceType::Resource => {
            let id = id()?;
            let (t, rid) = id
                .split_once(':')
                .filter(|(t, rid)| {
                    arbiter_core::permission::Permission::parse(&format!("{t}:x")).is_ok()
                        && *t != "*"
                        && !rid.is_empty()
                })
                .ok_or_else(|| ApiError::field("resource_id", "must be `type:id` for RESOURCE"))?;
            Node::resource(org.to_owned(), t.to_owned(), rid.to_owned())
        }
    })
}

fn subject_of(
    ctx: &Ctx,
    index: &Index,
    body: &CreateBinding,
    platform: bool,
) -> Result<(SubjectRef, Option<ApiKeyKind>), ApiError> {
    let org = ctx.org_id();
    match (&body.user_id, &body.group_id, &body.api_key_id) {
        (Some(u), None, None) => {
            let ok = index.users.contains_key(u) && (platform || index.is_member(org, u));
            if !ok {
                return Err(ApiError::NotFound {
                    what: "user",
                    id: u.clone(),
                });
            }
            Ok((SubjectRef::User(u.clone()), None))
        }
        (None, Some(g), None) => {
            index
                .groups
                .get(g)
                .filter(|x| x.organization_id == org)
                .ok_or(ApiError::NotFound {
                    what: "group",
                    id: g.clone(),
                })?;
            Ok((SubjectRef::Group(g.clone()), None))
        }
        (None, None, Some(k)) => {
            let key = index
                .api_keys
                .get(k)
                .filter(|key| match key.kind {
                    ApiKeyKind::Project => key.organization_id.as_deref() == Some(org),
                    ApiKeyKind::User => index.is_member(org, &key.user_id),
                })
                .ok_or(ApiError::NotFound {
                    what: "api key",
                    id: k.clone(),
                })?;
            Ok((SubjectRef::ApiKey(k.clone()), Some(key.kind)))
        }
        _ => Err(ApiError::field(
            "user_id",
            "exactly one of user_id, group_id and api_key_id is required",
        )),
    }
}

fn prepare_binding(
    ctx: &Ctx,
    index: &Index,
    body: &CreateBinding,
    now: DateTime<Utc>,
) -> Result<RoleBinding, ApiError> {
    let node = node_of(ctx, index, body)?;
    let platform = node == Node::Platform;
    let role = if platform {
        index
            .roles
            .get(&body.role_id)
            .filter(|r| r.role.is_predefined)
    } else {
        index.role_in(Some(ctx.org_id()), &body.role_id)
    }
    .ok_or(ApiError::NotFound {
        what: "role",
        id: body.role_id.clone(),
    })?;
    let (subject, key_kind) = subject_of(ctx, index, body, platform)?;
    match (role.role.kind, key_kind) {
        (RoleKind::System, Some(ApiKeyKind::Project))
        | (RoleKind::User, None | Some(ApiKeyKind::User)) => {}
        (RoleKind::System, _) => {
            return Err(ApiError::Unprocessable {
                code: "system_role",
                message: format!(
                    "role `{}` is a system role: it may be bound only to project keys",
                    role.role.name
                ),
            })
        }
        (RoleKind::User, Some(ApiKeyKind::Project)) => {
            return Err(ApiError::Unprocessable {
                code: "user_role_on_project_key",
                message: format!(
                    "project keys take only system roles; `{}` is a user role",
                    role.role.name
                ),
            })
        }
    }
    if let Some(c) = &body.condition {
        Condition::compile(c)?;
    }
    if body.expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::Unprocessable {
            code: "expired",
            message: "`expires_at` is in the past".to_owned(),
        });
    }
    let duplicate = index.subject_bindings(&subject).iter().any(|b| {
        b.role_id() == body.role_id
            && b.node() == node.view()
            && b.condition_source() == body.condition.as_deref()
    });
    if duplicate {
        return Err(ApiError::Conflict {
            code: "already_exists",
            message: "the same binding exists already".to_owned(),
        });
    }
    require_on_node(ctx, "role_binding:write", &node)?;
    require_holds_role(ctx, role, &node)?;
    Ok(RoleBinding {
        id: new_id("rb"),
        role_id: body.role_id.clone(),
        subject,
        organization_id: if platform {
            None
        } else {
            Some(ctx.org_id().to_owned())
        },
        node,
        condition: body.condition.clone(),
        expires_at: body.expires_at,
        created_at: now,
        updated_at: now,
    })
}

/// `POST /v1/role-bindings`: `role_binding:write` on the node and every permission of the role
/// there.
pub async fn create(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    JsonBody(body): JsonBody<CreateBinding>,
) -> Result<Response, ApiError> {
    prepare_binding(&ctx, ctx.index(), &body, Utc::now())?;
    let (binding, revision) = state
        .write(|index| {
            let binding = prepare_binding(&ctx, index, &body, Utc::now())?;
            Ok(Prepared {
                ops: vec![Op::Put {
                    object: Object::RoleBinding(binding.clone()),
                }],
                audit: vec![ctx.audit(
                    "role_binding.create",
                    "role_binding",
                    &binding.id,
                    None,
                    json_of(&binding),
                )],
                output: binding,
            })
        })
        .await?;
    Ok(written(
        StatusCode::CREATED,
        revision,
        binding_json(&binding),
    ))
}

#[derive(Deserialize)]
pub struct BindingFilter {
    user_id: Option<String>,
    group_id: Option<String>,
    api_key_id: Option<String>,
    role_id: Option<String>,
    resource_type: Option<BindingResourceType>,
    resource_id: Option<String>,
    #[serde(flatten)]
    paging: Paging,
}

/// Whether the caller may see a binding of `organization_id` (`None` on the platform).
fn visible(ctx: &Ctx, organization_id: Option<&str>) -> bool {
    match organization_id {
        Some(org) => org == ctx.org_id(),
        None => ctx.caller.holds_on_platform("role_binding:read"),
    }
}

/// `GET /v1/role-bindings`: `role_binding:read` in the organization.
pub async fn list(ctx: Ctx, Query(filter): Query<BindingFilter>) -> Result<Json<Value>, ApiError> {
    ctx.require_in_org("role_binding:read")?;
    let mut items: Vec<RoleBinding> = ctx
        .index()
        .bindings
        .values()
        .filter(|b| visible(&ctx, b.organization_id()))
        .filter(|b| filter.role_id.as_ref().is_none_or(|r| b.role_id() == r))
        .filter(|b| {
            filter
                .user_id
                .as_ref()
                .is_none_or(|u| b.subject() == SubjectRefView::User(u))
        })
        .filter(|b| {
            filter
                .group_id
                .as_ref()
                .is_none_or(|g| b.subject() == SubjectRefView::Group(g))
        })
        .filter(|b| {
            filter
                .api_key_id
                .as_ref()
                .is_none_or(|k| b.subject() == SubjectRefView::ApiKey(k))
        })
        .filter(|b| {
            filter
                .resource_type
                .is_none_or(|t| b.node().binding_type() == t)
        })
        .filter(|b| {
            filter
                .resource_id
                .as_ref()
                .is_none_or(|r| b.node().api_id().as_ref() == Some(r))
        })
        .map(|b| b.to_binding())
        .collect();
    items.sort_by(|a, b| a.id.cmp(&b.id));
    let items: Vec<Value> = items.iter().map(binding_json).collect();
    Ok(Json(json!(filter.paging.page(items)?)))
}

fn find(ctx: &Ctx, index: &Index, id: &str) -> Result<RoleBinding, ApiError> {
    index
        .bindings
        .get(id)
        .filter(|b| visible(ctx, b.organization_id()))
        .map(|b| b.to_binding())
        .ok_or(ApiError::NotFound {
            what: "role binding",
            id: id.to_owned(),
        })
}

/// `GET /v1/role-bindings/{id}`: `role_binding:read` on its node.
pub async fn get(ctx: Ctx, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let b = find(&ctx, ctx.index(), &id)?;
    require_on_node(&ctx, "role_binding:read", &b.node)?;
    Ok(Json(binding_json(&b)))
}

/// `DELETE /v1/role-bindings/{id}`: `role_binding:delete` on its node.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let b = find(&ctx, ctx.index(), &id)?;
    require_on_node(&ctx, "role_binding:delete", &b.node)?;
    let ((), revision) = state
        .write(|index| {
            let b = find(&ctx, index, &id)?;
            Ok(Prepared {
                ops: vec![Op::Delete {
                    key: ObjectKey {
                        kind: ObjectKind::RoleBinding,
                        id: id.clone(),
                    },
                }],
                audit: vec![ctx.audit(
                    "role_binding.delete",
                    "role_binding",
                    &id,
                    json_of(&b),
                    None,
                )],
                output: (),
            })
        })
        .await?;
    Ok(written(StatusCode::NO_CONTENT, revision, ()))
}
