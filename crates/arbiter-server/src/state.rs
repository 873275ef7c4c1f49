//! The shared state of a server: the store, the current index snapshot, and the write path.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arbiter_core::catalog::Catalog;
use arbiter_core::index::{Index, Revision};
use arbiter_core::model::Op;
use arbiter_store::{AuditRecord, Store, StoreError};
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, Mutex, Notify};

use crate::error::ApiError;

/// Settings of a running server.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Deepest accepted JSON nesting.
    pub max_json_depth: usize,
    /// How long a check with `at_least_revision` may wait for the index.
    pub revision_wait: Duration,
    /// How often the index polls the store for changes other replicas committed.
    pub poll_interval: Duration,
    /// Whether to listen for change notifications (PostgreSQL), besides polling.
    pub notifications: bool,
    /// How many change-log entries compaction keeps.
    pub compact_keep: u64,
    /// The longest a request may take; past it, 503 `request_timeout`.
    pub request_timeout: Duration,
    /// The most requests served at once; more are refused at once with 503 `overloaded`.
    pub max_concurrency: usize,
    /// A token bucket per API key; `None`: no rate limit.
    pub rate_limit: Option<crate::limits::RateLimit>,
    /// The decision log (a sample of decisions as JSON lines); `None`: off.
    pub decision_log: Option<crate::decision_log::DecisionLogSettings>,
    /// The endpoint policy of gateway mode (`--gateway-policy`); `None`: the gateway routes
    /// answer 404 `gateway_disabled`.
    pub gateway: Option<Arc<arbiter_core::gateway::GatewayPolicy>>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_json_depth: 32,
            revision_wait: Duration::from_secs(5),
            poll_interval: Duration::from_millis(500),
            notifications: true,
            compact_keep: 100_000,
            request_timeout: Duration::from_secs(30),
            max_concurrency: 1024,
            rate_limit: None,
            decision_log: None,
            gateway: None,
        }
    }
}

/// What a prepared write commits.
pub struct Prepared<T> {
    pub ops: Vec<Op>,
    pub audit: Vec<AuditRecord>,
    pub output: T,
}

