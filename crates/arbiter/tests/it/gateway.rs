//! Gateway mode: a real nginx with `auth_request` in front of a small upstream, asking the real
//! `arbiter` binary under `policies/ml-platform.yaml`; the Traefik headers and the Envoy path
//! over HTTP directly; policies that stop the start; requirements in `POST /v1/check`; and the
//! offline `arbiter check --route`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

const QUERY: &str = "/models/m1/inferences/query";

fn policy_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../policies/ml-platform.yaml"
    ))
}

/// A server in gateway mode on a new SQLite file; the database lives in its own directory, so
/// that the server can be started again on it.
async fn spawn_gateway() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("arbiter.db").display());
    let policy = policy_path();
    spawn_app_on(
        url,
        dir,
        &[("ARBITER_GATEWAY_POLICY", policy.to_str().expect("path"))],
    )
    .await
}

/// The organization of the gateway tests and its members' keys.
struct World {
    org: String,
    alice: String,
    alice_key: String,
    carol_key: String,
    dave_key: String,
}

/// Acme: models m1 (project p1) and m2 (project p2); alice reads the models of p1; carol may
/// execute queries and read raw data everywhere in Acme; dave may only execute queries.
async fn world(app: &TestApp) -> World {
    let org = app.create_org("Acme").await;
    let space = app.create_space(&org, "Research").await;
    let p1 = app.create_project(&org, &space, "p1").await;
    let p2 = app.create_project(&org, &space, "p2").await;
    for (model, project) in [("m1", &p1), ("m2", &p2)] {
        let a = app
            .put(
                &format!("/v1/resources/model/{model}"),
                ADMIN_KEY,
                Some(&org),
                json!({"project_id": project}),
            )
            .await;
        assert!(a.status.is_success(), "{}", a.text);
    }
    let reader = app
        .custom_role(&org, "model-reader", json!(["model:read"]))
        .await;
    let querier = app
        .custom_role(&org, "querier", json!(["query:execute", "raw_data:read"]))
        .await;
    let query_only = app
        .custom_role(&org, "query-only", json!(["query:execute"]))
        .await;
    let (alice, alice_key) = app.member_with_key(&org, "alice@acme.test").await;
    let (carol, carol_key) = app.member_with_key(&org, "carol@acme.test").await;
    let (dave, dave_key) = app.member_with_key(&org, "dave@acme.test").await;
    app.bind(&org, &reader, &alice, "PROJECT", Some(&p1)).await;
    app.bind(&org, &querier, &carol, "ORGANIZATION", None).await;
    app.bind(&org, &query_only, &dave, "ORGANIZATION", None)
        .await;
    World {
        org,
        alice,
        alice_key,
        carol_key,
        dave_key,
    }
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client and upstream: raw, so that a path such as `/a/../b` is sent as written
// (an URL library would resolve it first).

/// A raw answer: status, lowercase headers, body.
struct RawAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request (`Connection: close`) and reads the whole answer.
fn raw_request(
    addr: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> RawAnswer {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in: {text}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    // The upstream and Arbiter answer with a length; nginx's own pages may be chunked, but only
    // their status matters here.
    RawAnswer {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// What the upstream received: method, path, and the `X-Arbiter-User` and
/// `X-Arbiter-Organization` headers.
type Seen = Arc<Mutex<Vec<(String, String, Option<String>, Option<String>)>>>;

const MARKER: &str = "upstream-reached";

/// A tiny upstream API on 127.0.0.1:0: answers every request 200 with `MARKER` and what it saw,
/// and records it.
fn spawn_upstream() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    let seen: Seen = Arc::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut parts = request_line.split_whitespace();
            let method = parts.next().unwrap_or_default().to_owned();
            let path = parts.next().unwrap_or_default().to_owned();
            let (mut length, mut user, mut organization) = (0usize, None, None);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    let value = value.trim().to_owned();
                    match name.trim().to_ascii_lowercase().as_str() {
                        "content-length" => length = value.parse().unwrap_or(0),
                        "x-arbiter-user" => user = Some(value),
                        "x-arbiter-organization" => organization = Some(value),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let answer = format!(
                "{MARKER} {method} {path} user={}",
                user.as_deref().unwrap_or("-")
            );
            record
                .lock()
                .unwrap()
                .push((method, path, user, organization));
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (addr, seen)
}

// ---------------------------------------------------------------------------------------------
// nginx

/// The nginx configuration of the README's "Gateway mode" section, as written there.
fn readme_nginx_conf() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let start = readme
        .find("```nginx\n# arbiter-gateway-nginx.conf")
        .expect("the README has the nginx configuration of gateway mode");
    let block = &readme[start + "```nginx\n".len()..];
    let end = block.find("\n```").expect("end of the nginx block");
    block[..end + 1].to_owned()
}

/// Replaces `from` (which must occur exactly once) with `to`.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "the README's nginx configuration should hold `{from}` once"
    );
    text.replace(from, to)
}

/// Finds nginx on the PATH or where Debian puts it; fails loudly otherwise.
fn nginx_binary() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("nginx")).collect())
        .unwrap_or_default();
    candidates.extend(
        [
            "/usr/sbin/nginx",
            "/usr/local/sbin/nginx",
            "/usr/local/nginx/sbin/nginx",
        ]
        .map(PathBuf::from),
    );
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nginx is not installed, and the gateway test needs a real nginx: \
                 install it (`apt-get install -y nginx-light`; `.ci/run` does)"
            )
        })
}

