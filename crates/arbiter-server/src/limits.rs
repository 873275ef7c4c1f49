//! Request limits: a per-API-key rate limit (a token bucket per key id: 429 `rate_limited` with
//! `Retry-After`), a concurrency limit with load shedding (a permit of the state's semaphore
//! taken without waiting: 503 `overloaded` at once rather than a queue) and a request timeout
//! (503 `request_timeout`). The body-size limit is applied where a body is read
//! (`extract::JsonText` and the idempotency middleware, under `max_body_bytes`); axum's
//! `DefaultBodyLimit`, around the router, holds the same limit for any other extractor.
//!
//! `/healthz`, `/readyz`, `/metrics` and `/openapi.json` are exempt, so that probes and scrapes
//! still answer when the server is saturated.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::header::AUTHORIZATION;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tower::{Layer, Service, ServiceExt};

use crate::error::ApiError;
use crate::extract::authenticate;
use crate::metrics::Limit;
use crate::state::AppState;

/// A per-key rate limit: `per_second` tokens are added to each key's bucket every second, up to
/// `burst`; a request takes one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

const SHARDS: usize = 32;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets by API key id, in shards so that keys rarely share a lock.
pub struct RateLimiter {
    limit: RateLimit,
    shards: Vec<Mutex<HashMap<String, Bucket>>>,
}

impl RateLimiter {
    /// A limiter with full buckets for every key.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Takes a token from `key`'s bucket at `now`: `Ok`, or how long until a token is there.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let RateLimit { per_second, burst } = self.limit;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        let shard = usize::try_from(hasher.finish() % SHARDS as u64).unwrap_or(0);
        let Some(lock) = self.shards.get(shard) else {
            return Ok(());
        };
        // A poisoned shard (a panic while holding it) limits nothing rather than everything.
        let Ok(mut buckets) = lock.lock() else {
            return Ok(());
        };
        let bucket = match buckets.get_mut(key) {
            Some(b) => b,
            None => buckets.entry(key.to_owned()).or_insert(Bucket {
                tokens: burst,
                updated: now,
            }),
        };
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / per_second;
            Err(Duration::from_secs_f64(wait.clamp(0.0, 86_400.0)))
        }
    }
}

/// Routes no limit applies to.
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/openapi.json")
}

/// The key id a request authenticates as, if any (a request that does not authenticate is
/// refused with 401 by its route, and is not rate limited).
fn key_id(state: &AppState, request: &Request) -> Option<String> {
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, secret) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    authenticate(&state.index(), secret.trim()).map(|key| key.id.clone())
}

/// The layer of every limit but the body size.
#[derive(Clone)]
pub struct LimitsLayer {
    state: Arc<AppState>,
}

impl LimitsLayer {
    /// The limits the state's settings name; the concurrency limit's semaphore is the state's,
    /// shared by every route.
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for LimitsLayer {
    type Service = Limits<S>;

    fn layer(&self, inner: S) -> Limits<S> {
        Limits {
            inner,
            state: self.state.clone(),
        }
    }
}

/// A service under the limits.
#[derive(Clone)]
pub struct Limits<S> {
    inner: S,
    state: Arc<AppState>,
}

impl<S> Service<Request> for Limits<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is decided per request, by taking a permit in `call`: load shedding answers
        // at once.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if exempt(request.uri().path()) {
            return Box::pin(self.inner.clone().oneshot(request));
        }
        let state = self.state.clone();
        if let Some(limiter) = &state.rate_limiter {
            if let Some(key) = key_id(&state, &request) {
                if let Err(wait) = limiter.take(&key, Instant::now()) {
                    state.metrics.limited(Limit::RateLimited);
                    let retry_after_secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                    return Box::pin(std::future::ready(Ok(ApiError::RateLimited {
                        retry_after_secs,
                    }
                    .into_response())));
                }
            }
        }
        // Shed rather than queue: a request that finds no permit is refused at once. The permit
        // is held until the answer is ready (or the timeout drops the request).
        let Ok(permit) = state.concurrency.clone().try_acquire_owned() else {
            state.metrics.limited(Limit::Overloaded);
            return Box::pin(std::future::ready(Ok(ApiError::Overloaded(
                state.settings.max_concurrency,
            )
            .into_response())));
        };
        let inner = self.inner.clone();
        let timeout = state.settings.request_timeout;
        Box::pin(async move {
            let answer = tokio::time::timeout(timeout, inner.oneshot(request)).await;
            drop(permit);
            match answer {
                Ok(Ok(response)) => Ok(response),
                Err(_) => {
                    state.metrics.limited(Limit::Timeout);
                    let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
                    Ok(ApiError::Timeout(ms).into_response())
                }
            }
        })
    }
}

/// The semaphore of a concurrency limit of `max` requests.
pub fn semaphore(max: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 2.0,
            burst: 3.0,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take("k", t0).is_ok());
        }
        let wait = limiter.take("k", t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        // Another key has a bucket of its own.
        assert!(limiter.take("other", t0).is_ok());
        // Half a second later, one token is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert!(limiter.take("k", t1).is_ok());
        assert!(limiter.take("k", t1).is_err());
        // A long pause refills up to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.take("k", t2).is_ok());
        }
        assert!(limiter.take("k", t2).is_err());
    }
}
