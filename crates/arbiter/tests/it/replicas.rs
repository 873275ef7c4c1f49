//! Several replicas on one PostgreSQL database: revision-bound reads, propagation by
//! notification and by polling, revocation, concurrent writers, restarts, bootstrap races, and
//! idempotent creates (on SQLite too).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

async fn replica(db: &PgDatabase, env: &[(&str, &str)]) -> TestApp {
    spawn_app_on(db.url.clone(), tempfile::tempdir().expect("dir"), env).await
}

fn check_body(user: &str) -> serde_json::Value {
    json!({"subject": {"type": "user", "id": user}, "permission": "model:read", "resource": {"type": "model", "id": "m1"}})
}

/// On `a`: an organization and a user bound to a model reader; answers (org, user, revision).
async fn grant_on(a: &TestApp) -> (String, String, u64) {
    let org = a.create_org("Acme").await;
    let user = a.create_user(&org, "u@acme.test").await;
    let role = a.custom_role(&org, "reader", json!(["model:read"])).await;
    let b = a.post("/v1/role-bindings", ADMIN_KEY, Some(&org), json!({"role_id": role, "user_id": user, "resource_type": "ORGANIZATION", "resource_id": org})).await;
    assert_eq!(b.status, StatusCode::CREATED, "{}", b.text);
    (org, user, b.revision().expect("revision"))
}

#[tokio::test]
async fn a_write_reaches_the_other_replica_by_notification() {
    let Some(db) = postgres_database().await else {
        return;
    };
    let a = replica(&db, &[]).await;
    // Polling is made too slow to matter: only a notification can bring the write in time.
    let b = replica(
        &db,
        &[
            ("ARBITER_POLL_INTERVAL_MS", "600000"),
            ("ARBITER_REVISION_WAIT_MS", "1000"),
        ],
    )
    .await;
    let (org, user, revision) = grant_on(&a).await;
    let mut body = check_body(&user);
    body["at_least_revision"] = json!(revision.to_string());
    let seen = b.post("/v1/check", ADMIN_KEY, Some(&org), body).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.text);
    assert_eq!(seen.body["allowed"], true, "{}", seen.text);
    assert!(
        seen.body["revision"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= revision
    );
    // The header works as the body field does, and so does an AuthZEN evaluation.
    let header = b
        .call_with_headers(
            Method::POST,
            "/v1/check",
            Some(ADMIN_KEY),
            &[
                ("X-Organization-Id", &org),
                ("X-Arbiter-Min-Revision", &revision.to_string()),
            ],
            Some(&check_body(&user)),
        )
        .await;
    assert_eq!(header.body["allowed"], true, "{}", header.text);
    let authzen = b
        .call_with_headers(
            Method::POST,
            "/access/v1/evaluation",
            Some(ADMIN_KEY),
            &[("X-Organization-Id", &org), ("X-Arbiter-Min-Revision", &revision.to_string())],
            Some(&json!({"subject": {"type": "user", "id": user}, "action": {"name": "read"}, "resource": {"type": "model", "id": "m1"}})),
        )
        .await;
    assert_eq!(authzen.body["decision"], true, "{}", authzen.text);
}

#[tokio::test]
async fn polling_alone_converges_and_a_revision_never_reached_is_a_503() {
    let Some(db) = postgres_database().await else {
        return;
    };
    let a = replica(&db, &[]).await;
    let b = replica(
        &db,
        &[
            ("ARBITER_NOTIFICATIONS", "false"),
            ("ARBITER_POLL_INTERVAL_MS", "100"),
            ("ARBITER_REVISION_WAIT_MS", "5000"),
        ],
    )
    .await;
    let (org, user, revision) = grant_on(&a).await;
    let mut body = check_body(&user);
    body["at_least_revision"] = json!(revision);
    let seen = b
        .post("/v1/check", ADMIN_KEY, Some(&org), body.clone())
        .await;
    assert_eq!(seen.body["allowed"], true, "{}", seen.text);
    body["at_least_revision"] = json!(revision + 1000);
    let c = replica(&db, &[("ARBITER_REVISION_WAIT_MS", "200")]).await;
    let late = c.post("/v1/check", ADMIN_KEY, Some(&org), body).await;
    assert_error(
        &late,
        StatusCode::SERVICE_UNAVAILABLE,
        "revision_unavailable",
    );
}

