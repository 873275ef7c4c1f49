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

use arbiter_core::index::{Index, Revision};
use arbiter_core::model::{Object, Op};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

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
    /// The hash of the record before this one in the chain (64 zeros for the first); `None` for
    /// a record written before the chain existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_hash: Option<String>,
    /// SHA-256 (hex) of this record's canonical serialisation and `prev_hash`: see
    /// [`ChainRecord::compute_hash`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

/// The `prev_hash` of the first record of the audit chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An audit record exactly as stored, with its place (`seq`) and its links: what the chain's hash
/// is computed over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainRecord {
    pub seq: i64,
    pub id: String,
    pub revision: i64,
    pub at: String,
    pub organization_id: Option<String>,
    pub actor_user_id: Option<String>,
    pub actor_key_id: Option<String>,
    pub action: String,
    pub object_kind: String,
    pub object_id: String,
    /// The stored JSON text of the object before the write.
    pub before: Option<String>,
    pub after: Option<String>,
    pub request_id: Option<String>,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

impl ChainRecord {
    /// SHA-256 (lowercase hex) of the record's canonical serialisation followed by `prev_hash`:
    /// the JSON array `["arbiter.audit.v1", id, revision, at, organization_id, actor_user_id,
    /// actor_key_id, action, object_kind, object_id, before, after, request_id, prev_hash]`, with
    /// absent fields as `null` and `before`/`after` as their stored text. `seq` is not covered: it
    /// is the chain's order, which the links already pin.
    pub fn compute_hash(&self, prev_hash: &str) -> String {
        use sha2::{Digest, Sha256};
        let canonical = (
            "arbiter.audit.v1",
            &self.id,
            self.revision,
            &self.at,
            &self.organization_id,
            &self.actor_user_id,
            &self.actor_key_id,
            &self.action,
            &self.object_kind,
            &self.object_id,
            &self.before,
            &self.after,
            &self.request_id,
            prev_hash,
        );
        // Serialising strings, integers and options cannot fail.
        let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
        let digest = Sha256::digest(&bytes);
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The newest link of the audit chain, kept beside it so that removed records are noticed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditHead {
    /// The `seq` of the newest chained record; 0 when there is none.
    pub seq: i64,
    pub hash: String,
}

/// Why the audit chain does not verify, at the first record that fails.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("its hash does not match its contents (stored {stored}, computed {computed}): the record was edited")]
    HashMismatch { stored: String, computed: String },
    #[error("its prev_hash {found} is not the hash of the record before it ({expected}): a record before it was removed, inserted or rewritten")]
    LinkBroken { expected: String, found: String },
    #[error("it has no hash, though records before it do")]
    MissingHash,
    #[error("the audit head names record {head_seq} with hash {head_hash}, but the chain ends at record {last_seq}: records were removed from the end, or the head was edited")]
    HeadMismatch {
        head_seq: i64,
        head_hash: String,
        last_seq: i64,
    },
}

/// The outcome of walking the audit chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainVerdict {
    /// Every chained record verified. `unchained` records, written before the chain existed,
    /// precede them; `head` is the newest hash (worth keeping outside the database).
    Verified {
        records: u64,
        unchained: u64,
        head: String,
    },
    /// The first record that fails (`None` when the chain is empty but the head is not).
    Broken {
        seq: i64,
        id: Option<String>,
        reason: ChainBreak,
    },
}

