//! Tenant isolation: an administrator of organization A gets 404 (never 403) for every object of
//! organization B, and its attempts change nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

/// Organization B and one object of each kind in it.
struct Tenant {
    org: String,
    space: String,
    project: String,
    user: String,
    user_key: String,
    key_id: String,
    group: String,
    profile: String,
    role: String,
    binding: String,
}

async fn tenant(app: &TestApp, name: &str) -> Tenant {
    let org = app.create_org(name).await;
    let space = app.create_space(&org, "Space").await;
    let project = app.create_project(&org, &space, "Project").await;
    let user = app
        .create_user(&org, &format!("user@{}.test", name.to_lowercase()))
        .await;
    let key = app
        .post(
            "/v1/api-keys",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "k", "user_id": user}),
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.text);
    let group = id_of(
        &app.post("/v1/groups", ADMIN_KEY, Some(&org), json!({"name": "G"}))
            .await,
    );
    let profile = id_of(
        &app.post(
            "/v1/permission-profiles",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "P"}),
        )
        .await,
    );
    let role = app.custom_role(&org, "reader", json!(["model:read"])).await;
    let binding = app.bind(&org, &role, &user, "SPACE", Some(&space)).await;
    let put = app
        .put(
            &format!("/v1/resources/model/model-of-{name}"),
            ADMIN_KEY,
            Some(&org),
            json!({"project_id": project}),
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text);
    Tenant {
        org,
        space,
        project,
        user,
        user_key: key.body["key"].as_str().unwrap().to_owned(),
        key_id: id_of(&key),
        group,
        profile,
        role,
        binding,
    }
}

