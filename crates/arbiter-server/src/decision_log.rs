//! The decision log: a sample of decisions written as JSON lines to a file, off the request path.
//! A request only draws its sample and, when drawn, serialises one line and hands it to a
//! bounded channel without waiting; a writer task appends the lines and flushes whenever the
//! channel runs dry. A full channel drops the line (counted in
//! `arbiter_decision_log_dropped_total`) rather than slowing checks down.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arbiter_core::engine::SubjectQuery;
use chrono::Utc;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use crate::extract::Ctx;
use crate::metrics::{DecisionApi, Metrics};
use crate::state::AppState;

/// Lines waiting for the writer, at most.
const CHANNEL: usize = 16_384;

/// Where decisions are logged and which fraction of them.
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionLogSettings {
    /// The file, appended to (created if missing).
    pub path: PathBuf,
    /// The fraction of decisions written, from 0 (none) to 1 (all).
    pub sample: f64,
}

enum Message {
    Line(String),
    Flush(oneshot::Sender<()>),
}

/// The sending half of the decision log.
pub struct DecisionLog {
    tx: mpsc::Sender<Message>,
    sample: f64,
    metrics: Arc<Metrics>,
}

/// One decision as it is logged.
#[derive(Serialize)]
struct Line<'a> {
    at: String,
    request_id: Option<&'a str>,
    api: &'static str,
    organization_id: &'a str,
    caller_key_id: &'a str,
    subject: Subject<'a>,
    permission: String,
    resource: Resource<'a>,
    allowed: bool,
    revision: String,
}

#[derive(Serialize)]
struct Subject<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
}

#[derive(Serialize)]
struct Resource<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
}

/// What a route decided, for the metrics and the decision log.
pub struct Decided<'a> {
    pub api: DecisionApi,
    pub subject: &'a SubjectQuery,
    /// The permission asked, or the requirement expression.
    pub permission: &'a dyn std::fmt::Display,
    pub resource_type: &'a str,
    pub resource_id: &'a str,
    pub allowed: bool,
    pub revision: u64,
}

impl DecisionLog {
    /// Starts the writer task, appending to `settings.path`. The file is opened by the task; a
    /// failure to open it is logged and the lines are dropped (`arbiter serve` opens the file
    /// once before starting, so that a bad path fails the start instead).
    pub fn start(settings: &DecisionLogSettings, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel(CHANNEL);
        tokio::spawn(write_lines(settings.path.clone(), rx));
        Self {
            tx,
            sample: settings.sample,
            metrics,
        }
    }

    fn drawn(&self) -> bool {
        self.sample >= 1.0 || (self.sample > 0.0 && rand::random::<f64>() < self.sample)
    }

    /// Logs a decision if the sample draws it. Never waits.
    pub fn record(&self, ctx: &Ctx, d: &Decided<'_>) {
        if !self.drawn() {
            return;
        }
        let (kind, id) = match d.subject {
            SubjectQuery::User(id) => ("user", id.as_str()),
            SubjectQuery::ApiKey(id) => ("api_key", id.as_str()),
        };
        let line = Line {
            at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            request_id: ctx.caller.request_id(),
            api: d.api.as_str(),
            organization_id: ctx.org_id(),
            caller_key_id: &ctx.caller.key.id,
            subject: Subject { kind, id },
            permission: d.permission.to_string(),
            resource: Resource {
                kind: d.resource_type,
                id: d.resource_id,
            },
            allowed: d.allowed,
            revision: d.revision.to_string(),
        };
        let Ok(mut text) = serde_json::to_string(&line) else {
            return;
        };
        text.push('\n');
        if self.tx.try_send(Message::Line(text)).is_err() {
            self.metrics.decision_log_dropped();
        }
    }

    /// Waits until every line sent so far is written and flushed (at shutdown).
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(10), flushed).await;
        }
    }
}

async fn write_lines(path: PathBuf, mut rx: mpsc::Receiver<Message>) {
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .await;
    let mut out = match file {
        Ok(f) => Some(tokio::io::BufWriter::new(f)),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot open the decision log; decisions are not logged");
            None
        }
    };
    while let Some(message) = rx.recv().await {
        let mut acks = Vec::new();
        let mut next = Some(message);
        // Drain what is waiting, then flush once.
        while let Some(message) = next {
            match message {
                Message::Line(line) => {
                    if let Some(w) = out.as_mut() {
                        if let Err(e) = w.write_all(line.as_bytes()).await {
                            tracing::warn!(error = %e, "cannot write the decision log");
                        }
                    }
                }
                Message::Flush(ack) => acks.push(ack),
            }
            next = rx.try_recv().ok();
        }
        if let Some(w) = out.as_mut() {
            if let Err(e) = w.flush().await {
                tracing::warn!(error = %e, "cannot flush the decision log");
            }
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

impl AppState {
    /// Notes a decision: counted in the metrics, and logged when the decision log is on and
    /// draws it. `elapsed` is the engine's time for it.
    pub fn decided(&self, ctx: &Ctx, d: Decided<'_>, elapsed: Duration) {
        self.metrics.decision(d.api, d.allowed, elapsed);
        self.log_decision(ctx, &d);
    }

    /// Logs a decision when the decision log is on and draws it (a batch counts its decisions
    /// in a [`crate::metrics::DecisionTally`]).
    pub fn log_decision(&self, ctx: &Ctx, d: &Decided<'_>) {
        if let Some(log) = &self.decision_log {
            log.record(ctx, d);
        }
    }
}
