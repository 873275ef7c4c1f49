//! The audit chain of both stores: commits link and hash their records, `verify_audit_chain`
//! accepts an untouched chain and names the first record that fails; records that predate the
//! chain are accepted only before it. PostgreSQL runs when `ARBITER_TEST_POSTGRES_URL` is set.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use arbiter_core::model::{Object, Op, Organization};
use arbiter_store::{
    verify_audit_chain, AuditRecord, ChainBreak, ChainVerdict, Store, GENESIS_HASH,
};
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

fn record(action: &str, id: &str) -> AuditRecord {
    AuditRecord {
        organization_id: Some(id.to_owned()),
        actor_user_id: Some("usr_admin".to_owned()),
        actor_key_id: Some("key_bootstrap".to_owned()),
        action: action.to_owned(),
        object_kind: "organization".to_owned(),
        object_id: id.to_owned(),
        before: None,
        after: Some(serde_json::json!({"name": id, "nested": {"b": 1, "a": [1, 2]}})),
        request_id: Some(format!("req-{id}")),
    }
}

/// Three commits, the second with two records; answers the store's head.
async fn write_some(store: &dyn Store) {
    let head = store.head().await.unwrap();
    store
        .commit(
            head,
            &[org("a")],
            &[record("organization.create", "a")],
            None,
        )
        .await
        .unwrap();
    store
        .commit(
            head + 1,
            &[org("b"), org("c")],
            &[
                record("organization.create", "b"),
                record("organization.create", "c"),
            ],
            None,
        )
        .await
        .unwrap();
    // A commit without audit records leaves the chain alone.
    store
        .commit(head + 2, &[org("d")], &[], None)
        .await
        .unwrap();
}

async fn chain_behaves(store: Arc<dyn Store>) {
    write_some(store.as_ref()).await;
    let chain = store.audit_chain(0, 100).await.unwrap();
    assert_eq!(chain.len(), 3);
    assert_eq!(chain[0].prev_hash.as_deref(), Some(GENESIS_HASH));
    for pair in chain.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash, "linked in order");
        assert!(pair[1].seq > pair[0].seq);
    }
    for r in &chain {
        let prev = r.prev_hash.as_deref().unwrap();
        assert_eq!(r.hash.as_deref(), Some(r.compute_hash(prev).as_str()));
    }
    let head = store.audit_head().await.unwrap();
    assert_eq!(head.seq, chain[2].seq);
    assert_eq!(Some(head.hash.as_str()), chain[2].hash.as_deref());
    match verify_audit_chain(store.as_ref()).await.unwrap() {
        ChainVerdict::Verified {
            records,
            unchained,
            head: h,
        } => {
            assert_eq!((records, unchained), (3, 0));
            assert_eq!(h, head.hash);
        }
        broken => panic!("{broken:?}"),
    }
    // The API's view carries the links too, and the key filter.
    let (events, total) = store
        .audit_events(&arbiter_store::AuditFilter {
            actor_key_id: Some("key_bootstrap".to_owned()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(total, 3);
    assert_eq!(events[1].prev_hash, events[0].hash);
    let (_, none) = store
        .audit_events(&arbiter_store::AuditFilter {
            actor_key_id: Some("key_other".to_owned()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(none, 0);
}

#[test]
fn a_record_s_hash_covers_every_field_and_the_link() {
    let base = arbiter_store::ChainRecord {
        seq: 1,
        id: "aud_1".to_owned(),
        revision: 3,
        at: "2026-01-01T00:00:00+00:00".to_owned(),
        organization_id: Some("org".to_owned()),
        actor_user_id: None,
        actor_key_id: Some("key".to_owned()),
        action: "role.create".to_owned(),
        object_kind: "role".to_owned(),
        object_id: "role_1".to_owned(),
        before: None,
        after: Some("{}".to_owned()),
        request_id: None,
        prev_hash: None,
        hash: None,
    };
    let h = base.compute_hash(GENESIS_HASH);
    assert_eq!(h.len(), 64);
    assert_ne!(h, base.compute_hash(&h), "the link is covered");
    let variants: Vec<arbiter_store::ChainRecord> = vec![
        arbiter_store::ChainRecord {
            action: "role.delete".to_owned(),
            ..base.clone()
        },
        arbiter_store::ChainRecord {
            actor_user_id: Some(String::new()),
            ..base.clone()
        },
        arbiter_store::ChainRecord {
            revision: 4,
            ..base.clone()
        },
        arbiter_store::ChainRecord {
            after: Some("{ }".to_owned()),
            ..base.clone()
        },
        arbiter_store::ChainRecord {
            request_id: Some("r".to_owned()),
            ..base.clone()
        },
    ];
    for v in variants {
        assert_ne!(v.compute_hash(GENESIS_HASH), h, "{v:?}");
    }
    // `seq` is the order, not the content.
    let moved = arbiter_store::ChainRecord { seq: 9, ..base };
    assert_eq!(moved.compute_hash(GENESIS_HASH), h);
}

#[tokio::test]
async fn sqlite_chains_records_and_accepts_unchained_ones_only_first() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    chain_behaves(arbiter_store::open(&url).await.unwrap()).await;

    // A store with records from before the chain (no hash): they are counted apart.
    use sqlx::Connection;
    let url = format!("sqlite://{}", dir.path().join("b.db").display());
    let store = arbiter_store::open(&url).await.unwrap();
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    for id in ["aud_legacy_1", "aud_legacy_2"] {
        sqlx::query(
            "INSERT INTO audit_events (id, revision, at, action, object_kind, object_id) \
             VALUES (?, 0, '2025-01-01T00:00:00+00:00', 'user.create', 'user', 'u')",
        )
        .bind(id)
        .execute(&mut db)
        .await
        .unwrap();
    }
    write_some(store.as_ref()).await;
    match verify_audit_chain(store.as_ref()).await.unwrap() {
        ChainVerdict::Verified {
            records, unchained, ..
        } => assert_eq!((records, unchained), (3, 2)),
        broken => panic!("{broken:?}"),
    }
    // A chained record stripped of its hash is not taken for an old one.
    let chain = store.audit_chain(0, 100).await.unwrap();
    let victim = chain[3].id.clone();
    sqlx::query("UPDATE audit_events SET hash = NULL, prev_hash = NULL WHERE id = ?")
        .bind(&victim)
        .execute(&mut db)
        .await
        .unwrap();
    match verify_audit_chain(store.as_ref()).await.unwrap() {
        ChainVerdict::Broken { id, reason, .. } => {
            assert_eq!(id.as_deref(), Some(victim.as_str()));
            assert_eq!(reason, ChainBreak::MissingHash);
        }
        verified => panic!("{verified:?}"),
    }
}

#[tokio::test]
async fn postgres_chains_records() {
    let Some(db) = common::FreshPostgres::create().await else {
        return;
    };
    {
        let store = arbiter_store::open(&db.url).await.unwrap();
        chain_behaves(store).await;
    }
    db.drop_database().await;
}
