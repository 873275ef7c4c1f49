//! Resource grants (`/v1/permissions`) in the aisvc wire format, through the real binary.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

fn item(namespace: &str, irn: &str, user_type: &str, user_id: &str, actions: &[&str]) -> Value {
    json!({"_actions": actions, "_namespace": namespace, "_resourceDesc": {"_irn": irn}, "_user": {"_type": user_type, "_id": user_id}})
}

struct World {
    app: TestApp,
    acme: String,
    globex: String,
    olga_key: String,
    sam: String,
    sam_key: String,
    tom: String,
}

/// acme with Olga (org_admin), Sam and Tom (members); globex with its own admin.
async fn world() -> World {
    let app = spawn_app().await;
    let acme = app.create_org("Acme").await;
    let globex = app.create_org("Globex").await;
    let (olga, olga_key) = app.member_with_key(&acme, "olga@acme.test").await;
    app.bind(
        &acme,
        &predefined("org_admin"),
        &olga,
        "ORGANIZATION",
        Some(&acme),
    )
    .await;
    let (sam, sam_key) = app.member_with_key(&acme, "sam@acme.test").await;
    let tom = app.create_user(&acme, "tom@acme.test").await;
    World {
        app,
        acme,
        globex,
        olga_key,
        sam,
        sam_key,
        tom,
    }
}

