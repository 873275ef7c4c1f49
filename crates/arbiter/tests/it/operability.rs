//! Operability: the audit log and its hash chain (`arbiter audit verify`), Prometheus metrics,
//! request ids in structured logs, TLS, layered configuration, the decision log and the request
//! limits (rate, concurrency, timeout).

use std::process::{Command, Output};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

/// Runs the `arbiter` binary with arguments and extra environment variables.
fn arbiter(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_arbiter"));
    command.args(args).env("ARBITER_LOG", "warn");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run arbiter")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The value of one series (`name{labels}` exactly as exposed) in a Prometheus text page.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    })
}

async fn metrics(app: &TestApp) -> String {
    let a = app.call(Method::GET, "/metrics", None, None, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    a.text
}

/// The audit events of `org` (all of them: the tests write fewer than a page).
async fn audit(app: &TestApp, org: &str, query: &str) -> (u64, Vec<Value>) {
    let a = app
        .get(
            &format!("/v1/audit-events?limit=1000{query}"),
            ADMIN_KEY,
            Some(org),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let items = a.body["items"].as_array().cloned().unwrap_or_default();
    (a.body["total"].as_u64().expect("total"), items)
}

/// Every write adds audit records (the newest names what it did); a refused write adds none and
/// commits nothing.
#[tokio::test]
async fn every_kind_of_write_is_audited_and_a_failed_one_is_not() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let o = Some(org.as_str());
    let (mut total, _) = audit(&app, &org, "").await;

    // Each write: the answer's status, and the action and object the newest record must name.
    macro_rules! write {
        ($answer:expr, $status:expr, $action:expr) => {{
            let a = $answer;
            assert_eq!(a.status, $status, "{}", a.text);
            let (now, items) = audit(&app, &org, "").await;
            assert!(now > total, "`{}` wrote no audit record", $action);
            let newest = items.last().expect("a record");
            assert_eq!(newest["action"], $action, "{newest}");
            assert_eq!(newest["organization_id"], org.as_str(), "{newest}");
            assert!(
                newest["hash"].as_str().is_some_and(|h| h.len() == 64),
                "{newest}"
            );
            total = now;
            a
        }};
    }
    let space = id_of(&write!(
        app.post("/v1/spaces", ADMIN_KEY, o, json!({"name": "Research"}))
            .await,
        StatusCode::CREATED,
        "space.create"
    ));
    write!(
        app.patch(
            &format!("/v1/spaces/{space}"),
            ADMIN_KEY,
            o,
            json!({"name": "Lab"})
        )
        .await,
        StatusCode::OK,
        "space.update"
    );
    let project = id_of(&write!(
        app.post(
            "/v1/projects",
            ADMIN_KEY,
            o,
            json!({"name": "Vision", "space_id": space})
        )
        .await,
        StatusCode::CREATED,
        "project.create"
    ));
    let alice = id_of(&write!(
        app.post(
            "/v1/users",
            ADMIN_KEY,
            o,
            json!({"email": "alice@acme.test"})
        )
        .await,
        StatusCode::CREATED,
        "user.create"
    ));
    let group = id_of(&write!(
        app.post("/v1/groups", ADMIN_KEY, o, json!({"name": "readers"}))
            .await,
        StatusCode::CREATED,
        "group.create"
    ));
    write!(
        app.put(
            &format!("/v1/groups/{group}/members/{alice}"),
            ADMIN_KEY,
            o,
            json!({})
        )
        .await,
        StatusCode::OK,
        "group.add_member"
    );
    let role = id_of(&write!(
        app.post(
            "/v1/roles",
            ADMIN_KEY,
            o,
            json!({"name": "model-reader", "permissions": ["model:read"]})
        )
        .await,
        StatusCode::CREATED,
        "role.create"
    ));
    write!(
        app.patch(
            &format!("/v1/roles/{role}"),
            ADMIN_KEY,
            o,
            json!({"permissions": ["model:read", "dataset:read"]})
        )
        .await,
        StatusCode::OK,
        "role.update"
    );
    let binding = id_of(&write!(
        app.post(
            "/v1/role-bindings",
            ADMIN_KEY,
            o,
            json!({"role_id": role, "user_id": alice, "resource_type": "PROJECT", "resource_id": project})
        )
        .await,
        StatusCode::CREATED,
        "role_binding.create"
    ));
    write!(
        app.put(
            "/v1/resources/model/m1",
            ADMIN_KEY,
            o,
            json!({"project_id": project, "owner_id": alice})
        )
        .await,
        StatusCode::CREATED,
        "resource.create"
    );
    let key = write!(
        app.post(
            "/v1/api-keys",
            ADMIN_KEY,
            o,
            json!({"name": "alice", "user_id": alice})
        )
        .await,
        StatusCode::CREATED,
        "api_key.create"
    );
    let alice_key = key.body["key"].as_str().expect("key").to_owned();
    let alice_key_id = id_of(&key);
    write!(
        app.delete(&format!("/v1/role-bindings/{binding}"), ADMIN_KEY, o)
            .await,
        StatusCode::NO_CONTENT,
        "role_binding.delete"
    );
    write!(
        app.delete("/v1/resources/model/m1", ADMIN_KEY, o).await,
        StatusCode::NO_CONTENT,
        "resource.delete"
    );
    // A self-service write, by Alice's key.
    write!(
        app.patch("/v1/users/me", &alice_key, o, json!({"name": "Alice"}))
            .await,
        StatusCode::OK,
        "user.update"
    );

    // Refused writes: a taken name, an invalid body, a forbidden write, a missing object.
    let revisions = Revisions::new(&app).await;
    let taken = app
        .post("/v1/spaces", ADMIN_KEY, o, json!({"name": "Lab"}))
        .await;
    assert_error(&taken, StatusCode::CONFLICT, "already_exists");
    let invalid = app
        .post(
            "/v1/roles",
            ADMIN_KEY,
            o,
            json!({"name": "bad", "permissions": ["no_such_type:read"]}),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST, "{}", invalid.text);
    let forbidden = app
        .post("/v1/spaces", &alice_key, o, json!({"name": "Mine"}))
        .await;
    assert_error(&forbidden, StatusCode::FORBIDDEN, "forbidden");
    let missing = app.delete("/v1/roles/role_nope", ADMIN_KEY, o).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");
    revisions.unchanged(&app).await;
    assert_eq!(
        audit(&app, &org, "").await.0,
        total,
        "a refused write was audited"
    );

    // The filters: actor (user or key), object, action.
    let (by_key, items) = audit(&app, &org, &format!("&actor_key_id={alice_key_id}")).await;
    assert_eq!(by_key, 1, "{items:?}");
    assert_eq!(items[0]["action"], "user.update");
    let (by_admin_key, _) = audit(&app, &org, "&actor_key_id=key_bootstrap").await;
    assert_eq!(by_admin_key, total - 1);
    let (by_user, _) = audit(&app, &org, &format!("&actor_user_id={alice}")).await;
    assert_eq!(by_user, 1);
    let (by_object, _) = audit(&app, &org, &format!("&object_id={role}")).await;
    assert_eq!(by_object, 2);
    let (by_action, _) = audit(&app, &org, "&action=role_binding.delete").await;
    assert_eq!(by_action, 1);
    let page = app
        .get("/v1/audit-events?offset=2&limit=3", ADMIN_KEY, o)
        .await;
    assert_eq!(page.body["total"], total, "{}", page.text);
    assert_eq!(page.body["items"].as_array().map(Vec::len), Some(3));
}

/// `arbiter audit verify` passes an untouched chain, and names the first record that fails
/// after a row is edited, re-hashed to hide the edit, or removed from the end.
#[tokio::test]
async fn the_hash_chain_verifies_and_audit_verify_names_an_edited_record() {
    use sqlx::{Connection, Row};

    // SQLite's own: the test edits the database file by hand.
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("arbiter.db").display());
    let app = spawn_app_on(url, dir, &[]).await;
    let org = app.create_org("Acme").await;
    for n in 0..4 {
        app.create_user(&org, &format!("u{n}@acme.test")).await;
    }
    let url = app.database_url.clone();
    let mut db = sqlx::SqliteConnection::connect(&url).await.expect("open");
    let ids: Vec<String> = sqlx::query("SELECT id FROM audit_events ORDER BY seq")
        .fetch_all(&mut db)
        .await
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(ids.len() >= 6, "{ids:?}");

    let ok = arbiter(&["audit", "verify", "--database-url", &url], &[]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(
        stdout(&ok).contains(&format!("{} records verified", ids.len())),
        "{}",
        stdout(&ok)
    );

    // Each record links to the one before it, as the API shows them.
    let (_, items) = audit(&app, &org, "").await;
    for pair in items.windows(2) {
        if pair[1]["revision"].as_str() == pair[0]["revision"].as_str() {
            assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
        }
    }

    // An edited field.
    let victim = ids[2].clone();
    sqlx::query("UPDATE audit_events SET action = 'user.delete' WHERE id = ?")
        .bind(&victim)
        .execute(&mut db)
        .await
        .expect("edit");
    let edited = arbiter(&["audit", "verify", "--database-url", &url], &[]);
    assert_eq!(edited.status.code(), Some(1), "{}", stdout(&edited));
    let message = stderr(&edited);
    assert!(message.contains(&victim), "{message}");
    assert!(message.contains("edited"), "{message}");

    // The same edit with the record's hash recomputed: the next record's link gives it away.
    let row = sqlx::query(&format!(
        "SELECT seq, id, revision, at, organization_id, actor_user_id, actor_key_id, action, \
         object_kind, object_id, before, after, request_id, prev_hash, hash FROM audit_events WHERE id = '{victim}'"
    ))
    .fetch_one(&mut db)
    .await
    .expect("row");
    let record = arbiter_store::ChainRecord {
        seq: row.get(0),
        id: row.get(1),
        revision: row.get(2),
        at: row.get(3),
        organization_id: row.get(4),
        actor_user_id: row.get(5),
        actor_key_id: row.get(6),
        action: row.get(7),
        object_kind: row.get(8),
        object_id: row.get(9),
        before: row.get(10),
        after: row.get(11),
        request_id: row.get(12),
        prev_hash: row.get(13),
        hash: row.get(14),
    };
    let rehashed = record.compute_hash(record.prev_hash.as_deref().expect("chained"));
    sqlx::query("UPDATE audit_events SET hash = ? WHERE id = ?")
        .bind(&rehashed)
        .bind(&victim)
        .execute(&mut db)
        .await
        .expect("rehash");
    let hidden = arbiter(&["audit", "verify", "--database-url", &url], &[]);
    assert_eq!(hidden.status.code(), Some(1), "{}", stdout(&hidden));
    let message = stderr(&hidden);
    assert!(
        message.contains(&ids[3]),
        "names the next record: {message}"
    );
    assert!(message.contains("prev_hash"), "{message}");

    // Put the record back as it was: the chain verifies again.
    sqlx::query("UPDATE audit_events SET action = ?, hash = ? WHERE id = ?")
        .bind("user.create")
        .bind(record.hash.as_deref())
        .bind(&victim)
        .execute(&mut db)
        .await
        .expect("restore");
    let restored = arbiter(&["audit", "verify", "--database-url", &url], &[]);
    assert!(restored.status.success(), "{}", stderr(&restored));

    // The newest record removed: the audit head gives it away.
    let last = ids.last().expect("a record").clone();
    sqlx::query("DELETE FROM audit_events WHERE id = ?")
        .bind(&last)
        .execute(&mut db)
        .await
        .expect("delete");
    let truncated = arbiter(&["audit", "verify", "--database-url", &url], &[]);
    assert_eq!(truncated.status.code(), Some(1), "{}", stdout(&truncated));
    assert!(
        stderr(&truncated).contains("removed from the end"),
        "{}",
        stderr(&truncated)
    );
}

/// With two replicas writing to one PostgreSQL database at once, the chain stays linear.
#[tokio::test]
async fn on_postgres_concurrent_writers_keep_one_chain() {
    let Some(pg) = postgres_database().await else {
        return;
    };
    let a = spawn_app_on(pg.url.clone(), tempfile::tempdir().expect("dir"), &[]).await;
    let b = spawn_app_on(pg.url.clone(), tempfile::tempdir().expect("dir"), &[]).await;
    let org = a.create_org("Acme").await;
    // Replica B answers once it has the organization.
    let created = a.head_revision().await.to_string();
    let write = |app: &TestApp, n: usize| {
        let body = json!({"email": format!("u{n}@acme.test")});
        let org = org.clone();
        let client = app.client.clone();
        let url = format!("{}/v1/users", app.base);
        let created = created.clone();
        async move {
            let r = client
                .post(url)
                .bearer_auth(ADMIN_KEY)
                .header("X-Organization-Id", org)
                .header("X-Arbiter-Min-Revision", created)
                .json(&body)
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), StatusCode::CREATED);
        }
    };
    let mut tasks = Vec::new();
    for n in 0..12 {
        let app = if n % 2 == 0 { &a } else { &b };
        tasks.push(tokio::spawn(write(app, n)));
    }
    for t in tasks {
        t.await.expect("write");
    }
    let (total, _) = audit(&a, &org, "").await;
    assert_eq!(total, 12 + 1, "the users and the organization");
    let ok = arbiter(&["audit", "verify", "--database-url", &pg.url], &[]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("records verified"), "{}", stdout(&ok));
}