/// A running nginx, killed (and waited for) when dropped.
struct Nginx {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Starts nginx as the current user with the README's configuration, written to a temporary
/// prefix (pid, logs and temporary files inside it), in front of `upstream` and asking `arbiter`.
/// `master_process off` keeps it one process, so that killing it stops everything.
#[allow(
    clippy::zombie_processes,
    reason = "the child is handed to `Nginx`, which kills and waits for it"
)]
fn start_nginx(upstream: SocketAddr, arbiter: &str) -> Nginx {
    let binary = nginx_binary();
    let dir = tempfile::tempdir().expect("nginx prefix");
    let addr = format!("127.0.0.1:{}", free_port());
    let arbiter = arbiter.trim_start_matches("http://").trim_end_matches('/');
    let conf = readme_nginx_conf();
    let conf = replace_once(&conf, "listen 127.0.0.1:8000;", &format!("listen {addr};"));
    let conf = replace_once(
        &conf,
        "proxy_pass http://127.0.0.1:9000;",
        &format!("proxy_pass http://{upstream};"),
    );
    let conf = replace_once(
        &conf,
        "proxy_pass http://127.0.0.1:8080/v1/gateway/authorize;",
        &format!("proxy_pass http://{arbiter}/v1/gateway/authorize;"),
    );
    let conf_path = dir.path().join("arbiter-gateway-nginx.conf");
    std::fs::write(&conf_path, conf).expect("write nginx.conf");
    let prefix = format!("{}/", dir.path().display());
    let mut child = Command::new(&binary)
        .args(["-p", &prefix, "-c"])
        .arg(&conf_path)
        .args(["-g", "master_process off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("stderr.log")).expect("stderr log"),
        ))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    // The one readiness loop of the suite: bounded retries of a TCP connect.
    for _ in 0..500 {
        if TcpStream::connect(&addr).is_ok() {
            return Nginx { child, addr, dir };
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "nginx exited ({status}) before listening:\n{}",
                nginx_logs(dir.path())
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "nginx did not listen on {addr}:\n{}",
        nginx_logs(dir.path())
    );
}

fn nginx_logs(dir: &Path) -> String {
    ["stderr.log", "error.log"]
        .iter()
        .map(|f| {
            format!(
                "--- {f}\n{}",
                std::fs::read_to_string(dir.join(f)).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn nginx_auth_request_lets_through_exactly_what_the_policy_allows() {
    let app = spawn_gateway().await;
    let w = world(&app).await;
    let (upstream, seen) = spawn_upstream();
    let nginx = start_nginx(upstream, &app.base);
    let addr = nginx.addr.clone();
    let call = move |method: &'static str, target: &'static str, key: Option<String>| {
        let addr = addr.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let auth = key.map(|k| format!("Bearer {k}"));
                let headers: Vec<(&str, &str)> =
                    auth.iter().map(|a| ("Authorization", a.as_str())).collect();
                let body = if method == "POST" { "{}" } else { "" };
                raw_request(&addr, method, target, &headers, body)
            })
            .await
            .unwrap()
        }
    };
    let reached = |a: &RawAnswer| a.body.contains(MARKER);
    let logs = || nginx_logs(nginx.dir.path());

    // Allowed: alice reads m1 (a binding on its project); the query string is ignored.
    let a = call("GET", "/models/m1?window=7d", Some(w.alice_key.clone())).await;
    assert_eq!(a.status, 200, "{}\n{}", a.body, logs());
    assert!(reached(&a), "{}", a.body);
    assert!(
        a.body.contains(&format!("user={}", w.alice)),
        "the upstream is told who calls: {}",
        a.body
    );
    // Forbidden: m2 is in another project; deleting m1 needs model:delete.
    let a = call("GET", "/models/m2", Some(w.alice_key.clone())).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(!reached(&a));
    let a = call("DELETE", "/models/m1", Some(w.alice_key.clone())).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(!reached(&a));
    // No key, or a key that is not one: 401.
    let a = call("GET", "/models/m1", None).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert!(!reached(&a));
    let a = call("GET", "/models/m1", Some("arb_not-a-key".to_owned())).await;
    assert_eq!(a.status, 401, "{}", a.body);
    // The query rule both ways: query:execute and raw_data:read pass, query:execute alone not.
    let a = call("POST", QUERY, Some(w.carol_key.clone())).await;
    assert_eq!(a.status, 200, "{}\n{}", a.body, logs());
    assert!(reached(&a), "{}", a.body);
    let a = call("POST", QUERY, Some(w.dave_key.clone())).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(!reached(&a));
    // A route not in the policy: refused, even for a valid key.
    let a = call("GET", "/internal/debug", Some(w.alice_key.clone())).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(!reached(&a));
    // `..` and encoded slashes: refused, even where the resolved path would be allowed.
    let a = call("GET", "/models/m2/../m1", Some(w.alice_key.clone())).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(!reached(&a));
    let a = call("GET", "/models/m1%2F..%2Fm2", Some(w.alice_key.clone())).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(!reached(&a));
    // An authenticated-only route.
    let a = call("GET", "/users/me", Some(w.dave_key.clone())).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(reached(&a));

    // Exactly the allowed requests reached the upstream, with the caller's identity.
    let seen = seen.lock().unwrap().clone();
    let paths: Vec<(&str, &str)> = seen
        .iter()
        .map(|(m, p, _, _)| (m.as_str(), p.as_str()))
        .collect();
    assert_eq!(
        paths,
        [
            ("GET", "/models/m1?window=7d"),
            ("POST", QUERY),
            ("GET", "/users/me")
        ]
    );
    assert!(
        seen.iter()
            .all(|(_, _, _, org)| org.as_deref() == Some(w.org.as_str())),
        "{seen:?}"
    );
    drop(nginx);
}

// ---------------------------------------------------------------------------------------------
// Traefik and Envoy, over HTTP directly.

async fn forward(
    app: &TestApp,
    method: &str,
    uri: &str,
    key: Option<&str>,
    org: Option<&str>,
) -> Answer {
    let mut headers = vec![("X-Forwarded-Method", method), ("X-Forwarded-Uri", uri)];
    if let Some(org) = org {
        headers.push(("X-Organization-Id", org));
    }
    app.call_with_headers(Method::GET, "/v1/gateway/authorize", key, &headers, None)
        .await
}

fn leaves(a: &Answer) -> Vec<(String, bool)> {
    let leaves = if a.status == StatusCode::OK {
        &a.body["leaves"]
    } else {
        &a.body["error"]["details"]["leaves"]
    };
    leaves
        .as_array()
        .unwrap_or_else(|| panic!("no leaves: {}", a.text))
        .iter()
        .map(|l| {
            (
                l["permission"].as_str().unwrap().to_owned(),
                l["allowed"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn header<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.headers.get(name).and_then(|v| v.to_str().ok())
}

async fn usage_totals(app: &TestApp, org: &str) -> (u64, u64) {
    let a = app.get("/v1/usage/hour", ADMIN_KEY, Some(org)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .fold((0, 0), |(x, y), i| {
            (
                x + i["allowed"].as_u64().unwrap(),
                y + i["denied"].as_u64().unwrap(),
            )
        })
}

#[tokio::test]
async fn traefik_forward_auth_headers_are_decided_by_the_policy() {
    let app = spawn_gateway().await;
    let w = world(&app).await;

    let a = forward(&app, "GET", "/models/m1", Some(&w.alice_key), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(header(&a, "x-arbiter-user"), Some(w.alice.as_str()));
    assert_eq!(header(&a, "x-arbiter-organization"), Some(w.org.as_str()));
    assert!(header(&a, "x-arbiter-key").is_some_and(|k| !k.is_empty()));
    assert_eq!(a.body["route"], "GET /models/{model_id}");
    assert_eq!(leaves(&a), [("model:read".to_owned(), true)]);

    let a = forward(&app, "GET", "/models/m2", Some(&w.alice_key), None).await;
    assert_error(&a, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(a.body["error"]["details"]["resource"], "model m2");
    assert_eq!(
        a.body["error"]["details"]["route"],
        "GET /models/{model_id}"
    );
    assert_eq!(leaves(&a), [("model:read".to_owned(), false)]);
    assert!(header(&a, "x-arbiter-user").is_none());

    // The compound rule, both ways, with the missing permissions named.
    let a = forward(&app, "POST", QUERY, Some(&w.carol_key), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(
        leaves(&a),
        [
            ("query:execute".to_owned(), true),
            ("raw_data:read".to_owned(), true),
            ("reference_data:read".to_owned(), false)
        ]
    );
    let a = forward(&app, "POST", QUERY, Some(&w.dave_key), None).await;
    assert_error(&a, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        a.body["error"]["details"]["requirement"],
        "query:execute & (raw_data:read | reference_data:read)"
    );
    assert_eq!(
        leaves(&a),
        [
            ("query:execute".to_owned(), true),
            ("raw_data:read".to_owned(), false),
            ("reference_data:read".to_owned(), false)
        ]
    );

    // 401 before anything else.
    let a = forward(&app, "GET", "/models/m1", None, None).await;
    assert_error(&a, StatusCode::UNAUTHORIZED, "unauthenticated");
    let a = forward(&app, "GET", "/not/in/policy", None, None).await;
    assert_error(&a, StatusCode::UNAUTHORIZED, "unauthenticated");

    // Not in the policy, malformed paths: 403 with the reason.
    let a = forward(&app, "GET", "/not/in/policy", Some(&w.alice_key), None).await;
    assert_error(&a, StatusCode::FORBIDDEN, "route_not_in_policy");
    let a = forward(&app, "PUT", "/models", Some(&w.alice_key), None).await;
    assert_error(&a, StatusCode::FORBIDDEN, "route_not_in_policy");
    for bad in [
        "/models/m2/../m1",
        "/models/%2e%2e/m1",
        "/models/m1%2Fx",
        "/models//m1",
        "/models/",
    ] {
        let a = forward(&app, "GET", bad, Some(&w.alice_key), None).await;
        assert_error(&a, StatusCode::FORBIDDEN, "malformed_path");
    }

    // The organization: the caller's only one, or the header; a platform administrator, in no
    // organization, must name one.
    let a = forward(&app, "GET", "/models/m1", Some(ADMIN_KEY), Some(&w.org)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(header(&a, "x-arbiter-organization"), Some(w.org.as_str()));
    let a = forward(&app, "GET", "/models/m1", Some(ADMIN_KEY), None).await;
    assert_error(&a, StatusCode::FORBIDDEN, "organization_required");
    let a = forward(
        &app,
        "GET",
        "/models/m1",
        Some(&w.alice_key),
        Some("org_elsewhere"),
    )
    .await;
    assert_error(&a, StatusCode::FORBIDDEN, "not_found");

    // nginx's headers work the same; without either pair the proxy is misconfigured.
    let a = app
        .call_with_headers(
            Method::POST,
            "/v1/gateway/authorize",
            Some(&w.alice_key),
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URI", "/models/m1"),
            ],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let a = app
        .call_with_headers(
            Method::GET,
            "/v1/gateway/authorize",
            Some(&w.alice_key),
            &[],
            None,
        )
        .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid_field");
    let a = app
        .call_with_headers(
            Method::GET,
            "/v1/gateway/authorize",
            Some(&w.alice_key),
            &[("X-Forwarded-Uri", "/models/m1")],
            None,
        )
        .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid_field");

    // Every permission decision was counted: 4 allowed, 2 denied (refusals before a decision
    // are not decisions).
    assert_eq!(usage_totals(&app, &w.org).await, (4, 2));
}

#[tokio::test]
async fn envoy_ext_authz_takes_the_original_method_and_path_from_the_request() {
    let app = spawn_gateway().await;
    let w = world(&app).await;
    let envoy = |method: Method, path: &str, key: &str| {
        let path = format!("/v1/gateway/envoy{path}");
        let key = key.to_owned();
        let app = &app;
        async move { app.call(method, &path, Some(&key), None, None).await }
    };

    let a = envoy(Method::GET, "/models/m1?x=1", &w.alice_key).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(header(&a, "x-arbiter-user"), Some(w.alice.as_str()));
    assert_eq!(header(&a, "x-arbiter-organization"), Some(w.org.as_str()));
    let a = envoy(Method::DELETE, "/models/m1", &w.alice_key).await;
    assert_error(&a, StatusCode::FORBIDDEN, "forbidden");
    let a = envoy(Method::POST, QUERY, &w.carol_key).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let a = envoy(Method::POST, QUERY, &w.dave_key).await;
    assert_error(&a, StatusCode::FORBIDDEN, "forbidden");
    let a = envoy(Method::PATCH, "/models/m1/pinned_columns", &w.carol_key).await;
    assert_error(&a, StatusCode::FORBIDDEN, "forbidden");
    let a = envoy(Method::GET, "/nowhere", &w.alice_key).await;
    assert_error(&a, StatusCode::FORBIDDEN, "route_not_in_policy");
    let a = envoy(Method::GET, "/models/m1%2F..%2Fm2", &w.alice_key).await;
    assert_error(&a, StatusCode::FORBIDDEN, "malformed_path");
    let a = app
        .call(Method::GET, "/v1/gateway/envoy/models/m1", None, None, None)
        .await;
    assert_error(&a, StatusCode::UNAUTHORIZED, "unauthenticated");

    // `..` as sent on the wire (an URL library would resolve it before sending).
    let base = app.base.trim_start_matches("http://").to_owned();
    let key = format!("Bearer {}", w.alice_key);
    let a = tokio::task::spawn_blocking(move || {
        raw_request(
            &base,
            "GET",
            "/v1/gateway/envoy/models/m2/../m1",
            &[("Authorization", key.as_str())],
            "",
        )
    })
    .await
    .unwrap();
    assert_eq!(a.status, 403, "{}", a.body);
    let body: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(body["error"]["code"], "malformed_path", "{}", a.body);
    assert!(a.header("x-arbiter-user").is_none());
}

#[tokio::test]
async fn without_a_policy_the_gateway_routes_answer_gateway_disabled() {
    let app = spawn_app().await;
    let a = app
        .call_with_headers(
            Method::GET,
            "/v1/gateway/authorize",
            Some(ADMIN_KEY),
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URI", "/models/m1"),
            ],
            None,
        )
        .await;
    assert_error(&a, StatusCode::NOT_FOUND, "gateway_disabled");
    let a = app
        .call(
            Method::POST,
            "/v1/gateway/envoy/models/m1",
            None,
            None,
            None,
        )
        .await;
    assert_error(&a, StatusCode::NOT_FOUND, "gateway_disabled");
    // Described all the same.
    let openapi = app
        .call(Method::GET, "/openapi.json", None, None, None)
        .await;
    for path in ["/v1/gateway/authorize", "/v1/gateway/envoy/{path}"] {
        assert!(
            openapi.body["paths"][path]["get"].is_object(),
            "openapi.json lacks {path}"
        );
    }
}

/// Runs `arbiter serve` on a policy that must stop it: answers the exit code and stderr, and
/// whether the store was created.
fn serve_refusing(policy: &str) -> (Option<i32>, String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, policy).unwrap();
    serve_refusing_file(&file)
}

fn serve_refusing_file(file: &Path) -> (Option<i32>, String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("arbiter.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(format!("sqlite://{}", db.display()))
        .env("ARBITER_GATEWAY_POLICY", file)
        .env("ARBITER_BOOTSTRAP_KEY", ADMIN_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A server that starts prints its address; one that refuses closes stdout and exits.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    if first.contains("listening") {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server started on the bad policy {}", file.display());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        db.exists(),
    )
}

#[test]
fn a_bad_policy_stops_the_start_with_the_problem_on_stderr() {
    for (policy, expected) in [
        (
            "routes:\n  GET /models/{model_id}: nosuch:read\n",
            "route `GET /models/{model_id}`: unknown permission `nosuch:read`",
        ),
        (
            "routes:\n  GET /models: model:fly\n",
            "unknown permission `model:fly`",
        ),
        (
            "routes:\n  GET /models: \"model:read & (model:write\"\n",
            "is not a valid requirement: expected `)` at character",
        ),
        (
            "routes:\n  GET /models: \"model:read model:write\"\n",
            "is not a valid requirement",
        ),
        (
            "routes:\n  GET /a/{x}/c: model:read\n  GET /a/b/{y}: model:write\n",
            "routes `GET /a/{x}/c` and `GET /a/b/{y}` overlap ambiguously",
        ),
        (
            "routes:\n  GET /m/{id}: model:read\n  GET /m/{model_id}: model:read\n",
            "is listed twice",
        ),
        ("routes: {}\n", "`routes` is empty"),
        ("routes:\n  GET /a: [\n", "the file is not a policy"),
    ] {
        let (code, stderr, created) = serve_refusing(policy);
        assert_eq!(code, Some(1), "{policy}\n{stderr}");
        assert!(
            stderr.contains("cannot load the gateway policy") && stderr.contains(expected),
            "stderr should name `{expected}`:\n{stderr}"
        );
        assert!(
            !created,
            "a bad policy stops the start before the store is opened"
        );
    }
    // Every problem is listed, not only the first.
    let (_, stderr, _) = serve_refusing(
        "routes:\n  GET /a: nosuch:read\n  GET /b: \"a:b &\"\n  FETCH /c: model:read\n",
    );
    assert!(stderr.contains("3 problems"), "{stderr}");
    // A missing file too.
    let (code, stderr, created) = serve_refusing_file(Path::new("/nonexistent/policy.yaml"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("`/nonexistent/policy.yaml`"), "{stderr}");
    assert!(!created);
}

#[tokio::test]
async fn the_check_api_takes_a_requirement_and_answers_every_leaf() {
    let app = spawn_gateway().await;
    let w = world(&app).await;
    let check = |subject: &str, requirement: &str, explain: bool| {
        json!({
            "subject": {"type": "user", "id": subject},
            "requirement": requirement,
            "resource": {"type": "model", "id": "m1"},
            "explain": explain,
        })
    };
    let rule = "query:execute & (raw_data:read | reference_data:read)";
    let a = app
        .post(
            "/v1/check",
            ADMIN_KEY,
            Some(&w.org),
            check("carol@acme.test", rule, false),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["allowed"], true);
    assert_eq!(
        a.body["leaves"],
        json!([
            {"permission": "query:execute", "allowed": true},
            {"permission": "raw_data:read", "allowed": true},
            {"permission": "reference_data:read", "allowed": false},
        ])
    );
    let a = app
        .post(
            "/v1/check",
            ADMIN_KEY,
            Some(&w.org),
            check("dave@acme.test", rule, true),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["allowed"], false);
    let message = a.body["reason"]["message"].as_str().unwrap();
    assert!(
        message.contains("`raw_data:read`") && message.contains("`reference_data:read`"),
        "{message}"
    );
    assert!(
        a.body["leaves"][1]["reason"]["message"].is_string(),
        "{}",
        a.text
    );
    // One's own check needs no check:execute; `&` binds tighter than `|`.
    let a = app
        .post(
            "/v1/check",
            &w.dave_key,
            None,
            json!({"requirement": "model:delete | query:execute & raw_data:read | query:execute", "resource": {"type": "model", "id": "m1"}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["allowed"], true, "{}", a.text);
    // A plain permission answers as before, without leaves.
    let a = app
        .post(
            "/v1/check",
            &w.dave_key,
            None,
            json!({"permission": "query:execute", "resource": {"type": "model", "id": "m1"}}),
        )
        .await;
    assert_eq!(a.body["allowed"], true, "{}", a.text);
    assert!(a.body.get("leaves").is_none(), "{}", a.text);
    // Refusals.
    for (body, code) in [
        (
            json!({"requirement": "query:execute &", "resource": {"type": "model", "id": "m1"}}),
            "invalid_requirement",
        ),
        (
            json!({"requirement": "query:execute & nosuch:read", "resource": {"type": "model", "id": "m1"}}),
            "unknown_permission",
        ),
        (
            json!({"requirement": "query:execute", "permission": "query:execute", "resource": {"type": "model", "id": "m1"}}),
            "invalid_body",
        ),
        (
            json!({"resource": {"type": "model", "id": "m1"}}),
            "invalid_body",
        ),
    ] {
        let a = app.post("/v1/check", &w.dave_key, None, body).await;
        assert_error(&a, StatusCode::BAD_REQUEST, code);
    }
    // In a batch, item by item.
    let a = app
        .post(
            "/v1/check/batch",
            ADMIN_KEY,
            Some(&w.org),
            json!({"checks": [check("carol@acme.test", rule, false), check("dave@acme.test", rule, false), check("dave@acme.test", "(", false)]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["results"][0]["allowed"], true);
    assert_eq!(a.body["results"][1]["allowed"], false);
    assert_eq!(a.body["results"][1]["leaves"][1]["allowed"], false);
    assert_eq!(a.body["results"][2]["error"]["code"], "invalid_requirement");
}

#[tokio::test]
async fn the_command_line_decides_a_route_offline() {
    let app = spawn_gateway().await;
    let w = world(&app).await;
    let policy = policy_path();
    let run = |user: &str, route: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_arbiter"))
            .args([
                "check",
                "--database-url",
                &app.database_url,
                "--organization",
                &w.org,
            ])
            .args(["--user", user, "--route", route, "--gateway-policy"])
            .arg(&policy)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let d = run("alice@acme.test", "GET /models/m1");
    assert_eq!(d["allowed"], true, "{d}");
    assert_eq!(d["route"], "GET /models/{model_id}");
    assert_eq!(d["resource"], json!({"type": "model", "id": "m1"}));
    assert_eq!(run("alice@acme.test", "GET /models/m2")["allowed"], false);
    let d = run("dave@acme.test", &format!("POST {QUERY}"));
    assert_eq!(d["allowed"], false, "{d}");
    assert_eq!(
        d["leaves"][0],
        json!({"permission": "query:execute", "allowed": true})
    );
    assert_eq!(d["leaves"][1]["allowed"], false);
    assert_eq!(
        run("carol@acme.test", &format!("POST {QUERY}"))["allowed"],
        true
    );
    let d = run("alice@acme.test", "GET /nowhere");
    assert_eq!(d["allowed"], false);
    assert!(d["route"].is_null(), "{d}");
    // Bad usage: a route that is not `METHOD /path`, or no policy.
    let out = Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args([
            "check",
            "--database-url",
            &app.database_url,
            "--organization",
            &w.org,
        ])
        .args([
            "--user",
            "alice@acme.test",
            "--route",
            "/models/m1",
            "--gateway-policy",
        ])
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args([
            "check",
            "--database-url",
            &app.database_url,
            "--organization",
            &w.org,
        ])
        .args(["--user", "alice@acme.test", "--route", "GET /models/m1"])
        .env_remove("ARBITER_GATEWAY_POLICY")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
