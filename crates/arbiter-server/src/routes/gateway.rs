//! Gateway mode: a proxy in front of an existing API asks, before forwarding a request, whether
//! the endpoint policy (`--gateway-policy`) lets the caller make it.
//!
//! - `GET /v1/gateway/authorize` takes the original method and URI from `X-Original-Method` and
//!   `X-Original-URI` (nginx `auth_request`) or `X-Forwarded-Method` and `X-Forwarded-Uri`
//!   (Traefik `ForwardAuth`).
//! - `/v1/gateway/envoy/{original path}`, any method (Envoy's `ext_authz` HTTP service): the
//!   original method and path are the request's own.
//!
//! Both authenticate the caller's `Authorization` header (401), match the request to a route
//! (exactly; the query string is ignored), pick the organization as every call does
//! (`X-Organization-Id`, else the key's current or only organization) and decide the route's
//! requirement with the engine on the route's resource in that organization. An allow answers 200
//! with `X-Arbiter-User`, `X-Arbiter-Organization` and `X-Arbiter-Key` for the upstream; every
//! other refusal answers 403 with the reason's code — a malformed path (`..`, `%2F`, `//`)
//! included — because `auth_request` turns any status but 401 and 403 into a 500.

use std::sync::Arc;

use arbiter_core::gateway::{self, GatewayPolicy, Requirement};
use axum::extract::{FromRequestParts, OriginalUri, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::json;

use crate::error::{ApiError, GatewayDenial};
use crate::extract::{organization_of, Caller, ORGANIZATION_HEADER};
use crate::state::AppState;

/// Where Envoy's `ext_authz` HTTP service is mounted (its `path_prefix`).
pub const ENVOY_PREFIX: &str = "/v1/gateway/envoy";

/// Answer headers for the upstream: the user (a project key: the key) the request acts as, the
/// organization it was decided in, and the key.
pub const USER_HEADER: &str = "x-arbiter-user";
pub const ORGANIZATION_ANSWER_HEADER: &str = "x-arbiter-organization";
pub const KEY_HEADER: &str = "x-arbiter-key";

/// The pairs of request headers that carry the original method and URI, tried in order.
const ORIGINAL_HEADERS: [(&str, &str); 2] = [
    ("x-original-method", "x-original-uri"),
    ("x-forwarded-method", "x-forwarded-uri"),
];

fn policy_of(state: &AppState) -> Result<Arc<GatewayPolicy>, ApiError> {
    state
        .settings
        .gateway
        .clone()
        .ok_or(ApiError::GatewayDisabled)
}

/// A header as text; UTF-8 is accepted (a raw URI may hold it), anything else is refused.
fn text_of(headers: &HeaderMap, name: &str) -> Result<Option<String>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            String::from_utf8(v.as_bytes().to_vec())
                .map_err(|_| ApiError::field(name, "is not UTF-8 text"))
        })
        .transpose()
}

/// The original method and URI a proxy forwards: 400 when neither pair of headers is sent
/// whole (the proxy is misconfigured).
fn original(headers: &HeaderMap) -> Result<(String, String), ApiError> {
    for (method_header, uri_header) in ORIGINAL_HEADERS {
        match (
            text_of(headers, method_header)?,
            text_of(headers, uri_header)?,
        ) {
            (Some(method), Some(uri)) => return Ok((method.trim().to_owned(), uri)),
            (None, None) => {}
            (None, Some(_)) => {
                return Err(ApiError::field(
                    method_header,
                    format!("is required with `{uri_header}`"),
                ))
            }
            (Some(_), None) => {
                return Err(ApiError::field(
                    uri_header,
                    format!("is required with `{method_header}`"),
                ))
            }
        }
    }
    Err(ApiError::field(
        "X-Original-URI",
        "the original request is required: `X-Original-Method` and `X-Original-URI` (nginx), \
         or `X-Forwarded-Method` and `X-Forwarded-Uri` (Traefik)",
    ))
}

