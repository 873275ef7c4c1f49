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

/// What makes a request's span (see [`telemetry::request_span`]); `tower_http`'s "started" and
/// "finished processing request" lines at DEBUG, and its failure line at ERROR for a 5xx.
type RequestTrace = TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    fn(&axum::extract::Request) -> tracing::Span,
>;

fn request_trace() -> RequestTrace {
    TraceLayer::new_for_http().make_span_with(telemetry::request_span as fn(&_) -> _)
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

/// Every route over a loaded state, with the middleware around them: the service
/// [`Application`] serves (and tests may call directly).
pub fn router(
    state: Arc<AppState>,
) -> impl tower::Service<
    axum::extract::Request,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
       + Send
       + Sync
       + 'static {
    let routes = Router::new()
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
        .route(
            "/v1/organizations",
            get(organizations::list).post(organizations::create),
        )
        .route(
            "/v1/organizations/current",
            get(organizations::get_current).put(organizations::put_current),
        )
        .route(
            "/v1/organizations/{id}",
            get(organizations::get).delete(organizations::delete),
        )
        .route(
            "/v1/organizations/{id}/users",
            axum::routing::patch(organizations::add_users),
        )
        .route("/v1/spaces", get(spaces::list).post(spaces::create))
        .route(
            "/v1/spaces/{id}",
            get(spaces::get).patch(spaces::patch).delete(spaces::delete),
        )
        .route("/v1/spaces/{id}/members", get(spaces::members))
        .route(
            "/v1/spaces/{id}/members/{user_id}",
            put(spaces::add_member).delete(spaces::remove_member),
        )
        .route("/v1/projects", get(projects::list).post(projects::create))
        .route(
            "/v1/projects/{id}",
            get(projects::get)
                .patch(projects::patch)
                .delete(projects::delete),
        )
        .route("/v1/users", get(users::list).post(users::create))
        .route("/v1/users/me", get(users::me).patch(users::patch_me))
        .route("/v1/users/me/auth_info", get(users::auth_info))
        .route("/v1/users/invite_users", post(users::invite))
        .route(
            "/v1/users/{id}",
            get(users::get).patch(users::patch).delete(users::delete),
        )
        .route(
            "/v1/groups",
            get(groups::user_groups::list).post(groups::user_groups::create),
        )
        .route(
            "/v1/groups/{id}",
            get(groups::user_groups::get)
                .patch(groups::user_groups::patch)
                .delete(groups::user_groups::delete),
        )
        .route(
            "/v1/groups/{id}/members/{user_id}",
            put(groups::user_groups::add_member).delete(groups::user_groups::remove_member),
        )
        .route(
            "/v1/permission-profiles",
            get(groups::profiles::list).post(groups::profiles::create),
        )
        .route(
            "/v1/permission-profiles/{id}",
            get(groups::profiles::get)
                .patch(groups::profiles::patch)
                .delete(groups::profiles::delete),
        )
        .route(
            "/v1/permission-profiles/{id}/members/{user_id}",
            put(groups::profiles::add_member).delete(groups::profiles::remove_member),
        )
        .route("/v1/api-keys", get(api_keys::list).post(api_keys::create))
        .route("/v1/api-keys/{id}", axum::routing::delete(api_keys::revoke))
        .route("/v1/api-keys/{id}/rotate", post(api_keys::rotate))
        .route("/v1/permissions/catalog", get(catalog::get))
        .route("/v1/resource-types", post(catalog::declare))
        .route("/v1/permissions", put(grants::put).get(grants::list))
        .route(
            "/v1/permissions/{id}",
            axum::routing::delete(grants::delete),
        )
        .route("/v1/resources", get(resources::list))
        .route(
            "/v1/resources/{type}/{id}",
            put(resources::put)
                .get(resources::get)
                .delete(resources::delete),
        )
        .route("/v1/roles", get(roles::list).post(roles::create))
        .route(
            "/v1/roles/{id}",
            get(roles::get).patch(roles::patch).delete(roles::delete),
        )
        .route(
            "/v1/role-bindings",
            get(bindings::list).post(bindings::create),
        )
        .route(
            "/v1/role-bindings/{id}",
            get(bindings::get).delete(bindings::delete),
        )
        .route(
            "/v1/authorization/permissions",
            get(authorization::permissions),
        )
        .route(
            "/v1/authorization/authorize",
            post(authorization::authorize),
        )
        .route("/v1/check", post(check::check))
        .route("/v1/check/batch", post(check::batch))
        // Any method: nginx's `auth_request` subrequest keeps the original request's method.
        .route(
            "/v1/gateway/authorize",
            axum::routing::any(gateway::authorize),
        )
        .route("/v1/gateway/envoy/", axum::routing::any(gateway::envoy))
        .route(
            "/v1/gateway/envoy/{*path}",
            axum::routing::any(gateway::envoy),
        )
        .route("/v1/audit-events", get(audit_events))
        .route("/v1/usage/{rollup}", get(routes::usage::get))
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // What every route carries. Axum copies a route's layers for each request it routes there,
        // so only what must know the matched route or sit inside the limits is here.
        .route_layer(
            tower::ServiceBuilder::new()
                // Outermost, so that refusals by the limits are labelled with their route too.
                .layer(telemetry::LabelRouteLayer)
                // Every log line of a request is written in its span, which carries its request
                // id and its route.
                .layer(request_trace())
                // Rate limit, concurrency limit with load shedding, request timeout.
                .layer(limits::LimitsLayer::new(state.clone()))
                .layer(idempotency::IdempotencyLayer::new(state.clone())),
        )
        // A path no route matches is traced and limited too (a key over its rate gets 429 there
        // as well).
        .fallback_service(
            tower::ServiceBuilder::new()
                .layer(request_trace())
                .layer(limits::LimitsLayer::new(state.clone()))
                .service(axum::handler::HandlerWithoutStateExt::into_service(
                    no_route,
                )),
        )
        .with_state(state.clone());
    // Around the router, once.
    let request_id = extract::REQUEST_ID_HEADER_NAME.clone();
    tower::ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(telemetry::TrackLayer::new(state.clone()))
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .service(routes)
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
        let app = axum::ServiceExt::<axum::extract::Request>::into_make_service(router(self.state));
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
