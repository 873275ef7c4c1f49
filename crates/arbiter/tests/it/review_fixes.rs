//! Regressions of a security review: platform takeover through a shared account, self-service
//! changes to the attributes that decide access, explanations naming another organization's
//! bindings, and grants outliving a removed member.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// An org admin of Acme, with its key.
async fn acme_admin(app: &TestApp) -> (String, String, String) {
    let org = app.create_org("Acme").await;
    let (olga, key) = app.member_with_key(&org, "olga@acme.test").await;
    app.bind(
        &org,
        &predefined("org_admin"),
        &olga,
        "ORGANIZATION",
        Some(&org),
    )
    .await;
    (org, olga, key)
}

#[tokio::test]
async fn an_org_admin_cannot_take_over_a_platform_bound_user() {
    let app = spawn_app().await;
    let (org, _, olga_key) = acme_admin(&app).await;
    // The platform administrator's account cannot be linked by invitation...
    let invite = app
        .post(
            "/v1/users/invite_users",
            &olga_key,
            None,
            json!({"emails": ["admin@localhost"]}),
        )
        .await;
    assert_error(&invite, StatusCode::CONFLICT, "already_exists");
    // ...and a platform-bound member's keys are out of an org admin's reach.
    let pat = app.create_user(&org, "pat@acme.test").await;
    let bound = app
        .post(
            "/v1/role-bindings",
            ADMIN_KEY,
            Some(&org),
            json!({"role_id": predefined("auditor"), "user_id": pat, "resource_type": "PLATFORM"}),
        )
        .await;
    assert_eq!(bound.status, StatusCode::CREATED, "{}", bound.text);
    let key = app
        .post(
            "/v1/api-keys",
            &olga_key,
            None,
            json!({"name": "mine", "user_id": pat}),
        )
        .await;
    assert_error(&key, StatusCode::FORBIDDEN, "forbidden");
    let pat_key = app
        .post(
            "/v1/api-keys",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "pat", "user_id": pat}),
        )
        .await;
    let pat_key_id = id_of(&pat_key);
    let rotate = app
        .post(
            &format!("/v1/api-keys/{pat_key_id}/rotate"),
            &olga_key,
            None,
            json!({}),
        )
        .await;
    assert_error(&rotate, StatusCode::FORBIDDEN, "forbidden");
    let revoke = app
        .delete(&format!("/v1/api-keys/{pat_key_id}"), &olga_key, None)
        .await;
    assert_error(&revoke, StatusCode::FORBIDDEN, "forbidden");
    // The bootstrap key is not even visible.
    let bootstrap = app
        .post(
            "/v1/api-keys/key_bootstrap/rotate",
            &olga_key,
            None,
            json!({}),
        )
        .await;
    assert_eq!(
        bootstrap.status,
        StatusCode::NOT_FOUND,
        "{}",
        bootstrap.text
    );
}

#[tokio::test]
async fn members_change_only_their_own_name() {
    let app = spawn_app().await;
    let (org, _, _) = acme_admin(&app).await;
    let (amy, amy_key) = app.member_with_key(&org, "amy@acme.test").await;
    let bob = app.create_user(&org, "bob@acme.test").await;
    for body in [
        json!({"external_ids": ["bob@acme.test"]}),
        json!({"properties": {"userType": "iput_cde_admin"}}),
        json!({"email": "x@acme.test"}),
    ] {
        let me = app
            .patch("/v1/users/me", &amy_key, None, body.clone())
            .await;
        assert_error(&me, StatusCode::FORBIDDEN, "forbidden");
        let by_id = app
            .patch(&format!("/v1/users/{amy}"), &amy_key, None, body)
            .await;
        assert_error(&by_id, StatusCode::FORBIDDEN, "forbidden");
    }
    assert_eq!(
        app.patch("/v1/users/me", &amy_key, None, json!({"name": "Amy"}))
            .await
            .status,
        StatusCode::OK
    );
    // Not even an administrator can give one user another's identity.
    let theft = app
        .patch(
            &format!("/v1/users/{amy}"),
            ADMIN_KEY,
            Some(&org),
            json!({"external_ids": ["bob@acme.test"]}),
        )
        .await;
    assert_error(&theft, StatusCode::CONFLICT, "already_exists");
    let theft = app
        .patch(
            &format!("/v1/users/{amy}"),
            ADMIN_KEY,
            Some(&org),
            json!({"external_ids": [bob]}),
        )
        .await;
    assert_error(&theft, StatusCode::CONFLICT, "already_exists");
}

#[tokio::test]
async fn explanations_never_name_another_organizations_bindings() {
    let app = spawn_app().await;
    let (acme, _, olga_key) = acme_admin(&app).await;
    let globex = app.create_org("Globex").await;
    let carol = app.create_user(&globex, "carol@globex.test").await;
    let role = app
        .custom_role(&globex, "secret-globex-role", json!(["model:read"]))
        .await;
    let binding = app
        .bind(&globex, &role, &carol, "ORGANIZATION", Some(&globex))
        .await;
    let a = app
        .post("/v1/check", &olga_key, Some(&acme), json!({"subject": {"type": "user", "id": "carol@globex.test"}, "permission": "model:read", "resource": {"type": "model", "id": "x"}, "explain": true}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["allowed"], false);
    assert!(
        !a.text.contains(&binding)
            && !a.text.contains("secret-globex-role")
            && !a.text.contains(&globex),
        "{}",
        a.text
    );
}

#[tokio::test]
async fn a_removed_member_loses_its_resource_grants() {
    let app = spawn_app().await;
    let (acme, _, olga_key) = acme_admin(&app).await;
    let globex = app.create_org("Globex").await;
    let alice = app.create_user(&acme, "alice@acme.test").await;
    let add = app
        .patch(
            &format!("/v1/organizations/{globex}/users"),
            ADMIN_KEY,
            None,
            json!({"users": [{"user_id": alice}]}),
        )
        .await;
    assert_eq!(add.status, StatusCode::OK, "{}", add.text);
    let grant = json!([{"_actions": ["READ"], "_namespace": acme, "_resourceDesc": {"_irn": "aisvc:agent:*"}, "_user": {"_type": "user", "_id": alice}}]);
    let put = app.put("/v1/permissions", &olga_key, None, grant).await;
    assert_eq!(
        put.body["_success"].as_array().unwrap().len(),
        1,
        "{}",
        put.text
    );
    assert!(app.allowed(&acme, &alice, "agent:read", "agent", "7").await);
    let removed = app
        .delete(&format!("/v1/users/{alice}"), &olga_key, None)
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
    assert!(!app.allowed(&acme, &alice, "agent:read", "agent", "7").await);
    let listed = app
        .get(
            &format!("/v1/permissions?_namespace={acme}&_includeTotal=true"),
            &olga_key,
            None,
        )
        .await;
    assert_eq!(listed.body["_total"], 0, "{}", listed.text);
}