/// Walks the whole audit chain in order, recomputing every hash and link, and compares its end
/// with the audit head.
pub async fn verify_audit_chain(store: &dyn Store) -> Result<ChainVerdict, StoreError> {
    const PAGE: u32 = 1000;
    let mut expected_prev = GENESIS_HASH.to_owned();
    let (mut after, mut records, mut unchained) = (0i64, 0u64, 0u64);
    let mut last: Option<(i64, String)> = None;
    loop {
        let page = store.audit_chain(after, PAGE).await?;
        let Some(end) = page.last() else { break };
        after = end.seq;
        for record in page {
            let (Some(prev), Some(hash)) = (&record.prev_hash, &record.hash) else {
                if last.is_none() && record.prev_hash.is_none() && record.hash.is_none() {
                    unchained += 1;
                    continue;
                }
                return Ok(ChainVerdict::Broken {
                    seq: record.seq,
                    id: Some(record.id),
                    reason: ChainBreak::MissingHash,
                });
            };
            if *prev != expected_prev {
                return Ok(ChainVerdict::Broken {
                    seq: record.seq,
                    id: Some(record.id.clone()),
                    reason: ChainBreak::LinkBroken {
                        expected: expected_prev,
                        found: prev.clone(),
                    },
                });
            }
            let computed = record.compute_hash(prev);
            if computed != *hash {
                return Ok(ChainVerdict::Broken {
                    seq: record.seq,
                    id: Some(record.id.clone()),
                    reason: ChainBreak::HashMismatch {
                        stored: hash.clone(),
                        computed,
                    },
                });
            }
            expected_prev = computed;
            records += 1;
            last = Some((record.seq, record.id));
        }
    }
    let head = store.audit_head().await?;
    let (last_seq, last_id) = last.map_or((0, None), |(seq, id)| (seq, Some(id)));
    if head.seq != last_seq || head.hash != expected_prev {
        return Ok(ChainVerdict::Broken {
            seq: last_seq,
            id: last_id,
            reason: ChainBreak::HeadMismatch {
                head_seq: head.seq,
                head_hash: head.hash,
                last_seq,
            },
        });
    }
    Ok(ChainVerdict::Verified {
        records,
        unchained,
        head: expected_prev,
    })
}

