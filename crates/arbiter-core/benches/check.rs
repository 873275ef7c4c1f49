//! The engine path of `POST /v1/check` on the generated workload (see `arbiter_core::workload`),
//! beside a raw baseline: the same checks answered from a precomputed `HashMap`. Every answer is
//! asserted before anything is timed, so a faster wrong answer cannot win.
//!
//! Besides criterion's timings it prints, for each size: the latency distribution of single
//! checks (p50, p99), the index memory per binding, how long building the index takes, and how
//! long a single write takes to become visible (clone the snapshot, apply, publish).
//! `ARBITER_BENCH_SIZES=1000,10000,100000` chooses the sizes (default 1000 and 10000).

// Benchmarks fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbiter_core::catalog::Catalog;
use arbiter_core::engine::{check, ResourceQuery, SubjectQuery};
use arbiter_core::index::Index;
use arbiter_core::model::Op;
use arbiter_core::workload::{generate, single_write, CountingAllocator, WorkloadCheck};
use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn sizes() -> Vec<usize> {
    std::env::var("ARBITER_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000])
}

fn bench(c: &mut Criterion) {
    let catalog = Arc::new(Catalog::builtin().expect("catalog"));
    for users in sizes() {
        let workload = generate(users, 10_000, 42);
        let ops = workload.ops();
        let before = CountingAllocator::live_bytes();
        let started = Instant::now();
        let mut index = Index::new(catalog.clone());
        index.apply(1, &ops);
        let build = started.elapsed();
        let bytes = CountingAllocator::live_bytes() - before;
        drop(ops);
        let now = Utc::now();
        let queries: Vec<(SubjectQuery, ResourceQuery)> =
            workload.checks.iter().map(WorkloadCheck::queries).collect();
        let decide = |index: &Index, i: usize| {
            check(index, &workload.checks[i].request(&queries[i], now)).allowed
        };
        let mut allowed = 0;
        for (i, expected) in workload.checks.iter().enumerate() {
            assert_eq!(
                decide(&index, i),
                expected.expected,
                "check {i} of {users} users disagrees with the baseline"
            );
            allowed += usize::from(expected.expected);
        }
        assert!(
            allowed > workload.checks.len() / 3,
            "the stream should mix allowed and denied checks"
        );

        // The latency distribution of single checks.
        let mut samples = Vec::with_capacity(200_000);
        for round in 0..20 {
            for i in 0..queries.len() {
                let t = Instant::now();
                black_box(decide(&index, (i + round) % queries.len()));
                samples.push(t.elapsed());
            }
        }
        samples.sort_unstable();
        // A single write: clone the snapshot, apply one object, publish. A binding on a
        // project, a binding on the organization (whose node holds a tenth of all bindings), and
        // a new member of the organization (which has every user as a member), 50 of each.
        let mut writes: [Vec<Duration>; 3] = Default::default();
        let mut current = Arc::new(index);
        for n in 0..150 {
            let kind = n % 3;
            let object = single_write(kind, n, now);
            let t = Instant::now();
            let mut next = (*current).clone();
            next.apply(current.revision + 1, &[Op::Put { object }]);
            current = Arc::new(next);
            writes[kind].push(t.elapsed());
        }
        for w in &mut writes {
            w.sort_unstable();
        }
        let index = current;
        eprintln!(
            "{users} users, {} bindings, {allowed} of {} checks allowed: check p50 {:?}, p99 {:?}; index {} bytes per binding; built in {:?}; a write visible in {:?} (a binding on a project), {:?} (on the organization), {:?} (a member of the organization) (medians of 50)",
            workload.bindings,
            workload.checks.len(),
            percentile(&samples, 0.5),
            percentile(&samples, 0.99),
            bytes / workload.bindings.max(1) as isize,
            build,
            percentile(&writes[0], 0.5),
            percentile(&writes[1], 0.5),
            percentile(&writes[2], 0.5),
        );

        let mut group = c.benchmark_group(format!("check/{users}_users"));
        group.throughput(Throughput::Elements(1));
        let mut i = 0;
        group.bench_function("arbiter_engine", |b| {
            b.iter(|| {
                i = (i + 1) % queries.len();
                black_box(decide(&index, i))
            })
        });
        let baseline_strings = workload.baseline_strings();
        let string_keys: Vec<(String, String)> = workload
            .checks
            .iter()
            .map(|c| {
                (
                    format!("{}/p{}", c.user_id, c.project),
                    c.permission.to_string(),
                )
            })
            .collect();
        for (k, c) in string_keys.iter().zip(&workload.checks) {
            assert_eq!(
                baseline_strings.get(&k.0).is_some_and(|s| s.contains(&k.1)),
                c.expected
            );
        }
        let mut j = 0;
        group.bench_function("baseline_hashmap_string_ids", |b| {
            b.iter(|| {
                j = (j + 1) % string_keys.len();
                let (key, permission) = &string_keys[j];
                black_box(
                    baseline_strings
                        .get(key)
                        .is_some_and(|s| s.contains(permission)),
                )
            })
        });
        let mut k = 0;
        group.bench_function("baseline_hashmap_integer_ids", |b| {
            b.iter(|| {
                k = (k + 1) % workload.checks.len();
                let c = &workload.checks[k];
                black_box(
                    workload
                        .baseline
                        .get(&(c.user as u32, c.project as u32))
                        .is_some_and(|s| s.contains(&c.permission)),
                )
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
