//! The one error type of `arbiter-core`.

use thiserror::Error;

/// Everything that can be wrong with input to the model: each variant carries the offending value so
/// that the HTTP layer can build a precise message and a stable code from it.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// A permission that is not of the form `resource_type:action`.
    #[error("`{0}` is not a permission of the form `resource_type:action`")]
    MalformedPermission(String),
    /// A well-formed permission whose type or action the catalog does not list.
    #[error("unknown permission `{0}`")]
    UnknownPermission(String),
    /// An IRN or IRN pattern that does not follow `service:type:id`.
    #[error("`{irn}` is not a valid IRN: {reason}")]
    MalformedIrn { irn: String, reason: &'static str },
    /// A condition that does not compile.
    #[error("condition does not compile at line {line}, column {column}: {message}")]
    InvalidCondition {
        line: isize,
        column: isize,
        message: String,
    },
    /// A scope other than ALL, TEAM or OWN.
    #[error("unknown scope `{0}`; expected ALL, TEAM or OWN")]
    UnknownScope(String),
    /// The shipped or declared catalog is inconsistent.
    #[error("invalid catalog: {0}")]
    InvalidCatalog(String),
    /// A bundle that refers to something it does not define, or repeats a name.
    #[error("invalid bundle: {0}")]
    InvalidBundle(String),
    /// A requirement (`a:x & (b:y | c:z)`) that does not parse.
    #[error("`{requirement}` is not a valid requirement: expected {expected} at character {position}, found {found}")]
    InvalidRequirement {
        requirement: String,
        /// 1-based character position.
        position: usize,
        expected: &'static str,
        found: String,
    },
    /// A request path the gateway refuses to interpret (`..`, an encoded slash, an empty
    /// segment...).
    #[error("the path `{path}` is refused: {problem}")]
    MalformedPath { path: String, problem: &'static str },
    /// A gateway policy file with problems; every problem found is listed.
    #[error("invalid gateway policy: {}", crate::gateway::list_problems(.0))]
    InvalidGatewayPolicy(Vec<crate::gateway::PolicyProblem>),
}
