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
    let body = format!(
        "# HELP arbiter_revision_lag Revisions committed to the store that this replica has not applied yet.\n\
         # TYPE arbiter_revision_lag gauge\narbiter_revision_lag {lag}\n\
         # HELP arbiter_revision The revision the index is at.\n# TYPE arbiter_revision gauge\narbiter_revision {}\n\
         # HELP arbiter_index_objects Objects in the index, by kind.\n# TYPE arbiter_index_objects gauge\n\
         arbiter_index_objects{{kind=\"organization\"}} {}\narbiter_index_objects{{kind=\"user\"}} {}\n\
         arbiter_index_objects{{kind=\"role_binding\"}} {}\narbiter_index_objects{{kind=\"api_key\"}} {}\n\
         arbiter_index_objects{{kind=\"resource\"}} {}\n",
        index.revision,
        index.organizations.len(),
        index.users.len(),
        index.bindings.len(),
        index.api_keys.len(),
        index.resources.len(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document(),
    )
        .into_response()
}