/// `/metrics` exposes requests by route template and status, decisions, latencies, store calls,
/// the revision and the index size, and they move.
#[tokio::test]
async fn metrics_are_exposed_and_move() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let role = app.custom_role(&org, "reader", json!(["model:read"])).await;
    let before = metrics(&app).await;
    let route =
        "arbiter_http_requests_total{method=\"GET\",route=\"/v1/roles/{id}\",status=\"200\"}";
    let allowed = "arbiter_decisions_total{api=\"check\",decision=\"allowed\"}";
    let denied = "arbiter_decisions_total{api=\"check\",decision=\"denied\"}";
    let latency = "arbiter_decision_duration_seconds_count{api=\"check\"}";
    let batch_allowed = "arbiter_decisions_total{api=\"batch\",decision=\"allowed\"}";
    let batch_denied = "arbiter_decisions_total{api=\"batch\",decision=\"denied\"}";
    let batch_latency = "arbiter_decision_duration_seconds_count{api=\"batch\"}";
    let commits = "arbiter_store_duration_seconds_count{operation=\"commit\"}";

    let got = app
        .get(&format!("/v1/roles/{role}"), ADMIN_KEY, Some(&org))
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    let alice = app.create_user(&org, "alice@acme.test").await;
    assert!(
        app.allowed(&org, "admin@localhost", "model:read", "model", "m1")
            .await
    );
    assert!(
        !app.allowed(&org, &alice, "model:write", "model", "m1")
            .await
    );

    // A batch counts each decision it makes, and not the item it could not read.
    let check = |subject: &str, permission: &str| {
        json!({"subject": {"type": "user", "id": subject}, "permission": permission,
               "resource": {"type": "model", "id": "m1"}})
    };
    let batch = app
        .post(
            "/v1/check/batch",
            ADMIN_KEY,
            Some(&org),
            json!({"checks": [
                check("admin@localhost", "model:read"),
                check("admin@localhost", "model:write"),
                check(&alice, "model:write"),
                {"permission": "model:read"},
            ]}),
        )
        .await;
    assert_eq!(batch.status, StatusCode::OK, "{}", batch.text);

    let after = metrics(&app).await;
    let moved = |series: &str| {
        sample(&after, series).unwrap_or(0.0) - sample(&before, series).unwrap_or(0.0)
    };
    assert_eq!(moved(route), 1.0, "{after}");
    assert_eq!(moved(allowed), 1.0, "{after}");
    assert_eq!(moved(denied), 1.0, "{after}");
    assert_eq!(moved(latency), 2.0, "{after}");
    assert_eq!(moved(batch_allowed), 2.0, "{after}");
    assert_eq!(moved(batch_denied), 1.0, "{after}");
    assert_eq!(moved(batch_latency), 3.0, "{after}");
    assert_eq!(moved(commits), 1.0, "{after}");
    // Routes are templates: no object id ever becomes a label.
    assert!(!after.contains(&role), "{after}");
    assert_eq!(
        sample(&after, "arbiter_revision"),
        Some(app.head_revision().await as f64)
    );
    assert_eq!(sample(&after, "arbiter_revision_lag"), Some(0.0));
    assert_eq!(
        sample(&after, "arbiter_index_objects{kind=\"organization\"}"),
        Some(1.0)
    );
    assert!(after.contains("# TYPE arbiter_http_request_duration_seconds histogram"));
    assert!(after.contains("# TYPE arbiter_store_duration_seconds histogram"));
    // A path no route matches is counted as `unmatched`.
    let nowhere = app.get("/v1/nowhere/123", ADMIN_KEY, None).await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    let last = metrics(&app).await;
    assert!(
        sample(
            &last,
            "arbiter_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{last}"
    );
    // A method the route does not answer is counted under the route it was sent to.
    let wrong_method = app.delete("/v1/check", ADMIN_KEY, Some(&org)).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    let wrong_method_series =
        "arbiter_http_requests_total{method=\"DELETE\",route=\"/v1/check\",status=\"405\"}";
    let page = metrics(&app).await;
    assert_eq!(sample(&page, wrong_method_series), Some(1.0), "{page}");
}

