//! Builds the generated workload's index and answers its checks in a loop, for profilers
//! (`valgrind --tool=callgrind --cache-sim=yes`, `perf`): `cargo run --release -p arbiter-core
//! --example check_loop -- USERS ROUNDS`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;

use arbiter_core::catalog::Catalog;
use arbiter_core::engine::{check, ResourceQuery, SubjectQuery};
use arbiter_core::index::Index;
use arbiter_core::workload::{generate, WorkloadCheck};
use chrono::Utc;

fn main() {
    let mut args = std::env::args().skip(1);
    let users: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let catalog = Arc::new(Catalog::builtin().expect("catalog"));
    let workload = generate(users, 10_000, 42);
    let mut index = Index::new(catalog);
    index.apply(1, &workload.ops());
    let queries: Vec<(SubjectQuery, ResourceQuery)> =
        workload.checks.iter().map(WorkloadCheck::queries).collect();
    let now = Utc::now();
    let mut allowed = 0usize;
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        for (c, queries) in workload.checks.iter().zip(&queries) {
            let request = c.request(queries, now);
            allowed += usize::from(black_box(check(&index, &request)).allowed);
        }
    }
    let checks = rounds * queries.len();
    println!(
        "{allowed} allowed of {checks}, {:?} a check",
        started.elapsed() / checks.max(1) as u32
    );
}