#[tokio::test]
async fn revocation_and_deletion_propagate() {
    let Some(db) = postgres_database().await else {
        return;
    };
    let a = replica(&db, &[]).await;
    let b = replica(&db, &[]).await;
    let (org, user, _) = grant_on(&a).await;
    let key = a
        .post(
            "/v1/api-keys",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "k", "user_id": user}),
        )
        .await;
    let (key_id, secret) = (id_of(&key), key.body["key"].as_str().unwrap().to_owned());
    let mut sync = check_body(&user);
    sync["at_least_revision"] = json!(key.revision().unwrap());
    assert_eq!(
        b.post("/v1/check", ADMIN_KEY, Some(&org), sync.clone())
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        b.get("/v1/users/me", &secret, None).await.status,
        StatusCode::OK
    );
    let revoked = a
        .delete(&format!("/v1/api-keys/{key_id}"), ADMIN_KEY, Some(&org))
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);
    sync["at_least_revision"] = json!(revoked.revision().unwrap());
    let after = b
        .post("/v1/check", ADMIN_KEY, Some(&org), sync.clone())
        .await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.text);
    assert_eq!(
        b.get("/v1/users/me", &secret, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Deleting the binding takes the access away on the other replica too.
    let bindings = a
        .get(
            &format!("/v1/role-bindings?user_id={user}"),
            ADMIN_KEY,
            Some(&org),
        )
        .await;
    let binding = bindings.body["items"][0]["id"].as_str().unwrap().to_owned();
    let deleted = a
        .delete(
            &format!("/v1/role-bindings/{binding}"),
            ADMIN_KEY,
            Some(&org),
        )
        .await;
    sync["at_least_revision"] = json!(deleted.revision().unwrap());
    let denied = b.post("/v1/check", ADMIN_KEY, Some(&org), sync).await;
    assert_eq!(denied.body["allowed"], false, "{}", denied.text);
}

#[tokio::test]
async fn concurrent_writers_on_two_replicas_lose_nothing_and_keep_names_unique() {
    let Some(db) = postgres_database().await else {
        return;
    };
    let a = replica(&db, &[]).await;
    let b = replica(&db, &[]).await;
    let org = a.create_org("Acme").await;
    let mut sync = json!({"permission": "organization:read", "resource": {"type": "organization", "id": org}, "at_least_revision": a.head_revision().await});
    assert_eq!(
        b.post("/v1/check", ADMIN_KEY, Some(&org), sync.clone())
            .await
            .status,
        StatusCode::OK
    );
    // All twenty requests in flight at once: each name sent to both replicas.
    let mut tasks = Vec::new();
    for n in 0..10 {
        for base in [a.base.clone(), b.base.clone()] {
            let org = org.clone();
            tasks.push(tokio::spawn(async move {
                let response = reqwest::Client::new()
                    .post(format!("{base}/v1/spaces"))
                    .bearer_auth(ADMIN_KEY)
                    .header("X-Organization-Id", org)
                    .json(&json!({"name": format!("space-{n}")}))
                    .send()
                    .await
                    .expect("send");
                let revision = response
                    .headers()
                    .get("x-arbiter-revision")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                (response.status(), revision)
            }));
        }
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("task"));
    }
    let created: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .collect();
    let refused = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CONFLICT)
        .count();
    assert_eq!(created.len(), 10, "one of each name: {answers:?}");
    assert_eq!(refused, 10);
    let mut revisions: Vec<u64> = created.iter().map(|(_, r)| r.expect("revision")).collect();
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(revisions.len(), 10, "every write got its own revision");
    sync["at_least_revision"] = json!(revisions.last().unwrap());
    for app in [&a, &b] {
        assert_eq!(
            app.post("/v1/check", ADMIN_KEY, Some(&org), sync.clone())
                .await
                .status,
            StatusCode::OK
        );
        assert_eq!(app.total("/v1/spaces", ADMIN_KEY, Some(&org)).await, 10);
    }
}

