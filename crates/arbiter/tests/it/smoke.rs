use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn walk_through_allows_and_denies_with_an_explanation() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let alice = app.create_user(&org, "alice@acme.test").await;
    let role = app
        .post(
            "/v1/roles",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "model-reader", "permissions": ["model:read"]}),
        )
        .await;
    assert_eq!(role.status, StatusCode::CREATED, "{}", role.text);
    let role_id = role.body["id"].as_str().unwrap().to_owned();
    let space = app
        .post(
            "/v1/spaces",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "Research"}),
        )
        .await;
    let space_id = space.body["id"].as_str().unwrap().to_owned();
    let project = app
        .post(
            "/v1/projects",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "Vision", "space_id": space_id}),
        )
        .await;
    assert_eq!(project.status, StatusCode::CREATED, "{}", project.text);
    let project_id = project.body["id"].as_str().unwrap().to_owned();
    app.bind(&org, &role_id, &alice, "PROJECT", Some(&project_id))
        .await;
    let put = app
        .put(
            "/v1/resources/model/m1",
            ADMIN_KEY,
            Some(&org),
            json!({"project_id": project_id}),
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text);

    let allowed = app
        .post("/v1/check", ADMIN_KEY, Some(&org), json!({"subject": {"type": "user", "id": alice}, "permission": "model:read", "resource": {"type": "model", "id": "m1"}, "explain": true}))
        .await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.text);
    assert_eq!(allowed.body["allowed"], true, "{}", allowed.text);
    assert_eq!(
        allowed.body["reason"]["granted_by"]["role_name"],
        "model-reader"
    );

    let denied = app
        .post("/v1/check", ADMIN_KEY, Some(&org), json!({"subject": {"type": "user", "id": "alice@acme.test"}, "permission": "model:read", "resource": {"type": "model", "id": "m2"}, "explain": true}))
        .await;
    assert_eq!(denied.body["allowed"], false, "{}", denied.text);
    assert!(
        denied.body["reason"]["misses"][0]["why"]
            .as_str()
            .unwrap()
            .contains("does not contain"),
        "{}",
        denied.text
    );
}
