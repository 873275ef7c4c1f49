//! The one error type of the HTTP layer, and the one exhaustive mapping from it to a status and a
//! stable code. A 5xx answer says little; the log says everything.

use arbiter_core::CoreError;
use arbiter_store::StoreError;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use thiserror::Error;

/// Everything a request can fail with.
#[derive(Debug, Error)]
pub enum ApiError {
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the body does not fit the request: {0}")]
    InvalidBody(String),
    #[error("the body must be sent with `Content-Type: application/json`")]
    UnsupportedContentType,
    #[error("the query string does not fit the request: {0}")]
    InvalidQuery(String),
    #[error("the path does not fit the request: {0}")]
    InvalidPath(String),
    #[error("the body nests deeper than {0} levels")]
    TooDeep(usize),
    #[error("the body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("`{field}` {problem}")]
    InvalidField { field: String, problem: String },
    #[error("{0}")]
    Core(#[from] CoreError),
    #[error("a valid API key is required")]
    Unauthenticated,
    #[error("the caller may not `{permission}` on {resource}")]
    Forbidden {
        permission: String,
        resource: String,
    },
    #[error("{what} `{id}` was not found")]
    NotFound { what: &'static str, id: String },
    #[error("no route for this method and path")]
    NoRoute,
    #[error("this path does not accept the method")]
    MethodNotAllowed,
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("no organization is selected: send `X-Organization-Id`, or choose one with `PUT /v1/organizations/current`")]
    OrganizationRequired,
    #[error("the index has not reached revision {wanted} in time (it is at {current})")]
    RevisionUnavailable { wanted: u64, current: u64 },
    #[error("the caller is not a user")]
    NotAUser,
    #[error("gateway mode is off: start the server with `--gateway-policy FILE`")]
    GatewayDisabled,
    #[error("`{method} {path}` is not a route of the gateway policy")]
    NotInGatewayPolicy { method: String, path: String },
    #[error("the caller may not `{} {}`: the route `{}` needs `{}` on {}", .0.method, .0.path, .0.route, .0.requirement, .0.resource)]
    GatewayForbidden(Box<GatewayDenial>),
    /// Any refusal of a gateway request past authentication answers 403 (a proxy turns anything
    /// but 401 and 403 into a 500), with the code and message of the reason.
    #[error("{0}")]
    GatewayRefused(Box<ApiError>),
    #[error("too many requests with this API key: retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("the server is serving its limit of {0} requests at once: retry shortly")]
    Overloaded(usize),
    #[error("the request took longer than the limit of {0} ms")]
    Timeout(u64),
    #[error("store error")]
    Store(#[source] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why the gateway refused a request it matched: the route, its requirement, the resource it was
/// checked on, and each permission's decision.
#[derive(Debug)]
pub struct GatewayDenial {
    pub method: String,
    pub path: String,
    pub route: String,
    pub requirement: String,
    pub resource: String,
    pub leaves: Vec<arbiter_core::gateway::RouteLeaf>,
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NameTaken { name } => {
                let (kind, value) = name.split_once('/').unwrap_or(("name", name.as_str()));
                let value = value.rsplit('/').next().unwrap_or(value);
                ApiError::Conflict {
                    code: "already_exists",
                    message: format!("{} `{value}` is already taken", kind.replace('-', " ")),
                }
            }
            StoreError::IdempotencyKeyUsed => ApiError::Conflict {
                code: "idempotency_key_used",
                message: "this idempotency key was used by another request".to_owned(),
            },
            other => ApiError::Store(other),
        }
    }
}

impl ApiError {
    /// A field problem.
    pub fn field(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ApiError::InvalidField {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The status and stable code of every error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            ApiError::InvalidBody(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
            ApiError::UnsupportedContentType => {
                (StatusCode::BAD_REQUEST, "unsupported_content_type")
            }
            ApiError::InvalidQuery(_) => (StatusCode::BAD_REQUEST, "invalid_query"),
            ApiError::InvalidPath(_) => (StatusCode::BAD_REQUEST, "invalid_path"),
            ApiError::TooDeep(_) => (StatusCode::BAD_REQUEST, "too_deep"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::InvalidField { .. } => (StatusCode::BAD_REQUEST, "invalid_field"),
            ApiError::Core(e) => match e {
                CoreError::MalformedPermission(_) => {
                    (StatusCode::BAD_REQUEST, "malformed_permission")
                }
                CoreError::UnknownPermission(_) => (StatusCode::BAD_REQUEST, "unknown_permission"),
                CoreError::MalformedIrn { .. } => (StatusCode::BAD_REQUEST, "malformed_irn"),
                CoreError::InvalidCondition { .. } => {
                    (StatusCode::BAD_REQUEST, "invalid_condition")
                }
                CoreError::UnknownScope(_) => (StatusCode::BAD_REQUEST, "unknown_scope"),
                CoreError::InvalidCatalog(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
                CoreError::InvalidBundle(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_bundle"),
                CoreError::InvalidRequirement { .. } => {
                    (StatusCode::BAD_REQUEST, "invalid_requirement")
                }
                CoreError::MalformedPath { .. } => (StatusCode::BAD_REQUEST, "malformed_path"),
                CoreError::InvalidGatewayPolicy(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid_gateway_policy")
                }
            },
            ApiError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::NoRoute => (StatusCode::NOT_FOUND, "no_route"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            ApiError::OrganizationRequired => (StatusCode::BAD_REQUEST, "organization_required"),
            ApiError::RevisionUnavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "revision_unavailable")
            }
            ApiError::NotAUser => (StatusCode::BAD_REQUEST, "not_a_user"),
            ApiError::GatewayDisabled => (StatusCode::NOT_FOUND, "gateway_disabled"),
            ApiError::NotInGatewayPolicy { .. } => (StatusCode::FORBIDDEN, "route_not_in_policy"),
            ApiError::GatewayForbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::GatewayRefused(inner) => (StatusCode::FORBIDDEN, inner.status_and_code().1),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Overloaded(_) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "request_timeout"),
            ApiError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    fn details(&self) -> Value {
        match self {
            ApiError::InvalidField { field, .. } => json!({"field": field}),
            ApiError::Forbidden {
                permission,
                resource,
            } => json!({"permission": permission, "resource": resource}),
            ApiError::NotFound { what, id } => json!({"kind": what, "id": id}),
            ApiError::PayloadTooLarge(limit) => json!({"limit_bytes": limit}),
            ApiError::Core(CoreError::InvalidCondition { line, column, .. }) => {
                json!({"line": line, "column": column})
            }
            ApiError::Core(CoreError::UnknownPermission(p) | CoreError::MalformedPermission(p)) => {
                json!({"permission": p})
            }
            ApiError::RevisionUnavailable { wanted, current } => {
                json!({"wanted": wanted.to_string(), "current": current.to_string()})
            }
            ApiError::Core(CoreError::InvalidRequirement {
                requirement,
                position,
                ..
            }) => json!({"requirement": requirement, "position": position}),
            ApiError::Core(CoreError::MalformedPath { path, .. }) => json!({"path": path}),
            ApiError::NotInGatewayPolicy { method, path } => {
                json!({"method": method, "path": path})
            }
            ApiError::GatewayForbidden(d) => json!({
                "method": d.method, "path": d.path, "route": d.route,
                "requirement": d.requirement, "resource": d.resource, "leaves": d.leaves,
            }),
            ApiError::GatewayRefused(inner) => inner.details(),
            ApiError::RateLimited { retry_after_secs } => {
                json!({"retry_after_seconds": retry_after_secs})
            }
            ApiError::Overloaded(max) => json!({"max_concurrency": max}),
            ApiError::Timeout(ms) => json!({"timeout_ms": ms}),
            _ => json!({}),
        }
    }
}

/// Renders `{"error": {"code", "message", "details"}}`.
pub fn error_body(status: StatusCode, code: &str, message: &str, details: Value) -> Response {
    let body = json!({"error": {"code": code, "message": message, "details": details}});
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert("www-authenticate", HeaderValue::from_static("Bearer"));
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            let mut chain = format!("{self}");
            let mut source = std::error::Error::source(&self);
            while let Some(s) = source {
                chain.push_str(&format!(": {s}"));
                source = s.source();
            }
            tracing::error!(error = %chain, "request failed");
            return error_body(
                status,
                code,
                "the server could not complete the request",
                json!({}),
            );
        }
        let message = self.to_string();
        let mut response = error_body(status, code, &message, self.details());
        let retry_after = match &self {
            ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            ApiError::Overloaded(_) => Some(1),
            _ => None,
        };
        if let Some(v) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            response.headers_mut().insert("retry-after", v);
        }
        response
    }
}
