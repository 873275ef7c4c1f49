//! Cold start: how long a server takes from opening its SQLite file to holding a ready index,
//! for the benchmark workload (`arbiter_core::workload`). It writes the workload into a fresh
//! SQLite store through the store's own commit path (in commits of 10,000 objects), then times
//! what `arbiter serve` does before it answers: open and migrate the store, read every object,
//! build the index (`arbiter_store::load_index`, which overlaps the three). It then times reading
//! alone and building alone, to show what the overlap saves. The answer of one check is asserted
//! on the loaded index, so that a load that lost data cannot pass for a fast one.
//!
//! `ARBITER_BENCH_SIZES=100000` chooses the sizes in users (default 10000). Writing a million
//! bindings takes minutes: with `ARBITER_BENCH_DB_DIR=dir` the databases are kept in `dir` and a
//! later run loads the one already there.

// Benchmarks fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Instant;

use arbiter_core::catalog::Catalog;
use arbiter_core::engine::{check, CheckRequest};
use arbiter_core::index::Index;
use arbiter_core::model::{Object, Op};
use arbiter_core::workload::{generate, ORG};

fn sizes() -> Vec<usize> {
    std::env::var("ARBITER_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let catalog = Arc::new(Catalog::builtin().unwrap());
    for users in sizes() {
        let workload = generate(users, 100, 42);
        let temporary = tempfile::tempdir().unwrap();
        let dir = std::env::var_os("ARBITER_BENCH_DB_DIR")
            .map_or_else(|| temporary.path().to_owned(), std::path::PathBuf::from);
        let path = dir.join(format!("arbiter-{users}-users.db"));
        let url = format!("sqlite://{}", path.display());
        let store = arbiter_store::open(&url).await.unwrap();
        let mut revision = store.load().await.unwrap().0;
        let started = Instant::now();
        // A database kept from an earlier run holds the same objects: the seed is fixed.
        let to_write: &[Object] = if revision == 0 {
            &workload.objects
        } else {
            &[]
        };
        for chunk in to_write.chunks(10_000) {
            let ops: Vec<Op> = chunk
                .iter()
                .cloned()
                .map(|object| Op::Put { object })
                .collect();
            revision = store.commit(revision, &ops, &[], None).await.unwrap();
        }
        let written = started.elapsed();
        drop(store);
        let file_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);

        let started = Instant::now();
        let store = arbiter_store::open(&url).await.unwrap();
        let opened = started.elapsed();
        let index = arbiter_store::load_index(store.as_ref(), catalog.clone())
            .await
            .unwrap();
        let ready = started.elapsed();
        let loaded_revision = index.revision;

        assert_eq!(loaded_revision, revision);
        assert_eq!(index.bindings.len(), workload.bindings);
        let c = &workload.checks[0];
        let (subject, resource) = c.queries();
        let decision = check(
            &index,
            &CheckRequest {
                organization_id: Some(ORG),
                subject: &subject,
                subject_properties: None,
                permission: &c.permission,
                resource: &resource,
                action_properties: None,
                context: None,
                now: chrono::Utc::now(),
                explain: false,
            },
        );
        assert_eq!(decision.allowed, c.expected);
        drop(index);

        // The stages alone, one after the other, to show what the overlap saves.
        let started = Instant::now();
        let (_, objects) = store.load().await.unwrap();
        let read = started.elapsed();
        let started = Instant::now();
        let index = Index::load(catalog.clone(), loaded_revision, objects);
        let indexed = started.elapsed();
        assert_eq!(index.bindings.len(), workload.bindings);
        println!(
            "{users} users, {} bindings, {} objects ({} MB of SQLite, written in {written:.1?}): \
             ready in {ready:.2?} (open {opened:.1?}; reading and indexing overlap). \
             Alone: read and parse {read:.2?}, build the index {indexed:.2?}",
            workload.bindings,
            workload.objects.len(),
            file_bytes / 1_000_000,
        );
    }
}
