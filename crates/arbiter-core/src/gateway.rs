//! Gateway mode's endpoint policy: for each `METHOD /path/{param}` of the API a gateway protects,
//! what a caller needs, and on which resource it is checked.
//!
//! ```yaml
//! prefix: /api/v3                 # optional: every route lives under it
//! resources:                      # path parameters that name a resource, and its type
//!   model_id: model
//! routes:
//!   GET /models/{model_id}: model:read
//!   POST /models/{model_id}/inferences/query: "query:execute & (raw_data:read | reference_data:read)"
//!   GET /users/me: authenticated
//!   GET /model_groups/{model_group_id}:
//!     requirement: model:read
//!     resource: organization      # or one of the route's parameters listed in `resources`
//! ```
//!
//! A policy is validated as a whole when loaded ([`GatewayPolicy::from_yaml`]): every problem is
//! reported, not only the first. Requests are matched exactly (no prefix or catch-all matching;
//! the query string is ignored) by a [`matchit`] router per method, compiled once. Paths with
//! `.` or `..` segments, encoded slashes or backslashes, or empty segments are refused
//! ([`request_segments`]). No I/O here: the HTTP layer reads the file and asks the engine.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::catalog::Catalog;
use crate::engine::{self, CheckRequest, Reason, ResourceQuery, SubjectQuery};
use crate::error::CoreError;
use crate::index::{Index, Revision};
use crate::permission::Permission;
use crate::requirement::Expr;

/// The methods a route may name.
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The requirement that only asks for a valid key.
pub const AUTHENTICATED: &str = "authenticated";

/// The `resource` of a long-form route that checks it on the organization.
pub const ORGANIZATION: &str = "organization";

/// The longest request path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 8192;

/// What a route needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// Any valid key.
    Authenticated,
    /// An expression of permissions, checked on the route's resource.
    Expr(Expr),
}

impl Requirement {
    /// `authenticated`, or an expression (see [`Expr::parse`]).
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        if text.trim() == AUTHENTICATED {
            Ok(Requirement::Authenticated)
        } else {
            Expr::parse(text).map(Requirement::Expr)
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Authenticated => f.write_str(AUTHENTICATED),
            Requirement::Expr(e) => write!(f, "{e}"),
        }
    }
}

/// Where a route is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteResource {
    /// On the caller's organization.
    Organization,
    /// On the resource of type `resource_type` whose id is the path parameter `parameter`, in
    /// the caller's organization.
    Parameter {
        parameter: String,
        resource_type: String,
    },
}

/// One route of a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRoute {
    /// `GET`, `POST`...
    pub method: String,
    /// The path as written in the policy, without the prefix: `/models/{model_id}`.
    pub path: String,
    pub requirement: Requirement,
    pub resource: RouteResource,
}

impl PolicyRoute {
    /// `METHOD /path`, as the policy names it.
    pub fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A request matched to a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteMatch<'p> {
    pub route: &'p PolicyRoute,
    /// The path parameters, percent-decoded, in the order of the path.
    pub params: Vec<(String, String)>,
}

impl RouteMatch<'_> {
    /// The resource the route is checked on, in `organization_id`.
    pub fn resource(&self, organization_id: &str) -> ResourceQuery {
        match &self.route.resource {
            RouteResource::Organization => ResourceQuery {
                resource_type: ORGANIZATION.to_owned(),
                id: organization_id.to_owned(),
                properties: Default::default(),
            },
            RouteResource::Parameter {
                parameter,
                resource_type,
            } => ResourceQuery {
                resource_type: resource_type.clone(),
                id: self
                    .params
                    .iter()
                    .find(|(name, _)| name == parameter)
                    .map(|(_, value)| value.clone())
                    .unwrap_or_default(),
                properties: Default::default(),
            },
        }
    }
}

/// The decision of one permission of a route's requirement.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RouteLeaf {
    pub permission: Permission,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

/// A resource a route is checked on; shown as `type id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResourceRef {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub id: String,
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.resource_type, self.id)
    }
}

/// A route's requirement decided for a subject.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RouteDecision {
    pub allowed: bool,
    pub revision: Revision,
    /// `METHOD /path` of the route.
    pub route: String,
    pub requirement: String,
    /// The resource it was checked on.
    pub resource: ResourceRef,
    /// Every distinct permission of the requirement (none for `authenticated`).
    pub leaves: Vec<RouteLeaf>,
}

