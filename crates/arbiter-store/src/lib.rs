//! `arbiter-store`: where Arbiter's objects are kept, and the change log the in-memory index
//! follows.
//!
//! Every committed write is one revision: the ops it applied are appended to the change log in the
//! same transaction as the objects, their unique names and the audit record. A write is prepared
//! against the revision the writer's index is at and commits only if the store is still there
//! ([`StoreError::Stale`] otherwise), which makes writes serializable across replicas without
//! locks held between requests.

mod error;
mod postgres;
mod sqlite;

use std::sync::Arc;

use arbiter_core::index::Revision;
use arbiter_core::model::{Object, Op};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use error::StoreError;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// One committed revision as the change log holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub revision: Revision,
    pub ops: Vec<Op>,
    pub committed_at: DateTime<Utc>,
}

/// An audit record of an admin write, written with the write.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub organization_id: Option<String>,
    pub actor_user_id: Option<String>,
    pub actor_key_id: Option<String>,
    /// What was done, such as `role.create`.
    pub action: String,
    pub object_kind: String,
    pub object_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub request_id: Option<String>,
}

/// A stored audit record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: String,
    pub revision: Revision,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub record: AuditRecord,
}

/// An idempotency key claimed by a write: `scope` is unique (the caller's key and the
/// `Idempotency-Key` it sent), `request` names the method and path it was sent with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyClaim {
    pub scope: String,
    pub request: String,
}

/// A claimed idempotency key and, once known, the answer to replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub request: String,
    pub revision: Revision,
    pub status: Option<u16>,
    pub body: Option<String>,
}

/// Decisions counted for one organization in one hour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageCount {
    pub organization_id: String,
    /// The start of the hour, RFC 3339 UTC (`2026-01-01T10:00:00Z`).
    pub hour: String,
    pub allowed: u64,
    pub denied: u64,
}

/// Which audit events to list.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// `None` lists every organization's (platform administrators only).
    pub organization_id: Option<String>,
    pub actor_user_id: Option<String>,
    pub object_id: Option<String>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub offset: u64,
    pub limit: u64,
}

/// The store. Implementations: [`SqliteStore`] and [`PostgresStore`]; both run the same
/// behavioural suite.
#[async_trait]
pub trait Store: Send + Sync {
    /// Creates or upgrades the schema. Idempotent.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// The revision of the last committed write; 0 for an empty store.
    async fn head(&self) -> Result<Revision, StoreError>;

    /// Every object and the revision they are at, read in one transaction so that the two agree.
    async fn load(&self) -> Result<(Revision, Vec<Object>), StoreError>;

    /// Committed changes with a revision above `after`, in revision order, at most `limit`.
    /// Returns [`StoreError::Compacted`] when changes after `after` were removed by compaction.
    async fn changes_since(&self, after: Revision, limit: u32) -> Result<Vec<Change>, StoreError>;

    /// Commits `ops` as revision `expected + 1`, atomically with their unique names and the audit
    /// records, if and only if the store is at `expected`. Durable before it returns.
    ///
    /// Errors: [`StoreError::Stale`] when another write committed since `expected`;
    /// [`StoreError::NameTaken`] when a put claims a name another object holds. Nothing is
    /// written on error.
    /// With an idempotency claim, the claim is inserted in the same transaction:
    /// [`StoreError::IdempotencyKeyUsed`] when another write claimed it.
    async fn commit(
        &self,
        expected: Revision,
        ops: &[Op],
        audit: &[AuditRecord],
        idempotency: Option<&IdempotencyClaim>,
    ) -> Result<Revision, StoreError>;

    /// The idempotency record of a scope, if one was claimed.
    async fn idempotency(&self, scope: &str) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Stores the answer of the write that claimed `scope` (`None` for an answer that must not be
    /// kept, such as one holding a key secret).
    async fn complete_idempotency(
        &self,
        scope: &str,
        status: u16,
        body: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Records when keys were last used. Not a revision: nothing in a decision depends on it.
    async fn record_key_use(&self, uses: &[(String, DateTime<Utc>)]) -> Result<(), StoreError>;

    /// When a key was last used, if ever.
    async fn key_last_used(&self, key_id: &str) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Adds decision counts: `(organization, hour start in RFC 3339, allowed, denied)`.
    async fn record_usage(&self, counts: &[UsageCount]) -> Result<(), StoreError>;

    /// The hourly counts of an organization since `since` (RFC 3339 hour start), oldest first.
    async fn usage(
        &self,
        organization_id: &str,
        since: &str,
    ) -> Result<Vec<UsageCount>, StoreError>;

    /// Removes change-log entries at or below `revision`, always keeping the newest entry so that
    /// the head survives. A follower that needs removed entries gets [`StoreError::Compacted`]
    /// and reloads. Returns how many entries were removed.
    async fn compact(&self, revision: Revision) -> Result<u64, StoreError>;

    /// A stream of the revisions other writers commit, when the store can push them
    /// (PostgreSQL `LISTEN/NOTIFY`); `None` when followers must poll. A notification may be
    /// missed: followers poll as well, so a missed one delays a change but never loses it.
    async fn listen(&self) -> Result<Option<tokio::sync::mpsc::Receiver<Revision>>, StoreError>;

    /// Audit events, oldest first, with the total that match the filter.
    async fn audit_events(
        &self,
        filter: &AuditFilter,
    ) -> Result<(Vec<AuditEvent>, u64), StoreError>;
}

/// Opens the store a database URL names: `sqlite://PATH` (created if missing) or
/// `postgres://...`, and migrates it.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> = if url.starts_with("sqlite:") {
        Arc::new(SqliteStore::open(url).await?)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Arc::new(PostgresStore::open(url).await?)
    } else {
        return Err(StoreError::UnsupportedUrl(url.to_owned()));
    };
    store.migrate().await?;
    Ok(store)
}

fn parse_object(kind: &str, id: &str, body: &str) -> Result<Object, StoreError> {
    serde_json::from_str(body).map_err(|source| StoreError::Corrupt {
        what: format!("{kind}/{id}"),
        source,
    })
}

fn parse_ops(revision: i64, body: &str) -> Result<Vec<Op>, StoreError> {
    serde_json::from_str(body).map_err(|source| StoreError::Corrupt {
        what: format!("change {revision}"),
        source,
    })
}

fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Corrupt {
        what: "serialisation".to_owned(),
        source,
    })
}

fn parse_time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn parse_value(text: Option<String>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

fn revision_to_i64(revision: Revision) -> i64 {
    i64::try_from(revision).unwrap_or(i64::MAX)
}

fn revision_from_i64(revision: i64) -> Revision {
    Revision::try_from(revision).unwrap_or(0)
}

fn audit_id() -> String {
    format!("aud_{}", uuid::Uuid::now_v7().simple())
}