/// The state every handler shares.
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub catalog: Arc<Catalog>,
    index: ArcSwap<Index>,
    /// Serialises this replica's writes; other replicas are ordered by the store.
    write_lock: Mutex<()>,
    /// Woken whenever the index advances.
    advanced: Notify,
    key_uses: mpsc::UnboundedSender<(String, DateTime<Utc>)>,
    pub settings: Settings,
    /// Decisions counted per organization and hour.
    pub usage: Arc<crate::usage::UsageCounter>,
    /// The Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The decision log, when it is on.
    pub decision_log: Option<crate::decision_log::DecisionLog>,
    /// The per-key rate limit, when it is on.
    pub rate_limiter: Option<crate::limits::RateLimiter>,
    /// The permits of the concurrency limit (`settings.max_concurrency` of them).
    pub concurrency: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// Loads the index from the store and starts the key-usage recorder.
    pub async fn load(
        store: Arc<dyn Store>,
        catalog: Arc<Catalog>,
        settings: Settings,
    ) -> Result<Arc<Self>, StoreError> {
        let index = arbiter_store::load_index(store.as_ref(), catalog.clone()).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let state = Arc::new(Self {
            store: store.clone(),
            catalog,
            index: ArcSwap::from_pointee(index),
            write_lock: Mutex::new(()),
            advanced: Notify::new(),
            key_uses: tx,
            decision_log: settings
                .decision_log
                .as_ref()
                .map(|s| crate::decision_log::DecisionLog::start(s, metrics.clone())),
            rate_limiter: settings.rate_limit.map(crate::limits::RateLimiter::new),
            concurrency: crate::limits::semaphore(settings.max_concurrency),
            metrics,
            settings,
            usage: Arc::new(crate::usage::UsageCounter::default()),
        });
        tokio::spawn(record_key_uses(store.clone(), rx));
        tokio::spawn(crate::usage::flush_forever(
            state.usage.clone(),
            store,
            Duration::from_secs(2),
        ));
        tokio::spawn(state.clone().follow());
        tokio::spawn(state.clone().compact_forever(Duration::from_secs(600)));
        Ok(state)
    }

    /// The current snapshot. Lock-free.
    pub fn index(&self) -> Arc<Index> {
        self.index.load_full()
    }

    /// Notes that a key was used; written to the store in batches, off the request path.
    pub fn key_used(&self, key_id: &str) {
        let _ = self.key_uses.send((key_id.to_owned(), Utc::now()));
    }

    /// Applies committed changes the index has not seen yet (written by another replica).
    pub async fn catch_up(&self) -> Result<Revision, ApiError> {
        let _guard = self.write_lock.lock().await;
        self.catch_up_locked().await
    }

    async fn catch_up_locked(&self) -> Result<Revision, ApiError> {
        let current = self.index();
        let mut next: Option<Index> = None;
        let mut after = current.revision;
        loop {
            let started = std::time::Instant::now();
            let changes = self.store.changes_since(after, 1000).await;
            self.metrics.store_call(
                crate::metrics::StoreOp::ChangesSince,
                started.elapsed(),
                changes.is_ok() || matches!(changes, Err(StoreError::Compacted(_))),
            );
            let changes = match changes {
                Ok(changes) => changes,
                Err(StoreError::Compacted(_)) => {
                    let started = std::time::Instant::now();
                    let loaded =
                        arbiter_store::load_index(self.store.as_ref(), self.catalog.clone()).await;
                    self.metrics.store_call(
                        crate::metrics::StoreOp::Load,
                        started.elapsed(),
                        loaded.is_ok(),
                    );
                    next = Some(loaded?);
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            if changes.is_empty() {
                break;
            }
            let index = next.get_or_insert_with(|| (*current).clone());
            for change in &changes {
                index.apply(change.revision, &change.ops);
                after = change.revision;
            }
        }
        match next {
            Some(index) => {
                let revision = index.revision;
                self.index.store(Arc::new(index));
                self.advanced.notify_waiters();
                Ok(revision)
            }
            None => Ok(current.revision),
        }
    }

    /// Waits, bounded by `revision_wait`, until the follower has brought the index to `wanted`.
    pub async fn wait_for(&self, wanted: Revision) -> Result<Arc<Index>, ApiError> {
        let deadline = tokio::time::Instant::now() + self.settings.revision_wait;
        loop {
            // Registered before the check, so that an advance in between is not missed.
            let notified = self.advanced.notified();
            let index = self.index();
            if index.revision >= wanted {
                return Ok(index);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(ApiError::RevisionUnavailable {
                    wanted,
                    current: self.index().revision,
                });
            }
        }
    }

    /// Follows the store: applies the changes other replicas commit, woken by notifications
    /// when the store sends them and by polling every `poll_interval` in any case. Runs until the
    /// process ends.
    pub async fn follow(self: Arc<Self>) {
        let mut notifications = if self.settings.notifications {
            match self.store.listen().await {
                Ok(rx) => rx,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for changes; polling only");
                    None
                }
            }
        } else {
            None
        };
        let mut poll = tokio::time::interval(self.settings.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            match notifications.as_mut() {
                Some(rx) => {
                    tokio::select! {
                        _ = poll.tick() => {}
                        received = rx.recv() => {
                            if received.is_none() {
                                tracing::warn!("change notifications ended; polling only");
                                notifications = None;
                            }
                        }
                    }
                }
                None => {
                    poll.tick().await;
                }
            }
            if let Err(e) = self.catch_up().await {
                tracing::warn!(error = %e, "cannot follow the store");
            }
        }
    }

    /// Removes old change-log entries every `every`, keeping `compact_keep` of them.
    pub async fn compact_forever(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let head = self.index().revision;
            let upto = head.saturating_sub(self.settings.compact_keep);
            if upto > 0 {
                match self.store.compact(upto).await {
                    Ok(n) if n > 0 => tracing::info!(removed = n, upto, "compacted the change log"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot compact the change log"),
                }
            }
        }
    }

    /// Prepares a write against the newest index and commits it; the index is advanced before
    /// this returns, so the caller's next request sees its write. A write that lost a race to
    /// another replica is prepared again on the caught-up index.
    pub async fn write<T>(
        &self,
        prepare: impl Fn(&Index) -> Result<Prepared<T>, ApiError>,
    ) -> Result<(T, Revision), ApiError> {
        let _guard = self.write_lock.lock().await;
        for _ in 0..16 {
            let current = self.index();
            let prepared = prepare(&current)?;
            if prepared.ops.is_empty() {
                return Ok((prepared.output, current.revision));
            }
            // A request that sent `Idempotency-Key` claims it with its first write.
            let claim = crate::idempotency::CLAIM.try_with(Clone::clone).ok();
            let started = std::time::Instant::now();
            let committed = self
                .store
                .commit(
                    current.revision,
                    &prepared.ops,
                    &prepared.audit,
                    claim.as_ref(),
                )
                .await;
            self.metrics.store_call(
                crate::metrics::StoreOp::Commit,
                started.elapsed(),
                committed.is_ok(),
            );
            match committed {
                Ok(revision) => {
                    let mut next = (*current).clone();
                    next.apply(revision, &prepared.ops);
                    self.index.store(Arc::new(next));
                    self.advanced.notify_waiters();
                    return Ok((prepared.output, revision));
                }
                Err(StoreError::Stale { .. }) => {
                    self.catch_up_locked().await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::Internal(
            "the write kept losing races with other writers".to_owned(),
        ))
    }
}

async fn record_key_uses(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<(String, DateTime<Utc>)>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch: HashMap<String, DateTime<Utc>> = HashMap::new();
        batch.insert(first.0, first.1);
        tokio::time::sleep(Duration::from_millis(200)).await;
        while let Ok((key, at)) = rx.try_recv() {
            batch.insert(key, at);
        }
        let uses: Vec<(String, DateTime<Utc>)> = batch.into_iter().collect();
        if let Err(e) = store.record_key_use(&uses).await {
            tracing::warn!(error = %e, "could not record key use");
        }
    }
}
