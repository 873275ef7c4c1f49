//! Prometheus metrics: one registry per server (so that tests may run several in a process),
//! rendered as text by `GET /metrics`.
//!
//! The check path takes no lock of ours: decision counters and histograms are resolved once, at
//! start, for every label value they can take, and then cost an atomic add each. HTTP request
//! metrics are labelled by the matched route template (`/v1/roles/{id}`, never the raw path), so
//! their cardinality is bounded by the route table.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The APIs that make decisions, a label of the decision metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecisionApi {
    /// `POST /v1/check`.
    Check,
    /// `POST /v1/check/batch`, one per item decided.
    Batch,
    /// The AuthZEN evaluation routes, one per evaluation.
    Authzen,
}

impl DecisionApi {
    const ALL: [DecisionApi; 3] = [DecisionApi::Check, DecisionApi::Batch, DecisionApi::Authzen];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionApi::Check => "check",
            DecisionApi::Batch => "batch",
            DecisionApi::Authzen => "authzen",
        }
    }

    fn slot(self) -> usize {
        match self {
            DecisionApi::Check => 0,
            DecisionApi::Batch => 1,
            DecisionApi::Authzen => 2,
        }
    }
}

/// Store calls that are timed, a label of `arbiter_store_duration_seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// `Store::commit` of a write.
    Commit,
    /// `Store::changes_since` when catching up.
    ChangesSince,
    /// `Store::load` when the change log was compacted.
    Load,
}

impl StoreOp {
    const ALL: [StoreOp; 3] = [StoreOp::Commit, StoreOp::ChangesSince, StoreOp::Load];

    fn as_str(self) -> &'static str {
        match self {
            StoreOp::Commit => "commit",
            StoreOp::ChangesSince => "changes_since",
            StoreOp::Load => "load",
        }
    }

    fn slot(self) -> usize {
        match self {
            StoreOp::Commit => 0,
            StoreOp::ChangesSince => 1,
            StoreOp::Load => 2,
        }
    }
}

/// Requests refused by a limit, a label of `arbiter_limited_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    RateLimited,
    Overloaded,
    Timeout,
}

impl Limit {
    const ALL: [Limit; 3] = [Limit::RateLimited, Limit::Overloaded, Limit::Timeout];

    fn as_str(self) -> &'static str {
        match self {
            Limit::RateLimited => "rate_limited",
            Limit::Overloaded => "overloaded",
            Limit::Timeout => "timeout",
        }
    }

    fn slot(self) -> usize {
        match self {
            Limit::RateLimited => 0,
            Limit::Overloaded => 1,
            Limit::Timeout => 2,
        }
    }
}

/// Every metric of a server.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    /// `[api][0 = allowed, 1 = denied]`.
    decisions: Vec<[IntCounter; 2]>,
    decision_duration: Vec<Histogram>,
    store_duration: Vec<Histogram>,
    store_errors: Vec<IntCounter>,
    limited: Vec<IntCounter>,
    decision_log_dropped: IntCounter,
    revision: IntGauge,
    revision_lag: IntGauge,
    index_objects: IntGaugeVec,
    in_flight: IntGauge,
}

/// Buckets for engine decisions: microseconds to tens of milliseconds.
const DECISION_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05,
];

/// Buckets for HTTP requests and store calls: a tenth of a millisecond to ten seconds.
const REQUEST_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

impl Default for Metrics {
    #[expect(
        clippy::expect_used,
        reason = "names, help texts and label counts are constants: registration can only fail for a programming error, which the unit test below catches"
    )]
    fn default() -> Self {
        Self::try_new().expect("the metrics register")
    }
}