/// `--log-format json`: every log line of a request is in its span, which carries the request
/// id (sent, or generated).
#[tokio::test]
async fn json_logs_carry_the_request_id_on_every_line_of_a_request() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("arbiter.db").display());
    let app = spawn_app_on(
        url,
        dir,
        &[
            ("ARBITER_LOG_FORMAT", "json"),
            ("ARBITER_LOG", "info,tower_http=debug"),
        ],
    )
    .await;
    let a = app
        .call_with_headers(
            Method::GET,
            "/v1/users/me",
            Some(ADMIN_KEY),
            &[("x-request-id", "op-test-42")],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["x-request-id"], "op-test-42");
    let generated = app.get("/v1/organizations", ADMIN_KEY, None).await;
    let generated_id = generated.headers["x-request-id"]
        .to_str()
        .expect("id")
        .to_owned();
    // No route matched, and a route's method not allowed: each has its span, with its route.
    let unmatched = app
        .call_with_headers(
            Method::GET,
            "/v1/no-such-thing",
            Some(ADMIN_KEY),
            &[("x-request-id", "op-test-unmatched")],
            None,
        )
        .await;
    assert_eq!(unmatched.status, StatusCode::NOT_FOUND);
    let not_allowed = app
        .call_with_headers(
            Method::DELETE,
            "/v1/check",
            Some(ADMIN_KEY),
            &[("x-request-id", "op-test-405")],
            None,
        )
        .await;
    assert_eq!(not_allowed.status, StatusCode::METHOD_NOT_ALLOWED);

    let log = std::fs::read_to_string(app.path().join("server.log")).expect("log");
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let of = |id: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| l["span"]["request_id"] == id)
            .collect()
    };
    let mine = of("op-test-42");
    assert!(mine.len() >= 2, "started and finished: {log}");
    for line in &mine {
        assert_eq!(line["span"]["name"], "request", "{line}");
        assert_eq!(line["span"]["route"], "/v1/users/me", "{line}");
    }
    assert!(!of(&generated_id).is_empty(), "{log}");
    for (id, route) in [
        ("op-test-unmatched", "unmatched"),
        ("op-test-405", "/v1/check"),
    ] {
        let lines = of(id);
        assert!(lines.len() >= 2, "started and finished of {id}: {log}");
        for line in lines {
            assert_eq!(line["span"]["route"], route, "{line}");
            assert_eq!(
                line["span"]["method"],
                if id == "op-test-405" { "DELETE" } else { "GET" }
            );
        }
    }
    // No line of a request is written outside its span.
    for line in &lines {
        if line["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("tower_http::trace"))
        {
            assert!(
                line["span"]["request_id"]
                    .as_str()
                    .is_some_and(|id| !id.is_empty()),
                "{line}"
            );
        }
    }
}