#[tokio::test]
async fn an_org_admin_of_a_gets_404_for_every_object_of_b() {
    let app = spawn_app().await;
    let a = tenant(&app, "Alpha").await;
    let b = tenant(&app, "Beta").await;
    let (admin_a, admin_a_key) = app.member_with_key(&a.org, "boss@alpha.test").await;
    app.bind(
        &a.org,
        &predefined("org_admin"),
        &admin_a,
        "ORGANIZATION",
        None,
    )
    .await;
    let key = admin_a_key.as_str();
    let before = app.head_revision().await;

    // The organization admin is powerful in its own organization...
    for path in [
        format!("/v1/spaces/{}", a.space),
        format!("/v1/projects/{}", a.project),
        format!("/v1/users/{}", a.user),
        format!("/v1/groups/{}", a.group),
        format!("/v1/permission-profiles/{}", a.profile),
        format!("/v1/roles/{}", a.role),
        format!("/v1/role-bindings/{}", a.binding),
        "/v1/resources/model/model-of-Alpha".to_owned(),
        format!("/v1/organizations/{}", a.org),
        format!("/v1/api-keys?user_id={}", a.user),
        format!("/v1/authorization/permissions?role_id={}", a.role),
    ] {
        let got = app.get(&path, key, None).await;
        assert_eq!(got.status, StatusCode::OK, "{path}: {}", got.text);
    }

    // ...and sees nothing of B: every read, write and delete answers 404.
    let calls: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::GET, format!("/v1/organizations/{}", b.org), None),
        (Method::DELETE, format!("/v1/organizations/{}", b.org), None),
        (
            Method::PATCH,
            format!("/v1/organizations/{}/users", b.org),
            Some(json!({"users": [{"user_id": admin_a}]})),
        ),
        (
            Method::PATCH,
            format!("/v1/organizations/{}/users", a.org),
            Some(json!({"users": [{"user_id": b.user}]})),
        ),
        (
            Method::PUT,
            "/v1/organizations/current".to_owned(),
            Some(json!({"organization_id": b.org})),
        ),
        (Method::GET, format!("/v1/spaces/{}", b.space), None),
        (
            Method::PATCH,
            format!("/v1/spaces/{}", b.space),
            Some(json!({"name": "mine"})),
        ),
        (Method::DELETE, format!("/v1/spaces/{}", b.space), None),
        (Method::GET, format!("/v1/spaces/{}/members", b.space), None),
        (
            Method::PUT,
            format!("/v1/spaces/{}/members/{}", b.space, admin_a),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/spaces/{}/members/{}", a.space, b.user),
            None,
        ),
        (Method::GET, format!("/v1/projects/{}", b.project), None),
        (
            Method::PATCH,
            format!("/v1/projects/{}", b.project),
            Some(json!({"name": "mine"})),
        ),
        (Method::DELETE, format!("/v1/projects/{}", b.project), None),
        (
            Method::POST,
            "/v1/projects".to_owned(),
            Some(json!({"name": "Sneaky", "space_id": b.space})),
        ),
        (Method::GET, format!("/v1/users/{}", b.user), None),
        (
            Method::PATCH,
            format!("/v1/users/{}", b.user),
            Some(json!({"name": "pwned"})),
        ),
        (Method::DELETE, format!("/v1/users/{}", b.user), None),
        (Method::GET, format!("/v1/groups/{}", b.group), None),
        (
            Method::PATCH,
            format!("/v1/groups/{}", b.group),
            Some(json!({"name": "mine"})),
        ),
        (Method::DELETE, format!("/v1/groups/{}", b.group), None),
        (
            Method::PUT,
            format!("/v1/groups/{}/members/{}", b.group, admin_a),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/groups/{}/members/{}", a.group, b.user),
            None,
        ),
        (
            Method::GET,
            format!("/v1/permission-profiles/{}", b.profile),
            None,
        ),
        (
            Method::DELETE,
            format!("/v1/permission-profiles/{}", b.profile),
            None,
        ),
        (Method::GET, format!("/v1/roles/{}", b.role), None),
        (
            Method::PATCH,
            format!("/v1/roles/{}", b.role),
            Some(json!({"description": "mine"})),
        ),
        (Method::DELETE, format!("/v1/roles/{}", b.role), None),
        (
            Method::GET,
            format!("/v1/authorization/permissions?role_id={}", b.role),
            None,
        ),
        (
            Method::POST,
            "/v1/authorization/authorize".to_owned(),
            Some(json!({"role_id": b.role, "permission": "model:read"})),
        ),
        (
            Method::GET,
            format!("/v1/role-bindings/{}", b.binding),
            None,
        ),
        (
            Method::DELETE,
            format!("/v1/role-bindings/{}", b.binding),
            None,
        ),
        (
            Method::POST,
            "/v1/role-bindings".to_owned(),
            Some(json!({"role_id": b.role, "user_id": admin_a, "resource_type": "ORGANIZATION"})),
        ),
        (
            Method::POST,
            "/v1/role-bindings".to_owned(),
            Some(
                json!({"role_id": predefined("auditor"), "user_id": b.user, "resource_type": "ORGANIZATION"}),
            ),
        ),
        (
            Method::POST,
            "/v1/role-bindings".to_owned(),
            Some(
                json!({"role_id": predefined("auditor"), "user_id": admin_a, "resource_type": "SPACE", "resource_id": b.space}),
            ),
        ),
        (
            Method::POST,
            "/v1/role-bindings".to_owned(),
            Some(
                json!({"role_id": predefined("auditor"), "user_id": admin_a, "resource_type": "PROJECT", "resource_id": b.project}),
            ),
        ),
        (
            Method::POST,
            "/v1/role-bindings".to_owned(),
            Some(
                json!({"role_id": predefined("auditor"), "user_id": admin_a, "resource_type": "ORGANIZATION", "resource_id": b.org}),
            ),
        ),
        (
            Method::POST,
            "/v1/role-bindings".to_owned(),
            Some(
                json!({"role_id": predefined("auditor"), "group_id": b.group, "resource_type": "ORGANIZATION"}),
            ),
        ),
        (
            Method::POST,
            "/v1/role-bindings".to_owned(),
            Some(
                json!({"role_id": predefined("auditor"), "api_key_id": b.key_id, "resource_type": "ORGANIZATION"}),
            ),
        ),
        (
            Method::GET,
            "/v1/resources/model/model-of-Beta".to_owned(),
            None,
        ),
        (
            Method::DELETE,
            "/v1/resources/model/model-of-Beta".to_owned(),
            None,
        ),
        (
            Method::PUT,
            "/v1/resources/model/m-new".to_owned(),
            Some(json!({"project_id": b.project})),
        ),
        (
            Method::GET,
            format!("/v1/api-keys?user_id={}", b.user),
            None,
        ),
        (
            Method::POST,
            "/v1/api-keys".to_owned(),
            Some(json!({"name": "impersonate", "user_id": b.user})),
        ),
        (
            Method::POST,
            "/v1/api-keys".to_owned(),
            Some(json!({"name": "ci", "kind": "project", "project_id": b.project})),
        ),
        (Method::DELETE, format!("/v1/api-keys/{}", b.key_id), None),
        (
            Method::POST,
            format!("/v1/api-keys/{}/rotate", b.key_id),
            None,
        ),
        (
            Method::POST,
            "/v1/users/invite_users".to_owned(),
            Some(json!({"emails": ["new@alpha.test"], "role_id": b.role})),
        ),
    ];
    for (method, path, body) in calls {
        let answer = app
            .call(method.clone(), &path, Some(key), None, body.as_ref())
            .await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            answer.text
        );
        assert_error(&answer, StatusCode::NOT_FOUND, &error_code(&answer));
    }

    // Naming B in X-Organization-Id answers 404 on every organization-scoped route.
    for path in [
        "/v1/spaces",
        "/v1/projects",
        "/v1/users",
        "/v1/groups",
        "/v1/permission-profiles",
        "/v1/roles",
        "/v1/role-bindings",
        "/v1/resources",
        "/v1/audit-events",
        "/v1/organizations/current",
        "/v1/permissions/catalog",
    ] {
        let answer = app.get(path, key, Some(&b.org)).await;
        assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    }
    let created = app
        .post("/v1/spaces", key, Some(&b.org), json!({"name": "Implant"}))
        .await;
    assert_error(&created, StatusCode::NOT_FOUND, "not_found");
    let checked = app
        .post(
            "/v1/check",
            key,
            Some(&b.org),
            json!({"subject": {"type": "user", "id": b.user}, "permission": "model:read",
                   "resource": {"type": "model", "id": "model-of-Beta"}}),
        )
        .await;
    assert_error(&checked, StatusCode::NOT_FOUND, "not_found");

    // Nothing changed, and B's objects are untouched.
    assert_eq!(app.head_revision().await, before, "a refused call wrote");
    assert_eq!(
        app.get("/v1/users/me", &b.user_key, None).await.status,
        StatusCode::OK
    );
    let listed = app.get("/v1/organizations", key, None).await;
    assert_eq!(listed.body["total"], 1, "{}", listed.text);
    assert_eq!(listed.body["items"][0]["id"], a.org.as_str());

    // Lists in A hold nothing of B.
    for (path, forbidden) in [
        ("/v1/spaces", &b.space),
        ("/v1/projects", &b.project),
        ("/v1/users", &b.user),
        ("/v1/groups", &b.group),
        ("/v1/roles", &b.role),
        ("/v1/role-bindings", &b.binding),
        ("/v1/audit-events?limit=1000", &b.org),
    ] {
        let answer = app.get(path, key, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text);
        assert!(
            !answer.text.contains(forbidden.as_str()),
            "{path} leaks {forbidden}"
        );
    }
    let resources = app.get("/v1/resources", key, None).await;
    assert_eq!(resources.body["total"], 1, "{}", resources.text);
    assert_eq!(resources.body["items"][0]["id"], "model-of-Alpha");
}

