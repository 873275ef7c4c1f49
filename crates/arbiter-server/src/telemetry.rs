//! Per-request telemetry: the `request` span every log line of a request is written in (it
//! carries the request id that `SetRequestId` put in `x-request-id`, the method and the matched
//! route), and the HTTP request metrics.
//!
//! The span (`TraceLayer` with [`request_span`]) and the metrics ([`TrackLayer`]) wrap the router
//! once, not each route: axum copies a route's whole middleware stack for every request it routes
//! there. The matched route exists only once the router has chosen it, so [`LabelRouteLayer`],
//! the outermost of the layers every route carries, records it in the span and hands it back on
//! the response, where [`Track`] reads it; a path no route matches is labelled by the fallback.

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
use tower_http::trace::{DefaultOnRequest, OnRequest};
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

/// The span of a request, for `TraceLayer::make_span_with`: `request{request_id, method, route}`,
/// the route recorded once matched (by [`LabelRoute`]).
pub fn request_span(request: &Request) -> Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        request_id,
        method = method_label(request.method()),
        route = tracing::field::Empty,
    )
}

/// The request has been routed to `route`: records it in the request's span, then writes
/// `tower_http`'s "started processing request" (at DEBUG, as `TraceLayer` would have, which is
/// told not to), so that every line of a request carries its route.
pub fn started(request: &Request, route: &str) {
    let span = Span::current();
    span.record("route", route);
    DefaultOnRequest::new().on_request(request, &span);
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

/// Records the route the router matched in the request's span, and puts it on the response for
/// [`Track`]. Outermost of a route's layers, so that refusals by the limits are labelled too.
#[derive(Clone, Debug)]
pub struct LabelRoute<S>(S);

impl<S> Service<Request> for LabelRoute<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Labelled<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().cloned();
        started(
            &request,
            route.as_ref().map_or(UNMATCHED, MatchedPath::as_str),
        );
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

impl<F, E> Future for Labelled<F>
where
    F: Future<Output = Result<Response, E>>,
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
            response.status().as_u16(),
            this.started.elapsed(),
        );
        Poll::Ready(Ok(response))
    }
}
