//! What the index holds per binding, counted by a global allocator around the build of the
//! benchmark workload's index (10,000 users, about 100,000 bindings); and the ids the bindings
//! interned, given back when the bindings go. Bytes, not time: the count is the same on every machine.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use arbiter_core::catalog::Catalog;
use arbiter_core::index::Index;
use arbiter_core::model::{Object, ObjectKey, ObjectKind, Op};
use arbiter_core::workload::{generate, CountingAllocator};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn the_index_holds_under_300_bytes_per_binding() {
    // An empty index: its maps' shards share one empty table until a write (485 KB when each
    // shard had its own, 94 KB since: each map's array of shard pointers, and the catalog's
    // predefined roles compiled).
    let before = CountingAllocator::live_bytes();
    let empty = Index::new(Arc::new(Catalog::builtin().unwrap()));
    let bytes = CountingAllocator::live_bytes() - before;
    assert!(bytes < 150_000, "{bytes} bytes in an empty index");
    drop(empty);

    let workload = generate(10_000, 1, 42);
    let ops = workload.ops();
    let catalog = Arc::new(Catalog::builtin().unwrap());
    let before = CountingAllocator::live_bytes();
    let mut index = Index::new(catalog);
    index.apply(1, &ops);
    let bytes = CountingAllocator::live_bytes() - before;
    let per_binding = bytes as f64 / workload.bindings as f64;
    assert!(workload.bindings > 90_000, "{}", workload.bindings);
    assert!(per_binding < 300.0, "{per_binding:.1} bytes per binding");

    assert!(
        index.interned_names() > 10_000,
        "{}",
        index.interned_names()
    );
    drop(index);

    // Every id a binding interned goes with the last binding naming it (on a smaller
    // organization: a node's list of bindings is scanned for each one deleted).
    let workload = generate(1_000, 1, 42);
    let mut index = Index::new(Arc::new(Catalog::builtin().unwrap()));
    index.apply(1, &workload.ops());
    assert!(index.interned_names() > 1_000, "{}", index.interned_names());
    let deletes: Vec<Op> = workload
        .objects
        .iter()
        .filter_map(|o| match o {
            Object::RoleBinding(b) => Some(Op::Delete {
                key: ObjectKey {
                    kind: ObjectKind::RoleBinding,
                    id: b.id.clone(),
                },
            }),
            _ => None,
        })
        .collect();
    index.apply(2, &deletes);
    assert_eq!(index.bindings.len(), 0);
    assert_eq!(index.interned_names(), 0);
}