/// Decides a matched route for `subject` in `organization_id`, each permission of its
/// requirement with the engine on the route's resource (none is skipped, so that a deny says
/// which are missing). `authenticated` holds for any subject the index knows (a usable key).
pub fn decide(
    index: &Index,
    organization_id: &str,
    subject: &SubjectQuery,
    matched: &RouteMatch<'_>,
    now: DateTime<Utc>,
    explain: bool,
) -> RouteDecision {
    let resource = matched.resource(organization_id);
    let mut leaves = Vec::new();
    let allowed = match &matched.route.requirement {
        Requirement::Authenticated => engine::resolve_subject(index, subject, now).is_some(),
        Requirement::Expr(expr) => {
            expr.evaluate(|permission| {
                let d = engine::check(
                    index,
                    &CheckRequest {
                        organization_id: Some(organization_id),
                        subject,
                        subject_properties: None,
                        permission,
                        resource: &resource,
                        action_properties: None,
                        context: None,
                        now,
                        explain,
                    },
                );
                leaves.push(RouteLeaf {
                    permission: permission.clone(),
                    allowed: d.allowed,
                    reason: d.reason,
                });
                d.allowed
            })
            .allowed
        }
    };
    RouteDecision {
        allowed,
        revision: index.revision,
        route: matched.route.name(),
        requirement: matched.route.requirement.to_string(),
        resource: ResourceRef {
            resource_type: resource.resource_type,
            id: resource.id,
        },
        leaves,
    }
}

/// A validated policy, its routes compiled into one router per method.
#[derive(Clone, Debug)]
pub struct GatewayPolicy {
    prefix: Vec<String>,
    routes: Vec<PolicyRoute>,
    routers: BTreeMap<String, matchit::Router<usize>>,
}

/// One thing wrong with a policy file.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PolicyProblem {
    #[error("the file is not a policy: {0}")]
    Syntax(String),
    #[error("`routes` is empty: every request would be denied")]
    NoRoutes,
    #[error("`prefix` `{prefix}` {problem}")]
    BadPrefix {
        prefix: String,
        problem: &'static str,
    },
    #[error("`resources`: `{parameter}` is not a parameter name (letters, digits and `_`)")]
    BadParameterName { parameter: String },
    #[error("`resources`: parameter `{parameter}` names unknown resource type `{resource_type}`")]
    UnknownResourceType {
        parameter: String,
        resource_type: String,
    },
    #[error("route `{route}`: {problem}")]
    BadRoute {
        route: String,
        problem: &'static str,
    },
    #[error("route `{route}`: unknown method `{method}` (expected GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS)")]
    UnknownMethod { route: String, method: String },
    #[error("route `{route}`: {error}")]
    BadRequirement { route: String, error: CoreError },
    #[error("route `{route}`: unknown permission `{permission}`")]
    UnknownPermission { route: String, permission: String },
    #[error("route `{route}`: `resource: {resource}` {problem}")]
    BadResource {
        route: String,
        resource: String,
        problem: &'static str,
    },
    #[error("route `{route}`: parameters {} all name resources; choose one with `resource:`", quoted(.parameters))]
    AmbiguousResource {
        route: String,
        parameters: Vec<String>,
    },
    #[error("route `{route}` is listed twice (as `{other}`)")]
    Duplicate { route: String, other: String },
    #[error("routes `{other}` and `{route}` overlap ambiguously: `{example}` matches both, neither is more specific, and they decide differently")]
    Overlap {
        route: String,
        other: String,
        example: String,
    },
    #[error("route `{route}`: the router refuses it: {message}")]
    Router { route: String, message: String },
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The problems of a policy as one message.
pub fn list_problems(problems: &[PolicyProblem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let mut out = format!("{} problems", many.len());
            for p in many {
                out.push_str("\n  - ");
                out.push_str(&p.to_string());
            }
            out
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    resources: BTreeMap<String, String>,
    #[serde(default)]
    routes: serde_yaml::Mapping,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LongRoute {
    requirement: String,
    #[serde(default)]
    resource: Option<String>,
}

/// A segment of a route's path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

fn is_parameter_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Characters a literal segment of a route may hold: RFC 3986 `pchar` without `%`.
fn is_literal_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@".contains(c)
}

/// Parses a route's path (or the prefix) into segments.
fn route_segments(path: &str) -> Result<Vec<Segment>, &'static str> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("the path must start with `/`");
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for segment in rest.split('/') {
        if segment.is_empty() {
            return Err("the path has an empty segment (`//` or a trailing `/`)");
        }
        if let Some(inner) = segment.strip_prefix('{') {
            let Some(name) = inner.strip_suffix('}') else {
                return Err("a `{` segment must be exactly `{name}`");
            };
            if name.starts_with('*') {
                return Err(
                    "catch-all parameters (`{*name}`) are not supported: routes match exactly",
                );
            }
            if !is_parameter_name(name) {
                return Err("a parameter name holds only letters, digits and `_`");
            }
            if out.contains(&Segment::Param(name.to_owned())) {
                return Err("the path names the same parameter twice");
            }
            out.push(Segment::Param(name.to_owned()));
        } else {
            if segment == "." || segment == ".." {
                return Err("the path has a `.` or `..` segment");
            }
            if !segment.chars().all(is_literal_char) {
                return Err("a literal segment holds only letters, digits and `-._~!$&'()*+,;=:@`");
            }
            out.push(Segment::Literal(segment.to_owned()));
        }
    }
    Ok(out)
}