/// The text log (the default format): a request's lines carry its span as the README shows it,
/// the client's request id quoted, the server's own labels as they are.
#[tokio::test]
async fn text_logs_carry_the_span_of_a_request() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("arbiter.db").display());
    let app = spawn_app_on(url, dir, &[("ARBITER_LOG", "info,tower_http=debug")]).await;
    let a = app
        .call_with_headers(
            Method::GET,
            "/v1/users/me",
            Some(ADMIN_KEY),
            &[("x-request-id", "op \"text\" 7")],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let log = std::fs::read_to_string(app.path().join("server.log")).expect("log");
    let span = r#"request{request_id="op \"text\" 7" method=GET route=/v1/users/me}"#;
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(span)).collect();
    assert!(lines.len() >= 2, "started and finished, in the span: {log}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("finished processing request")),
        "{log}"
    );
}

/// `--tls-cert` and `--tls-key`: HTTPS with a certificate made here, trusted by the client;
/// plain HTTP is not served; SIGTERM still stops the server cleanly.
#[tokio::test]
async fn tls_serves_https_with_a_generated_certificate() {
    let dir = tempfile::tempdir().expect("dir");
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key_pair.serialize_pem()).expect("write key");
    let url = format!("sqlite://{}", dir.path().join("arbiter.db").display());
    let (cert_arg, key_arg) = (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    );
    let mut app = spawn_app_on(
        url,
        dir,
        &[
            ("ARBITER_TLS_CERT", &cert_arg),
            ("ARBITER_TLS_KEY", &key_arg),
        ],
    )
    .await;
    assert!(app.base.starts_with("https://"), "{}", app.base);

    // A client that does not trust the certificate is refused.
    let untrusting = reqwest::Client::builder()
        .use_rustls_tls()
        .build()
        .expect("client");
    assert!(untrusting
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .is_err());
    // Plain HTTP on the same port gets no HTTP answer.
    let plain = app.base.replacen("https://", "http://", 1);
    let answer = reqwest::Client::new()
        .get(format!("{plain}/healthz"))
        .send()
        .await;
    assert!(
        answer.is_err() || answer.is_ok_and(|r| r.status() != StatusCode::OK),
        "plain HTTP was served"
    );

    app.client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes()).expect("pem"))
        .build()
        .expect("client");
    let health = app.call(Method::GET, "/healthz", None, None, None).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text);
    let org = app.create_org("Acme").await;
    assert!(
        app.allowed(&org, "admin@localhost", "model:read", "model", "m1")
            .await
    );
    assert!(app.terminate().success());
}

