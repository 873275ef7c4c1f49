//! Builds the generated workload's index and times single writes, as the engine benchmark does
//! (clone the snapshot, apply one object, publish), with a snapshot's clone and drop alone: for
//! comparing two builds alternately, pinned to one core. `cargo run --release -p arbiter-core
//! --example write_loop -- USERS` prints the medians of 150 of each.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbiter_core::catalog::Catalog;
use arbiter_core::index::Index;
use arbiter_core::model::Op;
use arbiter_core::workload::{generate, single_write};
use chrono::Utc;

fn main() {
    let users: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let workload = generate(users, 10, 42);
    let mut index = Index::new(Arc::new(Catalog::builtin().expect("catalog")));
    index.apply(1, &workload.ops());
    let now = Utc::now();
    // A binding on a project, one on the organization, a new member, a snapshot alone.
    let mut times: [Vec<Duration>; 4] = Default::default();
    let mut current = Arc::new(index);
    for n in 0..600 {
        let kind = n % 4;
        let started = Instant::now();
        if kind == 3 {
            drop(black_box((*current).clone()));
        } else {
            let object = single_write(kind, n, now);
            let mut next = (*current).clone();
            next.apply(current.revision + 1, &[Op::Put { object }]);
            current = Arc::new(next);
        }
        times[kind].push(started.elapsed());
    }
    for t in &mut times {
        t.sort_unstable();
    }
    let median = |kind: usize| times[kind][times[kind].len() / 2];
    println!(
        "{users} users: a write visible in {:?} (a binding on a project), {:?} (on the organization), {:?} (a member); a snapshot cloned and dropped in {:?} (medians of 150)",
        median(0),
        median(1),
        median(2),
        median(3)
    );
}