/// A route being validated.
struct Draft {
    route: PolicyRoute,
    segments: Vec<Segment>,
}

impl Draft {
    /// Position of the resource parameter, for comparing decisions.
    fn resource_key(&self) -> Option<(usize, &str)> {
        match &self.route.resource {
            RouteResource::Organization => None,
            RouteResource::Parameter {
                parameter,
                resource_type,
            } => self
                .segments
                .iter()
                .position(|s| *s == Segment::Param(parameter.clone()))
                .map(|i| (i, resource_type.as_str())),
        }
    }

    /// True when a request matching both routes is decided the same by either.
    fn decides_like(&self, other: &Draft) -> bool {
        self.route.requirement == other.route.requirement
            && self.resource_key() == other.resource_key()
    }
}

/// `Some(example)` when a request path can match both segment lists.
fn overlap(a: &[Segment], b: &[Segment]) -> Option<String> {
    if a.len() != b.len() {
        return None;
    }
    let mut example = String::new();
    for (x, y) in a.iter().zip(b) {
        example.push('/');
        match (x, y) {
            (Segment::Literal(l), Segment::Literal(m)) if l != m => return None,
            (Segment::Literal(l), _) | (_, Segment::Literal(l)) => example.push_str(l),
            (Segment::Param(_), Segment::Param(_)) => example.push('x'),
        }
    }
    if example.is_empty() {
        example.push('/');
    }
    Some(example)
}

/// True when `a` is literal wherever `b` is (so `a` is at least as specific).
fn at_least_as_specific(a: &[Segment], b: &[Segment]) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| matches!(y, Segment::Param(_)) || matches!(x, Segment::Literal(_)))
}

