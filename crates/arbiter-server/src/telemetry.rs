//! Per-request telemetry: the `request` span every log line of a request is written in (it
//! carries the request id that `SetRequestId` put in `x-request-id`, the method and the matched
//! route), and the HTTP request metrics.
//!
//! The metrics ([`TrackLayer`]) wrap the router once, not each route: axum copies a route's whole
//! middleware stack for every request it routes there. The span (`TraceLayer` with
//! [`request_span`]) is among the layers every route (and the fallback) carries, inside
//! [`LabelRouteLayer`]: made once the router has matched the route, it is made with all its
//! fields at once. A span recorded into later costs the log formatter a second formatting call,
//! and a tenth of a check's instructions went to the span. [`LabelRoute`] hands the route back
//! on the response, where [`Track`] reads it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::Span;

use crate::state::AppState;

/// The route label of a request that matched no route (so that unknown paths cannot grow the
/// metrics without bound).
pub const UNMATCHED: &str = "unmatched";

/// The method as a label: the standard ones, else `OTHER`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The span of a request, for `TraceLayer::make_span_with` once routed:
/// `request{request_id, method, route}` (`unmatched` when no route matched). The method and the
/// route are labels of ours and written as they are; the request id is the client's, and quoted.
pub fn request_span(request: &Request) -> Span {
    let request_id = request
        .headers()
        .get(&crate::extract::REQUEST_ID_HEADER_NAME)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str);
    tracing::info_span!(
        "request",
        request_id,
        method = %method_label(request.method()),
        route = %route,
    )
}

/// The layer of every route: see [`LabelRoute`].
#[derive(Clone, Copy, Debug, Default)]
pub struct LabelRouteLayer;

impl<S> Layer<S> for LabelRouteLayer {
    type Service = LabelRoute<S>;

    fn layer(&self, inner: S) -> LabelRoute<S> {
        LabelRoute(inner)
    }
}

/// Puts the route the router matched on the response, for [`Track`]. Outermost of a route's
/// layers, so that refusals by the limits are labelled too.
#[derive(Clone, Debug)]
pub struct LabelRoute<S>(S);

impl<S, B> Service<Request> for LabelRoute<S>
where
    S: Service<Request, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = Labelled<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().cloned();
        Labelled {
            inner: self.0.call(request),
            route,
        }
    }
}

pin_project! {
    /// The answer of a [`LabelRoute`].
    pub struct Labelled<F> {
        #[pin]
        inner: F,
        route: Option<MatchedPath>,
    }
}

impl<F, B, E> Future for Labelled<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(route) = this.route.take() {
            response.extensions_mut().insert(route);
        }
        Poll::Ready(Ok(response))
    }
}

/// The layer of [`Track`], around the router.
#[derive(Clone)]
pub struct TrackLayer {
    state: Arc<AppState>,
}

impl TrackLayer {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track {
            inner,
            state: self.state.clone(),
        }
    }
}

/// Counts every answered request by method, route template (from [`LabelRoute`]; `unmatched`
/// when no route matched) and status, and times it.
#[derive(Clone)]
pub struct Track<S> {
    inner: S,
    state: Arc<AppState>,
}

impl<S> Service<Request> for Track<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Tracked<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        Tracked {
            started: Instant::now(),
            method: method_label(request.method()),
            inner: self.inner.call(request),
            state: self.state.clone(),
        }
    }
}

pin_project! {
    /// The answer of a [`Track`].
    pub struct Tracked<F> {
        #[pin]
        inner: F,
        started: Instant,
        method: &'static str,
        state: Arc<AppState>,
    }
}

impl<F, E> Future for Tracked<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let route = response
            .extensions()
            .get::<MatchedPath>()
            .map_or(UNMATCHED, MatchedPath::as_str);
        this.state.metrics.http_request(
            this.method,
            route,
            response.status(),
            this.started.elapsed(),
        );
        Poll::Ready(Ok(response))
    }
}
