//! `policies/ml-platform.yaml` against its seed, `arthur-permissions-by-endpoint.txt`, row by row:
//! every row of the seed's three tables is a route of the policy with the same requirement, and
//! the policy has no route the seed does not list.
//!
//! The seed is read from the `shared` folder beside the repository (`../shared/seeds/`). When it
//! is missing the test fails, saying so: CI has it.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use arbiter_core::catalog::Catalog;
use arbiter_core::gateway::{GatewayPolicy, Requirement, RouteResource};
use arbiter_core::requirement::Expr;

const SEED: &str = "arthur-permissions-by-endpoint.txt";
const HEADER: &str = "PermissionEndpointRESTResource in SystemAction";
const METHODS: [&str; 5] = ["DELETE", "PATCH", "POST", "PUT", "GET"];
/// The footnote of the query route, as the policy writes it.
const QUERY_FOOTNOTE: &str = "query:execute & (raw_data:read | reference_data:read)";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn seed_text() -> String {
    let path = workspace_root().join("../shared/seeds").join(SEED);
    match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => panic!(
            "the seed `{}` cannot be read ({e}): this test compares policies/ml-platform.yaml \
             with it, so it fails rather than skips; put the `shared` folder beside the repository",
            path.display()
        ),
    }
}

/// One row of the seed.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    table: String,
    method: String,
    path: String,
    /// `resource:action`, `N/A`, or the footnoted permission.
    permission: String,
    footnote: bool,
}

/// Finds, from byte `from`, the next `/path` immediately followed by a method: the path is made
/// of lowercase letters, digits, `_`, `/` and `{}` (so a description such as "Add/Remove" does
/// not start one).
fn next_endpoint(body: &str, from: usize) -> Option<(usize, usize, &'static str)> {
    let bytes = body.as_bytes();
    let mut start = from;
    while let Some(offset) = body.get(start..)?.find('/') {
        let s = start + offset;
        let mut end = s + 1;
        while bytes
            .get(end)
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_/{}".contains(b))
        {
            end += 1;
        }
        if let Some(method) = METHODS
            .iter()
            .find(|m| body.get(end..).is_some_and(|rest| rest.starts_with(*m)))
        {
            return Some((s, end, method));
        }
        start = s + 1;
    }
    None
}

/// Splits `resource_typeaction` (run together in the seed) where the catalog has that type with
/// that action; exactly one split must fit.
fn split_permission(catalog: &Catalog, run: &str) -> String {
    let fits: Vec<String> = (1..run.len())
        .filter_map(|i| {
            let (t, a) = (run.get(..i)?, run.get(i..)?);
            catalog
                .resource_type(t)
                .filter(|rt| rt.actions.contains(a))
                .map(|_| format!("{t}:{a}"))
        })
        .collect();
    assert_eq!(
        fits.len(),
        1,
        "`{run}` should split into exactly one catalog permission: {fits:?}"
    );
    fits.into_iter().next().unwrap()
}

fn seed_rows(catalog: &Catalog) -> Vec<Row> {
    let text = seed_text();
    let lines: Vec<&str> = text.lines().collect();
    let mut rows = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let Some(body) = line.strip_prefix(HEADER) else {
            continue;
        };
        let table = lines[n - 1].trim().to_owned();
        let mut endpoints = Vec::new();
        let mut at = 0;
        while let Some((start, end, method)) = next_endpoint(body, at) {
            endpoints.push((start, end, method));
            at = end;
        }
        for (k, &(start, end, method)) in endpoints.iter().enumerate() {
            let next = endpoints.get(k + 1).map_or(body.len(), |e| e.0);
            // After the method: the resource and action run together, then the next row's
            // description, which starts with a capital letter.
            let tail = &body[end + method.len()..next];
            let (permission, footnote) = if tail.starts_with("N/AN/A") {
                ("N/A".to_owned(), false)
            } else {
                let cut = tail
                    .char_indices()
                    .find(|(_, c)| c.is_ascii_uppercase())
                    .map_or(tail.len(), |(i, _)| i);
                let run = &tail[..cut];
                let footnote = run.contains('✱');
                let run: String = match (run.find('('), run.find(')')) {
                    (Some(open), Some(close)) => format!("{}{}", &run[..open], &run[close + 1..]),
                    _ => run.to_owned(),
                };
                let run: String = run.chars().filter(|c| !c.is_whitespace()).collect();
                (split_permission(catalog, &run), footnote)
            };
            rows.push(Row {
                table: table.clone(),
                method: method.to_owned(),
                path: body[start..end].to_owned(),
                permission,
                footnote,
            });
        }
    }
    rows
}

