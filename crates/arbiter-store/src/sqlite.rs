//! The embedded store: one SQLite file, in WAL mode, writes in `BEGIN IMMEDIATE` transactions
//! with `synchronous = FULL`, so that an acknowledged write survives the process being killed.

use std::str::FromStr;
use std::time::Duration;

use arbiter_core::index::Revision;
use arbiter_core::model::{Object, Op};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tokio::sync::mpsc;

use crate::{
    chain_record, chain_rows, parse_ops, parse_time, revision_from_i64, revision_to_i64, to_json,
    AuditEvent, AuditFilter, AuditHead, AuditRecord, ChainRecord, Change, IdempotencyClaim,
    IdempotencyRecord, PageParser, Store, StoreError, UsageCount, AUDIT_COLUMNS, LOAD_PAGE,
};

/// The SQLite store.
pub struct SqliteStore {
    pool: SqlitePool,
}

/// Translates SQLite driver errors: a unique-constraint failure on `unique_names` is a taken name,
/// one on `changes` a stale write.
fn translate(error: sqlx::Error, name: Option<&str>) -> StoreError {
    if let sqlx::Error::Database(db) = &error {
        if db.is_unique_violation() {
            if let Some(name) = name {
                return StoreError::NameTaken {
                    name: name.to_owned(),
                };
            }
        }
    }
    StoreError::Database(error)
}