/// `GET /v1/gateway/authorize`: nginx `auth_request` and Traefik `ForwardAuth`.
pub async fn authorize(
    State(state): State<Arc<AppState>>,
    mut parts: Parts,
) -> Result<Response, ApiError> {
    let policy = policy_of(&state)?;
    let (method, uri) = original(&parts.headers)?;
    decide(&state, &policy, &mut parts, &method, &uri).await
}

/// `/v1/gateway/envoy/{*path}`, any method: Envoy's `ext_authz` HTTP service.
pub async fn envoy(
    State(state): State<Arc<AppState>>,
    mut parts: Parts,
) -> Result<Response, ApiError> {
    let policy = policy_of(&state)?;
    // The path as sent (still percent-encoded), without the mount point.
    let full = parts
        .extensions
        .get::<OriginalUri>()
        .map(|OriginalUri(u)| u.clone())
        .unwrap_or_else(|| parts.uri.clone());
    let full = full.path_and_query().map_or("/", |pq| pq.as_str());
    let rest = full.strip_prefix(ENVOY_PREFIX).unwrap_or(full);
    let uri = if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{rest}")
    };
    let method = parts.method.as_str().to_owned();
    decide(&state, &policy, &mut parts, &method, &uri).await
}

/// The path of a URI, shortened for answers.
fn shown_path(uri: &str) -> String {
    uri.split(['?', '#'])
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

async fn decide(
    state: &Arc<AppState>,
    policy: &GatewayPolicy,
    parts: &mut Parts,
    method: &str,
    uri: &str,
) -> Result<Response, ApiError> {
    let caller = Caller::from_request_parts(parts, state).await?;
    let refused = |e: ApiError| ApiError::GatewayRefused(Box::new(e));
    let matched = policy
        .lookup(method, uri)
        .map_err(|e| refused(e.into()))?
        .ok_or_else(|| ApiError::NotInGatewayPolicy {
            method: method.chars().take(32).collect(),
            path: shown_path(uri),
        })?;
    let header = parts
        .headers
        .get(ORGANIZATION_HEADER)
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| refused(ApiError::field(ORGANIZATION_HEADER, "is not text")))
        })
        .transpose()?;
    let organization = organization_of(&caller, header.as_deref());
    let (organization, leaves) = match &matched.route.requirement {
        // Any valid key; the organization is told when there is one.
        Requirement::Authenticated => match organization {
            Ok(org) => (Some(org), Vec::new()),
            Err(_) if header.is_none() => (None, Vec::new()),
            Err(e) => return Err(refused(e)),
        },
        Requirement::Expr(_) => {
            let organization = organization.map_err(refused)?;
            let decision = gateway::decide(
                &caller.index,
                &organization,
                &caller.subject(),
                &matched,
                Utc::now(),
                false,
            );
            state.usage.count(&organization, decision.allowed);
            if !decision.allowed {
                return Err(ApiError::GatewayForbidden(Box::new(GatewayDenial {
                    method: method.to_owned(),
                    path: shown_path(uri),
                    route: decision.route,
                    requirement: decision.requirement,
                    resource: decision.resource.to_string(),
                    leaves: decision.leaves,
                })));
            }
            (Some(organization), decision.leaves)
        }
    };
    let route = matched.route;
    let user = caller
        .user
        .as_ref()
        .map_or_else(|| caller.key.id.clone(), |u| u.id.clone());
    let mut response = Json(json!({
        "allowed": true,
        "route": route.name(),
        "requirement": route.requirement.to_string(),
        "user": user,
        "organization": organization,
        "leaves": leaves,
    }))
    .into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (USER_HEADER, Some(user.as_str())),
        (ORGANIZATION_ANSWER_HEADER, organization.as_deref()),
        (KEY_HEADER, Some(caller.key.id.as_str())),
    ] {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
    Ok(response)
}
