//! The one error type of `arbiter-store`.

use thiserror::Error;

/// What can go wrong talking to a store. Driver errors are translated in one function per backend.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The store's head moved past the revision the write was prepared against: another writer
    /// committed first. The caller catches up and prepares the write again.
    #[error("the store is at a newer revision than {expected}")]
    Stale { expected: u64 },
    /// The idempotency key was claimed by another write.
    #[error("the idempotency key was used already")]
    IdempotencyKeyUsed,
    /// A write would claim a unique name that another object holds.
    #[error("the name `{name}` is taken")]
    NameTaken { name: String },
    /// The database URL names no supported store.
    #[error("unsupported database url `{0}`: expected sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    /// A stored body that does not parse: the store was written by something else.
    #[error("corrupt stored data at {what}")]
    Corrupt {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// The change log no longer holds the changes a follower needs (they were compacted).
    #[error("the change log no longer holds revision {0}")]
    Compacted(u64),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// The runtime shut down while the index was being built from the store.
    #[error("the load was cancelled")]
    Cancelled,
    #[error("migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}
