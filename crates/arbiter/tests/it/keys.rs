//! `/v1/api-keys`: own keys always, others' with `api_key:*`; the secret is shown once; revoke
//! and rotate take effect on the very next request; expiry.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

fn future(hours: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::hours(hours)).to_rfc3339()
}

async fn whoami(app: &TestApp, key: &str) -> StatusCode {
    app.get("/v1/users/me", key, None).await.status
}

#[tokio::test]
async fn keys_for_oneself_and_for_others_and_the_secret_is_shown_once() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let (alice, alice_key) = app.member_with_key(&org, "alice@acme.test").await;
    let bob = app.create_user(&org, "bob@acme.test").await;
    let stranger_org = app.create_org("Other").await;
    let stranger = app.create_user(&stranger_org, "eve@other.test").await;
    let mut revs = Revisions::new(&app).await;

    // For oneself: no permission needed, user_id defaults to the caller.
    let created = app
        .post("/v1/api-keys", &alice_key, None, json!({"name": "laptop"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    revs.advanced(&created);
    let secret = created.body["key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("arb_") && secret.len() == 42, "{secret}");
    assert_eq!(created.body["user_id"], alice.as_str());
    assert_eq!(created.body["kind"], "user");
    assert_eq!(created.body["organization_id"], org.as_str());
    assert_eq!(created.body["prefix"], &secret[..10]);
    assert!(
        created.body.get("secret_hash").is_none(),
        "{}",
        created.text
    );
    let laptop = id_of(&created);
    let me = app.get("/v1/users/me", &secret, None).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["id"], alice.as_str());

    // For another user: api_key:write, which a plain member lacks.
    let refused = app
        .post(
            "/v1/api-keys",
            &alice_key,
            None,
            json!({"name": "for bob", "user_id": bob}),
        )
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    let not_member = app
        .post(
            "/v1/api-keys",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "for eve", "user_id": stranger}),
        )
        .await;
    assert_error(&not_member, StatusCode::NOT_FOUND, "not_found");
    for body in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "k", "kind": "galaxy"}),
        json!({"name": "k", "project_id": "prj_x"}),
        json!({"name": "k", "expires_at": "soon"}),
    ] {
        let refused = app
            .post("/v1/api-keys", &alice_key, None, body.clone())
            .await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            refused.text
        );
        assert_error(&refused, StatusCode::BAD_REQUEST, &error_code(&refused));
    }
    revs.unchanged(&app).await;
    let for_bob = app
        .post(
            "/v1/api-keys",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "for bob", "user_id": bob}),
        )
        .await;
    assert_eq!(for_bob.status, StatusCode::CREATED, "{}", for_bob.text);
    revs.advanced(&for_bob);
    let bob_key = for_bob.body["key"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/v1/users/me", &bob_key, None).await.body["id"],
        bob.as_str()
    );

    // The list never holds a secret.
    let listed = app.get("/v1/api-keys", &alice_key, None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(listed.body["total"], 2, "{}", listed.text);
    assert!(!listed.text.contains(&secret), "{}", listed.text);
    assert!(!listed.text.contains(&alice_key), "{}", listed.text);
    for item in listed.body["items"].as_array().unwrap() {
        assert!(
            item.get("key").is_none() && item.get("secret_hash").is_none(),
            "{item}"
        );
        assert_eq!(item["user_id"], alice.as_str());
    }
    assert!(listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["id"] == laptop.as_str()));
    // Another user's keys: api_key:read.
    let others = app
        .get(&format!("/v1/api-keys?user_id={bob}"), &alice_key, None)
        .await;
    assert_error(&others, StatusCode::FORBIDDEN, "forbidden");
    let by_admin = app
        .get(
            &format!("/v1/api-keys?user_id={alice}"),
            ADMIN_KEY,
            Some(&org),
        )
        .await;
    assert_eq!(by_admin.body["total"], 2, "{}", by_admin.text);
    assert!(!by_admin.text.contains(&secret));
}