#[tokio::test]
async fn a_decision_in_a_never_uses_what_b_granted() {
    let app = spawn_app().await;
    let a = app.create_org("Alpha").await;
    let b = app.create_org("Beta").await;
    let alice = app.create_user(&a, "alice@shared.test").await;
    // Alice is also a member of B, where she is an org_admin.
    let added = app
        .patch(
            &format!("/v1/organizations/{b}/users"),
            ADMIN_KEY,
            None,
            json!({"users": [{"user_id": alice}]}),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.text);
    app.bind(&b, &predefined("org_admin"), &alice, "ORGANIZATION", None)
        .await;
    assert!(app.allowed(&b, &alice, "model:write", "model", "m1").await);
    assert!(!app.allowed(&a, &alice, "model:write", "model", "m1").await);
    let key = app.create_key(&a, &alice).await;
    let in_a = app
        .post(
            "/v1/spaces",
            &key,
            Some(&a),
            json!({"name": "Not allowed here"}),
        )
        .await;
    assert_error(&in_a, StatusCode::FORBIDDEN, "forbidden");
    let in_b = app
        .post(
            "/v1/spaces",
            &key,
            Some(&b),
            json!({"name": "Allowed here"}),
        )
        .await;
    assert_eq!(in_b.status, StatusCode::CREATED, "{}", in_b.text);
}