fn policy(catalog: &Catalog) -> GatewayPolicy {
    let path = workspace_root().join("policies/ml-platform.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    GatewayPolicy::from_yaml(&text, catalog).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_seed_is_read_as_three_tables_of_rows() {
    let catalog = Catalog::builtin().unwrap();
    let rows = seed_rows(&catalog);
    let mut per_table: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        *per_table.entry(r.table.as_str()).or_default() += 1;
    }
    assert_eq!(
        per_table,
        BTreeMap::from([
            ("Alert Related Permissions", 29),
            ("Model and Data Related Permissions", 63),
            ("Org, User, and Authorization Related Permissions", 22),
        ]),
    );
    // Spot checks of the reading itself.
    let find = |m: &str, p: &str| rows.iter().find(|r| r.method == m && r.path == p).unwrap();
    assert_eq!(find("GET", "/users/me").permission, "N/A");
    assert_eq!(
        find("PATCH", "/models/{model_id}/pinned_columns").permission,
        "pinned_columns:write"
    );
    assert_eq!(
        find(
            "POST",
            "/alert_summary_configurations/{configuration_id}/notifications"
        )
        .permission,
        "alert_summary:notify"
    );
    let query = find("POST", "/models/{model_id}/inferences/query");
    assert_eq!(query.permission, "query:execute");
    assert!(query.footnote);
    assert_eq!(rows.iter().filter(|r| r.footnote).count(), 1);
}

#[test]
fn the_policy_has_every_row_of_the_seed_and_nothing_else() {
    let catalog = Catalog::builtin().unwrap();
    let rows = seed_rows(&catalog);
    let policy = policy(&catalog);
    let mut problems = Vec::new();
    for row in &rows {
        let expected = if row.permission == "N/A" {
            Requirement::Authenticated
        } else if row.footnote {
            Requirement::Expr(Expr::parse(QUERY_FOOTNOTE).unwrap())
        } else {
            Requirement::Expr(Expr::parse(&row.permission).unwrap())
        };
        match policy
            .routes()
            .iter()
            .find(|r| r.method == row.method && r.path == row.path)
        {
            None => problems.push(format!(
                "missing: {} {} ({})",
                row.method, row.path, row.table
            )),
            Some(route) if route.requirement != expected => problems.push(format!(
                "different: {} needs `{}` in the policy, `{expected}` in the seed",
                route.name(),
                route.requirement
            )),
            Some(_) => {}
        }
    }
    for route in policy.routes() {
        if !rows
            .iter()
            .any(|r| r.method == route.method && r.path == route.path)
        {
            problems.push(format!("not in the seed: {}", route.name()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(policy.routes().len(), rows.len());
    assert_eq!(policy.prefix(), "/");
}

#[test]
fn model_routes_are_checked_on_the_model_and_the_rest_on_the_organization() {
    let catalog = Catalog::builtin().unwrap();
    let policy = policy(&catalog);
    for route in policy.routes() {
        let expected = if route.path.contains("{model_id}") {
            RouteResource::Parameter {
                parameter: "model_id".to_owned(),
                resource_type: "model".to_owned(),
            }
        } else {
            RouteResource::Organization
        };
        assert_eq!(route.resource, expected, "{}", route.name());
    }
    let m = policy
        .lookup("POST", "/models/m1/inferences/query?limit=10")
        .unwrap()
        .unwrap();
    assert_eq!(m.route.requirement.to_string(), QUERY_FOOTNOTE);
    let r = m.resource("acme");
    assert_eq!((r.resource_type.as_str(), r.id.as_str()), ("model", "m1"));
    let m = policy.lookup("GET", "/models/health").unwrap().unwrap();
    assert_eq!(m.route.path, "/models/health");
    assert!(policy
        .lookup("GET", "/models/m1/unknown")
        .unwrap()
        .is_none());
}