/// A burst above a small per-key rate limit is answered 429 with `Retry-After`; other keys,
/// unauthenticated requests and the operational routes are not limited.
#[tokio::test]
async fn a_burst_above_the_rate_limit_is_refused_with_429() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("arbiter.db").display());
    let app = spawn_app_on(
        url,
        dir,
        &[
            ("ARBITER_RATE_LIMIT_PER_SECOND", "1"),
            ("ARBITER_RATE_LIMIT_BURST", "4"),
        ],
    )
    .await;
    // Three of the administrator's four tokens.
    let org = app.create_org("Acme").await;
    let (_, alice_key) = app.member_with_key(&org, "alice@acme.test").await;

    let mut limited = Vec::new();
    let mut ok = 0;
    for _ in 0..20 {
        let a = app.get("/v1/users/me", &alice_key, None).await;
        match a.status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => limited.push(a),
            other => panic!("unexpected {other}: {}", a.text),
        }
    }
    assert!(ok >= 4, "the burst is allowed: {ok}");
    assert!(!limited.is_empty(), "20 requests at 1/s with a burst of 4");
    let first = &limited[0];
    assert_error(first, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry_after: u64 = first.headers["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!(retry_after >= 1);
    assert_eq!(
        first.body["error"]["details"]["retry_after_seconds"],
        retry_after
    );
    // The administrator's key has a bucket of its own, with a token left.
    let admin = app.get("/v1/users/me", ADMIN_KEY, None).await;
    assert_eq!(admin.status, StatusCode::OK, "{}", admin.text);
    // Refusals of a bad key stay 401; probes are never limited.
    let bad = app.get("/v1/users/me", "arb_nope", None).await;
    assert_error(&bad, StatusCode::UNAUTHORIZED, "unauthenticated");
    for _ in 0..10 {
        let h = app.call(Method::GET, "/healthz", None, None, None).await;
        assert_eq!(h.status, StatusCode::OK);
    }
    // A path no route matches is limited too: the key stays over its rate there (a token
    // comes back each second, so of five quick requests at least one is refused).
    let mut unmatched_limited = 0;
    for _ in 0..5 {
        let a = app.get("/v1/nowhere", &alice_key, None).await;
        match a.status {
            StatusCode::NOT_FOUND => {}
            StatusCode::TOO_MANY_REQUESTS => unmatched_limited += 1,
            other => panic!("unexpected {other}: {}", a.text),
        }
    }
    assert!(
        unmatched_limited >= 1,
        "an unknown path is rate limited too"
    );
    let page = metrics(&app).await;
    assert_eq!(
        sample(
            &page,
            "arbiter_limited_requests_total{limit=\"rate_limited\"}"
        ),
        Some((limited.len() + unmatched_limited) as f64)
    );
    // Refusals are counted by the route they were refused on.
    assert_eq!(
        sample(
            &page,
            "arbiter_http_requests_total{method=\"GET\",route=\"/v1/users/me\",status=\"429\"}"
        ),
        Some(limited.len() as f64)
    );
    assert_eq!(
        sample(
            &page,
            "arbiter_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"429\"}"
        ),
        Some(unmatched_limited as f64)
    );
}

/// A request past `--request-timeout-ms` answers 503 `request_timeout`.
#[tokio::test]
async fn a_request_past_the_timeout_answers_503() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("arbiter.db").display());
    let app = spawn_app_on(
        url,
        dir,
        &[
            ("ARBITER_REQUEST_TIMEOUT_MS", "300"),
            ("ARBITER_REVISION_WAIT_MS", "600000"),
        ],
    )
    .await;
    let org = app.create_org("Acme").await;
    // A revision that will not come: the check waits, far longer than the timeout.
    let far = (app.head_revision().await + 1000).to_string();
    let a = app
        .post(
            "/v1/check",
            ADMIN_KEY,
            Some(&org),
            json!({"permission": "organization:read",
                   "resource": {"type": "organization", "id": org},
                   "at_least_revision": far}),
        )
        .await;
    assert_error(&a, StatusCode::SERVICE_UNAVAILABLE, "request_timeout");
    assert_eq!(a.body["error"]["details"]["timeout_ms"], 300);
    let page = metrics(&app).await;
    assert_eq!(
        sample(&page, "arbiter_limited_requests_total{limit=\"timeout\"}"),
        Some(1.0)
    );
}

