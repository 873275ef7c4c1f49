//! The write path and the follower of `AppState` on a real SQLite file shared by two states (as
//! two replicas share a database): stale writes are retried, and a follower whose change log was
//! compacted away reloads.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use arbiter_core::catalog::Catalog;
use arbiter_core::model::{Object, Op, Organization};
use arbiter_server::state::Prepared;
use arbiter_server::{AppState, Settings};
use chrono::Utc;

fn org(id: &str) -> Op {
    let now = Utc::now();
    Op::Put {
        object: Object::Organization(Organization {
            id: id.to_owned(),
            name: id.to_owned(),
            created_at: now,
            updated_at: now,
        }),
    }
}

async fn replica(url: &str) -> Arc<AppState> {
    let store = arbiter_store::open(url).await.unwrap();
    let settings = Settings {
        poll_interval: Duration::from_secs(3600),
        notifications: false,
        ..Settings::default()
    };
    AppState::load(store, Arc::new(Catalog::builtin().unwrap()), settings)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_stale_writer_catches_up_and_a_compacted_log_makes_a_follower_reload() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    let a = replica(&url).await;
    let b = replica(&url).await;
    for n in 0..5 {
        let ((), _) = a
            .write(|_| {
                Ok(Prepared {
                    ops: vec![org(&format!("a{n}"))],
                    audit: vec![],
                    output: (),
                })
            })
            .await
            .unwrap();
    }
    // b is five revisions behind; its write is prepared against a stale index, refused by the
    // store, caught up and prepared again: nothing is lost and the revisions stay dense.
    // (b's follower may have applied some of a's writes already: whatever b prepared on first,
    // the write that commits is the one prepared on the caught-up index.)
    let prepared_at = std::sync::Mutex::new(Vec::new());
    let ((), revision) = b
        .write(|index| {
            prepared_at.lock().unwrap().push(index.revision);
            Ok(Prepared {
                ops: vec![org("b0")],
                audit: vec![],
                output: (),
            })
        })
        .await
        .unwrap();
    assert_eq!(
        prepared_at.lock().unwrap().last(),
        Some(&5),
        "prepared again after catching up"
    );
    assert_eq!(revision, 6);
    assert!(b.index().organizations.contains_key("a4"));
    // a falls behind; the log up to b's write is compacted away; a reloads from the objects.
    let store = arbiter_store::open(&url).await.unwrap();
    let ((), _) = b
        .write(|_| {
            Ok(Prepared {
                ops: vec![org("b1")],
                audit: vec![],
                output: (),
            })
        })
        .await
        .unwrap();
    let removed = store.compact(7).await.unwrap();
    assert!(removed >= 6, "removed {removed}");
    assert_eq!(
        store.head().await.unwrap(),
        7,
        "the newest entry is kept, so the head survives"
    );
    assert!(matches!(
        store.changes_since(5, 10).await,
        Err(arbiter_store::StoreError::Compacted(_))
    ));
    let revision = a.catch_up().await.unwrap();
    assert_eq!(revision, 7);
    assert!(a.index().organizations.contains_key("b1"));
    assert_eq!(a.index().organizations.len(), 7);
}
