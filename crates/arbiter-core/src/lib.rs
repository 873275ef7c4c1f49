//! `arbiter-core`: Arbiter's model and decision engine. No I/O, no async: usable on its own as an
//! embedded engine, and what the benchmarks measure in process.
//!
//! - [`permission`], [`irn`], [`catalog`], [`model`] and [`condition`] define what can be said;
//! - [`index`] holds an immutable snapshot of every object at one revision;
//! - [`engine`] answers checks from a snapshot;
//! - [`bundle`] is the declarative format of `arbiter import`/`export` and the conformance suite;
//! - [`requirement`] parses and evaluates expressions of permissions (`a:x & (b:y | c:z)`), and
//!   [`gateway`] holds gateway mode's endpoint policy (validation, matching, route decisions).

pub mod binding;
pub mod bundle;
pub mod catalog;
pub mod condition;
pub mod conformance;
pub mod cowmap;
pub mod engine;
pub mod error;
pub mod fast;
pub mod gateway;
pub mod grants;
pub mod idset;
pub mod index;
pub mod irn;
pub mod model;
pub mod permission;
pub mod requirement;
pub mod search;
pub mod workload;

pub use error::CoreError;
