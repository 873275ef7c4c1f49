//! Decision counts per organization and hour, aggregated in memory and flushed to the store in
//! batches, so that counting costs a check one short, sharded lock and no I/O.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arbiter_store::{Store, UsageCount};
use chrono::{DateTime, Timelike, Utc};

const SHARDS: usize = 16;

/// Keyed by organization id, then hour, both hashed with foldhash, not SipHash: counting is on
/// every request, and the organization ids are the index's, not the client's.
type Counts = HashMap<
    String,
    HashMap<i64, (u64, u64), foldhash::fast::RandomState>,
    foldhash::fast::RandomState,
>;

/// The shard of the thread that counts, given in turn to each thread when it first counts (past
/// sixteen threads, shards are shared); a hash of the thread's id cost every request a SipHash.
fn own_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|shard| *shard)
}

/// The in-memory counters.
pub struct UsageCounter {
    shards: Vec<Mutex<Counts>>,
}

impl Default for UsageCounter {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Counts::default())).collect(),
        }
    }
}

fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp() - i64::from(at.minute()) * 60 - i64::from(at.second())
}

/// The RFC 3339 start of an hour given in seconds since the epoch.
pub fn hour_text(hour: i64) -> String {
    DateTime::<Utc>::from_timestamp(hour, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:00:00Z")
        .to_string()
}

impl UsageCounter {
    /// Counts one decision.
    pub fn count(&self, organization_id: &str, allowed: bool) {
        self.count_many(organization_id, u64::from(allowed), u64::from(!allowed));
    }

    /// Counts the decisions of a batch at once: a lock and a clock reading per request, not per
    /// decision.
    pub fn count_many(&self, organization_id: &str, allowed: u64, denied: u64) {
        if allowed + denied == 0 {
            return;
        }
        let hour = hour_of(Utc::now());
        let Some(lock) = self.shards.get(own_shard()) else {
            return;
        };
        let Ok(mut counts) = lock.lock() else { return };
        let per_hour = match counts.get_mut(organization_id) {
            Some(m) => m,
            None => counts.entry(organization_id.to_owned()).or_default(),
        };
        let cell = per_hour.entry(hour).or_insert((0, 0));
        cell.0 += allowed;
        cell.1 += denied;
    }

    /// Takes every pending count.
    fn drain(&self) -> Vec<UsageCount> {
        let mut merged: HashMap<(String, i64), (u64, u64)> = HashMap::new();
        for shard in &self.shards {
            let taken = match shard.lock() {
                Ok(mut counts) => std::mem::take(&mut *counts),
                Err(_) => continue,
            };
            for (org, hours) in taken {
                for (hour, (a, d)) in hours {
                    let cell = merged.entry((org.clone(), hour)).or_insert((0, 0));
                    cell.0 += a;
                    cell.1 += d;
                }
            }
        }
        merged
            .into_iter()
            .map(|((organization_id, hour), (allowed, denied))| UsageCount {
                organization_id,
                hour: hour_text(hour),
                allowed,
                denied,
            })
            .collect()
    }

    /// Writes the pending counts to the store. On failure they are lost rather than retried
    /// forever: usage is a metric, not a ledger.
    pub async fn flush(&self, store: &dyn Store) {
        let counts = self.drain();
        if counts.is_empty() {
            return;
        }
        if let Err(e) = store.record_usage(&counts).await {
            tracing::warn!(error = %e, "could not record decision usage");
        }
    }
}

/// Flushes every `every` until the process ends.
pub async fn flush_forever(counter: Arc<UsageCounter>, store: Arc<dyn Store>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        counter.flush(store.as_ref()).await;
    }
}
