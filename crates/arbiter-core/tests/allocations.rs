//! The check path allocates nothing: a counting global allocator watches a stream of checks on
//! the benchmark workload (allowed and denied, organization and project bindings).

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use arbiter_core::catalog::Catalog;
use arbiter_core::engine::{check, ResourceQuery, SubjectQuery};
use arbiter_core::index::Index;
use arbiter_core::model::{GrantSubject, Object, Op, ResourceGrant};
use arbiter_core::workload::{generate, CountingAllocator, ORG};
use chrono::Utc;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn a_check_allocates_nothing() {
    let workload = generate(500, 2_000, 7);
    let mut index = Index::new(Arc::new(Catalog::builtin().unwrap()));
    // One user of the organization holds a resource grant: the check path must find out that
    // the others hold none without allocating (their checks are the ones counted).
    let grant = Object::ResourceGrant(ResourceGrant {
        id: "g1".into(),
        organization_id: ORG.into(),
        irn: "ml:model:m1".into(),
        subject: GrantSubject::User("u0".into()),
        actions: vec!["read".into()],
        criteria: Default::default(),
        condition: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    });
    let mut ops = workload.ops();
    ops.push(Op::Put { object: grant });
    index.apply(1, &ops);
    assert!(!index.grants_by_organization.is_empty());
    // Every other check names its user by email, as a platform often does.
    let queries: Vec<(SubjectQuery, ResourceQuery)> = workload
        .checks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (subject, resource) = c.queries();
            if i % 2 == 1 {
                (
                    SubjectQuery::User(format!("{}@bench.test", c.user_id)),
                    resource,
                )
            } else {
                (subject, resource)
            }
        })
        .collect();
    let now = Utc::now();
    let mut allowed = 0;
    let before = CountingAllocator::allocations();
    for (c, queries) in workload
        .checks
        .iter()
        .zip(&queries)
        .filter(|(c, _)| c.user_id != "u0")
    {
        let decision = check(&index, &c.request(queries, now));
        allowed += usize::from(decision.allowed);
        assert_eq!(decision.allowed, c.expected);
    }
    let allocations = CountingAllocator::allocations() - before;
    assert!(
        allowed > 0 && allowed < workload.checks.len(),
        "a mix of allowed and denied"
    );
    assert_eq!(allocations, 0, "allocations on the check path");
}
