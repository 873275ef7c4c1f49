//! What the index holds per binding, counted by a global allocator around the build of the
//! benchmark workload's index (1,000 and 10,000 users, about 10,000 and 100,000 bindings); and
//! the ids the bindings interned, given back when the bindings go. Bytes, not time: the count is
//! the same on every machine (within a few tenths of a byte a binding, as the process's random
//! hash seed spreads the entries over the shards).

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use arbiter_core::catalog::Catalog;
use arbiter_core::index::Index;
use arbiter_core::model::{Object, ObjectKey, ObjectKind, Op};
use arbiter_core::workload::{generate, CountingAllocator};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// The generated organization of `users` users, indexed, with the bytes it holds per binding.
fn indexed(users: usize) -> (Index, f64) {
    let workload = generate(users, 1, 42);
    let ops = workload.ops();
    let catalog = Arc::new(Catalog::builtin().unwrap());
    let before = CountingAllocator::live_bytes();
    let mut index = Index::new(catalog);
    index.apply(1, &ops);
    let bytes = CountingAllocator::live_bytes() - before;
    assert!(workload.bindings > users * 9, "{}", workload.bindings);
    (index, bytes as f64 / workload.bindings as f64)
}

#[test]
fn the_index_holds_under_300_bytes_per_binding() {
    // An empty index: each map one empty table until it holds 256 entries (in a release build,
    // 485 KB when each map had 256 shards of its own, 94 KB when they shared one empty table,
    // 26 KB now, most of it the catalog's predefined roles compiled; 64 KB in a debug build).
    let before = CountingAllocator::live_bytes();
    let empty = Index::new(Arc::new(Catalog::builtin().unwrap()));
    let bytes = CountingAllocator::live_bytes() - before;
    assert!(bytes < 80_000, "{bytes} bytes in an empty index");
    drop(empty);

    // At 1,000 users the index's fixed part (roles, projects, resources, nodes) weighs most:
    // about 297 bytes a binding (328 before small maps were one table each and a binding,
    // a user's links and a membership were kept tighter; 293 before serde_json's
    // `preserve_order` was on in every build, which makes each user's and resource's property
    // map 48 bytes larger).
    let (index, per_binding) = indexed(1_000);
    assert!(per_binding < 300.0, "{per_binding:.1} bytes per binding");
    drop(index);

    let (index, per_binding) = indexed(10_000);
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
