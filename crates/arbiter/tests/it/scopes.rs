//! Entitlement scopes, project keys, the predefined roles' intent and usage, through the HTTP
//! API of the real binary.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

struct Org {
    app: TestApp,
    org: String,
    research: String,
    ops: String,
    vision: String,
    infra: String,
}

async fn org() -> Org {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let research = app.create_space(&org, "Research").await;
    let ops = app.create_space(&org, "Ops").await;
    let vision = app.create_project(&org, &research, "Vision").await;
    let infra = app.create_project(&org, &ops, "Infra").await;
    Org {
        app,
        org,
        research,
        ops,
        vision,
        infra,
    }
}

impl Org {
    async fn register(&self, resource_type: &str, id: &str, project: &str, owner: &str) {
        let a = self
            .app
            .put(
                &format!("/v1/resources/{resource_type}/{id}"),
                ADMIN_KEY,
                Some(&self.org),
                json!({"project_id": project, "owner_id": owner}),
            )
            .await;
        assert!(a.status.is_success(), "{}", a.text);
    }

    async fn join(&self, space: &str, user: &str) {
        let a = self
            .app
            .put(
                &format!("/v1/spaces/{space}/members/{user}"),
                ADMIN_KEY,
                Some(&self.org),
                json!({}),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    }

    async fn check(&self, body: Value) -> Value {
        let a = self
            .app
            .post("/v1/check", ADMIN_KEY, Some(&self.org), body)
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        a.body
    }
}

#[tokio::test]
async fn own_team_and_all_scopes() {
    let o = org().await;
    let dana = o.app.create_user(&o.org, "dana@acme.test").await;
    let tina = o.app.create_user(&o.org, "tina@acme.test").await;
    o.app
        .bind(
            &o.org,
            &predefined("data_scientist"),
            &dana,
            "ORGANIZATION",
            Some(&o.org),
        )
        .await;
    o.app
        .bind(
            &o.org,
            &predefined("team_admin"),
            &tina,
            "ORGANIZATION",
            Some(&o.org),
        )
        .await;
    o.join(&o.research, &tina).await;
    o.register("model", "m-dana", &o.vision, &dana).await;
    o.register("model", "m-bob", &o.vision, "bob").await;
    o.register("model", "m-ops", &o.infra, "bob").await;
    // OWN: writes only what the subject owns; ALL: reads everything.
    assert!(
        o.app
            .allowed(&o.org, &dana, "model:write", "model", "m-dana")
            .await
    );
    assert!(
        !o.app
            .allowed(&o.org, &dana, "model:write", "model", "m-bob")
            .await
    );
    assert!(
        o.app
            .allowed(&o.org, &dana, "model:read", "model", "m-bob")
            .await
    );
    let explained = o.check(json!({"subject": {"type": "user", "id": dana}, "permission": "model:write", "resource": {"type": "model", "id": "m-bob"}, "explain": true})).await;
    let message = explained["reason"]["message"].as_str().unwrap();
    assert!(
        message.contains("data_scientist")
            && message.contains("scope OWN")
            && message.contains("m-bob's owner is bob"),
        "{message}"
    );
    // TEAM: only resources in a space the subject is a member of.
    assert!(
        o.app
            .allowed(&o.org, &tina, "model:delete", "model", "m-bob")
            .await
    );
    assert!(
        !o.app
            .allowed(&o.org, &tina, "model:delete", "model", "m-ops")
            .await
    );
    o.join(&o.ops, &tina).await;
    assert!(
        o.app
            .allowed(&o.org, &tina, "model:delete", "model", "m-ops")
            .await
    );
}

#[tokio::test]
async fn bindings_are_inherited_down_the_organization_space_project_chain() {
    let o = org().await;
    let role = o
        .app
        .custom_role(&o.org, "reader", json!(["dataset:read"]))
        .await;
    let (on_org, on_space, on_project) = (
        o.app.create_user(&o.org, "a@acme.test").await,
        o.app.create_user(&o.org, "b@acme.test").await,
        o.app.create_user(&o.org, "c@acme.test").await,
    );
    o.app
        .bind(&o.org, &role, &on_org, "ORGANIZATION", Some(&o.org))
        .await;
    o.app
        .bind(&o.org, &role, &on_space, "SPACE", Some(&o.research))
        .await;
    o.app
        .bind(&o.org, &role, &on_project, "PROJECT", Some(&o.vision))
        .await;
    o.register("dataset", "d-vision", &o.vision, "x").await;
    o.register("dataset", "d-infra", &o.infra, "x").await;
    for (user, vision, infra) in [
        (&on_org, true, true),
        (&on_space, true, false),
        (&on_project, true, false),
    ] {
        assert_eq!(
            o.app
                .allowed(&o.org, user, "dataset:read", "dataset", "d-vision")
                .await,
            vision
        );
        assert_eq!(
            o.app
                .allowed(&o.org, user, "dataset:read", "dataset", "d-infra")
                .await,
            infra
        );
    }
    // The project itself and the space are resources too.
    assert!(
        o.app
            .allowed(&o.org, &on_space, "dataset:read", "project", &o.vision)
            .await
    );
    assert!(
        !o.app
            .allowed(&o.org, &on_project, "dataset:read", "space", &o.research)
            .await
    );
}

#[tokio::test]
async fn the_widest_scope_across_a_users_keys_wins() {
    let o = org().await;
    let kai = o.app.create_user(&o.org, "kai@acme.test").await;
    let narrow = o
        .app
        .custom_role(
            &o.org,
            "own-reader",
            json!([{"permission": "model:read", "scope": "OWN"}]),
        )
        .await;
    let wide = o
        .app
        .custom_role(&o.org, "all-reader", json!(["model:read"]))
        .await;
    let key1 = o
        .app
        .post(
            "/v1/api-keys",
            ADMIN_KEY,
            Some(&o.org),
            json!({"name": "k1", "user_id": kai}),
        )
        .await;
    let key2 = o
        .app
        .post(
            "/v1/api-keys",
            ADMIN_KEY,
            Some(&o.org),
            json!({"name": "k2", "user_id": kai}),
        )
        .await;
    let (k1, k2) = (id_of(&key1), id_of(&key2));
    for (key, role) in [(&k1, &narrow), (&k2, &wide)] {
        let a = o.app.post("/v1/role-bindings", ADMIN_KEY, Some(&o.org), json!({"role_id": role, "api_key_id": key, "resource_type": "ORGANIZATION", "resource_id": o.org})).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    }
    o.register("model", "m-bob", &o.vision, "bob").await;
    // Whichever key the user calls with, the widest scope of all its keys applies.
    let secret1 = key1.body["key"].as_str().unwrap();
    let mine = o
        .app
        .post(
            "/v1/check",
            secret1,
            Some(&o.org),
            json!({"permission": "model:read", "resource": {"type": "model", "id": "m-bob"}}),
        )
        .await;
    assert_eq!(mine.body["allowed"], true, "{}", mine.text);
    assert!(
        o.app
            .allowed(&o.org, &kai, "model:read", "model", "m-bob")
            .await
    );
    // Revoking the wide key leaves the narrow scope.
    let r = o
        .app
        .delete(&format!("/v1/api-keys/{k2}"), ADMIN_KEY, Some(&o.org))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(
        !o.app
            .allowed(&o.org, &kai, "model:read", "model", "m-bob")
            .await
    );
}

#[tokio::test]
async fn project_keys_act_as_themselves_inside_their_project() {
    let o = org().await;
    let (dev, dev_key) = o.app.member_with_key(&o.org, "dev@acme.test").await;
    o.app
        .bind(
            &o.org,
            &predefined("org_admin"),
            &dev,
            "ORGANIZATION",
            Some(&o.org),
        )
        .await;
    let pk = o
        .app
        .post(
            "/v1/api-keys",
            &dev_key,
            Some(&o.org),
            json!({"name": "ci", "kind": "project", "project_id": o.vision}),
        )
        .await;
    assert_eq!(pk.status, StatusCode::CREATED, "{}", pk.text);
    let secret = pk.body["key"].as_str().unwrap().to_owned();
    let pk_id = id_of(&pk);
    // Bound to project_key on its project at creation.
    let bindings = o
        .app
        .get(
            &format!("/v1/role-bindings?api_key_id={pk_id}"),
            ADMIN_KEY,
            Some(&o.org),
        )
        .await;
    assert_eq!(
        bindings.body["items"][0]["role_id"],
        predefined("project_key"),
        "{}",
        bindings.text
    );
    assert_eq!(bindings.body["items"][0]["resource_id"], o.vision.as_str());
    o.register("job", "j-in", &o.vision, "x").await;
    o.register("job", "j-out", &o.infra, "x").await;
    let ask = |id: &str| json!({"permission": "job:cancel", "resource": {"type": "job", "id": id}});
    let inside = o.app.post("/v1/check", &secret, None, ask("j-in")).await;
    assert_eq!(inside.body["allowed"], true, "{}", inside.text);
    let outside = o.app.post("/v1/check", &secret, None, ask("j-out")).await;
    assert_eq!(outside.body["allowed"], false, "{}", outside.text);
    // Its organization is fixed; another one is not found.
    let other = o.app.create_org("Other").await;
    let a = o
        .app
        .post("/v1/check", &secret, Some(&other), ask("j-in"))
        .await;
    assert_error(&a, StatusCode::NOT_FOUND, "not_found");
    // It may check others (project_key holds check:execute) but has no user profile.
    let me = o.app.get("/v1/users/me", &secret, None).await;
    assert_error(&me, StatusCode::BAD_REQUEST, "not_a_user");
}

#[tokio::test]
async fn system_roles_go_only_to_project_keys_and_project_keys_take_only_system_roles() {
    let o = org().await;
    let user = o.app.create_user(&o.org, "u@acme.test").await;
    let a = o.app.post("/v1/role-bindings", ADMIN_KEY, Some(&o.org), json!({"role_id": predefined("project_key"), "user_id": user, "resource_type": "PROJECT", "resource_id": o.vision})).await;
    assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, "system_role");
    let pk = o
        .app
        .post(
            "/v1/api-keys",
            ADMIN_KEY,
            Some(&o.org),
            json!({"name": "ci", "kind": "project", "project_id": o.vision}),
        )
        .await;
    assert_eq!(pk.status, StatusCode::CREATED, "{}", pk.text);
    let a = o.app.post("/v1/role-bindings", ADMIN_KEY, Some(&o.org), json!({"role_id": predefined("developer"), "api_key_id": id_of(&pk), "resource_type": "PROJECT", "resource_id": o.vision})).await;
    assert_error(
        &a,
        StatusCode::UNPROCESSABLE_ENTITY,
        "user_role_on_project_key",
    );
    let user_key = o
        .app
        .post(
            "/v1/api-keys",
            ADMIN_KEY,
            Some(&o.org),
            json!({"name": "k", "user_id": user}),
        )
        .await;
    let a = o.app.post("/v1/role-bindings", ADMIN_KEY, Some(&o.org), json!({"role_id": predefined("project_key"), "api_key_id": id_of(&user_key), "resource_type": "PROJECT", "resource_id": o.vision})).await;
    assert_error(&a, StatusCode::UNPROCESSABLE_ENTITY, "system_role");
}