#[tokio::test]
async fn each_item_is_answered_on_its_own_and_a_failed_item_writes_nothing() {
    let w = world().await;
    let mut revisions = Revisions::new(&w.app).await;
    let body = json!([
        item(&w.acme, "aisvc:agent:a1", "user", &w.tom, &["READ"]),
        item(&w.acme, "aisvc:agent", "user", &w.tom, &["READ"]),
        item(&w.acme, "aisvc:agent:a2", "user", &w.tom, &["FLY"]),
        item(&w.globex, "aisvc:agent:a3", "user", &w.tom, &["READ"]),
        item(&w.acme, "aisvc:agent:a4", "user", "nobody", &["READ"]),
        item(
            &w.acme,
            "aisvc:agent:a5",
            "usergroup",
            "no-group",
            &["READ"]
        ),
        item(&w.acme, "other:agent:a6", "user", &w.tom, &["READ"]),
        json!({"_namespace": w.acme}),
    ]);
    let a = w.app.put("/v1/permissions", &w.olga_key, None, body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    revisions.advanced(&a);
    let success = a.body["_success"].as_array().unwrap();
    assert_eq!(success.len(), 1, "{}", a.text);
    assert_eq!(success[0]["_status"], 200);
    assert!(success[0]["_id"].as_str().unwrap().starts_with("grant_"));
    assert_eq!(success[0]["_resourceDesc"]["_irn"], "aisvc:agent:a1");
    let statuses: Vec<u64> = a.body["_failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["_status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [400, 400, 404, 404, 404, 400, 400], "{}", a.text);
    for f in a.body["_failures"].as_array().unwrap() {
        assert!(f["_reason"].as_str().is_some_and(|r| !r.is_empty()), "{f}");
    }
    let listed = w
        .app
        .get(
            &format!("/v1/permissions?_namespace={}&_includeTotal=true", w.acme),
            &w.olga_key,
            None,
        )
        .await;
    assert_eq!(listed.body["_total"], 1, "{}", listed.text);
    assert!(
        w.app
            .allowed(&w.acme, &w.tom, "agent:read", "agent", "a1")
            .await
    );
    assert!(
        !w.app
            .allowed(&w.acme, &w.tom, "agent:read", "agent", "a2")
            .await
    );

    // Only failures: nothing is written, not even a revision.
    let a = w
        .app
        .put(
            "/v1/permissions",
            &w.olga_key,
            None,
            json!([item(&w.acme, "bad", "user", &w.tom, &["READ"])]),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["_success"], json!([]));
    revisions.unchanged(&w.app).await;
}

#[tokio::test]
async fn the_same_namespace_irn_and_subject_is_an_upsert() {
    let w = world().await;
    let first = w
        .app
        .put(
            "/v1/permissions",
            &w.olga_key,
            None,
            json!([item(&w.acme, "aisvc:agent:*", "user", &w.tom, &["READ"])]),
        )
        .await;
    let id = first.body["_success"][0]["_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        w.app
            .allowed(&w.acme, &w.tom, "agent:read", "agent", "x")
            .await
    );
    let second = w
        .app
        .put(
            "/v1/permissions",
            &w.olga_key,
            None,
            json!([item(
                &w.acme,
                "aisvc:agent:*",
                "user",
                &w.tom,
                &["EDIT", "DELETE"]
            )]),
        )
        .await;
    assert_eq!(
        second.body["_success"][0]["_id"],
        id.as_str(),
        "{}",
        second.text
    );
    assert_eq!(
        second.body["_success"][0]["_actions"],
        json!(["EDIT", "DELETE"])
    );
    assert!(
        !w.app
            .allowed(&w.acme, &w.tom, "agent:read", "agent", "x")
            .await
    );
    assert!(
        w.app
            .allowed(&w.acme, &w.tom, "agent:delete", "agent", "x")
            .await
    );
    let listed = w
        .app
        .get(
            &format!("/v1/permissions?_namespace={}&_includeTotal=true", w.acme),
            &w.olga_key,
            None,
        )
        .await;
    assert_eq!(listed.body["_total"], 1);
    // The same grant twice in one request is refused for the second.
    let twice = w
        .app
        .put(
            "/v1/permissions",
            &w.olga_key,
            None,
            json!([
                item(&w.acme, "aisvc:tool:t", "user", &w.tom, &["READ"]),
                item(&w.acme, "aisvc:tool:t", "user", &w.tom, &["EDIT"])
            ]),
        )
        .await;
    assert_eq!(twice.body["_success"].as_array().unwrap().len(), 1);
    assert_eq!(twice.body["_failures"][0]["_status"], 409);
}

#[tokio::test]
async fn listing_filters_and_pages() {
    let w = world().await;
    let items = json!([
        item(&w.acme, "aisvc:agent:a1", "user", &w.tom, &["READ"]),
        item(&w.acme, "aisvc:agent:a2", "user", &w.tom, &["READ", "EDIT"]),
        item(&w.acme, "aisvc:agent:*", "user", &w.sam, &["READ"]),
        item(&w.acme, "aisvc:tool:t1", "user", &w.tom, &["DELETE"]),
        item(&w.acme, "aisvc:team:x", "user", &w.sam, &["SHARE"]),
    ]);
    let a = w.app.put("/v1/permissions", &w.olga_key, None, items).await;
    assert_eq!(
        a.body["_success"].as_array().unwrap().len(),
        5,
        "{}",
        a.text
    );
    let list = |query: String| {
        let app = &w.app;
        let key = w.olga_key.clone();
        async move {
            app.get(&format!("/v1/permissions?{query}"), &key, None)
                .await
        }
    };
    let page = list(format!(
        "_namespace={}&_offset=2&_pageSize=2&_includeTotal=true",
        w.acme
    ))
    .await;
    assert_eq!(
        page.body["_list"].as_array().unwrap().len(),
        2,
        "{}",
        page.text
    );
    assert_eq!(page.body["_total"], 5);
    assert_eq!(page.body["_offset"], 2);
    assert_eq!(page.body["_pageSize"], 2);
    let no_total = list(format!("_namespace={}", w.acme)).await;
    assert!(no_total.body.get("_total").is_none(), "{}", no_total.text);
    let by_user = list(format!(
        "_namespace={}&_user._type=user&_user._id={}&_includeTotal=true",
        w.acme, w.tom
    ))
    .await;
    assert_eq!(by_user.body["_total"], 3);
    let by_action = list(format!(
        "_namespace={}&_actions=EDIT&_includeTotal=true",
        w.acme
    ))
    .await;
    assert_eq!(by_action.body["_total"], 1);
    let by_pattern = list(format!(
        "_namespace={}&_resourceDesc._irn=aisvc:agent:*&_includeTotal=true",
        w.acme
    ))
    .await;
    assert_eq!(by_pattern.body["_total"], 3, "{}", by_pattern.text);
    let missing = w.app.get("/v1/permissions", &w.olga_key, None).await;
    assert_error(&missing, StatusCode::BAD_REQUEST, "invalid_field");
}

#[tokio::test]
async fn delete_answers_204_then_404() {
    let w = world().await;
    let a = w
        .app
        .put(
            "/v1/permissions",
            &w.olga_key,
            None,
            json!([item(&w.acme, "aisvc:agent:a1", "user", &w.tom, &["READ"])]),
        )
        .await;
    let id = a.body["_success"][0]["_id"].as_str().unwrap().to_owned();
    let d = w
        .app
        .delete(&format!("/v1/permissions/{id}"), &w.olga_key, None)
        .await;
    assert_eq!(d.status, StatusCode::NO_CONTENT, "{}", d.text);
    assert!(d.revision().is_some());
    assert!(
        !w.app
            .allowed(&w.acme, &w.tom, "agent:read", "agent", "a1")
            .await
    );
    let again = w
        .app
        .delete(&format!("/v1/permissions/{id}"), &w.olga_key, None)
        .await;
    assert_error(&again, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn criteria_must_match_the_subjects_properties() {
    let w = world().await;
    let admin = w
        .app
        .post(
            "/v1/users",
            ADMIN_KEY,
            Some(&w.acme),
            json!({"email": "ivo@acme.test", "properties": {"userType": "iput_cde_admin"}}),
        )
        .await;
    let ivo = id_of(&admin);
    let mut grant = item(&w.acme, "aisvc:agent:*", "user", &ivo, &["READ"]);
    grant["_resourceDesc"]["_criteria"] = json!({"_userType": "iput_cde_admin"});
    let mut other = item(&w.acme, "aisvc:agent:*", "user", &w.tom, &["READ"]);
    other["_resourceDesc"]["_criteria"] = json!({"_userType": "iput_cde_admin"});
    let a = w
        .app
        .put("/v1/permissions", &w.olga_key, None, json!([grant, other]))
        .await;
    assert_eq!(
        a.body["_success"].as_array().unwrap().len(),
        2,
        "{}",
        a.text
    );
    assert_eq!(
        a.body["_success"][0]["_resourceDesc"]["_criteria"]["_userType"],
        "iput_cde_admin"
    );
    assert!(
        w.app
            .allowed(&w.acme, &ivo, "agent:read", "agent", "a1")
            .await
    );
    assert!(
        !w.app
            .allowed(&w.acme, &w.tom, "agent:read", "agent", "a1")
            .await
    );
    // A CEL condition in the criteria, compiled when written.
    let mut cel = item(&w.acme, "aisvc:tool:*", "user", &w.tom, &["READ"]);
    cel["_resourceDesc"]["_criteria"] = json!({"_condition": "resource.properties.public == true"});
    let mut broken = item(&w.acme, "aisvc:team:*", "user", &w.tom, &["READ"]);
    broken["_resourceDesc"]["_criteria"] = json!({"_condition": "resource.properties.public =="});
    let a = w
        .app
        .put("/v1/permissions", &w.olga_key, None, json!([cel, broken]))
        .await;
    assert_eq!(
        a.body["_success"].as_array().unwrap().len(),
        1,
        "{}",
        a.text
    );
    assert_eq!(a.body["_failures"][0]["_status"], 400);
    let check = |public: bool| json!({"subject": {"type": "user", "id": w.tom}, "permission": "tool:read", "resource": {"irn": "aisvc:tool:t9", "properties": {"public": public}}});
    let yes = w
        .app
        .post("/v1/check", ADMIN_KEY, Some(&w.acme), check(true))
        .await;
    assert_eq!(yes.body["allowed"], true, "{}", yes.text);
    let no = w
        .app
        .post("/v1/check", ADMIN_KEY, Some(&w.acme), check(false))
        .await;
    assert_eq!(no.body["allowed"], false, "{}", no.text);
}

#[tokio::test]
async fn share_lets_a_holder_grant_only_what_it_holds() {
    let w = world().await;
    let a = w
        .app
        .put(
            "/v1/permissions",
            &w.olga_key,
            None,
            json!([item(
                &w.acme,
                "aisvc:agent:*",
                "user",
                &w.sam,
                &["SHARE", "READ"]
            )]),
        )
        .await;
    assert_eq!(
        a.body["_success"].as_array().unwrap().len(),
        1,
        "{}",
        a.text
    );
    let a = w
        .app
        .put(
            "/v1/permissions",
            &w.sam_key,
            None,
            json!([
                item(&w.acme, "aisvc:agent:a1", "user", &w.tom, &["READ"]),
                item(&w.acme, "aisvc:agent:team-*", "user", &w.tom, &["READ"]),
                item(&w.acme, "aisvc:agent:a1", "user", &w.tom, &["EDIT"]),
                item(&w.acme, "aisvc:tool:t1", "user", &w.tom, &["READ"]),
                item(&w.acme, "aisvc:*:a1", "user", &w.tom, &["READ"]),
                item(&w.acme, "aisvc:agent:a2", "user", &w.tom, &["*"]),
            ]),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(
        a.body["_success"].as_array().unwrap().len(),
        2,
        "{}",
        a.text
    );
    let statuses: Vec<u64> = a.body["_failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["_status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [403, 403, 403, 403], "{}", a.text);
    assert!(
        w.app
            .allowed(&w.acme, &w.tom, "agent:read", "agent", "team-7")
            .await
    );
    assert!(
        !w.app
            .allowed(&w.acme, &w.tom, "agent:edit", "agent", "a1")
            .await
    );
    // Without SHARE, and without permission:write, nothing can be granted.
    let (_, tom_key) = (w.tom.clone(), w.app.create_key(&w.acme, &w.tom).await);
    let a = w
        .app
        .put(
            "/v1/permissions",
            &tom_key,
            None,
            json!([item(&w.acme, "aisvc:agent:a1", "user", &w.sam, &["READ"])]),
        )
        .await;
    assert_eq!(a.body["_failures"][0]["_status"], 403, "{}", a.text);
    // Nor can Sam list or delete others' grants without permission:read / SHARE.
    let listed = w
        .app
        .get(
            &format!("/v1/permissions?_namespace={}", w.acme),
            &w.sam_key,
            None,
        )
        .await;
    assert_error(&listed, StatusCode::FORBIDDEN, "forbidden");
    let _ = w.sam;
}

#[tokio::test]
async fn groups_and_profiles_receive_grants() {
    let w = world().await;
    let group = id_of(
        &w.app
            .post(
                "/v1/groups",
                ADMIN_KEY,
                Some(&w.acme),
                json!({"name": "agents"}),
            )
            .await,
    );
    let profile = id_of(
        &w.app
            .post(
                "/v1/permission-profiles",
                ADMIN_KEY,
                Some(&w.acme),
                json!({"name": "cde"}),
            )
            .await,
    );
    let m = w
        .app
        .put(
            &format!("/v1/groups/{group}/members/{}", w.tom),
            ADMIN_KEY,
            Some(&w.acme),
            json!({}),
        )
        .await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.text);
    let m = w
        .app
        .put(
            &format!("/v1/permission-profiles/{profile}/members/{}", w.sam),
            ADMIN_KEY,
            Some(&w.acme),
            json!({}),
        )
        .await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.text);
    let a = w
        .app
        .put(
            "/v1/permissions",
            &w.olga_key,
            None,
            json!([
                item(&w.acme, "aisvc:agent:*", "usergroup", &group, &["READ"]),
                item(
                    &w.acme,
                    "aisvc:knowledgebase:*",
                    "permprofile",
                    &profile,
                    &["READ"]
                ),
                item(&w.acme, "aisvc:tool:*", "permprofile", &group, &["READ"]),
            ]),
        )
        .await;
    assert_eq!(
        a.body["_success"].as_array().unwrap().len(),
        2,
        "{}",
        a.text
    );
    assert_eq!(a.body["_success"][1]["_user"]["_type"], "permprofile");
    assert_eq!(a.body["_failures"][0]["_status"], 404);
    assert!(
        w.app
            .allowed(&w.acme, &w.tom, "agent:read", "agent", "a1")
            .await
    );
    assert!(
        !w.app
            .allowed(&w.acme, &w.sam, "agent:read", "agent", "a1")
            .await
    );
    assert!(
        w.app
            .allowed(&w.acme, &w.sam, "knowledgebase:read", "knowledgebase", "kb")
            .await
    );
    // Leaving the group takes the access away.
    let d = w
        .app
        .delete(
            &format!("/v1/groups/{group}/members/{}", w.tom),
            ADMIN_KEY,
            Some(&w.acme),
        )
        .await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    assert!(
        !w.app
            .allowed(&w.acme, &w.tom, "agent:read", "agent", "a1")
            .await
    );
}

#[tokio::test]
async fn another_namespace_is_not_found() {
    let w = world().await;
    let a = w
        .app
        .put(
            "/v1/permissions",
            &w.olga_key,
            None,
            json!([item(&w.acme, "aisvc:agent:a1", "user", &w.tom, &["READ"])]),
        )
        .await;
    let id = a.body["_success"][0]["_id"].as_str().unwrap().to_owned();
    let (gil, gil_key) = w.app.member_with_key(&w.globex, "gil@globex.test").await;
    w.app
        .bind(
            &w.globex,
            &predefined("org_admin"),
            &gil,
            "ORGANIZATION",
            Some(&w.globex),
        )
        .await;
    let listed = w
        .app
        .get(
            &format!("/v1/permissions?_namespace={}", w.acme),
            &gil_key,
            None,
        )
        .await;
    assert_error(&listed, StatusCode::NOT_FOUND, "not_found");
    let deleted = w
        .app
        .delete(&format!("/v1/permissions/{id}"), &gil_key, None)
        .await;
    assert_error(&deleted, StatusCode::NOT_FOUND, "not_found");
    let put = w
        .app
        .put(
            "/v1/permissions",
            &gil_key,
            None,
            json!([item(&w.acme, "aisvc:agent:a9", "user", &w.tom, &["READ"])]),
        )
        .await;
    assert_eq!(put.body["_failures"][0]["_status"], 404, "{}", put.text);
    assert!(
        w.app
            .allowed(&w.acme, &w.tom, "agent:read", "agent", "a1")
            .await
    );
}
