//! `POST /v1/check` and `POST /v1/check/batch`: the subject defaults to the caller,
//! `check:execute` is needed for anyone else, batches keep their order, revisions.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

fn check(subject: Option<&str>, permission: &str, model: &str) -> Value {
    let mut body = json!({"permission": permission, "resource": {"type": "model", "id": model}});
    if let Some(s) = subject {
        body["subject"] = json!({"type": "user", "id": s});
    }
    body
}

#[tokio::test]
async fn a_check_about_oneself_needs_nothing_and_about_others_needs_check_execute() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let (alice, alice_key) = app.member_with_key(&org, "alice@acme.test").await;
    let (bob, _) = app.member_with_key(&org, "bob@acme.test").await;
    let reader = app.custom_role(&org, "reader", json!(["model:read"])).await;
    app.bind(&org, &reader, &alice, "RESOURCE", Some("model:m1"))
        .await;
    app.bind(&org, &reader, &bob, "ORGANIZATION", None).await;

    // Oneself: by default, by id, by email.
    for subject in [None, Some(alice.as_str()), Some("alice@acme.test")] {
        for (model, expected) in [("m1", true), ("m2", false)] {
            let a = app
                .post(
                    "/v1/check",
                    &alice_key,
                    None,
                    check(subject, "model:read", model),
                )
                .await;
            assert_eq!(a.status, StatusCode::OK, "{subject:?}: {}", a.text);
            assert_eq!(
                a.body["allowed"], expected,
                "{subject:?} {model}: {}",
                a.text
            );
            assert!(a.body["revision"].is_string(), "{}", a.text);
        }
    }
    // Someone else: 403 without check:execute, for a single check and for a batch that holds one.
    let about_bob = app
        .post(
            "/v1/check",
            &alice_key,
            None,
            check(Some(&bob), "model:read", "m2"),
        )
        .await;
    assert_error(&about_bob, StatusCode::FORBIDDEN, "forbidden");
    let about_bob = app
        .post(
            "/v1/check",
            &alice_key,
            None,
            check(Some("bob@acme.test"), "model:read", "m2"),
        )
        .await;
    assert_error(&about_bob, StatusCode::FORBIDDEN, "forbidden");
    let batch = app
        .post(
            "/v1/check/batch",
            &alice_key,
            None,
            json!({"checks": [check(None, "model:read", "m1"), check(Some(&bob), "model:read", "m1")]}),
        )
        .await;
    assert_error(&batch, StatusCode::FORBIDDEN, "forbidden");
    let own_batch = app
        .post(
            "/v1/check/batch",
            &alice_key,
            None,
            json!({"checks": [check(None, "model:read", "m1"), check(Some(&alice), "model:read", "m2")]}),
        )
        .await;
    assert_eq!(own_batch.status, StatusCode::OK, "{}", own_batch.text);
    assert_eq!(own_batch.body["results"][0]["allowed"], true);
    assert_eq!(own_batch.body["results"][1]["allowed"], false);

    // With check:execute (org_admin), anyone in the organization.
    let (carol, carol_key) = app.member_with_key(&org, "carol@acme.test").await;
    app.bind(&org, &predefined("org_admin"), &carol, "ORGANIZATION", None)
        .await;
    let a = app
        .post(
            "/v1/check",
            &carol_key,
            None,
            check(Some(&bob), "model:read", "m2"),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["allowed"], true, "{}", a.text);
    // An unknown subject is a deny, not an error.
    let ghost = app
        .post(
            "/v1/check",
            &carol_key,
            None,
            check(Some("ghost@acme.test"), "model:read", "m2"),
        )
        .await;
    assert_eq!(ghost.status, StatusCode::OK, "{}", ghost.text);
    assert_eq!(ghost.body["allowed"], false);
}

#[tokio::test]
async fn a_batch_answers_in_the_order_asked_with_errors_in_place() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let alice = app.create_user(&org, "alice@acme.test").await;
    let reader = app.custom_role(&org, "reader", json!(["model:read"])).await;
    for model in ["m1", "m3", "m4"] {
        app.bind(
            &org,
            &reader,
            &alice,
            "RESOURCE",
            Some(&format!("model:{model}")),
        )
        .await;
    }
    let expected = [true, false, true, true, false, false, true];
    let models = ["m1", "m2", "m3", "m4", "m5", "m6", "m1"];
    let mut checks: Vec<Value> = models
        .iter()
        .map(|m| check(Some(&alice), "model:read", m))
        .collect();
    // An invalid item in the middle answers its error in place; the rest are still decided.
    checks.insert(3, check(Some(&alice), "nosuch:read", "m1"));
    checks.insert(5, json!({"permission": "model:read"}));
    let a = app
        .post(
            "/v1/check/batch",
            ADMIN_KEY,
            Some(&org),
            json!({"checks": checks}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let results = a.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 9, "{}", a.text);
    assert_eq!(
        results[3]["error"]["code"], "unknown_permission",
        "{}",
        a.text
    );
    assert_eq!(results[3]["allowed"], false);
    assert_eq!(results[5]["error"]["code"], "invalid_body", "{}", a.text);
    let decided: Vec<bool> = results
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 5)
        .map(|(_, r)| r["allowed"].as_bool().unwrap())
        .collect();
    assert_eq!(decided, expected.to_vec(), "{}", a.text);
    // An empty batch answers an empty list.
    let empty = app
        .post(
            "/v1/check/batch",
            ADMIN_KEY,
            Some(&org),
            json!({"checks": []}),
        )
        .await;
    assert_eq!(empty.body, json!({"results": []}), "{}", empty.text);
}