impl GatewayPolicy {
    /// Parses and validates a policy against the built-in catalog (permissions and resource
    /// types must be built in, since a policy applies to every organization).
    ///
    /// Errors: [`CoreError::InvalidGatewayPolicy`] listing every problem found: a malformed
    /// file, prefix, route or path; an unknown method, permission or resource type; a bad
    /// expression; a route listed twice; two routes of one method that a request can both match
    /// when neither is more specific (literal wherever the other is) and they would decide
    /// differently (another requirement or another resource).
    pub fn from_yaml(text: &str, catalog: &Catalog) -> Result<Self, CoreError> {
        let file: PolicyFile = serde_yaml::from_str(text).map_err(|e| {
            CoreError::InvalidGatewayPolicy(vec![PolicyProblem::Syntax(e.to_string())])
        })?;
        let mut problems = Vec::new();

        let mut prefix = Vec::new();
        if let Some(p) = &file.prefix {
            match route_segments(p) {
                Err(problem) => problems.push(PolicyProblem::BadPrefix {
                    prefix: p.clone(),
                    problem,
                }),
                Ok(segments) => {
                    for s in segments {
                        match s {
                            Segment::Literal(l) => prefix.push(l),
                            Segment::Param(_) => problems.push(PolicyProblem::BadPrefix {
                                prefix: p.clone(),
                                problem: "must not hold parameters",
                            }),
                        }
                    }
                }
            }
        }

        for (parameter, resource_type) in &file.resources {
            if !is_parameter_name(parameter) {
                problems.push(PolicyProblem::BadParameterName {
                    parameter: parameter.clone(),
                });
            }
            if catalog.resource_type(resource_type).is_none() {
                problems.push(PolicyProblem::UnknownResourceType {
                    parameter: parameter.clone(),
                    resource_type: resource_type.clone(),
                });
            }
        }

        if file.routes.is_empty() {
            problems.push(PolicyProblem::NoRoutes);
        }
        let mut drafts: Vec<Draft> = Vec::new();
        for (key, value) in &file.routes {
            let Some(key) = key.as_str() else {
                problems.push(PolicyProblem::Syntax(format!(
                    "a key of `routes` is not text: {}",
                    yaml_text(key)
                )));
                continue;
            };
            if let Some(draft) = draft(key, value, &file.resources, catalog, &mut problems) {
                drafts.push(draft);
            }
        }

        for (i, d) in drafts.iter().enumerate() {
            for earlier in drafts.iter().take(i) {
                if earlier.route.method != d.route.method {
                    continue;
                }
                let Some(example) = overlap(&earlier.segments, &d.segments) else {
                    continue;
                };
                let wider = at_least_as_specific(&earlier.segments, &d.segments);
                let narrower = at_least_as_specific(&d.segments, &earlier.segments);
                if wider && narrower {
                    problems.push(PolicyProblem::Duplicate {
                        route: d.route.name(),
                        other: earlier.route.name(),
                    });
                } else if !wider && !narrower && !d.decides_like(earlier) {
                    problems.push(PolicyProblem::Overlap {
                        route: d.route.name(),
                        other: earlier.route.name(),
                        example,
                    });
                }
            }
        }

        let mut routers: BTreeMap<String, matchit::Router<usize>> = BTreeMap::new();
        if problems.is_empty() {
            for (n, d) in drafts.iter().enumerate() {
                let router = routers.entry(d.route.method.clone()).or_default();
                if let Err(e) = router.insert(d.route.path.clone(), n) {
                    problems.push(PolicyProblem::Router {
                        route: d.route.name(),
                        message: e.to_string(),
                    });
                }
            }
        }
        if !problems.is_empty() {
            return Err(CoreError::InvalidGatewayPolicy(problems));
        }
        Ok(Self {
            prefix,
            routes: drafts.into_iter().map(|d| d.route).collect(),
            routers,
        })
    }

    /// The routes, in the file's order.
    pub fn routes(&self) -> &[PolicyRoute] {
        &self.routes
    }

    /// The prefix every route lives under (`/api/v3`), or `/`.
    pub fn prefix(&self) -> String {
        format!("/{}", self.prefix.join("/"))
    }

    /// The route a request matches: `Ok(None)` when none does (the request is then denied).
    /// `uri` is the path as sent, optionally with a query string, which is ignored.
    ///
    /// Errors: [`CoreError::MalformedPath`] (see [`request_segments`]).
    pub fn lookup(&self, method: &str, uri: &str) -> Result<Option<RouteMatch<'_>>, CoreError> {
        let segments = request_segments(uri)?;
        let Some(rest) = segments.strip_prefix(self.prefix.as_slice()) else {
            return Ok(None);
        };
        let Some(router) = self.routers.get(method) else {
            return Ok(None);
        };
        let path = format!("/{}", rest.join("/"));
        let Ok(found) = router.at(&path) else {
            return Ok(None);
        };
        let Some(route) = self.routes.get(*found.value) else {
            return Ok(None);
        };
        Ok(Some(RouteMatch {
            route,
            params: found
                .params
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }))
    }
}