/// With `--max-concurrency 1`, a second request while one is in flight is refused at once with
/// 503 `overloaded`; once the first finishes, requests are served again.
#[tokio::test]
async fn requests_past_the_concurrency_limit_are_shed_with_503() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("arbiter.db").display());
    let app = spawn_app_on(
        url.clone(),
        dir,
        &[
            ("ARBITER_MAX_CONCURRENCY", "1"),
            ("ARBITER_REVISION_WAIT_MS", "600000"),
            ("ARBITER_POLL_INTERVAL_MS", "20"),
        ],
    )
    .await;
    let org = app.create_org("Acme").await;
    let next = (app.head_revision().await + 1).to_string();

    // The first request waits, holding the only permit, for a revision not yet written.
    let held = {
        let client = app.client.clone();
        let url = format!("{}/v1/check", app.base);
        let body = json!({"permission": "organization:read",
                          "resource": {"type": "organization", "id": org},
                          "at_least_revision": next});
        let org = org.clone();
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(ADMIN_KEY)
                .header("X-Organization-Id", org)
                .json(&body)
                .send()
                .await
                .expect("send")
        })
    };
    // `/metrics` is exempt from the limit: it tells when the permit is taken.
    let mut taken = false;
    for _ in 0..100_000 {
        if sample(&metrics(&app).await, "arbiter_http_requests_in_flight") == Some(1.0) {
            taken = true;
            break;
        }
    }
    assert!(taken, "the first request never got in");
    let shed = app.get("/v1/users/me", ADMIN_KEY, None).await;
    assert_error(&shed, StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    assert!(shed.headers.contains_key("retry-after"));
    assert_eq!(shed.body["error"]["details"]["max_concurrency"], 1);

    // Another process writes the revision the first request waits for.
    let bundle = app.path().join("more.yaml");
    std::fs::write(&bundle, "organizations:\n  - id: more\n    name: More\n").expect("bundle");
    let imported = arbiter(
        &[
            "import",
            &bundle.display().to_string(),
            "--database-url",
            &url,
        ],
        &[],
    );
    assert!(imported.status.success(), "{}", stderr(&imported));
    let first = held.await.expect("first");
    assert_eq!(first.status(), StatusCode::OK);
    let served = app.get("/v1/users/me", ADMIN_KEY, None).await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.text);
}

