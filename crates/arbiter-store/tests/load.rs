//! Loading a store: the objects come back in pages (more than one here), all of them, once,
//! with the store's head revision, whether collected (`Store::load`) or built into an index as
//! they arrive (`load_index`); a reader that hangs up stops the read without an error.
//! PostgreSQL runs when `ARBITER_TEST_POSTGRES_URL` is set.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use arbiter_core::catalog::Catalog;
use arbiter_core::model::{Object, Op, Organization};
use arbiter_store::Store;
use chrono::Utc;

/// More than two pages of the store's reads (20,000 objects each).
const OBJECTS: usize = 45_001;

async fn fill(store: &dyn Store) -> (u64, BTreeSet<String>) {
    let now = Utc::now();
    let ids: Vec<String> = (0..OBJECTS).map(|i| format!("org{i:05}")).collect();
    let mut revision = store.head().await.unwrap();
    for chunk in ids.chunks(10_000) {
        let ops: Vec<Op> = chunk
            .iter()
            .map(|id| Op::Put {
                object: Object::Organization(Organization {
                    id: id.clone(),
                    name: id.clone(),
                    created_at: now,
                    updated_at: now,
                }),
            })
            .collect();
        revision = store.commit(revision, &ops, &[], None).await.unwrap();
    }
    (revision, ids.into_iter().collect())
}

async fn loads_every_object_once(store: Arc<dyn Store>) {
    let (head, ids) = fill(store.as_ref()).await;

    let (revision, objects) = store.load().await.unwrap();
    assert_eq!(revision, head);
    assert_eq!(objects.len(), OBJECTS, "each object once");
    let loaded: BTreeSet<String> = objects
        .iter()
        .map(|o| match o {
            Object::Organization(o) => o.id.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(loaded, ids);

    let catalog = Arc::new(Catalog::builtin().unwrap());
    let index = arbiter_store::load_index(store.as_ref(), catalog)
        .await
        .unwrap();
    assert_eq!(index.revision, head);
    assert_eq!(index.organizations.len(), OBJECTS);
    assert!(index.organizations.contains_key("org45000"));

    let (pages, received) = tokio::sync::mpsc::channel(1);
    drop(received);
    assert_eq!(store.load_pages(pages).await.unwrap(), head);
}

#[tokio::test]
async fn sqlite_loads_every_object_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    loads_every_object_once(arbiter_store::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn postgres_loads_every_object_once() {
    let Some(db) = common::FreshPostgres::create().await else {
        return;
    };
    loads_every_object_once(arbiter_store::open(&db.url).await.unwrap()).await;
    db.drop_database().await;
}
