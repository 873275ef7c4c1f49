//! Nobody grants what they do not hold: binding a role, creating or changing a role, acting in
//! another space, and binding on the platform.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

/// A member bound, on the organization, to a custom role made of `permissions`.
async fn member_holding(
    app: &TestApp,
    org: &str,
    email: &str,
    permissions: serde_json::Value,
) -> (String, String) {
    let (user, key) = app.member_with_key(org, email).await;
    let role = app
        .custom_role(org, &format!("role-of-{email}"), permissions)
        .await;
    app.bind(org, &role, &user, "ORGANIZATION", None).await;
    (user, key)
}

#[tokio::test]
async fn binding_a_role_needs_every_permission_of_the_role() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let space = app.create_space(&org, "Research").await;
    let (granter, key) = member_holding(
        &app,
        &org,
        "granter@acme.test",
        json!(["role_binding:write", "role_binding:read", "model:read"]),
    )
    .await;
    let victim = app.create_user(&org, "victim@acme.test").await;
    let reader = app.custom_role(&org, "reader", json!(["model:read"])).await;
    let writer = app
        .custom_role(&org, "writer", json!(["model:read", "model:write"]))
        .await;
    let mut revs = Revisions::new(&app).await;

    let ok = app
        .post(
            "/v1/role-bindings",
            &key,
            None,
            json!({"role_id": reader, "user_id": victim, "resource_type": "ORGANIZATION"}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    revs.advanced(&ok);

    for (role, resource_type, resource_id, subject) in [
        (writer.clone(), "ORGANIZATION", None, victim.clone()),
        (writer.clone(), "SPACE", Some(space.clone()), victim.clone()),
        (
            writer.clone(),
            "RESOURCE",
            Some("model:m1".to_owned()),
            granter.clone(),
        ),
        (
            predefined("org_admin"),
            "ORGANIZATION",
            None,
            granter.clone(),
        ),
        (
            predefined("auditor"),
            "SPACE",
            Some(space.clone()),
            victim.clone(),
        ),
        (
            predefined("team_admin"),
            "SPACE",
            Some(space.clone()),
            granter.clone(),
        ),
    ] {
        let refused = app
            .post(
                "/v1/role-bindings",
                &key,
                None,
                json!({"role_id": role, "user_id": subject, "resource_type": resource_type, "resource_id": resource_id}),
            )
            .await;
        assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
        assert!(
            refused.body["error"]["details"]["permission"].is_string(),
            "{}",
            refused.text
        );
    }
    revs.unchanged(&app).await;
    assert!(
        !app.allowed(&org, &victim, "model:write", "model", "m1")
            .await
    );
    assert!(
        !app.allowed(&org, &granter, "model:write", "model", "m1")
            .await
    );
    assert!(
        app.allowed(&org, &victim, "model:read", "model", "m1")
            .await
    );

    // Without role_binding:write, not even a role one holds.
    let (_, plain) = member_holding(&app, &org, "plain@acme.test", json!(["model:read"])).await;
    let before = app.head_revision().await;
    let refused = app
        .post(
            "/v1/role-bindings",
            &plain,
            None,
            json!({"role_id": reader, "user_id": victim, "resource_type": "SPACE", "resource_id": space}),
        )
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    // Nor delete a binding.
    let binding = id_of(&ok);
    let refused = app
        .delete(&format!("/v1/role-bindings/{binding}"), &plain, None)
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(app.head_revision().await, before);
}

#[tokio::test]
async fn a_role_creator_cannot_include_permissions_it_lacks() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let (_, key) = member_holding(
        &app,
        &org,
        "maker@acme.test",
        json!(["custom_roles:write", "custom_roles:read", "model:read"]),
    )
    .await;
    let mut revs = Revisions::new(&app).await;

    let ok = app
        .post(
            "/v1/roles",
            &key,
            None,
            json!({"name": "readers", "permissions": ["model:read"]}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    revs.advanced(&ok);
    let role = id_of(&ok);
    for permissions in [
        json!(["model:write"]),
        json!(["model:read", "model:write"]),
        json!(["model:*"]),
        json!(["*:read"]),
        json!(["*:*"]),
        json!(["role_binding:write"]),
    ] {
        let refused = app
            .post(
                "/v1/roles",
                &key,
                None,
                json!({"name": "greedy", "permissions": permissions.clone()}),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{permissions}: {}",
            refused.text
        );
        assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
        let patched = app
            .patch(
                &format!("/v1/roles/{role}"),
                &key,
                None,
                json!({"permissions": permissions.clone()}),
            )
            .await;
        assert_eq!(
            patched.status,
            StatusCode::FORBIDDEN,
            "{permissions}: {}",
            patched.text
        );
    }
    revs.unchanged(&app).await;
    let got = app.get(&format!("/v1/roles/{role}"), &key, None).await;
    assert_eq!(
        got.body["permissions"],
        json!([{"permission": "model:read", "scope": "ALL"}])
    );
    assert_eq!(
        app.total("/v1/roles?is_predefined=false", ADMIN_KEY, Some(&org))
            .await,
        2,
        "the maker's own role and `readers`"
    );
    // Changing only the name or description is fine.
    let renamed = app
        .patch(
            &format!("/v1/roles/{role}"),
            &key,
            None,
            json!({"name": "model-readers"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    revs.advanced(&renamed);
}

#[tokio::test]
async fn a_team_admin_acts_only_in_the_spaces_it_is_bound_on_and_a_member_of() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let s1 = app.create_space(&org, "Research").await;
    let s2 = app.create_space(&org, "Ops").await;
    let p1 = app.create_project(&org, &s1, "Vision").await;
    let p2 = app.create_project(&org, &s2, "Fraud").await;
    for (id, project) in [("m1", &p1), ("m2", &p2)] {
        let a = app
            .put(
                &format!("/v1/resources/model/{id}"),
                ADMIN_KEY,
                Some(&org),
                json!({"project_id": project}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    }
    let (tina, key) = app.member_with_key(&org, "tina@acme.test").await;
    app.bind(&org, &predefined("team_admin"), &tina, "SPACE", Some(&s1))
        .await;
    let member = app
        .call(
            Method::PUT,
            &format!("/v1/spaces/{s1}/members/{tina}"),
            Some(ADMIN_KEY),
            Some(&org),
            None,
        )
        .await;
    assert_eq!(member.status, StatusCode::OK, "{}", member.text);
    let bob = app.create_user(&org, "bob@acme.test").await;
    let reader = app.custom_role(&org, "reader", json!(["model:read"])).await;
    let key = key.as_str();

    // In its space: projects, settings, members, bindings, resources, decisions.
    let project = app
        .post(
            "/v1/projects",
            key,
            None,
            json!({"name": "New", "space_id": s1}),
        )
        .await;
    assert_eq!(project.status, StatusCode::CREATED, "{}", project.text);
    let patched = app
        .patch(
            &format!("/v1/spaces/{s1}"),
            key,
            None,
            json!({"description": "ours"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    let added = app
        .call(
            Method::PUT,
            &format!("/v1/spaces/{s1}/members/{bob}"),
            Some(key),
            None,
            None,
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.text);
    let bound = app
        .post(
            "/v1/role-bindings",
            key,
            None,
            json!({"role_id": reader, "user_id": bob, "resource_type": "SPACE", "resource_id": s1}),
        )
        .await;
    assert_eq!(bound.status, StatusCode::CREATED, "{}", bound.text);
    let registered = app
        .put(
            "/v1/resources/model/m3",
            key,
            None,
            json!({"project_id": p1}),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.text
    );
    let updated = app
        .put(
            "/v1/resources/model/m1",
            key,
            None,
            json!({"project_id": p1, "properties": {"stage": "prod"}}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    let spaces = app.get("/v1/spaces", key, None).await;
    assert_eq!(spaces.body["total"], 1, "{}", spaces.text);
    assert_eq!(spaces.body["items"][0]["id"], s1.as_str());
    assert!(app.allowed(&org, &tina, "model:write", "model", "m1").await);
    assert!(app.allowed(&org, &tina, "model:write", "model", "m3").await);

    // In the other space: nothing.
    let before = app.head_revision().await;
    let refusals: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (
            Method::POST,
            "/v1/projects".to_owned(),
            Some(json!({"name": "Sneaky", "space_id": s2})),
        ),
        (
            Method::PATCH,
            format!("/v1/spaces/{s2}"),
            Some(json!({"name": "Taken over"})),
        ),
        (Method::GET, format!("/v1/spaces/{s2}"), None),
        (Method::DELETE, format!("/v1/spaces/{s2}"), None),
        (Method::PUT, format!("/v1/spaces/{s2}/members/{tina}"), None),
        (
            Method::PATCH,
            format!("/v1/projects/{p2}"),
            Some(json!({"name": "Taken over"})),
        ),
        (Method::DELETE, format!("/v1/projects/{p2}"), None),
        (
            Method::POST,
            "/v1/role-bindings".to_owned(),
            Some(
                json!({"role_id": reader, "user_id": bob, "resource_type": "SPACE", "resource_id": s2}),
            ),
        ),
        (
            Method::POST,
            "/v1/role-bindings".to_owned(),
            Some(
                json!({"role_id": predefined("team_admin"), "user_id": tina, "resource_type": "SPACE", "resource_id": s2}),
            ),
        ),
        (
            Method::POST,
            "/v1/role-bindings".to_owned(),
            Some(
                json!({"role_id": reader, "user_id": bob, "resource_type": "PROJECT", "resource_id": p2}),
            ),
        ),
        (
            Method::POST,
            "/v1/role-bindings".to_owned(),
            Some(json!({"role_id": reader, "user_id": bob, "resource_type": "ORGANIZATION"})),
        ),
        (
            Method::POST,
            "/v1/role-bindings".to_owned(),
            Some(
                json!({"role_id": predefined("org_admin"), "user_id": bob, "resource_type": "SPACE", "resource_id": s1}),
            ),
        ),
        (
            Method::PUT,
            "/v1/resources/model/m4".to_owned(),
            Some(json!({"project_id": p2})),
        ),
        (
            Method::PUT,
            "/v1/resources/model/m2".to_owned(),
            Some(json!({"project_id": p1})),
        ),
        (Method::DELETE, "/v1/resources/model/m2".to_owned(), None),
        (
            Method::POST,
            "/v1/spaces".to_owned(),
            Some(json!({"name": "Another"})),
        ),
        (
            Method::PUT,
            "/v1/resources/model/loose".to_owned(),
            Some(json!({})),
        ),
    ];
    for (method, path, body) in refusals {
        let answer = app
            .call(method.clone(), &path, Some(key), None, body.as_ref())
            .await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            answer.text
        );
        assert_error(&answer, StatusCode::FORBIDDEN, "forbidden");
    }
    assert_eq!(app.head_revision().await, before, "a refused call wrote");
    assert!(!app.allowed(&org, &tina, "model:write", "model", "m2").await);
    assert!(!app.allowed(&org, &bob, "model:read", "model", "m2").await);

    // Bound on the space but not a member of it: the TEAM-scoped entries do not apply.
    let (tom, tom_key) = app.member_with_key(&org, "tom@acme.test").await;
    app.bind(&org, &predefined("team_admin"), &tom, "SPACE", Some(&s1))
        .await;
    let refused = app
        .post(
            "/v1/projects",
            &tom_key,
            None,
            json!({"name": "Outsider", "space_id": s1}),
        )
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    assert!(!app.allowed(&org, &tom, "model:write", "model", "m1").await);
}

#[tokio::test]
async fn only_a_platform_administrator_binds_on_the_platform() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let other = app.create_org("Other").await;
    let (olga, olga_key) = app.member_with_key(&org, "olga@acme.test").await;
    app.bind(&org, &predefined("org_admin"), &olga, "ORGANIZATION", None)
        .await;
    let bob = app.create_user(&org, "bob@acme.test").await;
    let before = app.head_revision().await;

    for (role, subject) in [
        (predefined("platform_admin"), &olga),
        (predefined("auditor"), &bob),
        (predefined("base"), &bob),
        (predefined("org_admin"), &olga),
    ] {
        let refused = app
            .post(
                "/v1/role-bindings",
                &olga_key,
                None,
                json!({"role_id": role, "user_id": subject, "resource_type": "PLATFORM"}),
            )
            .await;
        assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    }
    // An organization administrator reaches nothing on the platform or in other organizations,
    // nor the platform administrator's own user and key.
    let refused = app
        .post(
            "/v1/organizations",
            &olga_key,
            None,
            json!({"name": "Mine"}),
        )
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(app.total("/v1/organizations", &olga_key, None).await, 1);
    let elsewhere = app
        .post("/v1/spaces", &olga_key, Some(&other), json!({"name": "x"}))
        .await;
    assert_error(&elsewhere, StatusCode::NOT_FOUND, "not_found");
    for (method, path) in [
        (Method::GET, "/v1/users/usr_admin"),
        (Method::DELETE, "/v1/users/usr_admin"),
        (Method::DELETE, "/v1/api-keys/key_bootstrap"),
        (Method::POST, "/v1/api-keys/key_bootstrap/rotate"),
        (Method::GET, "/v1/role-bindings/rb_bootstrap"),
        (Method::DELETE, "/v1/role-bindings/rb_bootstrap"),
    ] {
        let answer = app
            .call(method.clone(), path, Some(&olga_key), None, None)
            .await;
        assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    }
    let key_for_admin = app
        .post(
            "/v1/api-keys",
            &olga_key,
            None,
            json!({"name": "mine", "user_id": "usr_admin"}),
        )
        .await;
    assert_error(&key_for_admin, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(app.head_revision().await, before, "a refused call wrote");
    assert_eq!(
        app.get("/v1/users/me", ADMIN_KEY, None).await.status,
        StatusCode::OK
    );

    // The platform administrator can, and the binding reaches every organization.
    let (pat, pat_key) = app.member_with_key(&org, "pat@acme.test").await;
    let bound = app
        .post(
            "/v1/role-bindings",
            ADMIN_KEY,
            Some(&org),
            json!({"role_id": predefined("platform_admin"), "user_id": pat, "resource_type": "PLATFORM"}),
        )
        .await;
    assert_eq!(bound.status, StatusCode::CREATED, "{}", bound.text);
    let created = app
        .post(
            "/v1/organizations",
            &pat_key,
            None,
            json!({"name": "Pat's"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(app.total("/v1/organizations", &pat_key, None).await, 3);

    // Olga may take Pat out of her organization, but not take Pat's platform role away.
    let removed = app
        .delete(&format!("/v1/users/{pat}"), &olga_key, None)
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
    assert_eq!(app.total("/v1/users", &olga_key, None).await, 2);
    let still = app.get("/v1/users/me", &pat_key, None).await;
    assert_eq!(still.status, StatusCode::OK, "{}", still.text);
    assert_eq!(app.total("/v1/organizations", &pat_key, None).await, 3);
    let bindings = app
        .get(
            &format!("/v1/role-bindings?user_id={pat}&resource_type=PLATFORM"),
            ADMIN_KEY,
            Some(&org),
        )
        .await;
    assert_eq!(bindings.body["total"], 1, "{}", bindings.text);
}

#[tokio::test]
async fn an_org_admin_cannot_obtain_a_secret_that_acts_in_another_organization() {
    let app = spawn_app().await;
    let a = app.create_org("Alpha").await;
    let b = app.create_org("Beta").await;
    // Sam is a member of both, and administers B.
    let sam = app.create_user(&b, "sam@shared.test").await;
    app.bind(&b, &predefined("org_admin"), &sam, "ORGANIZATION", None)
        .await;
    let added = app
        .patch(
            &format!("/v1/organizations/{a}/users"),
            ADMIN_KEY,
            None,
            json!({"users": [{"user_id": sam}]}),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.text);
    let sam_key = app
        .post(
            "/v1/api-keys",
            ADMIN_KEY,
            Some(&a),
            json!({"name": "sam", "user_id": sam}),
        )
        .await;
    assert_eq!(sam_key.status, StatusCode::CREATED, "{}", sam_key.text);
    let sam_key_id = id_of(&sam_key);
    let sam_secret = sam_key.body["key"].as_str().unwrap().to_owned();
    // Adam administers A only.
    let (adam, adam_key) = app.member_with_key(&a, "adam@alpha.test").await;
    app.bind(&a, &predefined("org_admin"), &adam, "ORGANIZATION", None)
        .await;
    let (amy, _) = app.member_with_key(&a, "amy@alpha.test").await;
    let before = app.head_revision().await;

    // A key for Sam, or a new secret for Sam's key, would act as Sam in B too.
    let minted = app
        .post(
            "/v1/api-keys",
            &adam_key,
            None,
            json!({"name": "mine now", "user_id": sam}),
        )
        .await;
    assert_error(&minted, StatusCode::FORBIDDEN, "forbidden");
    let rotated = app
        .call(
            Method::POST,
            &format!("/v1/api-keys/{sam_key_id}/rotate"),
            Some(&adam_key),
            None,
            None,
        )
        .await;
    assert_error(&rotated, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(app.head_revision().await, before, "a refused call wrote");
    assert_eq!(
        app.get("/v1/users/me", &sam_secret, None).await.status,
        StatusCode::OK,
        "Sam's key was not rotated"
    );
    // Keys for members of A only are Adam's to make.
    let for_amy = app
        .post(
            "/v1/api-keys",
            &adam_key,
            None,
            json!({"name": "amy", "user_id": amy}),
        )
        .await;
    assert_eq!(for_amy.status, StatusCode::CREATED, "{}", for_amy.text);
    // Adam may still revoke Sam's key in A: that hands him nothing.
    let revoked = app
        .delete(&format!("/v1/api-keys/{sam_key_id}"), &adam_key, None)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);
}
