//! Times one write that deletes every binding of one group (what deleting the group does):
//! `cargo run --release -p arbiter-core --example delete_bindings -- 100000`.

// An example fails by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Instant;

use arbiter_core::catalog::Catalog;
use arbiter_core::index::Index;
use arbiter_core::model::{Node, Object, Op, RoleBinding, SubjectRef};
use chrono::{DateTime, Utc};

fn main() {
    let bindings: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let at = DateTime::<Utc>::UNIX_EPOCH;
    let objects: Vec<Object> = (0..bindings)
        .map(|i| {
            Object::RoleBinding(RoleBinding {
                id: format!("b{i}"),
                role_id: "r".to_owned(),
                subject: SubjectRef::Group("g".to_owned()),
                node: Node::resource("o", "model", format!("m{i}")),
                organization_id: Some("o".to_owned()),
                condition: None,
                expires_at: None,
                created_at: at,
                updated_at: at,
            })
        })
        .collect();
    let mut index = Index::new(Arc::new(Catalog::builtin().expect("catalog")));
    let puts: Vec<Op> = objects
        .iter()
        .map(|o| Op::Put { object: o.clone() })
        .collect();
    index.apply(1, &puts);
    let deletes: Vec<Op> = objects
        .iter()
        .map(|o| Op::Delete { key: o.key() })
        .collect();
    let started = Instant::now();
    index.apply(2, &deletes);
    let took = started.elapsed();
    assert!(index.group_node_bindings.get("g").is_none());
    println!("one write deleting a group's {bindings} bindings: {took:?}");
}