impl SqliteStore {
    /// Opens (creating if needed) the file a `sqlite://PATH` URL names.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::Database)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(StoreError::Database)?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await
            .map_err(StoreError::Migrate)
    }

    async fn head(&self) -> Result<Revision, StoreError> {
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(revision), 0) FROM changes")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::Database)?;
        Ok(revision_from_i64(head))
    }

    async fn load_pages(&self, pages: mpsc::Sender<Vec<Object>>) -> Result<Revision, StoreError> {
        // One read transaction: in WAL mode it sees one snapshot, whatever commits meanwhile.
        let mut tx = self.pool.begin().await.map_err(StoreError::Database)?;
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(revision), 0) FROM changes")
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::Database)?;
        let mut parser = PageParser::new(pages, |row: &SqliteRow| {
            (row.get(1), row.get(2), row.get(3))
        });
        let mut after = i64::MIN;
        loop {
            let rows = sqlx::query(
                "SELECT rowid, kind, id, body FROM objects WHERE rowid > ? ORDER BY rowid LIMIT ?",
            )
            .bind(after)
            .bind(LOAD_PAGE)
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::Database)?;
            let Some(last) = rows.last() else { break };
            after = last.get(0);
            let more = rows.len() as i64 == LOAD_PAGE;
            if !parser.push(rows).await? || !more {
                break;
            }
        }
        parser.finish().await?;
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(revision_from_i64(head))
    }

    async fn changes_since(&self, after: Revision, limit: u32) -> Result<Vec<Change>, StoreError> {
        let rows = sqlx::query("SELECT revision, ops, committed_at FROM changes WHERE revision > ? ORDER BY revision LIMIT ?")
            .bind(revision_to_i64(after))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Database)?;
        let mut changes = Vec::with_capacity(rows.len());
        for row in rows {
            let revision: i64 = row.get(0);
            let ops: String = row.get(1);
            let at: String = row.get(2);
            changes.push(Change {
                revision: revision_from_i64(revision),
                ops: parse_ops(revision, &ops)?,
                committed_at: parse_time(&at),
            });
        }
        if let Some(first) = changes.first() {
            if first.revision != after + 1 {
                return Err(StoreError::Compacted(after + 1));
            }
        }
        Ok(changes)
    }

    async fn commit(
        &self,
        expected: Revision,
        ops: &[Op],
        audit: &[AuditRecord],
        idempotency: Option<&IdempotencyClaim>,
    ) -> Result<Revision, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::Database)?;
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(revision), 0) FROM changes")
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::Database)?;
        if revision_from_i64(head) != expected {
            return Err(StoreError::Stale { expected });
        }
        let revision = expected + 1;
        let rev = revision_to_i64(revision);
        let now = Utc::now().to_rfc3339();
        sqlx::query("INSERT INTO changes (revision, ops, committed_at) VALUES (?, ?, ?)")
            .bind(rev)
            .bind(to_json(&ops)?)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(|e| match translate(e, None) {
                StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    StoreError::Stale { expected }
                }
                other => other,
            })?;
        for op in ops {
            let key = op.key();
            sqlx::query("DELETE FROM unique_names WHERE kind = ? AND id = ?")
                .bind(key.kind.as_str())
                .bind(&key.id)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::Database)?;
            match op {
                Op::Put { object } => {
                    for name in object.unique_names() {
                        sqlx::query("INSERT INTO unique_names (name, kind, id) VALUES (?, ?, ?)")
                            .bind(&name)
                            .bind(key.kind.as_str())
                            .bind(&key.id)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| translate(e, Some(&name)))?;
                    }
                    sqlx::query(
                        "INSERT INTO objects (kind, id, body, revision) VALUES (?, ?, ?, ?) \
                         ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body, revision = excluded.revision",
                    )
                    .bind(key.kind.as_str())
                    .bind(&key.id)
                    .bind(to_json(object)?)
                    .bind(rev)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::Database)?;
                }
                Op::Delete { .. } => {
                    sqlx::query("DELETE FROM objects WHERE kind = ? AND id = ?")
                        .bind(key.kind.as_str())
                        .bind(&key.id)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::Database)?;
                }
            }
        }
        if let Some(claim) = idempotency {
            sqlx::query("INSERT INTO idempotency (scope, request, revision, created_at) VALUES (?, ?, ?, ?)")
                .bind(&claim.scope)
                .bind(&claim.request)
                .bind(rev)
                .bind(&now)
                .execute(&mut *tx)
                .await
                .map_err(|e| match e {
                    sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::IdempotencyKeyUsed,
                    other => StoreError::Database(other),
                })?;
        }
        if !audit.is_empty() {
            // `BEGIN IMMEDIATE` holds the database's one write lock: no other committer reads
            // the head until this transaction ends, so the chain stays linear.
            let prev: String = sqlx::query_scalar("SELECT hash FROM audit_head WHERE id = 1")
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::Database)?;
            let mut head = None;
            for row in chain_rows(audit, rev, &now, &prev)? {
                let seq: i64 = sqlx::query_scalar(
                    "INSERT INTO audit_events (id, revision, at, organization_id, actor_user_id, actor_key_id, action, \
                     object_kind, object_id, before, after, request_id, prev_hash, hash) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
                )
                .bind(&row.id)
                .bind(row.revision)
                .bind(&row.at)
                .bind(&row.organization_id)
                .bind(&row.actor_user_id)
                .bind(&row.actor_key_id)
                .bind(&row.action)
                .bind(&row.object_kind)
                .bind(&row.object_id)
                .bind(&row.before)
                .bind(&row.after)
                .bind(&row.request_id)
                .bind(&row.prev_hash)
                .bind(&row.hash)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::Database)?;
                head = Some((seq, row.hash));
            }
            if let Some((seq, hash)) = head {
                sqlx::query("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1")
                    .bind(seq)
                    .bind(hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::Database)?;
            }
        }
        tx.commit().await.map_err(StoreError::Database)?;
        Ok(revision)
    }

    async fn record_key_use(&self, uses: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::Database)?;
        for (key_id, at) in uses {
            sqlx::query(
                "INSERT INTO api_key_usage (key_id, last_used_at) VALUES (?, ?) \
                 ON CONFLICT (key_id) DO UPDATE SET last_used_at = excluded.last_used_at",
            )
            .bind(key_id)
            .bind(at.to_rfc3339())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::Database)?;
        }
        tx.commit().await.map_err(StoreError::Database)
    }

    async fn key_last_used(&self, key_id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<String> =
            sqlx::query_scalar("SELECT last_used_at FROM api_key_usage WHERE key_id = ?")
                .bind(key_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::Database)?;
        Ok(at.map(|t| parse_time(&t)))
    }

    async fn record_usage(&self, counts: &[UsageCount]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::Database)?;
        for c in counts {
            sqlx::query("INSERT INTO usage_hours (organization_id, hour, allowed, denied) VALUES (?, ?, ?, ?) ON CONFLICT (organization_id, hour) DO UPDATE SET allowed = usage_hours.allowed + excluded.allowed, denied = usage_hours.denied + excluded.denied")
                .bind(&c.organization_id)
                .bind(&c.hour)
                .bind(i64::try_from(c.allowed).unwrap_or(i64::MAX))
                .bind(i64::try_from(c.denied).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::Database)?;
        }
        tx.commit().await.map_err(StoreError::Database)
    }

    async fn usage(
        &self,
        organization_id: &str,
        since: &str,
    ) -> Result<Vec<UsageCount>, StoreError> {
        let rows = sqlx::query("SELECT organization_id, hour, allowed, denied FROM usage_hours WHERE organization_id = ? AND hour >= ? ORDER BY hour")
            .bind(organization_id)
            .bind(since)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::Database)?;
        Ok(rows
            .into_iter()
            .map(|row| UsageCount {
                organization_id: row.get(0),
                hour: row.get(1),
                allowed: u64::try_from(row.get::<i64, _>(2)).unwrap_or(0),
                denied: u64::try_from(row.get::<i64, _>(3)).unwrap_or(0),
            })
            .collect())
    }

    async fn idempotency(&self, scope: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let row =
            sqlx::query("SELECT request, revision, status, body FROM idempotency WHERE scope = ?")
                .bind(scope)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::Database)?;
        Ok(row.map(|row| IdempotencyRecord {
            request: row.get(0),
            revision: revision_from_i64(row.get(1)),
            status: row
                .get::<Option<i32>, _>(2)
                .and_then(|s| u16::try_from(s).ok()),
            body: row.get(3),
        }))
    }

    async fn complete_idempotency(
        &self,
        scope: &str,
        status: u16,
        body: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE idempotency SET status = ?, body = ? WHERE scope = ?")
            .bind(i32::from(status))
            .bind(body)
            .bind(scope)
            .execute(&self.pool)
            .await
            .map_err(StoreError::Database)?;
        Ok(())
    }

    async fn listen(&self) -> Result<Option<tokio::sync::mpsc::Receiver<Revision>>, StoreError> {
        Ok(None)
    }

    async fn compact(&self, revision: Revision) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM changes WHERE revision <= ? AND revision < (SELECT MAX(revision) FROM changes)")
            .bind(revision_to_i64(revision))
            .execute(&self.pool)
            .await
            .map_err(StoreError::Database)?;
        Ok(done.rows_affected())
    }

    async fn audit_events(
        &self,
        filter: &AuditFilter,
    ) -> Result<(Vec<AuditEvent>, u64), StoreError> {
        let conditions =
            "(?1 IS NULL OR organization_id = ?1) AND (?2 IS NULL OR actor_user_id = ?2) \
             AND (?3 IS NULL OR object_id = ?3) AND (?4 IS NULL OR action = ?4) \
             AND (?5 IS NULL OR at >= ?5) AND (?6 IS NULL OR at <= ?6) \
             AND (?7 IS NULL OR actor_key_id = ?7)";
        let since = filter.since.map(|t| t.to_rfc3339());
        let until = filter.until.map(|t| t.to_rfc3339());
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM audit_events WHERE {conditions}"
        ))
        .bind(&filter.organization_id)
        .bind(&filter.actor_user_id)
        .bind(&filter.object_id)
        .bind(&filter.action)
        .bind(&since)
        .bind(&until)
        .bind(&filter.actor_key_id)
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        let rows = sqlx::query(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE {conditions} ORDER BY seq LIMIT ?8 OFFSET ?9"
        ))
        .bind(&filter.organization_id)
        .bind(&filter.actor_user_id)
        .bind(&filter.object_id)
        .bind(&filter.action)
        .bind(&since)
        .bind(&until)
        .bind(&filter.actor_key_id)
        .bind(i64::try_from(filter.limit).unwrap_or(i64::MAX))
        .bind(i64::try_from(filter.offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        let events = rows
            .iter()
            .map(|row| chain_record(row).into_event())
            .collect();
        Ok((events, u64::try_from(total).unwrap_or(0)))
    }

    async fn audit_chain(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<ChainRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?"
        ))
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Database)?;
        Ok(rows.iter().map(chain_record).collect())
    }

    async fn audit_head(&self) -> Result<AuditHead, StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::Database)?;
        Ok(AuditHead {
            seq: row.get(0),
            hash: row.get(1),
        })
    }
}
