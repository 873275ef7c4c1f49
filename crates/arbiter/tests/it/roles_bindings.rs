//! `/v1/roles` with the Arize semantics, and `/v1/role-bindings` on every kind of node, to every
//! kind of subject, with their effect on decisions.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

const PREDEFINED: [&str; 8] = [
    "auditor",
    "base",
    "data_scientist",
    "developer",
    "org_admin",
    "platform_admin",
    "project_key",
    "team_admin",
];

fn names(a: &Answer) -> Vec<String> {
    let mut names: Vec<String> = a.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {}", a.text))
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn roles_list_get_and_the_predefined_filter() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let other = app.create_org("Other").await;
    app.custom_role(&org, "readers", json!(["model:read"]))
        .await;
    app.custom_role(&other, "elsewhere", json!(["model:read"]))
        .await;

    let predefined_only = app
        .get("/v1/roles?is_predefined=true", ADMIN_KEY, Some(&org))
        .await;
    assert_eq!(
        predefined_only.status,
        StatusCode::OK,
        "{}",
        predefined_only.text
    );
    assert_eq!(names(&predefined_only), PREDEFINED.to_vec());
    assert!(predefined_only.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["is_predefined"] == true));
    let custom_only = app
        .get("/v1/roles?is_predefined=false", ADMIN_KEY, Some(&org))
        .await;
    assert_eq!(names(&custom_only), vec!["readers"], "{}", custom_only.text);
    assert_eq!(custom_only.body["items"][0]["is_predefined"], false);
    let all = app.get("/v1/roles", ADMIN_KEY, Some(&org)).await;
    assert_eq!(all.body["total"], 9, "{}", all.text);

    let got = app
        .get(
            &format!("/v1/roles/{}", predefined("project_key")),
            ADMIN_KEY,
            Some(&org),
        )
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    for field in [
        "id",
        "name",
        "description",
        "permissions",
        "is_predefined",
        "kind",
        "created_at",
        "updated_at",
    ] {
        assert!(got.body.get(field).is_some(), "no `{field}`: {}", got.text);
    }
    assert_eq!(got.body["kind"], "system");
    assert_eq!(got.body["is_predefined"], true);
    let missing = app
        .get("/v1/roles/role_nosuch", ADMIN_KEY, Some(&org))
        .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");

    // Reading roles needs custom_roles:read.
    let (_, key) = app.member_with_key(&org, "alice@acme.test").await;
    let denied = app.get("/v1/roles", &key, None).await;
    assert_error(&denied, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn roles_create_with_unique_and_unreserved_names_and_known_permissions() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let mut revs = Revisions::new(&app).await;

    let created = app
        .post(
            "/v1/roles",
            ADMIN_KEY,
            Some(&org),
            json!({
                "name": "model-reader",
                "description": "reads models",
                "permissions": [
                    "model:read",
                    {"permission": "dataset:write", "scope": "OWN"},
                    {"permission": "alert:read", "condition": "resource.properties.severity != 'low'"},
                ],
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    revs.advanced(&created);
    assert_eq!(created.body["name"], "model-reader");
    assert_eq!(created.body["description"], "reads models");
    assert_eq!(created.body["is_predefined"], false);
    assert_eq!(created.body["kind"], "user");
    let entries = created.body["permissions"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{}", created.text);
    assert_eq!(entries[0]["permission"], "model:read");
    assert_eq!(entries[0]["scope"], "ALL");
    assert_eq!(entries[1]["scope"], "OWN");
    assert_eq!(
        entries[2]["condition"],
        "resource.properties.severity != 'low'"
    );

    let refusals: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"name": "model-reader", "permissions": ["model:read"]}),
            StatusCode::CONFLICT,
            "already_exists",
        ),
        (
            json!({"name": "MODEL-READER", "permissions": ["model:read"]}),
            StatusCode::CONFLICT,
            "already_exists",
        ),
        (
            json!({"name": "org_admin", "permissions": ["model:read"]}),
            StatusCode::CONFLICT,
            "reserved_name",
        ),
        (
            json!({"name": "Platform_Admin", "permissions": ["model:read"]}),
            StatusCode::CONFLICT,
            "reserved_name",
        ),
        (
            json!({"name": "empty", "permissions": []}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"name": "none"}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({"name": "unknown", "permissions": ["nosuch:read"]}),
            StatusCode::BAD_REQUEST,
            "unknown_permission",
        ),
        (
            json!({"name": "unknown-action", "permissions": ["model:fly"]}),
            StatusCode::BAD_REQUEST,
            "unknown_permission",
        ),
        (
            json!({"name": "malformed", "permissions": ["model"]}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({"name": "scope", "permissions": [{"permission": "model:read", "scope": "WORLD"}]}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({"name": "condition", "permissions": [{"permission": "model:read", "condition": "resource.(("}]}),
            StatusCode::BAD_REQUEST,
            "invalid_condition",
        ),
    ];
    for (body, status, code) in refusals {
        let refused = app
            .post("/v1/roles", ADMIN_KEY, Some(&org), body.clone())
            .await;
        assert_eq!(refused.status, status, "{body}: {}", refused.text);
        assert_error(&refused, status, code);
    }
    revs.unchanged(&app).await;
    assert_eq!(
        app.total("/v1/roles?is_predefined=false", ADMIN_KEY, Some(&org))
            .await,
        1
    );
    // The same name in another organization is fine.
    let other = app.create_org("Other").await;
    app.custom_role(&other, "model-reader", json!(["model:read"]))
        .await;
}

#[tokio::test]
async fn roles_patch_replaces_permissions_whole_and_predefined_roles_are_immutable() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let alice = app.create_user(&org, "alice@acme.test").await;
    let role = app
        .custom_role(&org, "reader", json!(["model:read", "dataset:read"]))
        .await;
    app.custom_role(&org, "taken", json!(["model:read"])).await;
    let binding = app.bind(&org, &role, &alice, "ORGANIZATION", None).await;
    assert!(app.allowed(&org, &alice, "model:read", "model", "m1").await);
    let mut revs = Revisions::new(&app).await;
    let path = format!("/v1/roles/{role}");

    for (body, status, code) in [
        (json!({}), StatusCode::BAD_REQUEST, "invalid_field"),
        (
            json!({"permissions": []}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"permissions": ["nosuch:read"]}),
            StatusCode::BAD_REQUEST,
            "unknown_permission",
        ),
        (
            json!({"name": "team_admin"}),
            StatusCode::CONFLICT,
            "reserved_name",
        ),
        (
            json!({"name": "Taken"}),
            StatusCode::CONFLICT,
            "already_exists",
        ),
    ] {
        let refused = app.patch(&path, ADMIN_KEY, Some(&org), body).await;
        assert_error(&refused, status, code);
    }
    revs.unchanged(&app).await;

    let patched = app
        .patch(
            &path,
            ADMIN_KEY,
            Some(&org),
            json!({"permissions": ["alert:read"]}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    revs.advanced(&patched);
    assert_eq!(patched.body["name"], "reader", "the name is kept");
    assert_eq!(
        patched.body["permissions"],
        json!([{"permission": "alert:read", "scope": "ALL"}])
    );
    // The binding now gives the new permissions only, at once.
    assert!(!app.allowed(&org, &alice, "model:read", "model", "m1").await);
    assert!(
        !app.allowed(&org, &alice, "dataset:read", "dataset", "d1")
            .await
    );
    assert!(app.allowed(&org, &alice, "alert:read", "alert", "a1").await);
    let renamed = app
        .patch(
            &path,
            ADMIN_KEY,
            Some(&org),
            json!({"name": "alert-reader", "description": "alerts"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    revs.advanced(&renamed);
    assert_eq!(
        renamed.body["permissions"].as_array().map(Vec::len),
        Some(1)
    );
    let got = app.get(&path, ADMIN_KEY, Some(&org)).await;
    assert_eq!(got.body["name"], "alert-reader");
    assert_eq!(got.body["description"], "alerts");

    // Predefined roles can be neither changed nor deleted, even by a platform administrator.
    for name in ["org_admin", "base", "project_key"] {
        let id = predefined(name);
        let patch = app
            .patch(
                &format!("/v1/roles/{id}"),
                ADMIN_KEY,
                Some(&org),
                json!({"description": "mine now"}),
            )
            .await;
        assert_error(&patch, StatusCode::CONFLICT, "immutable");
        let delete = app
            .delete(&format!("/v1/roles/{id}"), ADMIN_KEY, Some(&org))
            .await;
        assert_error(&delete, StatusCode::CONFLICT, "immutable");
    }
    revs.unchanged(&app).await;

    // A bound custom role cannot be deleted; once unbound it can.
    let in_use = app.delete(&path, ADMIN_KEY, Some(&org)).await;
    assert_error(&in_use, StatusCode::CONFLICT, "role_in_use");
    revs.unchanged(&app).await;
    assert!(app.allowed(&org, &alice, "alert:read", "alert", "a1").await);
    let unbound = app
        .delete(
            &format!("/v1/role-bindings/{binding}"),
            ADMIN_KEY,
            Some(&org),
        )
        .await;
    assert_eq!(unbound.status, StatusCode::NO_CONTENT, "{}", unbound.text);
    revs.advanced(&unbound);
    let deleted = app.delete(&path, ADMIN_KEY, Some(&org)).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    revs.advanced(&deleted);
    let gone = app.get(&path, ADMIN_KEY, Some(&org)).await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
}

/// The org, a space with a project, a registered model in it and another outside it.
struct World {
    org: String,
    space: String,
    project: String,
    reader: String,
}

async fn world(app: &TestApp) -> World {
    let org = app.create_org("Acme").await;
    let space = app.create_space(&org, "Research").await;
    let other_space = app.create_space(&org, "Ops").await;
    let project = app.create_project(&org, &space, "Vision").await;
    let other_project = app.create_project(&org, &other_space, "Fraud").await;
    for (id, project) in [("in-project", &project), ("elsewhere", &other_project)] {
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
    let reader = app
        .custom_role(&org, "model-reader", json!(["model:read"]))
        .await;
    World {
        org,
        space,
        project,
        reader,
    }
}

#[tokio::test]
async fn bindings_on_every_node_reach_exactly_what_lies_beneath() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let org = w.org.as_str();
    let mut revs = Revisions::new(&app).await;

    // (resource_type, resource_id, what it reaches among in-project, elsewhere, loose)
    let cases: [(&str, Option<String>, [bool; 3]); 5] = [
        (
            "RESOURCE",
            Some("model:in-project".to_owned()),
            [true, false, false],
        ),
        ("PROJECT", Some(w.project.clone()), [true, false, false]),
        ("SPACE", Some(w.space.clone()), [true, false, false]),
        ("ORGANIZATION", Some(org.to_owned()), [true, true, true]),
        ("ORGANIZATION", None, [true, true, true]),
    ];
    for (i, (resource_type, resource_id, reach)) in cases.into_iter().enumerate() {
        let user = app.create_user(org, &format!("u{i}@acme.test")).await;
        revs.last = app.head_revision().await;
        let created = app
            .post(
                "/v1/role-bindings",
                ADMIN_KEY,
                Some(org),
                json!({"role_id": w.reader, "user_id": user, "resource_type": resource_type, "resource_id": resource_id}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        revs.advanced(&created);
        for field in [
            "id",
            "role_id",
            "user_id",
            "resource_type",
            "resource_id",
            "created_at",
            "updated_at",
        ] {
            assert!(
                created.body.get(field).is_some(),
                "no `{field}`: {}",
                created.text
            );
        }
        assert_eq!(created.body["role_id"], w.reader.as_str());
        assert_eq!(created.body["user_id"], user.as_str());
        assert_eq!(created.body["resource_type"], resource_type);
        let expected_id = resource_id.clone().unwrap_or_else(|| org.to_owned());
        assert_eq!(created.body["resource_id"], expected_id.as_str());
        let seen = [
            app.allowed(org, &user, "model:read", "model", "in-project")
                .await,
            app.allowed(org, &user, "model:read", "model", "elsewhere")
                .await,
            app.allowed(org, &user, "model:read", "model", "loose")
                .await,
        ];
        assert_eq!(seen, reach, "{resource_type} {resource_id:?}");
        assert!(
            !app.allowed(org, &user, "model:write", "model", "in-project")
                .await,
            "the role gives model:read only"
        );
    }

    // PLATFORM: only predefined roles, no resource_id, and it reaches every organization.
    let user = app.create_user(org, "platform@acme.test").await;
    let custom_on_platform = app
        .post(
            "/v1/role-bindings",
            ADMIN_KEY,
            Some(org),
            json!({"role_id": w.reader, "user_id": user, "resource_type": "PLATFORM"}),
        )
        .await;
    assert_error(&custom_on_platform, StatusCode::NOT_FOUND, "not_found");
    let with_id = app
        .post(
            "/v1/role-bindings",
            ADMIN_KEY,
            Some(org),
            json!({"role_id": predefined("auditor"), "user_id": user, "resource_type": "PLATFORM", "resource_id": "x"}),
        )
        .await;
    assert_error(&with_id, StatusCode::BAD_REQUEST, "invalid_field");
    let platform = app
        .post(
            "/v1/role-bindings",
            ADMIN_KEY,
            Some(org),
            json!({"role_id": predefined("auditor"), "user_id": user, "resource_type": "PLATFORM"}),
        )
        .await;
    assert_eq!(platform.status, StatusCode::CREATED, "{}", platform.text);
    assert_eq!(platform.body["resource_type"], "PLATFORM");
    assert!(platform.body["resource_id"].is_null(), "{}", platform.text);
    let other_org = app.create_org("Other").await;
    assert!(
        app.allowed(&other_org, &user, "model:read", "model", "x")
            .await
    );
    assert!(
        !app.allowed(&other_org, &user, "model:write", "model", "x")
            .await
    );

    // Malformed and unknown nodes.
    let refusals = [
        (
            json!({"resource_type": "RESOURCE", "resource_id": "no-colon"}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"resource_type": "RESOURCE", "resource_id": "*:x"}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"resource_type": "SPACE"}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"resource_type": "SPACE", "resource_id": "spc_nowhere"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"resource_type": "PROJECT", "resource_id": "prj_nowhere"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"resource_type": "ORGANIZATION", "resource_id": other_org}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"resource_type": "GALAXY", "resource_id": "x"}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
    ];
    revs.last = app.head_revision().await;
    for (node, status, code) in refusals {
        let mut body = node.clone();
        body["role_id"] = json!(w.reader);
        body["user_id"] = json!(user);
        let refused = app
            .post("/v1/role-bindings", ADMIN_KEY, Some(org), body)
            .await;
        assert_eq!(refused.status, status, "{node}: {}", refused.text);
        assert_error(&refused, status, code);
    }
    revs.unchanged(&app).await;
}

#[tokio::test]
async fn bindings_to_groups_and_keys_and_their_refusals() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let org = w.org.as_str();
    let alice = app.create_user(org, "alice@acme.test").await;
    let bob = app.create_user(org, "bob@acme.test").await;

    // A group binding gives its members access, and only while they are members.
    let group = app
        .post(
            "/v1/groups",
            ADMIN_KEY,
            Some(org),
            json!({"name": "Readers"}),
        )
        .await;
    let group = id_of(&group);
    let member = format!("/v1/groups/{group}/members/{alice}");
    let added = app
        .call(Method::PUT, &member, Some(ADMIN_KEY), Some(org), None)
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.text);
    let bound = app
        .post(
            "/v1/role-bindings",
            ADMIN_KEY,
            Some(org),
            json!({"role_id": w.reader, "group_id": group, "resource_type": "SPACE", "resource_id": w.space}),
        )
        .await;
    assert_eq!(bound.status, StatusCode::CREATED, "{}", bound.text);
    assert_eq!(bound.body["group_id"], group.as_str());
    assert!(bound.body.get("user_id").is_none(), "{}", bound.text);
    assert!(
        app.allowed(org, &alice, "model:read", "model", "in-project")
            .await
    );
    assert!(
        !app.allowed(org, &bob, "model:read", "model", "in-project")
            .await
    );
    assert!(
        !app.allowed(org, &alice, "model:read", "model", "elsewhere")
            .await
    );
    let removed = app.delete(&member, ADMIN_KEY, Some(org)).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert!(
        !app.allowed(org, &alice, "model:read", "model", "in-project")
            .await
    );

    // A binding to a user key counts for its user.
    let key = app
        .post(
            "/v1/api-keys",
            ADMIN_KEY,
            Some(org),
            json!({"name": "bob's", "user_id": bob}),
        )
        .await;
    let key_id = id_of(&key);
    let bob_key = key.body["key"].as_str().unwrap().to_owned();
    let on_key = app
        .post(
            "/v1/role-bindings",
            ADMIN_KEY,
            Some(org),
            json!({"role_id": w.reader, "api_key_id": key_id, "resource_type": "PROJECT", "resource_id": w.project}),
        )
        .await;
    assert_eq!(on_key.status, StatusCode::CREATED, "{}", on_key.text);
    assert_eq!(on_key.body["api_key_id"], key_id.as_str());
    assert!(
        app.allowed(org, &bob, "model:read", "model", "in-project")
            .await
    );
    let self_check = app
        .post(
            "/v1/check",
            &bob_key,
            None,
            json!({"permission": "model:read", "resource": {"type": "model", "id": "in-project"}}),
        )
        .await;
    assert_eq!(self_check.body["allowed"], true, "{}", self_check.text);

    // Refusals: exactly one subject; known subjects; system roles only for project keys;
    // no expired binding; no duplicate.
    let mut revs = Revisions::new(&app).await;
    let refusals = [
        (
            json!({"role_id": w.reader, "resource_type": "ORGANIZATION"}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"role_id": w.reader, "user_id": alice, "group_id": group, "resource_type": "ORGANIZATION"}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"role_id": w.reader, "user_id": "usr_nobody", "resource_type": "ORGANIZATION"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"role_id": w.reader, "group_id": "grp_nowhere", "resource_type": "ORGANIZATION"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"role_id": w.reader, "api_key_id": "key_nowhere", "resource_type": "ORGANIZATION"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"role_id": "role_nosuch", "user_id": alice, "resource_type": "ORGANIZATION"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"role_id": predefined("project_key"), "user_id": alice, "resource_type": "ORGANIZATION"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "system_role",
        ),
        (
            json!({"role_id": w.reader, "user_id": alice, "resource_type": "ORGANIZATION", "expires_at": "2001-01-01T00:00:00Z"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "expired",
        ),
        (
            json!({"role_id": w.reader, "user_id": alice, "resource_type": "ORGANIZATION", "expires_at": "yesterday"}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({"role_id": w.reader, "user_id": alice, "resource_type": "ORGANIZATION", "condition": "resource.(("}),
            StatusCode::BAD_REQUEST,
            "invalid_condition",
        ),
        (
            json!({"role_id": w.reader, "api_key_id": key_id, "resource_type": "PROJECT", "resource_id": w.project}),
            StatusCode::CONFLICT,
            "already_exists",
        ),
    ];
    for (body, status, code) in refusals {
        let refused = app
            .post("/v1/role-bindings", ADMIN_KEY, Some(org), body.clone())
            .await;
        assert_eq!(refused.status, status, "{body}: {}", refused.text);
        assert_error(&refused, status, code);
    }
    revs.unchanged(&app).await;

    // A binding that expires in the future applies now.
    let future = app
        .post(
            "/v1/role-bindings",
            ADMIN_KEY,
            Some(org),
            json!({"role_id": w.reader, "user_id": alice, "resource_type": "ORGANIZATION", "expires_at": "2999-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(future.status, StatusCode::CREATED, "{}", future.text);
    revs.advanced(&future);
    assert_eq!(future.body["expires_at"], "2999-01-01T00:00:00Z");
    assert!(
        app.allowed(org, &alice, "model:read", "model", "elsewhere")
            .await
    );
    // A condition on a binding is evaluated at check time.
    let carol = app.create_user(org, "carol@acme.test").await;
    let conditional = app
        .post(
            "/v1/role-bindings",
            ADMIN_KEY,
            Some(org),
            json!({"role_id": w.reader, "user_id": carol, "resource_type": "ORGANIZATION", "condition": "resource.properties.stage == 'prod'"}),
        )
        .await;
    assert_eq!(
        conditional.status,
        StatusCode::CREATED,
        "{}",
        conditional.text
    );
    let ask = |stage: &str| {
        json!({"subject": {"type": "user", "id": carol}, "permission": "model:read",
               "resource": {"type": "model", "id": "x", "properties": {"stage": stage}}})
    };
    let prod = app
        .post("/v1/check", ADMIN_KEY, Some(org), ask("prod"))
        .await;
    assert_eq!(prod.body["allowed"], true, "{}", prod.text);
    let dev = app
        .post("/v1/check", ADMIN_KEY, Some(org), ask("dev"))
        .await;
    assert_eq!(dev.body["allowed"], false, "{}", dev.text);

    // Deleting a group deletes its bindings.
    let gone = app
        .delete(&format!("/v1/groups/{group}"), ADMIN_KEY, Some(org))
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.text);
    assert_eq!(
        app.total(
            &format!("/v1/role-bindings?group_id={group}"),
            ADMIN_KEY,
            Some(org)
        )
        .await,
        0
    );
}

#[tokio::test]
async fn bindings_list_filters_get_and_delete_stops_access_at_once() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let org = w.org.as_str();
    let alice = app.create_user(org, "alice@acme.test").await;
    let bob = app.create_user(org, "bob@acme.test").await;
    let group = id_of(
        &app.post("/v1/groups", ADMIN_KEY, Some(org), json!({"name": "G"}))
            .await,
    );
    let writer = app
        .custom_role(org, "model-writer", json!(["model:write"]))
        .await;
    let b1 = app
        .bind(org, &w.reader, &alice, "SPACE", Some(&w.space))
        .await;
    let b2 = app
        .bind(org, &writer, &alice, "PROJECT", Some(&w.project))
        .await;
    let b3 = app.bind(org, &w.reader, &bob, "ORGANIZATION", None).await;
    let b4 = id_of(
        &app.post(
            "/v1/role-bindings",
            ADMIN_KEY,
            Some(org),
            json!({"role_id": writer, "group_id": group, "resource_type": "RESOURCE", "resource_id": "model:elsewhere"}),
        )
        .await,
    );

    let listed = |query: String| {
        let app = &app;
        async move {
            let a = app
                .get(&format!("/v1/role-bindings{query}"), ADMIN_KEY, Some(org))
                .await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.text);
            let mut ids: Vec<String> = a.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            assert_eq!(a.body["total"], ids.len(), "{}", a.text);
            ids
        }
    };
    let sorted = |mut v: Vec<&String>| {
        v.sort();
        v.into_iter().cloned().collect::<Vec<_>>()
    };
    // A platform administrator also sees the platform's bindings (its own bootstrap binding).
    let bootstrap = "rb_bootstrap".to_owned();
    assert_eq!(
        listed(String::new()).await,
        sorted(vec![&b1, &b2, &b3, &b4, &bootstrap])
    );
    assert_eq!(
        listed("?resource_type=PLATFORM".to_owned()).await,
        vec![bootstrap.clone()]
    );
    assert_eq!(
        listed(format!("?user_id={alice}")).await,
        sorted(vec![&b1, &b2])
    );
    assert_eq!(listed(format!("?group_id={group}")).await, vec![b4.clone()]);
    assert_eq!(
        listed(format!("?role_id={}", w.reader)).await,
        sorted(vec![&b1, &b3])
    );
    assert_eq!(
        listed("?resource_type=SPACE".to_owned()).await,
        vec![b1.clone()]
    );
    assert_eq!(
        listed("?resource_type=RESOURCE".to_owned()).await,
        vec![b4.clone()]
    );
    assert_eq!(
        listed("?resource_id=model:elsewhere".to_owned()).await,
        vec![b4.clone()]
    );
    assert_eq!(
        listed(format!("?user_id={alice}&resource_id={}", w.project)).await,
        vec![b2.clone()]
    );
    assert_eq!(
        listed("?user_id=usr_nobody".to_owned()).await,
        Vec::<String>::new()
    );
    let paged = app
        .get("/v1/role-bindings?limit=2&offset=1", ADMIN_KEY, Some(org))
        .await;
    assert_eq!(paged.body["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(paged.body["total"], 5);
    // Listing needs role_binding:read.
    let alice_key = app.create_key(org, &alice).await;
    let denied = app.get("/v1/role-bindings", &alice_key, None).await;
    assert_error(&denied, StatusCode::FORBIDDEN, "forbidden");

    let got = app
        .get(&format!("/v1/role-bindings/{b2}"), ADMIN_KEY, Some(org))
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    assert_eq!(got.body["role_id"], writer.as_str());
    assert_eq!(got.body["resource_type"], "PROJECT");
    assert_eq!(got.body["resource_id"], w.project.as_str());
    let missing = app
        .get("/v1/role-bindings/rb_nowhere", ADMIN_KEY, Some(org))
        .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");

    // Deleting a binding stops access on the very next request.
    assert!(
        app.allowed(org, &alice, "model:write", "model", "in-project")
            .await
    );
    let mut revs = Revisions::new(&app).await;
    let deleted = app
        .delete(&format!("/v1/role-bindings/{b2}"), ADMIN_KEY, Some(org))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    let revision = revs.advanced(&deleted);
    let check = app
        .post(
            "/v1/check",
            ADMIN_KEY,
            Some(org),
            json!({"subject": {"type": "user", "id": alice}, "permission": "model:write",
                   "resource": {"type": "model", "id": "in-project"}}),
        )
        .await;
    assert_eq!(check.body["allowed"], false, "{}", check.text);
    assert_eq!(check.body["revision"], revision.to_string());
    let gone = app
        .get(&format!("/v1/role-bindings/{b2}"), ADMIN_KEY, Some(org))
        .await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
    let twice = app
        .delete(&format!("/v1/role-bindings/{b2}"), ADMIN_KEY, Some(org))
        .await;
    assert_error(&twice, StatusCode::NOT_FOUND, "not_found");
    // The other bindings are untouched.
    assert!(
        app.allowed(org, &alice, "model:read", "model", "in-project")
            .await
    );
}
