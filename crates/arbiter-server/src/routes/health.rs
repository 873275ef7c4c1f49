//! Health, readiness, metrics and the OpenAPI description. No key needed.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::state::AppState;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the store answers and the index is loaded.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.store.head().await {
        Ok(head) => {
            let revision = state.index().revision;
            let ready = revision >= head;
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (status, Json(json!({"status": if ready { "ready" } else { "catching_up" }, "revision": revision.to_string(), "store_revision": head.to_string()}))).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "store unreachable");
            crate::error::error_body(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the store does not answer",
                json!({}),
            )
        }
    }
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let index = state.index();
    let lag = state
        .store
        .head()
        .await
        .map(|head| head.saturating_sub(index.revision))
        .unwrap_or(0);
    state.metrics.set_index(
        index.revision,
        lag,
        &[
            ("organization", index.organizations.len()),
            ("space", index.spaces.len()),
            ("project", index.projects.len()),
            ("user", index.users.len()),
            ("group", index.groups.len()),
            ("role", index.roles.len()),
            ("role_binding", index.bindings.len()),
            ("grant", index.grants.len()),
            ("api_key", index.api_keys.len()),
            ("resource", index.resources.len()),
        ],
    );
    let in_flight = state
        .settings
        .max_concurrency
        .saturating_sub(state.concurrency.available_permits());
    state.metrics.set_in_flight(in_flight);
    match state.metrics.render() {
        Ok(body) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response(),
        Err(e) => crate::error::ApiError::Internal(e.to_string()).into_response(),
    }
}

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document(),
    )
        .into_response()
}
