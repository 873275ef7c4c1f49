//! `Idempotency-Key` on creates (`POST`): the key is claimed in the same transaction as the
//! write, and the answer is kept once known, so a client that retries a create that timed out
//! gets the first answer back instead of a second object. A retry whose first attempt committed
//! but whose answer was not kept (the process died in between, or the answer held a key secret)
//! is refused with 409 `idempotency_key_used`, naming the revision that applied it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arbiter_store::IdempotencyClaim;
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::{error_body, ApiError};
use crate::extract::{authenticate, bearer};
use crate::state::AppState;

/// The header clients send.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Its name, made once (it is looked for on every request).
static IDEMPOTENCY_HEADER_NAME: axum::http::HeaderName =
    axum::http::HeaderName::from_static(IDEMPOTENCY_HEADER);

tokio::task_local! {
    /// The claim of the request being handled, picked up by the write path.
    pub static CLAIM: IdempotencyClaim;
}

/// Answers of these routes hold a secret, which is never kept.
fn keeps_no_answer(path: &str) -> bool {
    path.starts_with("/v1/api-keys")
}

/// The layer every route carries: a request that is not a `POST` with an `Idempotency-Key` goes
/// straight to its route. Only one that is goes through [`idempotent`] (as axum's `from_fn`,
/// which costs a boxed service and a boxed future a request, paid by those requests alone).
#[derive(Clone)]
pub struct IdempotencyLayer {
    state: Arc<AppState>,
}

impl IdempotencyLayer {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

impl<S> tower::Layer<S> for IdempotencyLayer {
    type Service = Idempotency<S>;

    fn layer(&self, inner: S) -> Idempotency<S> {
        Idempotency {
            inner,
            state: self.state.clone(),
        }
    }
}

/// A route under [`IdempotencyLayer`].
#[derive(Clone)]
pub struct Idempotency<S> {
    inner: S,
    state: Arc<AppState>,
}

/// The answer of an idempotent request, decided by [`idempotent`].
type IdempotentAnswer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

pin_project_lite::pin_project! {
    /// The answer of an [`Idempotency`]: the route's own, or [`idempotent`]'s.
    #[project = AnswerProjection]
    pub enum IdempotencyAnswer<F> {
        Route { #[pin] answer: F },
        Idempotent { answer: IdempotentAnswer },
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for IdempotencyAnswer<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AnswerProjection::Route { answer } => answer.poll(cx),
            AnswerProjection::Idempotent { answer } => answer.as_mut().poll(cx),
        }
    }
}

impl<S> tower::Service<Request> for Idempotency<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = IdempotencyAnswer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.method() != Method::POST
            || !request.headers().contains_key(&IDEMPOTENCY_HEADER_NAME)
        {
            return IdempotencyAnswer::Route {
                answer: self.inner.call(request),
            };
        }
        // The service made ready is the one that answers; a clone stays for the next call.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let service = tower::Layer::layer(
            &axum::middleware::from_fn_with_state(self.state.clone(), idempotent),
            ready,
        );
        IdempotencyAnswer::Idempotent {
            answer: Box::pin(tower::ServiceExt::oneshot(service, request)),
        }
    }
}

/// The middleware, reached through [`IdempotencyLayer`] alone: a `POST` that carries the header.
async fn idempotent(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(value) = request.headers().get(&IDEMPOTENCY_HEADER_NAME).cloned() else {
        return next.run(request).await;
    };
    // Gateway requests carry the headers of the request they decide on; they write nothing.
    if request.uri().path().starts_with("/v1/gateway/") {
        return next.run(request).await;
    }
    let key = match value.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 255 => k.to_owned(),
        _ => {
            return ApiError::field("Idempotency-Key", "must be 1 to 255 visible characters")
                .into_response()
        }
    };
    // Scoped to the caller's key, so two callers never share a key space.
    let (parts, body) = request.into_parts();
    let index = state.index();
    let Some(caller) = bearer(&parts).and_then(|secret| authenticate(&index, secret)) else {
        return ApiError::Unauthenticated.into_response();
    };
    // The request a key stands for: method, path, organization and body, so that reusing a key
    // for a different request is refused instead of replaying the first answer.
    let Ok(bytes) = to_bytes(body, state.settings.max_body_bytes).await else {
        return ApiError::PayloadTooLarge(state.settings.max_body_bytes).into_response();
    };
    let organization = parts
        .headers
        .get(crate::extract::ORGANIZATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let digest = arbiter_core::bundle::hash_secret(&String::from_utf8_lossy(&bytes));
    let body = Body::from(bytes);
    let claim = IdempotencyClaim {
        scope: format!("{}:{key}", caller.id),
        request: format!(
            "{} {} {organization} {digest}",
            parts.method,
            parts.uri.path()
        ),
    };
    match state.store.idempotency(&claim.scope).await {
        Err(e) => return ApiError::from(e).into_response(),
        Ok(Some(record)) => {
            if record.request != claim.request {
                return error_body(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "this idempotency key was used for another request",
                    json!({"request": record.request}),
                );
            }
            return match (record.status, record.body) {
                (Some(status), Some(body)) => {
                    let mut response =
                        (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body)
                            .into_response();
                    response
                        .headers_mut()
                        .insert("content-type", HeaderValue::from_static("application/json"));
                    if let Ok(v) = HeaderValue::from_str(&record.revision.to_string()) {
                        response
                            .headers_mut()
                            .insert(crate::routes::REVISION_HEADER, v);
                    }
                    response
                        .headers_mut()
                        .insert("idempotent-replayed", HeaderValue::from_static("true"));
                    response
                }
                _ => error_body(
                    StatusCode::CONFLICT,
                    "idempotency_key_used",
                    &format!(
                        "this request was applied at revision {}; its answer is not kept",
                        record.revision
                    ),
                    json!({"revision": record.revision.to_string()}),
                ),
            };
        }
        Ok(None) => {}
    }
    let path = parts.uri.path().to_owned();
    let request = Request::from_parts(parts, body);
    let scope = claim.scope.clone();
    let response = CLAIM.scope(claim, next.run(request)).await;
    if !response.status().is_success() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, state.settings.max_body_bytes.max(16 * 1024 * 1024)).await
    else {
        return ApiError::Internal("the answer could not be read".to_owned()).into_response();
    };
    let kept = (!keeps_no_answer(&path)).then(|| String::from_utf8_lossy(&bytes).into_owned());
    if let Err(e) = state
        .store
        .complete_idempotency(&scope, parts.status.as_u16(), kept.as_deref())
        .await
    {
        tracing::warn!(error = %e, "cannot keep the answer of an idempotent request");
    }
    Response::from_parts(parts, Body::from(bytes))
}