#[tokio::test]
async fn a_replica_killed_while_another_writes_catches_up_on_restart() {
    let Some(db) = postgres_database().await else {
        return;
    };
    let a = replica(&db, &[]).await;
    let mut b = replica(&db, &[]).await;
    let (org, user, granted) = grant_on(&a).await;
    // A write acknowledged by b, then b killed at once: nothing is lost.
    // b writes once it has seen a's writes (the organization is a's).
    let space = b
        .call_with_headers(
            Method::POST,
            "/v1/spaces",
            Some(ADMIN_KEY),
            &[
                ("X-Organization-Id", &org),
                ("X-Arbiter-Min-Revision", &granted.to_string()),
            ],
            Some(&json!({"name": "from-b"})),
        )
        .await;
    assert_eq!(space.status, StatusCode::CREATED, "{}", space.text);
    b.kill_and_restart();
    let more = a
        .post(
            "/v1/spaces",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "while-b-was-down"}),
        )
        .await;
    assert_eq!(more.status, StatusCode::CREATED);
    let mut body = check_body(&user);
    body["at_least_revision"] = json!(more.revision().unwrap());
    assert_eq!(
        b.post("/v1/check", ADMIN_KEY, Some(&org), body).await.body["allowed"],
        true
    );
    assert_eq!(b.total("/v1/spaces", ADMIN_KEY, Some(&org)).await, 2);
    assert_eq!(a.total("/v1/spaces", ADMIN_KEY, Some(&org)).await, 2);
    let ready = b.call(Method::GET, "/readyz", None, None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    let metrics = b.call(Method::GET, "/metrics", None, None, None).await;
    assert!(
        metrics.text.contains("arbiter_revision_lag"),
        "{}",
        metrics.text
    );
}

#[tokio::test]
async fn replicas_starting_at_once_bootstrap_one_administrator() {
    let Some(db) = postgres_database().await else {
        return;
    };
    let url = db.url.clone();
    let starts: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let app = spawn_app_on(url, tempfile::tempdir().unwrap(), &[]).await;
                    let me = app.get("/v1/users/me", ADMIN_KEY, None).await;
                    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
                    me.body["id"].as_str().unwrap().to_owned()
                })
            })
        })
        .collect();
    let ids: Vec<String> = starts.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(ids[0], ids[1], "both replicas serve the same administrator");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(["export", "--json", "--database-url", &url])
        .output()
        .unwrap();
    let bundle: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let admins = bundle["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["email"] == "admin@localhost")
        .count();
    assert_eq!(admins, 1);
    assert_eq!(bundle["api_keys"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_retried_create_with_an_idempotency_key_creates_one_object() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let send = |path: &'static str, key: &'static str, body: serde_json::Value| {
        let org = org.clone();
        let app = &app;
        async move {
            app.call_with_headers(
                Method::POST,
                path,
                Some(ADMIN_KEY),
                &[("X-Organization-Id", &org), ("Idempotency-Key", key)],
                Some(&body),
            )
            .await
        }
    };
    let first = send("/v1/spaces", "retry-1", json!({"name": "Research"})).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let again = send("/v1/spaces", "retry-1", json!({"name": "Research"})).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(app.total("/v1/spaces", ADMIN_KEY, Some(&org)).await, 1);
    let elsewhere = send("/v1/groups", "retry-1", json!({"name": "g"})).await;
    assert_error(
        &elsewhere,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    // A key secret is never kept: the retry is refused, and no second key exists.
    let key = send("/v1/api-keys", "retry-2", json!({"name": "k"})).await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.text);
    let retry = send("/v1/api-keys", "retry-2", json!({"name": "k"})).await;
    assert_error(&retry, StatusCode::CONFLICT, "idempotency_key_used");
    let keys = app.get("/v1/api-keys", ADMIN_KEY, Some(&org)).await;
    assert_eq!(
        keys.body["total"], 2,
        "the bootstrap key and one more: {}",
        keys.text
    );
    // Survives a restart.
    let mut app = app;
    app.kill_and_restart();
    let after = app
        .call_with_headers(
            Method::POST,
            "/v1/spaces",
            Some(ADMIN_KEY),
            &[("X-Organization-Id", &org), ("Idempotency-Key", "retry-1")],
            Some(&json!({"name": "Research"})),
        )
        .await;
    assert_eq!(after.body, first.body);
}
