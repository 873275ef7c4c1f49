//! Where the index's bytes go: builds the generated workload's index under a counting allocator,
//! then drops its maps one at a time and prints what each gave back, per binding. A value two
//! maps share (a binding's record, a project's) is counted with the later map to drop.
//! "The rest" is what no map listed holds: the interned ids, the base role.
//! `cargo run --release -p arbiter-core --example index_bytes -- USERS`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use arbiter_core::catalog::Catalog;
use arbiter_core::index::Index;
use arbiter_core::workload::{generate, CountingAllocator};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn main() {
    let users: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000);
    let workload = generate(users, 1, 42);
    let ops = workload.ops();
    let catalog = Arc::new(Catalog::builtin().expect("catalog"));
    let before = CountingAllocator::live_bytes();
    let mut index = Index::new(catalog);
    index.apply(1, &ops);
    let total = CountingAllocator::live_bytes() - before;
    let bindings = workload.bindings as f64;
    println!(
        "{users} users, {} bindings: {total} bytes, {:.1} a binding",
        workload.bindings,
        total as f64 / bindings
    );
    let report = |name: &str, freed: isize| {
        if freed != 0 {
            println!("{name:>24} {freed:>10} {:>7.1}", freed as f64 / bindings);
        }
    };
    macro_rules! drop_maps {
        ($($map:ident),*) => {$(
            let held = CountingAllocator::live_bytes();
            drop(std::mem::take(&mut index.$map));
            report(stringify!($map), held - CountingAllocator::live_bytes());
        )*};
    }
    drop_maps!(
        bindings,
        users,
        user_by_email,
        user_by_external_id,
        memberships,
        organization_users,
        spaces,
        space_members,
        space_memberships,
        projects,
        groups,
        group_members,
        group_memberships,
        api_keys,
        key_by_hash,
        grants,
        grants_by_subject,
        declared_types,
        declarations,
        roles,
        role_slots,
        project_slots,
        node_numbers,
        group_node_bindings,
        key_node_bindings,
        bindings_by_node,
        grants_by_organization,
        resources_by_id,
        resource_ids_by_type,
        resources,
        organizations
    );
    let held = CountingAllocator::live_bytes();
    drop(index);
    report("the rest", held - CountingAllocator::live_bytes());
}