#[tokio::test]
async fn checks_name_their_revision_and_honour_at_least_revision() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let alice = app.create_user(&org, "alice@acme.test").await;
    let reader = app.custom_role(&org, "reader", json!(["model:read"])).await;
    let bound = app
        .post(
            "/v1/role-bindings",
            ADMIN_KEY,
            Some(&org),
            json!({"role_id": reader, "user_id": alice, "resource_type": "ORGANIZATION"}),
        )
        .await;
    let revision = bound.revision().expect("revision");

    for at_least in [
        json!("1"),
        json!(1),
        json!(revision.to_string()),
        json!(revision),
    ] {
        let mut body = check(Some(&alice), "model:read", "m1");
        body["at_least_revision"] = at_least.clone();
        let a = app.post("/v1/check", ADMIN_KEY, Some(&org), body).await;
        assert_eq!(a.status, StatusCode::OK, "{at_least}: {}", a.text);
        assert_eq!(a.body["allowed"], true);
        assert_eq!(a.body["revision"], revision.to_string(), "{}", a.text);
    }
    let mut body = check(Some(&alice), "model:read", "m1");
    body["at_least_revision"] = json!("not-a-number");
    let bad = app.post("/v1/check", ADMIN_KEY, Some(&org), body).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_field");
    // In a batch too.
    let mut item = check(Some(&alice), "model:read", "m1");
    item["at_least_revision"] = json!("2");
    let batch = app
        .post(
            "/v1/check/batch",
            ADMIN_KEY,
            Some(&org),
            json!({"checks": [item]}),
        )
        .await;
    assert_eq!(batch.body["results"][0]["allowed"], true, "{}", batch.text);
}

#[tokio::test]
async fn a_revision_the_store_has_not_reached_answers_503() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("arbiter.db").display());
    let app = spawn_app_on(url, dir, &[("ARBITER_REVISION_WAIT_MS", "0")]).await;
    let org = app.create_org("Acme").await;
    let head = app.head_revision().await;
    let mut body = check(Some("admin@localhost"), "model:read", "m1");
    body["at_least_revision"] = json!((head + 1000).to_string());
    let a = app.post("/v1/check", ADMIN_KEY, Some(&org), body).await;
    assert_error(&a, StatusCode::SERVICE_UNAVAILABLE, "revision_unavailable");
    // The store did not move: the check waited for nothing.
    assert_eq!(app.head_revision().await, head);
}

#[tokio::test]
async fn resources_may_be_named_by_irn_and_explanations_name_the_grant() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let alice = app.create_user(&org, "alice@acme.test").await;
    let role = app
        .custom_role(&org, "agent-reader", json!(["agent:read"]))
        .await;
    app.bind(&org, &role, &alice, "RESOURCE", Some("agent:7"))
        .await;
    for (irn, expected) in [("aisvc:agent:7", true), ("aisvc:agent:8", false)] {
        let a = app
            .post(
                "/v1/check",
                ADMIN_KEY,
                Some(&org),
                json!({"subject": {"type": "user", "id": alice}, "permission": "agent:read",
                       "resource": {"irn": irn}, "explain": true}),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["allowed"], expected, "{irn}: {}", a.text);
        assert!(a.body["reason"]["message"].is_string(), "{}", a.text);
        if expected {
            assert_eq!(a.body["reason"]["granted_by"]["role_name"], "agent-reader");
        }
    }
    let wrong_service = app
        .post(
            "/v1/check",
            ADMIN_KEY,
            Some(&org),
            json!({"subject": {"type": "user", "id": alice}, "permission": "agent:read",
                   "resource": {"irn": "ml:agent:7"}}),
        )
        .await;
    assert_error(&wrong_service, StatusCode::BAD_REQUEST, "invalid_field");
    let both = app
        .post(
            "/v1/check",
            ADMIN_KEY,
            Some(&org),
            json!({"permission": "agent:read", "resource": {"irn": "aisvc:agent:7", "type": "agent", "id": "7"}}),
        )
        .await;
    assert_error(&both, StatusCode::BAD_REQUEST, "invalid_field");
    let bad_subject = app
        .post(
            "/v1/check",
            ADMIN_KEY,
            Some(&org),
            json!({"subject": {"type": "robot", "id": "r"}, "permission": "agent:read",
                   "resource": {"type": "agent", "id": "7"}}),
        )
        .await;
    assert_error(&bad_subject, StatusCode::BAD_REQUEST, "invalid_field");
}