/// The rows a commit appends to the audit chain after `prev` (the head's hash), hashed and
/// linked in order; `seq` is left 0 for the database to assign.
fn chain_rows(
    audit: &[AuditRecord],
    revision: i64,
    at: &str,
    prev: &str,
) -> Result<Vec<ChainRecord>, StoreError> {
    let mut prev = prev.to_owned();
    let mut rows = Vec::with_capacity(audit.len());
    for record in audit {
        let mut row = ChainRecord {
            seq: 0,
            id: audit_id(),
            revision,
            at: at.to_owned(),
            organization_id: record.organization_id.clone(),
            actor_user_id: record.actor_user_id.clone(),
            actor_key_id: record.actor_key_id.clone(),
            action: record.action.clone(),
            object_kind: record.object_kind.clone(),
            object_id: record.object_id.clone(),
            before: record.before.as_ref().map(to_json).transpose()?,
            after: record.after.as_ref().map(to_json).transpose()?,
            request_id: record.request_id.clone(),
            prev_hash: None,
            hash: None,
        };
        let hash = row.compute_hash(&prev);
        row.prev_hash = Some(std::mem::replace(&mut prev, hash.clone()));
        row.hash = Some(hash);
        rows.push(row);
    }
    Ok(rows)
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
    pub actor_key_id: Option<String>,
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

    /// Every object, sent on `pages` a page at a time as they are read and parsed, and the
    /// revision they are at: all read in one transaction, so that the two agree. It stops reading,
    /// without error, when the receiver of `pages` goes away.
    async fn load_pages(&self, pages: mpsc::Sender<Vec<Object>>) -> Result<Revision, StoreError>;

    /// Every object and the revision they are at (see [`Store::load_pages`]).
    async fn load(&self) -> Result<(Revision, Vec<Object>), StoreError> {
        let (pages, mut received) = mpsc::channel(PAGES_IN_FLIGHT);
        let collect = async move {
            let mut objects = Vec::new();
            while let Some(page) = received.recv().await {
                objects.extend(page);
            }
            objects
        };
        let (revision, objects) = tokio::join!(self.load_pages(pages), collect);
        Ok((revision?, objects))
    }

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

    /// Audit records with a `seq` above `after_seq`, in `seq` order (the chain's order), at most
    /// `limit`, exactly as stored: for verifying the chain.
    ///
    /// The chain is appended by [`Store::commit`] in the write's transaction: it reads the audit
    /// head, links and hashes the new records after it, and moves the head, while holding the
    /// store's write serialisation (SQLite `BEGIN IMMEDIATE`; PostgreSQL a row lock on
    /// `audit_head`), so the chain never forks.
    async fn audit_chain(&self, after_seq: i64, limit: u32)
        -> Result<Vec<ChainRecord>, StoreError>;

    /// The audit head: the newest chained record's `seq` and hash.
    async fn audit_head(&self) -> Result<AuditHead, StoreError>;
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

/// How many objects a store reads in one query on load: enough that the round trips cost
/// little, few enough that reading, parsing and indexing overlap.
const LOAD_PAGE: i64 = 20_000;

/// How many parsed pages may wait for the reader of [`Store::load_pages`].
const PAGES_IN_FLIGHT: usize = 4;

/// Reads every object of the store and builds the index from them, as `arbiter serve` does
/// before it answers. Reading (the store's connection), parsing (the blocking pool, a page behind
/// the read) and building the index (a blocking thread, a page behind the parse) overlap, so a
/// cold start costs about its slowest stage rather than the sum of the three.
pub async fn load_index(
    store: &dyn Store,
    catalog: Arc<arbiter_core::catalog::Catalog>,
) -> Result<Index, StoreError> {
    let (pages, mut received) = mpsc::channel::<Vec<Object>>(PAGES_IN_FLIGHT);
    let building = tokio::task::spawn_blocking(move || {
        Index::load(
            catalog,
            0,
            std::iter::from_fn(move || received.blocking_recv()).flatten(),
        )
    });
    let read = store.load_pages(pages).await;
    let mut index = joined(building.await)?;
    index.revision = read?;
    Ok(index)
}

/// The value of a blocking task: its panic goes on in the caller; it is cancelled only when the
/// runtime shuts down under the load.
fn joined<T>(result: Result<T, tokio::task::JoinError>) -> Result<T, StoreError> {
    result.map_err(|e| match e.try_into_panic() {
        Ok(panic) => std::panic::resume_unwind(panic),
        Err(_) => StoreError::Cancelled,
    })
}

/// Parses a store's pages of rows on the blocking pool while it reads the next page, and sends
/// the objects on in order. `columns` gives a row's kind, id and body.
struct PageParser<R> {
    pages: mpsc::Sender<Vec<Object>>,
    columns: fn(&R) -> (&str, &str, &str),
    parsing: Option<tokio::task::JoinHandle<Result<Vec<Object>, StoreError>>>,
}

impl<R: Send + 'static> PageParser<R> {
    fn new(pages: mpsc::Sender<Vec<Object>>, columns: fn(&R) -> (&str, &str, &str)) -> Self {
        Self {
            pages,
            columns,
            parsing: None,
        }
    }

    /// Starts parsing a page and sends the one before it; false when the receiver went away.
    async fn push(&mut self, rows: Vec<R>) -> Result<bool, StoreError> {
        let columns = self.columns;
        let parsing = tokio::task::spawn_blocking(move || {
            rows.iter()
                .map(|row| {
                    let (kind, id, body) = columns(row);
                    parse_object(kind, id, body)
                })
                .collect()
        });
        match self.parsing.replace(parsing) {
            Some(previous) => self.send(previous).await,
            None => Ok(true),
        }
    }

    /// Sends the last page; false when the receiver went away.
    async fn finish(mut self) -> Result<bool, StoreError> {
        match self.parsing.take() {
            Some(last) => self.send(last).await,
            None => Ok(true),
        }
    }

    async fn send(
        &self,
        parsing: tokio::task::JoinHandle<Result<Vec<Object>, StoreError>>,
    ) -> Result<bool, StoreError> {
        let objects = joined(parsing.await)??;
        Ok(self.pages.send(objects).await.is_ok())
    }
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

/// Reads a stored audit row in the column order of [`AUDIT_COLUMNS`].
fn chain_record<R>(row: &R) -> ChainRecord
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    ChainRecord {
        seq: row.get(0),
        id: row.get(1),
        revision: row.get(2),
        at: row.get(3),
        organization_id: row.get(4),
        actor_user_id: row.get(5),
        actor_key_id: row.get(6),
        action: row.get(7),
        object_kind: row.get(8),
        object_id: row.get(9),
        before: row.get(10),
        after: row.get(11),
        request_id: row.get(12),
        prev_hash: row.get(13),
        hash: row.get(14),
    }
}

/// The columns of an audit row, in the order [`chain_record`] reads them.
const AUDIT_COLUMNS: &str =
    "seq, id, revision, at, organization_id, actor_user_id, actor_key_id, action, \
     object_kind, object_id, before, after, request_id, prev_hash, hash";

impl ChainRecord {
    /// The record as the API shows it.
    fn into_event(self) -> AuditEvent {
        AuditEvent {
            id: self.id,
            revision: revision_from_i64(self.revision),
            at: parse_time(&self.at),
            record: AuditRecord {
                organization_id: self.organization_id,
                actor_user_id: self.actor_user_id,
                actor_key_id: self.actor_key_id,
                action: self.action,
                object_kind: self.object_kind,
                object_id: self.object_id,
                before: parse_value(self.before),
                after: parse_value(self.after),
                request_id: self.request_id,
            },
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

fn audit_id() -> String {
    format!("aud_{}", uuid::Uuid::now_v7().simple())
}