/// `arbiter serve --print-config`: defaults, then the file, then `ARBITER_*`, then flags; secrets
/// hidden; an invalid value is a usage error.
#[tokio::test]
async fn print_config_shows_each_layer_in_its_precedence() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("arbiter.yaml");
    std::fs::write(
        &file,
        "# A configuration file.\n\
         database_url: postgres://arbiter:s3cret-pw@db.internal:5432/arbiter\n\
         max_concurrency: 7\n\
         request_timeout_ms: 1500\n\
         rate_limit_per_second: 5\n\
         rate_limit_burst: 9\n\
         decision_log_sample: 0.25\n",
    )
    .expect("config");
    let file_arg = file.display().to_string();
    let o = arbiter(
        &[
            "serve",
            "--config",
            &file_arg,
            "--rate-limit-per-second",
            "8",
            "--print-config",
        ],
        &[
            ("ARBITER_REQUEST_TIMEOUT_MS", "2500"),
            ("ARBITER_RATE_LIMIT_PER_SECOND", "6"),
            ("ARBITER_BOOTSTRAP_KEY", ADMIN_KEY),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let printed: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
    let get = |k: &str| printed[k].clone();
    assert_eq!(
        get("max_concurrency"),
        serde_yaml::Value::from(7),
        "file: {text}"
    );
    assert_eq!(
        get("request_timeout_ms"),
        serde_yaml::Value::from(2500),
        "env over file: {text}"
    );
    assert_eq!(
        get("rate_limit_per_second"),
        serde_yaml::Value::from(8.0),
        "flag over env: {text}"
    );
    assert_eq!(
        get("rate_limit_burst"),
        serde_yaml::Value::from(9),
        "{text}"
    );
    assert_eq!(
        get("decision_log_sample"),
        serde_yaml::Value::from(0.25),
        "{text}"
    );
    assert_eq!(
        get("max_body_bytes"),
        serde_yaml::Value::from(1_048_576),
        "default: {text}"
    );
    assert!(!text.contains("s3cret-pw"), "{text}");
    assert!(!text.contains(ADMIN_KEY), "{text}");
    assert!(text.contains("db.internal"), "{text}");

    // Without the file, the defaults.
    let defaults = arbiter(&["serve", "--print-config"], &[]);
    assert!(defaults.status.success(), "{}", stderr(&defaults));
    let printed: serde_yaml::Value = serde_yaml::from_str(&stdout(&defaults)).expect("YAML");
    assert_eq!(printed["max_concurrency"], serde_yaml::Value::from(1024));
    assert_eq!(
        printed["request_timeout_ms"],
        serde_yaml::Value::from(30_000)
    );
    assert_eq!(
        printed["rate_limit_per_second"],
        serde_yaml::Value::from(0.0)
    );

    // An invalid value, or an unknown key in the file, is a usage error (exit 2).
    let bad = arbiter(
        &["serve", "--print-config"],
        &[("ARBITER_MAX_CONCURRENCY", "0")],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("max_concurrency"), "{}", stderr(&bad));
    std::fs::write(&file, "max_concurency: 3\n").expect("config");
    let typo = arbiter(&["serve", "--config", &file_arg, "--print-config"], &[]);
    assert_eq!(typo.status.code(), Some(2), "{}", stderr(&typo));
}

/// `--decision-log`: decisions of the check, batch and AuthZEN routes as JSON lines, written
/// off the request path and flushed by a graceful stop; a sample of 0 writes none.
#[tokio::test]
async fn the_decision_log_writes_sampled_decisions_as_json_lines() {
    let dir = tempfile::tempdir().expect("dir");
    let log_path = dir.path().join("decisions.jsonl");
    let url = format!("sqlite://{}", dir.path().join("arbiter.db").display());
    let log_arg = log_path.display().to_string();
    let mut app = spawn_app_on(
        url,
        dir,
        &[
            ("ARBITER_DECISION_LOG", &log_arg),
            ("ARBITER_DECISION_LOG_SAMPLE", "1"),
        ],
    )
    .await;
    let org = app.create_org("Acme").await;
    let o = Some(org.as_str());
    let check = json!({"permission": "organization:read",
                       "resource": {"type": "organization", "id": org}});
    let a = app.post("/v1/check", ADMIN_KEY, o, check.clone()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let b = app
        .post(
            "/v1/check/batch",
            ADMIN_KEY,
            o,
            json!({"checks": [check, {"permission": "model:read", "resource": {"type": "model", "id": "m1"}}]}),
        )
        .await;
    assert_eq!(b.status, StatusCode::OK, "{}", b.text);
    let e = app
        .post(
            "/access/v1/evaluation",
            ADMIN_KEY,
            o,
            json!({"subject": {"type": "user", "id": "admin@localhost"},
                   "action": {"name": "read"},
                   "resource": {"type": "model", "id": "m2"}}),
        )
        .await;
    assert_eq!(e.status, StatusCode::OK, "{}", e.text);
    assert!(app.terminate().success());

    let text = std::fs::read_to_string(&log_path).expect("decision log");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 4, "{text}");
    let apis: Vec<&str> = lines.iter().filter_map(|l| l["api"].as_str()).collect();
    assert_eq!(apis, ["check", "batch", "batch", "authzen"], "{text}");
    assert_eq!(lines[0]["permission"], "organization:read");
    assert_eq!(lines[0]["resource"]["id"], org.as_str());
    assert_eq!(lines[0]["allowed"], true);
    assert_eq!(lines[0]["subject"]["type"], "user");
    assert_eq!(lines[0]["organization_id"], org.as_str());
    assert_eq!(lines[0]["caller_key_id"], "key_bootstrap");
    assert!(lines[0]["request_id"].is_string());
    assert_eq!(lines[3]["permission"], "model:read");
    assert_eq!(lines[3]["resource"]["id"], "m2");

    // A sample of 0 writes nothing.
    let dir = tempfile::tempdir().expect("dir");
    let log_path = dir.path().join("decisions.jsonl");
    let url = format!("sqlite://{}", dir.path().join("arbiter.db").display());
    let log_arg = log_path.display().to_string();
    let mut app = spawn_app_on(
        url,
        dir,
        &[
            ("ARBITER_DECISION_LOG", &log_arg),
            ("ARBITER_DECISION_LOG_SAMPLE", "0"),
        ],
    )
    .await;
    let org = app.create_org("Acme").await;
    let a = app
        .post(
            "/v1/check",
            ADMIN_KEY,
            Some(&org),
            json!({"permission": "organization:read",
                   "resource": {"type": "organization", "id": org}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert!(app.terminate().success());
    assert_eq!(
        std::fs::read_to_string(&log_path).expect("created at start"),
        ""
    );
}
