//! `arbiter bench`: an HTTP load generator against a running server. It sends single checks,
//! batches of checks or AuthZEN evaluations (or GETs a trivial endpoint, as a baseline) from
//! `concurrency` connections for `duration`, and reports throughput and latency percentiles.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::CliError;

/// What to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// `POST /v1/check`.
    Check,
    /// `POST /v1/check/batch` with `batch_size` checks.
    Batch,
    /// `POST /access/v1/evaluation`.
    Authzen,
    /// `GET /healthz`: the cost of the HTTP stack alone, to compare with.
    Healthz,
}

/// A load run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub url: String,
    pub key: String,
    pub organization: Option<String>,
    pub target: Target,
    pub concurrency: usize,
    pub duration: Duration,
    pub batch_size: usize,
    /// The check sent: subject user, permission, resource `type:id`.
    pub subject: String,
    pub permission: String,
    pub resource: String,
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct BenchReport {
    pub requests: u64,
    pub decisions: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl BenchReport {
    /// One line per figure.
    pub fn render(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(f64::EPSILON);
        format!(
            "requests: {} ({:.0}/s)\ndecisions: {} ({:.0}/s)\nerrors: {}\nlatency p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
            self.requests,
            self.requests as f64 / secs,
            self.decisions,
            self.decisions as f64 / secs,
            self.errors,
            self.p50,
            self.p90,
            self.p99,
            self.max
        )
    }
}

fn body(config: &BenchConfig) -> Result<Option<Value>, CliError> {
    let (resource_type, resource_id) = config
        .resource
        .split_once(':')
        .ok_or_else(|| CliError::Usage("--resource is `type:id`".to_owned()))?;
    let check = json!({"subject": {"type": "user", "id": config.subject}, "permission": config.permission, "resource": {"type": resource_type, "id": resource_id}});
    Ok(match config.target {
        Target::Check => Some(check),
        Target::Batch => Some(json!({"checks": vec![check; config.batch_size.max(1)]})),
        Target::Authzen => {
            let action = config
                .permission
                .split_once(':')
                .map_or(config.permission.as_str(), |(_, a)| a);
            Some(
                json!({"subject": {"type": "user", "id": config.subject}, "action": {"name": action}, "resource": {"type": resource_type, "id": resource_id}}),
            )
        }
        Target::Healthz => None,
    })
}

/// Runs the load and reports.
pub async fn run(config: BenchConfig) -> Result<BenchReport, CliError> {
    let base = config.url.trim_end_matches('/').to_owned();
    let path = match config.target {
        Target::Check => "/v1/check",
        Target::Batch => "/v1/check/batch",
        Target::Authzen => "/access/v1/evaluation",
        Target::Healthz => "/healthz",
    };
    // Serialized once: the load generator shares the machine with the server, and writing a
    // thousand checks' JSON for every batch would take the server's time.
    let body = body(&config)?
        .map(|b| serde_json::to_vec(&b).map(bytes::Bytes::from))
        .transpose()
        .map_err(|e| CliError::Api(e.to_string()))?;
    let per_request = if config.target == Target::Batch {
        config.batch_size.max(1) as u64
    } else {
        1
    };
    let bar = ProgressBar::new(config.duration.as_secs().max(1));
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:30}] {pos}/{len}s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let deadline = started + config.duration;
    let mut workers = Vec::new();
    for _ in 0..config.concurrency.max(1) {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .map_err(|e| CliError::Api(e.to_string()))?;
        let url = format!("{base}{path}");
        let body = body.clone();
        let key = config.key.clone();
        let org = config.organization.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let mut request = match &body {
                    Some(b) => client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(b.clone()),
                    None => client.get(&url),
                };
                request = request.bearer_auth(&key);
                if let Some(org) = &org {
                    request = request.header("X-Organization-Id", org);
                }
                let t = Instant::now();
                match request.send().await {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        latencies.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let ticker = {
        let bar = bar.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                bar.set_position(started.elapsed().as_secs());
                if Instant::now() >= deadline {
                    break;
                }
            }
        })
    };
    let mut latencies = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await.map_err(|e| CliError::Api(e.to_string()))?;
        latencies.extend(l);
        errors += e;
    }
    ticker.abort();
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let pick = |p: f64| -> Duration {
        if latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies
            .get(i.min(latencies.len() - 1))
            .copied()
            .unwrap_or_default()
    };
    let requests = latencies.len() as u64;
    Ok(BenchReport {
        requests,
        decisions: if config.target == Target::Healthz {
            0
        } else {
            requests * per_request
        },
        errors,
        elapsed,
        p50: pick(0.5),
        p90: pick(0.9),
        p99: pick(0.99),
        max: latencies.last().copied().unwrap_or_default(),
    })
}