fn yaml_text(value: &serde_yaml::Value) -> String {
    serde_yaml::to_string(value)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Validates one route; records its problems and answers it when it has none.
fn draft(
    key: &str,
    value: &serde_yaml::Value,
    resources: &BTreeMap<String, String>,
    catalog: &Catalog,
    problems: &mut Vec<PolicyProblem>,
) -> Option<Draft> {
    let before = problems.len();
    let route_name = key.split_whitespace().collect::<Vec<_>>().join(" ");
    let bad = |problem| PolicyProblem::BadRoute {
        route: route_name.clone(),
        problem,
    };
    let parts: Vec<&str> = key.split_whitespace().collect();
    let [method, path] = parts.as_slice() else {
        problems.push(bad("a route is `METHOD /path`"));
        return None;
    };
    if !METHODS.contains(method) {
        problems.push(PolicyProblem::UnknownMethod {
            route: route_name.clone(),
            method: (*method).to_owned(),
        });
    }
    let segments = match route_segments(path) {
        Ok(s) => s,
        Err(problem) => {
            problems.push(bad(problem));
            Vec::new()
        }
    };

    let (text, chosen) = match value {
        serde_yaml::Value::String(s) => (s.clone(), None),
        serde_yaml::Value::Mapping(_) => match serde_yaml::from_value::<LongRoute>(value.clone()) {
            Ok(long) => (long.requirement, long.resource),
            Err(e) => {
                problems.push(PolicyProblem::Syntax(format!("route `{route_name}`: {e}")));
                return None;
            }
        },
        _ => {
            problems.push(bad(
                "the value must be a requirement, or `{requirement, resource}`",
            ));
            return None;
        }
    };
    let requirement = match Requirement::parse(&text) {
        Ok(r) => Some(r),
        Err(error) => {
            problems.push(PolicyProblem::BadRequirement {
                route: route_name.clone(),
                error,
            });
            None
        }
    };
    if let Some(Requirement::Expr(e)) = &requirement {
        for p in e.permissions() {
            if catalog.validate(p).is_err() {
                problems.push(PolicyProblem::UnknownPermission {
                    route: route_name.clone(),
                    permission: p.to_string(),
                });
            }
        }
    }

    let params: Vec<&str> = segments
        .iter()
        .filter_map(|s| match s {
            Segment::Param(p) => Some(p.as_str()),
            Segment::Literal(_) => None,
        })
        .collect();
    let resource = match chosen.as_deref() {
        Some(ORGANIZATION) => RouteResource::Organization,
        Some(parameter) => {
            let problem = if !params.contains(&parameter) {
                Some("is not a parameter of the route")
            } else if !resources.contains_key(parameter) {
                Some("is not listed in `resources` (which gives its type)")
            } else {
                None
            };
            if let Some(problem) = problem {
                problems.push(PolicyProblem::BadResource {
                    route: route_name.clone(),
                    resource: parameter.to_owned(),
                    problem,
                });
            }
            parameter_resource(parameter, resources)
        }
        None => {
            let named: Vec<&str> = params
                .iter()
                .copied()
                .filter(|p| resources.contains_key(*p))
                .collect();
            match named.as_slice() {
                [] => RouteResource::Organization,
                [one] => parameter_resource(one, resources),
                many => {
                    problems.push(PolicyProblem::AmbiguousResource {
                        route: route_name.clone(),
                        parameters: many.iter().map(|p| (*p).to_owned()).collect(),
                    });
                    RouteResource::Organization
                }
            }
        }
    };

    let requirement = requirement?;
    (problems.len() == before).then(|| Draft {
        route: PolicyRoute {
            method: (*method).to_owned(),
            path: (*path).to_owned(),
            requirement,
            resource,
        },
        segments,
    })
}

fn parameter_resource(parameter: &str, resources: &BTreeMap<String, String>) -> RouteResource {
    RouteResource::Parameter {
        parameter: parameter.to_owned(),
        resource_type: resources.get(parameter).cloned().unwrap_or_default(),
    }
}

/// The percent-decoded segments of a request path (`uri` may carry a query string or a
/// fragment, which are ignored); `/` has none.
///
/// Errors: [`CoreError::MalformedPath`] for a path that does not start with `/` or is longer
/// than [`MAX_PATH_BYTES`]; an empty segment (`//`, or a trailing `/`); a raw space; a control
/// character or a backslash, raw or encoded; an encoded slash (`%2F`, `%2f`); a malformed
/// percent-escape or an escape that does not decode to UTF-8; a `.` or `..` segment, raw or
/// encoded (`%2e%2e`). Such paths are where a gateway and the service behind it can disagree
/// about what is asked, so they are refused rather than interpreted.
pub fn request_segments(uri: &str) -> Result<Vec<String>, CoreError> {
    let malformed = |problem: &'static str| CoreError::MalformedPath {
        path: uri.chars().take(200).collect(),
        problem,
    };
    let path = uri.split(['?', '#']).next().unwrap_or_default();
    if path.len() > MAX_PATH_BYTES {
        return Err(malformed("it is too long"));
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(malformed("it does not start with `/`"));
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for raw in rest.split('/') {
        if raw.is_empty() {
            return Err(malformed(
                "it has an empty segment (`//` or a trailing `/`)",
            ));
        }
        let decoded = percent_decode(raw).map_err(malformed)?;
        if decoded == "." || decoded == ".." {
            return Err(malformed("it has a `.` or `..` segment"));
        }
        out.push(decoded);
    }
    Ok(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn percent_decode(segment: &str) -> Result<String, &'static str> {
    const FORBIDDEN: &str = "it holds a space, a control character or a backslash";
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let value = match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => h * 16 + l,
                _ => return Err("it holds a malformed percent-escape"),
            };
            if value == b'/' {
                return Err("it holds an encoded slash (`%2F`)");
            }
            if value == b'\\' || value < b' ' || value == 0x7f {
                return Err(FORBIDDEN);
            }
            out.push(value);
            i += 3;
        } else {
            if b == b'\\' || b <= b' ' || b == 0x7f {
                return Err(FORBIDDEN);
            }
            out.push(b);
            i += 1;
        }
    }
    let text = String::from_utf8(out).map_err(|_| "it does not decode to UTF-8")?;
    if text.chars().any(char::is_control) {
        return Err(FORBIDDEN);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::builtin().unwrap()
    }

    fn policy(text: &str) -> GatewayPolicy {
        GatewayPolicy::from_yaml(text, &catalog()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn problems(text: &str) -> Vec<PolicyProblem> {
        match GatewayPolicy::from_yaml(text, &catalog()) {
            Ok(_) => panic!("should be refused:\n{text}"),
            Err(CoreError::InvalidGatewayPolicy(p)) => p,
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    const SMALL: &str = r#"
resources:
  model_id: model
routes:
  GET /models: model:read
  GET /models/health: authenticated
  GET /models/{model_id}: model:read
  POST /models/{model_id}/inferences/query: "query:execute & (raw_data:read | reference_data:read)"
  GET /model_groups/{model_group_id}: model:read
  GET /models/{model_id}/groups/{model_group_id}:
    requirement: model:read
    resource: organization
  GET /: authenticated
"#;

    fn route_of(p: &GatewayPolicy, method: &str, uri: &str) -> Option<String> {
        p.lookup(method, uri).unwrap().map(|m| m.route.name())
    }

    #[test]
    fn matches_exactly_and_ignores_the_query() {
        let p = policy(SMALL);
        assert_eq!(
            route_of(&p, "GET", "/models").as_deref(),
            Some("GET /models")
        );
        assert_eq!(
            route_of(&p, "GET", "/models?limit=3&x=/y").as_deref(),
            Some("GET /models")
        );
        assert_eq!(route_of(&p, "GET", "/").as_deref(), Some("GET /"));
        assert_eq!(route_of(&p, "GET", "/?q=1").as_deref(), Some("GET /"));
        // The static segment wins over the parameter.
        assert_eq!(
            route_of(&p, "GET", "/models/health").as_deref(),
            Some("GET /models/health")
        );
        assert_eq!(
            route_of(&p, "GET", "/models/m1").as_deref(),
            Some("GET /models/{model_id}")
        );
        // Neither prefixes nor other methods match.
        assert_eq!(route_of(&p, "GET", "/models/m1/extra"), None);
        assert_eq!(route_of(&p, "GET", "/mod"), None);
        assert_eq!(route_of(&p, "DELETE", "/models/m1"), None);
        assert_eq!(route_of(&p, "get", "/models/m1"), None);
        assert_eq!(route_of(&p, "GET", "/Models/m1"), None);
    }

    #[test]
    fn resources_come_from_the_named_parameter_or_the_organization() {
        let p = policy(SMALL);
        let m = p.lookup("GET", "/models/m%201").unwrap().unwrap();
        let r = m.resource("acme");
        assert_eq!((r.resource_type.as_str(), r.id.as_str()), ("model", "m 1"));
        let m = p.lookup("GET", "/model_groups/g1").unwrap().unwrap();
        let r = m.resource("acme");
        assert_eq!(
            (r.resource_type.as_str(), r.id.as_str()),
            ("organization", "acme")
        );
        let m = p.lookup("GET", "/models/m1/groups/g1").unwrap().unwrap();
        assert_eq!(m.route.resource, RouteResource::Organization);
        assert_eq!(
            m.params,
            vec![
                ("model_id".to_owned(), "m1".to_owned()),
                ("model_group_id".to_owned(), "g1".to_owned())
            ]
        );
        let m = p
            .lookup("POST", "/models/m1/inferences/query")
            .unwrap()
            .unwrap();
        assert_eq!(
            m.route.requirement.to_string(),
            "query:execute & (raw_data:read | reference_data:read)"
        );
    }

    #[test]
    fn a_prefix_is_stripped_and_required() {
        let p = policy(
            "prefix: /api/v3\nroutes:\n  GET /models/{id}: model:read\n  GET /: authenticated\n",
        );
        assert_eq!(p.prefix(), "/api/v3");
        assert_eq!(
            route_of(&p, "GET", "/api/v3/models/m1").as_deref(),
            Some("GET /models/{id}")
        );
        assert_eq!(route_of(&p, "GET", "/api/v3").as_deref(), Some("GET /"));
        assert_eq!(route_of(&p, "GET", "/models/m1"), None);
        assert_eq!(route_of(&p, "GET", "/api/v30/models/m1"), None);
        assert_eq!(route_of(&p, "GET", "/api/models/m1"), None);
    }

    #[test]
    fn backtracks_past_a_static_segment() {
        let p = policy("routes:\n  GET /a/b/c: model:read\n  GET /a/{x}/d: model:write\n");
        assert_eq!(route_of(&p, "GET", "/a/b/c").as_deref(), Some("GET /a/b/c"));
        assert_eq!(
            route_of(&p, "GET", "/a/b/d").as_deref(),
            Some("GET /a/{x}/d")
        );
    }

    #[test]
    fn malformed_paths_are_refused() {
        let p = policy(SMALL);
        for bad in [
            "/models/m1/../m2",
            "/models/..",
            "/models/./m1",
            "/models/%2e%2e",
            "/models/%2E.",
            "/models/a%2Fb",
            "/models/a%2fb",
            "/models/a%5Cb",
            "/models/a\\b",
            "/models//m1",
            "//models",
            "/models/",
            "/models/m1%",
            "/models/m1%2",
            "/models/m1%zz",
            "/models/%ff",
            "/models/%00",
            "/models/a b",
            "models/m1",
            "",
            "http://host/models/m1",
        ] {
            match p.lookup("GET", bad) {
                Err(CoreError::MalformedPath { .. }) => {}
                other => panic!("`{bad}` should be refused, got {other:?}"),
            }
        }
        // Escapes that are not special are decoded.
        assert_eq!(
            request_segments("/mod%65ls/m%C3%A9?x=%2F").unwrap(),
            vec!["models".to_owned(), "mé".to_owned()]
        );
        assert_eq!(
            route_of(&p, "GET", "/mod%65ls/m1").as_deref(),
            Some("GET /models/{model_id}")
        );
    }

    #[test]
    fn unknown_permissions_and_bad_expressions_are_refused() {
        let found = problems(
            "routes:\n  GET /a: nosuch:read\n  GET /b: \"model:read &\"\n  GET /c: model:fly | model:read\n  GET /d: Model\n",
        );
        assert_eq!(found.len(), 4, "{found:?}");
        assert_eq!(
            found[0],
            PolicyProblem::UnknownPermission {
                route: "GET /a".to_owned(),
                permission: "nosuch:read".to_owned()
            }
        );
        assert!(matches!(
            &found[1],
            PolicyProblem::BadRequirement { route, error: CoreError::InvalidRequirement { .. } } if route == "GET /b"
        ));
        assert_eq!(
            found[2],
            PolicyProblem::UnknownPermission {
                route: "GET /c".to_owned(),
                permission: "model:fly".to_owned()
            }
        );
        assert!(matches!(
            &found[3],
            PolicyProblem::BadRequirement {
                error: CoreError::MalformedPermission(_),
                ..
            }
        ));
        let message = CoreError::InvalidGatewayPolicy(found).to_string();
        assert!(message.contains("4 problems"), "{message}");
        assert!(
            message.contains("unknown permission `nosuch:read`"),
            "{message}"
        );
    }

    #[test]
    fn ambiguous_overlaps_are_refused() {
        // Neither route is more specific and they decide differently.
        let found = problems("routes:\n  GET /a/{x}/c: model:read\n  GET /a/b/{y}: model:write\n");
        assert_eq!(
            found,
            vec![PolicyProblem::Overlap {
                route: "GET /a/b/{y}".to_owned(),
                other: "GET /a/{x}/c".to_owned(),
                example: "/a/b/c".to_owned()
            }]
        );
        // The same shape twice, whatever the names.
        let found = problems("routes:\n  GET /m/{id}: model:read\n  GET /m/{model_id}: model:read\n  GET  /m/{id}: model:read\n");
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found
            .iter()
            .all(|p| matches!(p, PolicyProblem::Duplicate { .. })));
        // Different resources decide differently too.
        let found = problems(
            "resources: {x: model}\nroutes:\n  GET /a/{x}/{y}/c: model:read\n  GET /a/{y}/b/{x}: model:read\n",
        );
        assert!(
            matches!(found.as_slice(), [PolicyProblem::Overlap { .. }]),
            "{found:?}"
        );
        // Fine: one is more specific; other methods; or the same decision either way.
        policy("routes:\n  GET /a/{x}: model:read\n  GET /a/b: model:write\n  POST /a/{y}: model:write\n");
        policy("resources: {m: model}\nroutes:\n  GET /x/{m}/i/{a}/e: model:read\n  GET /x/{m}/i/q/{b}: model:read\n");
    }

    #[test]
    fn malformed_routes_and_resources_are_refused() {
        let found = problems(
            r#"
prefix: api/
resources:
  model_id: model
  "bad-name": model
  thing_id: nosuch
routes:
  FETCH /a: model:read
  GET: model:read
  GET /a//b: model:read
  GET /a/{*rest}: model:read
  GET /a/{x}/{x}: model:read
  GET /b/{model_id}/c/{thing_id}: model:read
  GET /c/{model_id}:
    requirement: model:read
    resource: other_id
  GET /d/{x}:
    requirement: model:read
    resource: x
  GET /e:
    requirment: model:read
  GET /f: [model:read]
"#,
        );
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        let expect = [
            "`prefix` `api/`",
            "`bad-name` is not a parameter name",
            "unknown resource type `nosuch`",
            "unknown method `FETCH`",
            "route `GET`: a route is `METHOD /path`",
            "route `GET /a//b`: the path has an empty segment",
            "route `GET /a/{*rest}`: catch-all",
            "route `GET /a/{x}/{x}`: the path names the same parameter twice",
            "parameters `model_id`, `thing_id` all name resources",
            "`resource: other_id` is not a parameter of the route",
            "`resource: x` is not listed in `resources`",
            "unknown field `requirment`",
            "route `GET /f`: the value must be a requirement",
        ];
        assert_eq!(text.len(), expect.len(), "{text:#?}");
        for (got, want) in text.iter().zip(expect) {
            assert!(got.contains(want), "`{got}` should contain `{want}`");
        }
        assert_eq!(problems("routes: {}\n"), vec![PolicyProblem::NoRoutes]);
        // A key written twice is refused, whichever layer notices.
        assert!(!problems("routes:\n  GET /a: model:read\n  GET /a: model:write\n").is_empty());
        assert!(matches!(
            problems("routes: [1]\n").as_slice(),
            [PolicyProblem::Syntax(_)]
        ));
        assert!(matches!(
            problems("rotues: {}\n").as_slice(),
            [PolicyProblem::Syntax(_)]
        ));
    }
}