#[tokio::test]
async fn expiry_in_the_past_is_refused_and_a_near_future_one_works() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let (_, alice_key) = app.member_with_key(&org, "alice@acme.test").await;
    let mut revs = Revisions::new(&app).await;

    let past = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
    let refused = app
        .post(
            "/v1/api-keys",
            &alice_key,
            None,
            json!({"name": "old", "expires_at": past}),
        )
        .await;
    assert_error(&refused, StatusCode::UNPROCESSABLE_ENTITY, "expired");
    revs.unchanged(&app).await;
    assert_eq!(app.total("/v1/api-keys", &alice_key, None).await, 1);

    let soon = future(1);
    let created = app
        .post(
            "/v1/api-keys",
            &alice_key,
            None,
            json!({"name": "short-lived", "expires_at": soon}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    revs.advanced(&created);
    assert!(created.body["expires_at"].is_string(), "{}", created.text);
    let secret = created.body["key"].as_str().unwrap();
    assert_eq!(whoami(&app, secret).await, StatusCode::OK);
}

#[tokio::test]
async fn revoking_takes_effect_on_the_very_next_request() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let (_, alice_key) = app.member_with_key(&org, "alice@acme.test").await;
    let (_, bob_key) = app.member_with_key(&org, "bob@acme.test").await;
    let second = app
        .post("/v1/api-keys", &alice_key, None, json!({"name": "second"}))
        .await;
    let second_id = id_of(&second);
    let second_key = second.body["key"].as_str().unwrap().to_owned();
    assert_eq!(whoami(&app, &second_key).await, StatusCode::OK);
    let mut revs = Revisions::new(&app).await;

    let revoked = app
        .delete(&format!("/v1/api-keys/{second_id}"), &alice_key, None)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);
    revs.advanced(&revoked);
    let refused = app.get("/v1/users/me", &second_key, None).await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "unauthenticated");
    let listed = app.get("/v1/api-keys", &alice_key, None).await;
    let item = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == second_id.as_str())
        .cloned()
        .unwrap_or(Value::Null);
    assert!(item["revoked_at"].is_string(), "{}", listed.text);
    // Revoking twice is harmless and writes nothing.
    let again = app
        .delete(&format!("/v1/api-keys/{second_id}"), &alice_key, None)
        .await;
    assert_eq!(again.status, StatusCode::NO_CONTENT, "{}", again.text);
    revs.unchanged(&app).await;
    let unknown = app
        .delete("/v1/api-keys/key_nowhere", &alice_key, None)
        .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "not_found");

    // Another user's key: api_key:delete.
    let bob_keys = app.get("/v1/api-keys", &bob_key, None).await;
    let bob_key_id = bob_keys.body["items"][0]["id"].as_str().unwrap().to_owned();
    let refused = app
        .delete(&format!("/v1/api-keys/{bob_key_id}"), &alice_key, None)
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(whoami(&app, &bob_key).await, StatusCode::OK);
    let by_admin = app
        .delete(&format!("/v1/api-keys/{bob_key_id}"), ADMIN_KEY, Some(&org))
        .await;
    assert_eq!(by_admin.status, StatusCode::NO_CONTENT, "{}", by_admin.text);
    assert_eq!(whoami(&app, &bob_key).await, StatusCode::UNAUTHORIZED);

    // A key may revoke itself; the request after that is refused.
    let own = app.get("/v1/api-keys", &alice_key, None).await;
    let own_id = own.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["revoked_at"].is_null())
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .unwrap();
    let itself = app
        .delete(&format!("/v1/api-keys/{own_id}"), &alice_key, None)
        .await;
    assert_eq!(itself.status, StatusCode::NO_CONTENT, "{}", itself.text);
    assert_eq!(whoami(&app, &alice_key).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn rotating_makes_the_old_secret_fail_and_the_new_one_work() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let (alice, alice_key) = app.member_with_key(&org, "alice@acme.test").await;
    let (_, bob_key) = app.member_with_key(&org, "bob@acme.test").await;
    let own = app.get("/v1/api-keys", &alice_key, None).await;
    let key_id = own.body["items"][0]["id"].as_str().unwrap().to_owned();
    let mut revs = Revisions::new(&app).await;

    let rotated = app
        .call(
            Method::POST,
            &format!("/v1/api-keys/{key_id}/rotate"),
            Some(&alice_key),
            None,
            None,
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    revs.advanced(&rotated);
    assert_eq!(rotated.body["id"], key_id.as_str(), "the same key");
    let new_secret = rotated.body["key"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, alice_key);
    assert!(new_secret.starts_with("arb_"));
    let old = app.get("/v1/users/me", &alice_key, None).await;
    assert_error(&old, StatusCode::UNAUTHORIZED, "unauthenticated");
    let new = app.get("/v1/users/me", &new_secret, None).await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.text);
    assert_eq!(new.body["id"], alice.as_str());
    let listed = app.get("/v1/api-keys", &new_secret, None).await;
    assert!(!listed.text.contains(&new_secret));
    assert_eq!(listed.body["items"][0]["prefix"], &new_secret[..10]);

    // Another user's key: api_key:write.
    let bob_keys = app.get("/v1/api-keys", &bob_key, None).await;
    let bob_key_id = bob_keys.body["items"][0]["id"].as_str().unwrap().to_owned();
    let refused = app
        .call(
            Method::POST,
            &format!("/v1/api-keys/{bob_key_id}/rotate"),
            Some(&new_secret),
            None,
            None,
        )
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(whoami(&app, &bob_key).await, StatusCode::OK);
    revs.unchanged(&app).await;
    let by_admin = app
        .call(
            Method::POST,
            &format!("/v1/api-keys/{bob_key_id}/rotate"),
            Some(ADMIN_KEY),
            Some(&org),
            None,
        )
        .await;
    assert_eq!(by_admin.status, StatusCode::OK, "{}", by_admin.text);
    assert_eq!(whoami(&app, &bob_key).await, StatusCode::UNAUTHORIZED);
    let bob_new = by_admin.body["key"].as_str().unwrap();
    assert_eq!(whoami(&app, bob_new).await, StatusCode::OK);

    // A revoked key cannot be rotated back to life.
    let revoked = app
        .delete(&format!("/v1/api-keys/{bob_key_id}"), ADMIN_KEY, Some(&org))
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let dead = app
        .call(
            Method::POST,
            &format!("/v1/api-keys/{bob_key_id}/rotate"),
            Some(ADMIN_KEY),
            Some(&org),
            None,
        )
        .await;
    assert_error(&dead, StatusCode::CONFLICT, "key_unusable");
    assert_eq!(whoami(&app, bob_new).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn project_keys_act_as_themselves_inside_their_project() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let space = app.create_space(&org, "Research").await;
    let project = app.create_project(&org, &space, "Vision").await;
    let other = app.create_project(&org, &space, "Fraud").await;
    for (id, p) in [("m1", &project), ("m2", &other)] {
        let a = app
            .put(
                &format!("/v1/resources/model/{id}"),
                ADMIN_KEY,
                Some(&org),
                json!({"project_id": p}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    }
    let alice = app.create_user(&org, "alice@acme.test").await;
    let reader = app.custom_role(&org, "reader", json!(["model:read"])).await;
    app.bind(&org, &reader, &alice, "ORGANIZATION", None).await;

    let missing = app
        .post(
            "/v1/api-keys",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "ci", "kind": "project"}),
        )
        .await;
    assert_error(&missing, StatusCode::BAD_REQUEST, "invalid_field");
    let created = app
        .post(
            "/v1/api-keys",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "ci", "kind": "project", "project_id": project}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["kind"], "project");
    assert_eq!(created.body["project_id"], project.as_str());
    let key_id = id_of(&created);
    let secret = created.body["key"].as_str().unwrap().to_owned();

    // Bound to project_key on its project on creation.
    let bindings = app
        .get(
            &format!("/v1/role-bindings?api_key_id={key_id}"),
            ADMIN_KEY,
            Some(&org),
        )
        .await;
    assert_eq!(bindings.body["total"], 1, "{}", bindings.text);
    assert_eq!(
        bindings.body["items"][0]["role_id"],
        predefined("project_key")
    );
    assert_eq!(bindings.body["items"][0]["resource_id"], project.as_str());
    // Its organization is fixed.
    let current = app.get("/v1/organizations/current", &secret, None).await;
    assert_eq!(
        current.body["organization_id"],
        org.as_str(),
        "{}",
        current.text
    );
    let other_org = app.create_org("Other").await;
    let elsewhere = app
        .get("/v1/organizations/current", &secret, Some(&other_org))
        .await;
    assert_error(&elsewhere, StatusCode::NOT_FOUND, "not_found");
    // Its own decisions: inside the project only.
    for (model, expected) in [("m1", true), ("m2", false)] {
        let a = app
            .post(
                "/v1/check",
                &secret,
                None,
                json!({"permission": "model:read", "resource": {"type": "model", "id": model}}),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["allowed"], expected, "{model}: {}", a.text);
    }
    // project_key holds check:execute: it may ask about other subjects.
    let about_alice = app
        .post(
            "/v1/check",
            &secret,
            None,
            json!({"subject": {"type": "user", "id": alice}, "permission": "model:read",
                   "resource": {"type": "model", "id": "m1"}}),
        )
        .await;
    assert_eq!(about_alice.status, StatusCode::OK, "{}", about_alice.text);
    assert_eq!(about_alice.body["allowed"], true, "{}", about_alice.text);
    // User roles are not for project keys.
    let user_role = app
        .post(
            "/v1/role-bindings",
            ADMIN_KEY,
            Some(&org),
            json!({"role_id": reader, "api_key_id": key_id, "resource_type": "PROJECT", "resource_id": project}),
        )
        .await;
    assert_error(
        &user_role,
        StatusCode::UNPROCESSABLE_ENTITY,
        "user_role_on_project_key",
    );
    // A project holding a project key cannot be deleted.
    let busy = app
        .delete(&format!("/v1/projects/{project}"), ADMIN_KEY, Some(&org))
        .await;
    assert_error(&busy, StatusCode::CONFLICT, "project_not_empty");
}
