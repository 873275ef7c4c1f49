//! What is acknowledged survives SIGKILL; bootstrap happens once; SIGTERM exits 0.

use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

async fn me(app: &TestApp, key: &str) -> Answer {
    app.get("/v1/users/me", key, None).await
}

#[tokio::test]
async fn bindings_and_keys_survive_sigkill_right_after_the_write() {
    let mut app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let alice = app.create_user(&org, "alice@acme.test").await;
    let writer = app
        .custom_role(&org, "writer", json!(["model:write"]))
        .await;

    // A binding, then SIGKILL as soon as it is acknowledged.
    let binding = app.bind(&org, &writer, &alice, "ORGANIZATION", None).await;
    app.kill_and_restart();
    assert!(
        app.allowed(&org, &alice, "model:write", "model", "m1")
            .await
    );
    let got = app
        .get(
            &format!("/v1/role-bindings/{binding}"),
            ADMIN_KEY,
            Some(&org),
        )
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);

    // A key, then SIGKILL.
    let created = app
        .post(
            "/v1/api-keys",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "k", "user_id": alice}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let key_id = id_of(&created);
    let secret = created.body["key"].as_str().unwrap().to_owned();
    let revision = created.revision().expect("revision");
    app.kill_and_restart();
    let who = me(&app, &secret).await;
    assert_eq!(who.status, StatusCode::OK, "{}", who.text);
    assert_eq!(who.body["id"], alice.as_str());
    assert_eq!(
        app.head_revision().await,
        revision,
        "the revision survives too"
    );

    // A rotation, then SIGKILL: the old secret stays dead, the new one works.
    let rotated = app
        .call(
            Method::POST,
            &format!("/v1/api-keys/{key_id}/rotate"),
            Some(&secret),
            None,
            None,
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let new_secret = rotated.body["key"].as_str().unwrap().to_owned();
    app.kill_and_restart();
    assert_eq!(me(&app, &secret).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, &new_secret).await.status, StatusCode::OK);

    // A revocation and a binding deletion, then SIGKILL: both stay done.
    let revoked = app
        .delete(&format!("/v1/api-keys/{key_id}"), &new_secret, None)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);
    let unbound = app
        .delete(
            &format!("/v1/role-bindings/{binding}"),
            ADMIN_KEY,
            Some(&org),
        )
        .await;
    assert_eq!(unbound.status, StatusCode::NO_CONTENT, "{}", unbound.text);
    let last = unbound.revision().expect("revision");
    app.kill_and_restart();
    assert_eq!(me(&app, &new_secret).await.status, StatusCode::UNAUTHORIZED);
    assert!(
        !app.allowed(&org, &alice, "model:write", "model", "m1")
            .await
    );
    assert_eq!(app.head_revision().await, last);

    // Revisions keep increasing after a restart.
    let space = app
        .post(
            "/v1/spaces",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "After"}),
        )
        .await;
    assert_eq!(space.status, StatusCode::CREATED, "{}", space.text);
    assert!(space.revision().expect("revision") > last);
}

#[tokio::test]
async fn a_second_bootstrap_key_on_restart_is_ignored() {
    const OTHER_KEY: &str = "another-bootstrap-key-9876543210-zyxwvutsrq";
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("arbiter.db").display());
    let mut first = spawn_app_on(url.clone(), dir, &[]).await;
    let org = first.create_org("Acme").await;
    assert!(first.terminate().success());

    let second = spawn_app_on(
        url,
        tempfile::tempdir().expect("temp dir"),
        &[("ARBITER_BOOTSTRAP_KEY", OTHER_KEY)],
    )
    .await;
    assert_eq!(
        second.stdout_lines.len(),
        1,
        "only the listening line: {:?}",
        second.stdout_lines
    );
    let admin = me(&second, ADMIN_KEY).await;
    assert_eq!(admin.status, StatusCode::OK, "{}", admin.text);
    assert_eq!(admin.body["id"], "usr_admin");
    let refused = me(&second, OTHER_KEY).await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "unauthenticated");
    let orgs = second.get("/v1/organizations", ADMIN_KEY, None).await;
    assert_eq!(orgs.body["items"][0]["id"], org.as_str(), "{}", orgs.text);
    let metrics = second.call(Method::GET, "/metrics", None, None, None).await;
    assert!(
        metrics
            .text
            .contains("arbiter_index_objects{kind=\"user\"} 1"),
        "one administrator, not two: {}",
        metrics.text
    );
}

#[tokio::test]
async fn sigterm_exits_zero() {
    let mut app = spawn_app().await;
    let org = app.create_org("Acme").await;
    app.create_user(&org, "alice@acme.test").await;
    let status = app.terminate();
    assert!(status.success(), "{status:?}");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn a_first_start_without_a_bootstrap_key_prints_a_generated_key_once() {
    let mut app = spawn_app_without_bootstrap_key().await;
    let printed: Vec<&String> = app
        .stdout_lines
        .iter()
        .filter(|l| l.contains("arb_"))
        .collect();
    assert_eq!(printed.len(), 1, "{:?}", app.stdout_lines);
    let key = printed[0].trim().to_owned();
    assert!(key.starts_with("arb_") && key.len() == 42, "{key}");
    assert!(
        app.stdout_lines
            .iter()
            .any(|l| l.contains("admin@localhost")),
        "{:?}",
        app.stdout_lines
    );

    let admin = me(&app, &key).await;
    assert_eq!(admin.status, StatusCode::OK, "{}", admin.text);
    assert_eq!(admin.body["email"], "admin@localhost");
    let created = app
        .post("/v1/organizations", &key, None, json!({"name": "Acme"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(me(&app, ADMIN_KEY).await.status, StatusCode::UNAUTHORIZED);

    // Later starts print nothing and change nothing.
    let lines = app.kill_and_restart_with(None);
    assert!(!lines.iter().any(|l| l.contains("arb_")), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(me(&app, &key).await.status, StatusCode::OK);
    let lines = app.kill_and_restart_with(Some(ADMIN_KEY));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(me(&app, &key).await.status, StatusCode::OK);
    assert_eq!(me(&app, ADMIN_KEY).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_bootstrap_key_shorter_than_32_characters_is_bad_usage() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("arbiter.db").display());
    let output = Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &url])
        .env("ARBITER_BOOTSTRAP_KEY", "too-short")
        .env("ARBITER_LOG", "warn")
        .output()
        .expect("run arbiter");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ARBITER_BOOTSTRAP_KEY"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("listening"),
        "{output:?}"
    );
}
