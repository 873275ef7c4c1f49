//! The integration tests of the `arbiter` binary: each starts the real binary on a real store.

mod conformance;
mod helpers;
mod smoke;
