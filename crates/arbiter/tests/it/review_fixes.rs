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

#[tokio::test]
async fn adding_a_member_to_a_group_needs_what_the_group_holds() {
    let app = spawn_app().await;
    let (org, olga, _) = acme_admin(&app).await;
    let manager_role = app
        .custom_role(&org, "group-manager", json!(["group:read", "group:write"]))
        .await;
    let (gus, gus_key) = app.member_with_key(&org, "gus@acme.test").await;
    app.bind(&org, &manager_role, &gus, "ORGANIZATION", Some(&org))
        .await;
    let admins = id_of(
        &app.post(
            "/v1/groups",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "admins"}),
        )
        .await,
    );
    let bound = app.post("/v1/role-bindings", ADMIN_KEY, Some(&org), json!({"role_id": predefined("org_admin"), "group_id": admins, "resource_type": "ORGANIZATION", "resource_id": org})).await;
    assert_eq!(bound.status, StatusCode::CREATED, "{}", bound.text);
    let join = app
        .put(
            &format!("/v1/groups/{admins}/members/{gus}"),
            &gus_key,
            None,
            json!({}),
        )
        .await;
    assert_error(&join, StatusCode::FORBIDDEN, "forbidden");
    assert!(
        !app.allowed(&org, &gus, "organization:delete", "organization", &org)
            .await
    );
    // A plain group is his to manage.
    let plain = id_of(
        &app.post(
            "/v1/groups",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "readers"}),
        )
        .await,
    );
    assert_eq!(
        app.put(
            &format!("/v1/groups/{plain}/members/{olga}"),
            &gus_key,
            None,
            json!({})
        )
        .await
        .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn rotating_a_project_key_needs_what_the_key_holds() {
    let app = spawn_app().await;
    let (org, _, olga_key) = acme_admin(&app).await;
    let space = app.create_space(&org, "Research").await;
    let project = app.create_project(&org, &space, "Vision").await;
    let pk = app
        .post(
            "/v1/api-keys",
            &olga_key,
            None,
            json!({"name": "ci", "kind": "project", "project_id": project}),
        )
        .await;
    assert_eq!(pk.status, StatusCode::CREATED, "{}", pk.text);
    let keeper = app
        .custom_role(&org, "key-keeper", json!(["api_key:read", "api_key:write"]))
        .await;
    let (kim, kim_key) = app.member_with_key(&org, "kim@acme.test").await;
    app.bind(&org, &keeper, &kim, "ORGANIZATION", Some(&org))
        .await;
    let rotate = app
        .post(
            &format!("/v1/api-keys/{}/rotate", id_of(&pk)),
            &kim_key,
            None,
            json!({}),
        )
        .await;
    assert_error(&rotate, StatusCode::FORBIDDEN, "forbidden");
    // Its creator cannot rotate it as "its own" either, once the key is the project's.
    let (_, other_key) = app.member_with_key(&org, "other@acme.test").await;
    let by_other = app
        .post(
            &format!("/v1/api-keys/{}/rotate", id_of(&pk)),
            &other_key,
            None,
            json!({}),
        )
        .await;
    assert!(
        by_other.status == StatusCode::FORBIDDEN || by_other.status == StatusCode::NOT_FOUND,
        "{}",
        by_other.text
    );
    let by_admin = app
        .post(
            &format!("/v1/api-keys/{}/rotate", id_of(&pk)),
            &olga_key,
            None,
            json!({}),
        )
        .await;
    assert_eq!(by_admin.status, StatusCode::OK, "{}", by_admin.text);
}

#[tokio::test]
async fn a_resource_access_hangs_on_cannot_be_captured_by_registering_it() {
    let app = spawn_app().await;
    let (org, _, _) = acme_admin(&app).await;
    let space = app.create_space(&org, "Research").await;
    let project = app.create_project(&org, &space, "Vision").await;
    let (tess, tess_key) = app.member_with_key(&org, "tess@acme.test").await;
    app.bind(
        &org,
        &predefined("team_admin"),
        &tess,
        "SPACE",
        Some(&space),
    )
    .await;
    let joined = app
        .put(
            &format!("/v1/spaces/{space}/members/{tess}"),
            ADMIN_KEY,
            Some(&org),
            json!({}),
        )
        .await;
    assert_eq!(joined.status, StatusCode::OK);
    let dana = app.create_user(&org, "dana@acme.test").await;
    let reader = app.custom_role(&org, "reader", json!(["model:read"])).await;
    let on_model = app.post("/v1/role-bindings", ADMIN_KEY, Some(&org), json!({"role_id": reader, "user_id": dana, "resource_type": "RESOURCE", "resource_id": "model:prod-model"})).await;
    assert_eq!(on_model.status, StatusCode::CREATED, "{}", on_model.text);
    let capture = app
        .put(
            "/v1/resources/model/prod-model",
            &tess_key,
            None,
            json!({"project_id": project, "owner_id": tess}),
        )
        .await;
    assert_error(&capture, StatusCode::FORBIDDEN, "forbidden");
    let fresh = app
        .put(
            "/v1/resources/model/new-model",
            &tess_key,
            None,
            json!({"project_id": project}),
        )
        .await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{}", fresh.text);
}

#[tokio::test]
async fn an_idempotency_key_stands_for_one_request_body() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let send = |name: &'static str| {
        let org = org.clone();
        let app = &app;
        async move {
            app.call_with_headers(
                reqwest::Method::POST,
                "/v1/spaces",
                Some(ADMIN_KEY),
                &[("X-Organization-Id", &org), ("Idempotency-Key", "k-1")],
                Some(&json!({"name": name})),
            )
            .await
        }
    };
    assert_eq!(send("Research").await.status, StatusCode::CREATED);
    let other = send("Ops").await;
    assert_error(
        &other,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    assert_eq!(app.total("/v1/spaces", ADMIN_KEY, Some(&org)).await, 1);
}