impl Metrics {
    /// Registers every metric in a new registry.
    fn try_new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "arbiter_http_requests_total",
                "HTTP requests answered, by method, matched route template and status.",
            ),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "arbiter_http_request_duration_seconds",
                "Time to answer an HTTP request, by method and matched route template.",
            )
            .buckets(REQUEST_BUCKETS.to_vec()),
            &["method", "route"],
        )?;
        let decisions_vec = IntCounterVec::new(
            Opts::new(
                "arbiter_decisions_total",
                "Decisions made, by API and outcome (allowed or denied).",
            ),
            &["api", "decision"],
        )?;
        let decision_duration_vec = HistogramVec::new(
            HistogramOpts::new(
                "arbiter_decision_duration_seconds",
                "Time the engine took to decide one check, by API.",
            )
            .buckets(DECISION_BUCKETS.to_vec()),
            &["api"],
        )?;
        let store_duration_vec = HistogramVec::new(
            HistogramOpts::new(
                "arbiter_store_duration_seconds",
                "Time of store calls in the write and follow paths, by operation.",
            )
            .buckets(REQUEST_BUCKETS.to_vec()),
            &["operation"],
        )?;
        let store_errors_vec = IntCounterVec::new(
            Opts::new(
                "arbiter_store_errors_total",
                "Store calls that failed (a stale write included), by operation.",
            ),
            &["operation"],
        )?;
        let limited_vec = IntCounterVec::new(
            Opts::new(
                "arbiter_limited_requests_total",
                "Requests refused by a limit: rate_limited (429), overloaded or timeout (503).",
            ),
            &["limit"],
        )?;
        let decision_log_dropped = IntCounter::new(
            "arbiter_decision_log_dropped_total",
            "Decision-log lines dropped because the writer fell behind.",
        )?;
        let revision = IntGauge::new("arbiter_revision", "The revision the index is at.")?;
        let revision_lag = IntGauge::new(
            "arbiter_revision_lag",
            "Revisions committed to the store that this replica has not applied yet.",
        )?;
        let index_objects = IntGaugeVec::new(
            Opts::new("arbiter_index_objects", "Objects in the index, by kind."),
            &["kind"],
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(decisions_vec.clone()))?;
        registry.register(Box::new(decision_duration_vec.clone()))?;
        registry.register(Box::new(store_duration_vec.clone()))?;
        registry.register(Box::new(store_errors_vec.clone()))?;
        registry.register(Box::new(limited_vec.clone()))?;
        registry.register(Box::new(decision_log_dropped.clone()))?;
        registry.register(Box::new(revision.clone()))?;
        registry.register(Box::new(revision_lag.clone()))?;
        let in_flight = IntGauge::new(
            "arbiter_http_requests_in_flight",
            "Requests being served that count against the concurrency limit.",
        )?;
        registry.register(Box::new(index_objects.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        let decisions = DecisionApi::ALL
            .iter()
            .map(|api| {
                Ok([
                    decisions_vec.get_metric_with_label_values(&[api.as_str(), "allowed"])?,
                    decisions_vec.get_metric_with_label_values(&[api.as_str(), "denied"])?,
                ])
            })
            .collect::<Result<_, prometheus::Error>>()?;
        let decision_duration = DecisionApi::ALL
            .iter()
            .map(|api| decision_duration_vec.get_metric_with_label_values(&[api.as_str()]))
            .collect::<Result<_, _>>()?;
        let store_duration = StoreOp::ALL
            .iter()
            .map(|op| store_duration_vec.get_metric_with_label_values(&[op.as_str()]))
            .collect::<Result<_, _>>()?;
        let store_errors = StoreOp::ALL
            .iter()
            .map(|op| store_errors_vec.get_metric_with_label_values(&[op.as_str()]))
            .collect::<Result<_, _>>()?;
        let limited = Limit::ALL
            .iter()
            .map(|l| limited_vec.get_metric_with_label_values(&[l.as_str()]))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            registry,
            http_requests,
            http_duration,
            decisions,
            decision_duration,
            store_duration,
            store_errors,
            limited,
            decision_log_dropped,
            revision,
            revision_lag,
            index_objects,
            in_flight,
        })
    }

    /// Counts an answered HTTP request (the status label is `http`'s own text of the code, not a
    /// string made per request: this runs on every request).
    pub fn http_request(
        &self,
        method: &str,
        route: &str,
        status: axum::http::StatusCode,
        elapsed: Duration,
    ) {
        if let Ok(c) =
            self.http_requests
                .get_metric_with_label_values(&[method, route, status.as_str()])
        {
            c.inc();
        }
        if let Ok(h) = self
            .http_duration
            .get_metric_with_label_values(&[method, route])
        {
            h.observe(elapsed.as_secs_f64());
        }
    }

    /// Counts one decision and the engine's time for it. Lock-free.
    pub fn decision(&self, api: DecisionApi, allowed: bool, elapsed: Duration) {
        if let Some(pair) = self.decisions.get(api.slot()) {
            let [yes, no] = pair;
            if allowed {
                yes.inc();
            } else {
                no.inc();
            }
        }
        if let Some(h) = self.decision_duration.get(api.slot()) {
            h.observe(elapsed.as_secs_f64());
        }
    }

    /// A tally of many decisions (a batch's) that reaches the shared metrics once, when it is
    /// dropped, rather than once per decision.
    pub fn decision_tally(&self, api: DecisionApi) -> DecisionTally {
        DecisionTally {
            counts: self
                .decisions
                .get(api.slot())
                .map(|[yes, no]| [yes.local(), no.local()]),
            duration: self.decision_duration.get(api.slot()).map(Histogram::local),
        }
    }

    /// Times a store call; a failed one is counted too.
    pub fn store_call(&self, op: StoreOp, elapsed: Duration, ok: bool) {
        if let Some(h) = self.store_duration.get(op.slot()) {
            h.observe(elapsed.as_secs_f64());
        }
        if !ok {
            if let Some(c) = self.store_errors.get(op.slot()) {
                c.inc();
            }
        }
    }

    /// Counts a request refused by a limit.
    pub fn limited(&self, limit: Limit) {
        if let Some(c) = self.limited.get(limit.slot()) {
            c.inc();
        }
    }

    /// Counts a decision-log line dropped.
    pub fn decision_log_dropped(&self) {
        self.decision_log_dropped.inc();
    }

    /// Sets the gauges read at scrape time.
    pub fn set_index(&self, revision: u64, lag: u64, objects: &[(&str, usize)]) {
        self.revision
            .set(i64::try_from(revision).unwrap_or(i64::MAX));
        self.revision_lag
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
        for (kind, count) in objects {
            if let Ok(g) = self.index_objects.get_metric_with_label_values(&[kind]) {
                g.set(i64::try_from(*count).unwrap_or(i64::MAX));
            }
        }
    }

    /// Sets the requests in flight, read at scrape time from the concurrency limit's permits.
    pub fn set_in_flight(&self, in_flight: usize) {
        self.in_flight
            .set(i64::try_from(in_flight).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        Ok(String::from_utf8_lossy(&buffer).into_owned())
    }
}

