//! Arbiter, cedar-policy and casbin reach the same decision on every check of the workload, and
//! that decision is the one the workload computed independently. The benchmark asserts the same
//! before timing; this test keeps the encodings honest in every CI run.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arbiter_core::workload::generate;
use arbiter_peers::{ArbiterPeer, CasbinPeer, CedarPeer};

#[test]
fn the_three_engines_agree_on_every_check() {
    let workload = generate(300, 2_000, 7);
    let arbiter = ArbiterPeer::load(&workload).unwrap();
    let cedar = CedarPeer::load(&workload).unwrap();
    let casbin = CasbinPeer::load(&workload).unwrap();
    let arbiter_requests = ArbiterPeer::requests(&workload);
    let cedar_requests = CedarPeer::requests(&workload).unwrap();
    let casbin_requests = CasbinPeer::requests(&workload);
    let mut allowed = 0;
    for (i, c) in workload.checks.iter().enumerate() {
        assert_eq!(
            arbiter.check(&arbiter_requests[i]),
            c.expected,
            "arbiter, check {i}: {c:?}"
        );
        assert_eq!(
            cedar.check(&cedar_requests[i]),
            c.expected,
            "cedar, check {i}: {c:?}"
        );
        assert_eq!(
            casbin.check(&casbin_requests[i]),
            c.expected,
            "casbin, check {i}: {c:?}"
        );
        allowed += usize::from(c.expected);
    }
    // A stream of only denials would agree trivially.
    assert!(
        allowed > 600 && allowed < 1_400,
        "{allowed} of 2000 allowed"
    );
}