#[tokio::test]
async fn the_base_role_gives_a_member_its_profile_and_keys_and_nothing_else() {
    let o = org().await;
    let (amy, amy_key) = o.app.member_with_key(&o.org, "amy@acme.test").await;
    let ben = o.app.create_user(&o.org, "ben@acme.test").await;
    assert_eq!(
        o.app
            .get(&format!("/v1/users/{amy}"), &amy_key, None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        o.app
            .patch(
                &format!("/v1/users/{amy}"),
                &amy_key,
                None,
                json!({"name": "Amy"})
            )
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        o.app
            .get(&format!("/v1/organizations/{}", o.org), &amy_key, None)
            .await
            .status,
        StatusCode::OK
    );
    let own_key = o
        .app
        .post("/v1/api-keys", &amy_key, None, json!({"name": "second"}))
        .await;
    assert_eq!(own_key.status, StatusCode::CREATED, "{}", own_key.text);
    for (status, a) in [
        (
            StatusCode::FORBIDDEN,
            o.app.get(&format!("/v1/users/{ben}"), &amy_key, None).await,
        ),
        (
            StatusCode::FORBIDDEN,
            o.app
                .patch(
                    &format!("/v1/users/{ben}"),
                    &amy_key,
                    None,
                    json!({"name": "x"}),
                )
                .await,
        ),
        (
            StatusCode::FORBIDDEN,
            o.app.get("/v1/users", &amy_key, None).await,
        ),
        (
            StatusCode::FORBIDDEN,
            o.app
                .post("/v1/spaces", &amy_key, None, json!({"name": "mine"}))
                .await,
        ),
        (
            StatusCode::FORBIDDEN,
            o.app.get("/v1/roles", &amy_key, None).await,
        ),
        (
            StatusCode::FORBIDDEN,
            o.app
                .post(
                    "/v1/api-keys",
                    &amy_key,
                    None,
                    json!({"name": "k", "user_id": ben}),
                )
                .await,
        ),
        (
            StatusCode::FORBIDDEN,
            o.app
                .delete(&format!("/v1/organizations/{}", o.org), &amy_key, None)
                .await,
        ),
    ] {
        assert_eq!(a.status, status, "{}", a.text);
    }
    let info = o.app.get("/v1/users/me/auth_info", &amy_key, None).await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.text);
    assert_eq!(info.body["organization"]["id"], o.org.as_str());
    let roles: Vec<&str> = info.body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role_name"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["base"], "{}", info.text);
    assert!(info.body["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["permission"] == "api_key:*" && p["scope"] == "OWN"));
    assert_eq!(info.body["keys"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_auditor_reads_every_type_of_the_catalog_and_writes_none() {
    let o = org().await;
    let aud = o.app.create_user(&o.org, "aud@acme.test").await;
    o.app
        .bind(
            &o.org,
            &predefined("auditor"),
            &aud,
            "ORGANIZATION",
            Some(&o.org),
        )
        .await;
    let catalog = o
        .app
        .get("/v1/permissions/catalog", ADMIN_KEY, Some(&o.org))
        .await;
    let mut checks = Vec::new();
    let mut expected = Vec::new();
    for t in catalog.body["types"].as_array().unwrap() {
        for action in t["actions"].as_array().unwrap() {
            let permission = format!(
                "{}:{}",
                t["name"].as_str().unwrap(),
                action.as_str().unwrap()
            );
            checks.push(json!({"subject": {"type": "user", "id": aud}, "permission": permission, "resource": {"type": "model", "id": "m1"}}));
            expected.push(action == "read");
        }
    }
    assert!(checks.len() > 100, "the catalog is smaller than expected");
    let a = o
        .app
        .post(
            "/v1/check/batch",
            ADMIN_KEY,
            Some(&o.org),
            json!({"checks": checks}),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let got: Vec<bool> = a.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["allowed"].as_bool().unwrap())
        .collect();
    assert_eq!(got, expected);
    let audit = o.app.create_key(&o.org, &aud).await;
    assert_eq!(
        o.app.get("/v1/audit-events", &audit, None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn team_admins_are_confined_to_their_space() {
    let o = org().await;
    let (tess, tess_key) = o.app.member_with_key(&o.org, "tess@acme.test").await;
    o.app
        .bind(
            &o.org,
            &predefined("team_admin"),
            &tess,
            "SPACE",
            Some(&o.research),
        )
        .await;
    o.join(&o.research, &tess).await;
    let dana = o.app.create_user(&o.org, "dana@acme.test").await;
    let in_space = o
        .app
        .post(
            "/v1/projects",
            &tess_key,
            None,
            json!({"name": "New", "space_id": o.research}),
        )
        .await;
    assert_eq!(in_space.status, StatusCode::CREATED, "{}", in_space.text);
    let other_space = o
        .app
        .post(
            "/v1/projects",
            &tess_key,
            None,
            json!({"name": "New", "space_id": o.ops}),
        )
        .await;
    assert_error(&other_space, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        o.app
            .patch(
                &format!("/v1/spaces/{}", o.research),
                &tess_key,
                None,
                json!({"description": "ours"})
            )
            .await
            .status,
        StatusCode::OK
    );
    assert_error(
        &o.app
            .patch(
                &format!("/v1/spaces/{}", o.ops),
                &tess_key,
                None,
                json!({"description": "x"}),
            )
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let bind = |space: &str| json!({"role_id": predefined("data_scientist"), "user_id": dana, "resource_type": "SPACE", "resource_id": space});
    assert_eq!(
        o.app
            .post("/v1/role-bindings", &tess_key, None, bind(&o.research))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_error(
        &o.app
            .post("/v1/role-bindings", &tess_key, None, bind(&o.ops))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let spaces = o.app.get("/v1/spaces", &tess_key, None).await;
    let ids: Vec<&str> = spaces.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [o.research.as_str()]);
}

#[tokio::test]
async fn usage_counts_decisions_allowed_and_denied() {
    let o = org().await;
    let u = o.app.create_user(&o.org, "u@acme.test").await;
    let role = o
        .app
        .custom_role(&o.org, "reader", json!(["model:read"]))
        .await;
    o.app
        .bind(&o.org, &role, &u, "ORGANIZATION", Some(&o.org))
        .await;
    for _ in 0..3 {
        assert!(o.app.allowed(&o.org, &u, "model:read", "model", "m").await);
    }
    assert!(!o.app.allowed(&o.org, &u, "model:write", "model", "m").await);
    let batch = json!({"checks": [
        {"subject": {"type": "user", "id": u}, "permission": "model:read", "resource": {"type": "model", "id": "m"}},
        {"subject": {"type": "user", "id": u}, "permission": "model:delete", "resource": {"type": "model", "id": "m"}},
        // Not decided, so not counted.
        {"subject": {"type": "user", "id": u}, "permission": "no-such-permission", "resource": {"type": "model", "id": "m"}},
    ]});
    let answered = o
        .app
        .post("/v1/check/batch", ADMIN_KEY, Some(&o.org), batch)
        .await;
    assert_eq!(answered.status, StatusCode::OK, "{}", answered.text);
    assert!(
        answered.body["results"][2]["error"]["code"].is_string(),
        "{}",
        answered.text
    );
    for rollup in ["hour", "day", "month"] {
        let a = o
            .app
            .get(&format!("/v1/usage/{rollup}"), ADMIN_KEY, Some(&o.org))
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let items = a.body["items"].as_array().unwrap();
        let allowed: u64 = items.iter().map(|i| i["allowed"].as_u64().unwrap()).sum();
        let denied: u64 = items.iter().map(|i| i["denied"].as_u64().unwrap()).sum();
        assert_eq!((allowed, denied), (4, 2), "{rollup}: {}", a.text);
    }
    assert_error(
        &o.app.get("/v1/usage/week", ADMIN_KEY, Some(&o.org)).await,
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    let plain = o.app.create_key(&o.org, &u).await;
    assert_error(
        &o.app.get("/v1/usage/day", &plain, None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}
