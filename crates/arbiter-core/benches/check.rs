//! The engine path of `POST /v1/check` on the generated workload (see `arbiter_core::workload`),
//! beside a raw baseline: the same checks answered from a precomputed `HashMap`. Every answer is
//! asserted before anything is timed, so a faster wrong answer cannot win.

// Tests and benchmarks fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;

use arbiter_core::catalog::Catalog;
use arbiter_core::engine::{check, CheckRequest, ResourceQuery, SubjectQuery};
use arbiter_core::index::Index;
use arbiter_core::model::Op;
use arbiter_core::workload::{generate, ORG};
use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let catalog = Arc::new(Catalog::builtin().expect("catalog"));
    for users in [1_000usize, 10_000] {
        let workload = generate(users, 10_000, 42);
        let ops: Vec<Op> = workload
            .objects
            .iter()
            .cloned()
            .map(|object| Op::Put { object })
            .collect();
        let mut index = Index::new(catalog.clone());
        index.apply(1, &ops);
        let now = Utc::now();
        let queries: Vec<(SubjectQuery, ResourceQuery)> = workload
            .checks
            .iter()
            .map(|c| {
                (
                    SubjectQuery::User(c.user_id.clone()),
                    ResourceQuery {
                        resource_type: "model".to_owned(),
                        id: c.model_id.clone(),
                        properties: Default::default(),
                    },
                )
            })
            .collect();
        let decide = |i: usize| {
            let (subject, resource) = &queries[i];
            check(
                &index,
                &CheckRequest {
                    organization_id: Some(ORG),
                    subject,
                    subject_properties: None,
                    permission: &workload.checks[i].permission,
                    resource,
                    action_properties: None,
                    context: None,
                    now,
                    explain: false,
                },
            )
            .allowed
        };
        let mut allowed = 0;
        for (i, expected) in workload.checks.iter().enumerate() {
            assert_eq!(
                decide(i),
                expected.expected,
                "check {i} of {users} users disagrees with the baseline"
            );
            allowed += usize::from(expected.expected);
        }
        assert!(
            allowed > workload.checks.len() / 3,
            "the stream should mix allowed and denied checks"
        );
        eprintln!(
            "{users} users, {} bindings, {allowed} of {} checks allowed",
            workload.bindings,
            workload.checks.len()
        );

        let mut group = c.benchmark_group(format!("check/{users}_users"));
        group.throughput(Throughput::Elements(1));
        let mut i = 0;
        group.bench_function("arbiter_engine", |b| {
            b.iter(|| {
                i = (i + 1) % queries.len();
                black_box(decide(i))
            })
        });
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
                workload
                    .baseline_strings
                    .get(&k.0)
                    .is_some_and(|s| s.contains(&k.1)),
                c.expected
            );
        }
        let mut j = 0;
        group.bench_function("baseline_hashmap_string_ids", |b| {
            b.iter(|| {
                j = (j + 1) % string_keys.len();
                let (key, permission) = &string_keys[j];
                black_box(
                    workload
                        .baseline_strings
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