/// See [`Metrics::decision_tally`].
pub struct DecisionTally {
    counts: Option<[prometheus::local::LocalIntCounter; 2]>,
    duration: Option<prometheus::local::LocalHistogram>,
}

impl DecisionTally {
    /// Counts one decision and the engine's time for it.
    pub fn decision(&mut self, allowed: bool, elapsed: Duration) {
        if let Some([yes, no]) = &mut self.counts {
            if allowed {
                yes.inc();
            } else {
                no.inc();
            }
        }
        if let Some(h) = &mut self.duration {
            h.observe(elapsed.as_secs_f64());
        }
    }
}

impl Drop for DecisionTally {
    fn drop(&mut self) {
        if let Some([yes, no]) = &mut self.counts {
            yes.flush();
            no.flush();
        }
        if let Some(h) = &mut self.duration {
            h.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn counters_move_and_render() {
        let m = Metrics::try_new().unwrap();
        m.decision(DecisionApi::Check, true, Duration::from_micros(3));
        m.decision(DecisionApi::Authzen, false, Duration::from_micros(3));
        m.http_request(
            "GET",
            "/v1/roles/{id}",
            axum::http::StatusCode::OK,
            Duration::from_millis(1),
        );
        m.store_call(StoreOp::Commit, Duration::from_millis(2), true);
        m.set_index(7, 1, &[("user", 3)]);
        let text = m.render().unwrap();
        assert!(text.contains("arbiter_decisions_total{api=\"check\",decision=\"allowed\"} 1"));
        assert!(text.contains("arbiter_decisions_total{api=\"authzen\",decision=\"denied\"} 1"));
        assert!(text.contains(
            "arbiter_http_requests_total{method=\"GET\",route=\"/v1/roles/{id}\",status=\"200\"} 1"
        ));
        assert!(text.contains("arbiter_store_duration_seconds_count{operation=\"commit\"} 1"));
        assert!(text.contains("arbiter_revision 7"));
        assert!(text.contains("arbiter_index_objects{kind=\"user\"} 3"));
    }
}
