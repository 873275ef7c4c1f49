//! `arbiter-server`: Arbiter's HTTP layer. [`Application::build`] binds the listener (port 0
//! works, for tests) and loads the index; [`Application::run`] serves until the shutdown future
//! resolves, then finishes in-flight requests.

pub mod decision_log;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod usage;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use arbiter_core::catalog::Catalog;
use arbiter_store::Store;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderName;
use axum::routing::{get, post, put};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use state::{AppState, Settings};

use routes::*;

async fn no_route() -> ApiError {
    ApiError::NoRoute
}

async fn audit_events(
    State(state): State<Arc<AppState>>,
    ctx: extract::Ctx,
    extract::Query(q): extract::Query<AuditQuery>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    ctx.require_in_org("audit:read")?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::field(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let filter = arbiter_store::AuditFilter {
        organization_id: Some(ctx.org_id().to_owned()),
        actor_user_id: q.actor_user_id,
        actor_key_id: q.actor_key_id,
        object_id: q.object_id,
        action: q.action,
        since: q.since,
        until: q.until,
        offset: q.offset.unwrap_or(0),
        limit,
    };
    let (items, total) = state.store.audit_events(&filter).await?;
    Ok(axum::Json(
        serde_json::json!({"items": items, "offset": filter.offset, "limit": limit, "total": total}),
    ))
}

#[derive(serde::Deserialize)]
struct AuditQuery {
    actor_user_id: Option<String>,
    actor_key_id: Option<String>,
    object_id: Option<String>,
    action: Option<String>,
    since: Option<chrono::DateTime<chrono::Utc>>,
    until: Option<chrono::DateTime<chrono::Utc>>,
    offset: Option<u64>,
    limit: Option<u64>,
}

/// The router of every route, over a loaded state.
pub fn router(state: Arc<AppState>) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let v1 = Router::new()
        .route(
            "/organizations",
            get(organizations::list).post(organizations::create),
        )
        .route(
            "/organizations/current",
            get(organizations::get_current).put(organizations::put_current),
        )
        .route(
            "/organizations/{id}",
            get(organizations::get).delete(organizations::delete),
        )
        .route(
            "/organizations/{id}/users",
            axum::routing::patch(organizations::add_users),
        )
        .route("/spaces", get(spaces::list).post(spaces::create))
        .route(
            "/spaces/{id}",
            get(spaces::get).patch(spaces::patch).delete(spaces::delete),
        )
        .route("/spaces/{id}/members", get(spaces::members))
        .route(
            "/spaces/{id}/members/{user_id}",
            put(spaces::add_member).delete(spaces::remove_member),
        )
        .route("/projects", get(projects::list).post(projects::create))
        .route(
            "/projects/{id}",
            get(projects::get)
                .patch(projects::patch)
                .delete(projects::delete),
        )
        .route("/users", get(users::list).post(users::create))
        .route("/users/me", get(users::me).patch(users::patch_me))
        .route("/users/me/auth_info", get(users::auth_info))
        .route("/users/invite_users", post(users::invite))
        .route(
            "/users/{id}",
            get(users::get).patch(users::patch).delete(users::delete),
        )
        .route(
            "/groups",
            get(groups::user_groups::list).post(groups::user_groups::create),
        )
        .route(
            "/groups/{id}",
            get(groups::user_groups::get)
                .patch(groups::user_groups::patch)
                .delete(groups::user_groups::delete),
        )
        .route(
            "/groups/{id}/members/{user_id}",
            put(groups::user_groups::add_member).delete(groups::user_groups::remove_member),
        )
        .route(
            "/permission-profiles",
            get(groups::profiles::list).post(groups::profiles::create),
        )
        .route(
            "/permission-profiles/{id}",
            get(groups::profiles::get)
                .patch(groups::profiles::patch)
                .delete(groups::profiles::delete),
        )
        .route(
            "/permission-profiles/{id}/members/{user_id}",
            put(groups::profiles::add_member).delete(groups::profiles::remove_member),
        )
        .route("/api-keys", get(api_keys::list).post(api_keys::create))
        .route("/api-keys/{id}", axum::routing::delete(api_keys::revoke))
        .route("/api-keys/{id}/rotate", post(api_keys::rotate))
        .route("/permissions/catalog", get(catalog::get))
        .route("/resource-types", post(catalog::declare))
        .route("/permissions", put(grants::put).get(grants::list))
        .route("/permissions/{id}", axum::routing::delete(grants::delete))
        .route("/resources", get(resources::list))
        .route(
            "/resources/{type}/{id}",
            put(resources::put)
                .get(resources::get)
                .delete(resources::delete),
        )
        .route("/roles", get(roles::list).post(roles::create))
        .route(
            "/roles/{id}",
            get(roles::get).patch(roles::patch).delete(roles::delete),
        )
        .route("/role-bindings", get(bindings::list).post(bindings::create))
        .route(
            "/role-bindings/{id}",
            get(bindings::get).delete(bindings::delete),
        )
        .route(
            "/authorization/permissions",
            get(authorization::permissions),
        )
        .route("/authorization/authorize", post(authorization::authorize))
        .route("/check", post(check::check))
        .route("/check/batch", post(check::batch))
        // Any method: nginx's `auth_request` subrequest keeps the original request's method.
        .route("/gateway/authorize", axum::routing::any(gateway::authorize))
        .route("/gateway/envoy/", axum::routing::any(gateway::envoy))
        .route("/gateway/envoy/{*path}", axum::routing::any(gateway::envoy))
        .route("/audit-events", get(audit_events))
        .route("/usage/{rollup}", get(routes::usage::get));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi))
        .route(
            "/.well-known/authzen-configuration",
            get(authzen::configuration),
        )
        .route("/access/v1/evaluation", post(authzen::evaluation))
        .route("/access/v1/evaluations", post(authzen::evaluations))
        .route("/access/v1/search/subject", post(authzen::search_subject))
        .route("/access/v1/search/resource", post(authzen::search_resource))
        .route("/access/v1/search/action", post(authzen::search_action))
        .nest("/v1", v1)
        .fallback(no_route)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotent,
        ))
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        // Rate limit, concurrency limit with load shedding, request timeout.
        .layer(limits::LimitsLayer::new(state.clone()))
        // Outside the limits, so that refusals are counted by route and status too.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            telemetry::track,
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        // Every log line of a request is written in its span, which carries its request id.
        .layer(TraceLayer::new_for_http().make_span_with(telemetry::request_span))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// A built server: a bound listener and a loaded state.
pub struct Application {
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
}

impl Application {
    /// Binds `listen` and loads the index from the store.
    pub async fn build(
        listen: &str,
        store: Arc<dyn Store>,
        catalog: Arc<Catalog>,
        settings: Settings,
    ) -> Result<Self, std::io::Error> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let state = AppState::load(store, catalog, settings)
            .await
            .map_err(std::io::Error::other)?;
        Ok(Self { listener, state })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state.
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish (and flushes the
    /// decision log).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.serve(None, shutdown).await
    }

    /// As [`Application::run`], over TLS when `tls` is given (see [`tls::server_config`]).
    pub async fn serve(
        self,
        tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let app = router(self.state);
        let served = match tls {
            None => {
                axum::serve(self.listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            Some(config) => {
                axum::serve(tls::TlsListener::new(self.listener, config)?, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
        };
        if let Some(log) = &state.decision_log {
            log.flush().await;
        }
        served
    }
}
