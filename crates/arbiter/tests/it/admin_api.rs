//! Every admin route of the router, driven through the real binary: organizations, spaces,
//! projects, users, groups, permission profiles, resources, the catalog, audit events and the
//! operational endpoints. Writes must answer `X-Arbiter-Revision`, and revisions must increase.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

fn ids(a: &Answer) -> Vec<String> {
    a.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {}", a.text))
        .iter()
        .map(|i| {
            i["id"]
                .as_str()
                .or_else(|| i["user_id"].as_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn organizations_list_create_get_delete_members_and_current() {
    let app = spawn_app().await;
    let mut revs = Revisions::new(&app).await;

    let acme = app
        .post(
            "/v1/organizations",
            ADMIN_KEY,
            None,
            json!({"name": "Acme"}),
        )
        .await;
    assert_eq!(acme.status, StatusCode::CREATED, "{}", acme.text);
    revs.advanced(&acme);
    assert_eq!(acme.body["name"], "Acme");
    assert!(acme.body["created_at"].is_string(), "{}", acme.text);
    let acme = id_of(&acme);

    // Names are unique, whatever their case; a blank name is refused.
    for name in ["Acme", "ACME"] {
        let dup = app
            .post("/v1/organizations", ADMIN_KEY, None, json!({"name": name}))
            .await;
        assert_error(&dup, StatusCode::CONFLICT, "already_exists");
    }
    let blank = app
        .post("/v1/organizations", ADMIN_KEY, None, json!({"name": "   "}))
        .await;
    assert_error(&blank, StatusCode::BAD_REQUEST, "invalid_field");
    revs.unchanged(&app).await;

    let beta = app
        .post(
            "/v1/organizations",
            ADMIN_KEY,
            None,
            json!({"name": "Beta"}),
        )
        .await;
    assert_eq!(beta.status, StatusCode::CREATED, "{}", beta.text);
    revs.advanced(&beta);
    let beta = id_of(&beta);

    let all = app.get("/v1/organizations", ADMIN_KEY, None).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert_eq!(all.body["total"], 2, "{}", all.text);
    assert_eq!(all.body["offset"], 0);
    assert_eq!(all.body["limit"], 100);
    let listed = ids(&all);
    assert!(
        listed.contains(&acme) && listed.contains(&beta),
        "{listed:?}"
    );
    let paged = app
        .get("/v1/organizations?offset=1&limit=1", ADMIN_KEY, None)
        .await;
    assert_eq!(paged.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(paged.body["total"], 2);
    let too_big = app
        .get("/v1/organizations?limit=1001", ADMIN_KEY, None)
        .await;
    assert_error(&too_big, StatusCode::BAD_REQUEST, "invalid_field");

    let (alice, alice_key) = app.member_with_key(&acme, "alice@acme.test").await;
    revs.last = app.head_revision().await;

    // A member sees its own organizations only, and cannot create one.
    let mine = app.get("/v1/organizations", &alice_key, None).await;
    assert_eq!(ids(&mine), vec![acme.clone()], "{}", mine.text);
    let refused = app
        .post(
            "/v1/organizations",
            &alice_key,
            None,
            json!({"name": "Mine"}),
        )
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    let got = app
        .get(&format!("/v1/organizations/{acme}"), &alice_key, None)
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    assert_eq!(got.body["id"], acme.as_str());
    let other = app
        .get(&format!("/v1/organizations/{beta}"), &alice_key, None)
        .await;
    assert_error(&other, StatusCode::NOT_FOUND, "not_found");
    let current = app.get("/v1/organizations/current", &alice_key, None).await;
    assert_eq!(current.status, StatusCode::OK, "{}", current.text);
    assert_eq!(current.body["organization_id"], acme.as_str());

    // PATCH /organizations/{id}/users adds an existing user.
    let none = app
        .patch(
            &format!("/v1/organizations/{beta}/users"),
            ADMIN_KEY,
            None,
            json!({"users": []}),
        )
        .await;
    assert_error(&none, StatusCode::BAD_REQUEST, "invalid_field");
    let unknown = app
        .patch(
            &format!("/v1/organizations/{beta}/users"),
            ADMIN_KEY,
            None,
            json!({"users": [{"user_id": "usr_nobody"}]}),
        )
        .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "not_found");
    revs.unchanged(&app).await;
    let added = app
        .patch(
            &format!("/v1/organizations/{beta}/users"),
            ADMIN_KEY,
            None,
            json!({"users": [{"user_id": alice}]}),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.text);
    revs.advanced(&added);
    assert_eq!(added.body["users"][0]["user_id"], alice.as_str());
    let mine = app.get("/v1/organizations", &alice_key, None).await;
    assert_eq!(mine.body["total"], 2, "{}", mine.text);

    // The key keeps the organization it was created in as its current one.
    let current = app.get("/v1/organizations/current", &alice_key, None).await;
    assert_eq!(
        current.body["organization_id"],
        acme.as_str(),
        "{}",
        current.text
    );
    // A caller in no organization, with no current one, must name one.
    let ambiguous = app.get("/v1/spaces", ADMIN_KEY, None).await;
    assert_error(&ambiguous, StatusCode::BAD_REQUEST, "organization_required");
    let chose = app
        .put(
            "/v1/organizations/current",
            &alice_key,
            None,
            json!({"organization_id": beta}),
        )
        .await;
    assert_eq!(chose.status, StatusCode::OK, "{}", chose.text);
    revs.advanced(&chose);
    let current = app.get("/v1/organizations/current", &alice_key, None).await;
    assert_eq!(
        current.body["organization_id"],
        beta.as_str(),
        "{}",
        current.text
    );
    // The header wins over the key's current organization.
    let header = app
        .get("/v1/organizations/current", &alice_key, Some(&acme))
        .await;
    assert_eq!(
        header.body["organization_id"],
        acme.as_str(),
        "{}",
        header.text
    );
    let not_mine = app
        .put(
            "/v1/organizations/current",
            &alice_key,
            None,
            json!({"organization_id": "org_nowhere"}),
        )
        .await;
    assert_error(&not_mine, StatusCode::NOT_FOUND, "not_found");

    // Deleting needs organization:delete, which the base role lacks.
    let refused = app
        .delete(&format!("/v1/organizations/{beta}"), &alice_key, None)
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    revs.unchanged(&app).await;
    let space = app.create_space(&beta, "In Beta").await;
    revs.last = app.head_revision().await;
    let deleted = app
        .delete(&format!("/v1/organizations/{beta}"), ADMIN_KEY, None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    revs.advanced(&deleted);
    let gone = app
        .get(&format!("/v1/organizations/{beta}"), ADMIN_KEY, None)
        .await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
    let gone = app
        .get(&format!("/v1/spaces/{space}"), ADMIN_KEY, Some(&acme))
        .await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
    // Alice's key survives, back to her only organization.
    let current = app.get("/v1/organizations/current", &alice_key, None).await;
    assert_eq!(
        current.body["organization_id"],
        acme.as_str(),
        "{}",
        current.text
    );
    let all = app.get("/v1/organizations", ADMIN_KEY, None).await;
    assert_eq!(ids(&all), vec![acme.clone()]);
}

#[tokio::test]
async fn spaces_and_their_members() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let (alice, alice_key) = app.member_with_key(&org, "alice@acme.test").await;
    let mut revs = Revisions::new(&app).await;

    let created = app
        .post(
            "/v1/spaces",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "Research", "description": "R&D"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    revs.advanced(&created);
    assert_eq!(created.body["organization_id"], org.as_str());
    assert_eq!(created.body["description"], "R&D");
    let space = id_of(&created);
    let dup = app
        .post(
            "/v1/spaces",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "research"}),
        )
        .await;
    assert_error(&dup, StatusCode::CONFLICT, "already_exists");
    revs.unchanged(&app).await;

    let listed = app.get("/v1/spaces", ADMIN_KEY, Some(&org)).await;
    assert_eq!(ids(&listed), vec![space.clone()], "{}", listed.text);
    let got = app
        .get(&format!("/v1/spaces/{space}"), ADMIN_KEY, Some(&org))
        .await;
    assert_eq!(got.body["name"], "Research", "{}", got.text);

    let empty = app
        .patch(
            &format!("/v1/spaces/{space}"),
            ADMIN_KEY,
            Some(&org),
            json!({}),
        )
        .await;
    assert_error(&empty, StatusCode::BAD_REQUEST, "invalid_field");
    revs.unchanged(&app).await;
    let renamed = app
        .patch(
            &format!("/v1/spaces/{space}"),
            ADMIN_KEY,
            Some(&org),
            json!({"name": "Lab"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    revs.advanced(&renamed);
    assert_eq!(renamed.body["name"], "Lab");
    assert_eq!(renamed.body["description"], "R&D", "untouched fields stay");

    // A plain member cannot read, create or change spaces.
    assert_eq!(app.total("/v1/spaces", &alice_key, None).await, 0);
    let refused = app
        .get(&format!("/v1/spaces/{space}"), &alice_key, None)
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    let refused = app
        .post("/v1/spaces", &alice_key, None, json!({"name": "Mine"}))
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    let refused = app
        .put(
            &format!("/v1/spaces/{space}/members/{alice}"),
            &alice_key,
            None,
            json!({}),
        )
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    revs.unchanged(&app).await;

    // Members.
    let members_path = format!("/v1/spaces/{space}/members");
    let added = app
        .call(
            Method::PUT,
            &format!("{members_path}/{alice}"),
            Some(ADMIN_KEY),
            Some(&org),
            None,
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.text);
    revs.advanced(&added);
    assert_eq!(added.body["user_id"], alice.as_str());
    let again = app
        .call(
            Method::PUT,
            &format!("{members_path}/{alice}"),
            Some(ADMIN_KEY),
            Some(&org),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "idempotent: {}", again.text);
    let members = app.get(&members_path, ADMIN_KEY, Some(&org)).await;
    assert_eq!(ids(&members), vec![alice.clone()], "{}", members.text);
    assert_eq!(members.body["items"][0]["email"], "alice@acme.test");
    let stranger = app
        .call(
            Method::PUT,
            &format!("{members_path}/usr_nobody"),
            Some(ADMIN_KEY),
            Some(&org),
            None,
        )
        .await;
    assert_error(&stranger, StatusCode::NOT_FOUND, "not_found");
    let removed = app
        .delete(&format!("{members_path}/{alice}"), ADMIN_KEY, Some(&org))
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
    revs.advanced(&removed);
    assert_eq!(app.total(&members_path, ADMIN_KEY, Some(&org)).await, 0);
    let twice = app
        .delete(&format!("{members_path}/{alice}"), ADMIN_KEY, Some(&org))
        .await;
    assert_error(&twice, StatusCode::NOT_FOUND, "not_found");

    // A space with projects cannot be deleted.
    let project = app.create_project(&org, &space, "Vision").await;
    let auditor = predefined("auditor");
    let on_space = app
        .bind(&org, &auditor, &alice, "SPACE", Some(&space))
        .await;
    let on_project = app
        .bind(&org, &auditor, &alice, "PROJECT", Some(&project))
        .await;
    revs.last = app.head_revision().await;
    let busy = app
        .delete(&format!("/v1/spaces/{space}"), ADMIN_KEY, Some(&org))
        .await;
    assert_error(&busy, StatusCode::CONFLICT, "space_not_empty");
    revs.unchanged(&app).await;
    let gone = app
        .delete(&format!("/v1/projects/{project}"), ADMIN_KEY, Some(&org))
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.text);
    revs.advanced(&gone);
    // The bindings on a deleted node go with it.
    let binding = app
        .get(
            &format!("/v1/role-bindings/{on_project}"),
            ADMIN_KEY,
            Some(&org),
        )
        .await;
    assert_error(&binding, StatusCode::NOT_FOUND, "not_found");
    let binding = app
        .get(
            &format!("/v1/role-bindings/{on_space}"),
            ADMIN_KEY,
            Some(&org),
        )
        .await;
    assert_eq!(binding.status, StatusCode::OK, "{}", binding.text);
    let deleted = app
        .delete(&format!("/v1/spaces/{space}"), ADMIN_KEY, Some(&org))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    revs.advanced(&deleted);
    let missing = app
        .get(&format!("/v1/spaces/{space}"), ADMIN_KEY, Some(&org))
        .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found");
    let binding = app
        .get(
            &format!("/v1/role-bindings/{on_space}"),
            ADMIN_KEY,
            Some(&org),
        )
        .await;
    assert_error(&binding, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        app.total(
            &format!("/v1/role-bindings?user_id={alice}"),
            ADMIN_KEY,
            Some(&org)
        )
        .await,
        0
    );
    assert_eq!(app.total("/v1/spaces", ADMIN_KEY, Some(&org)).await, 0);
}

#[tokio::test]
async fn projects_in_spaces() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let research = app.create_space(&org, "Research").await;
    let ops = app.create_space(&org, "Ops").await;
    let mut revs = Revisions::new(&app).await;

    let created = app
        .post(
            "/v1/projects",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "Vision", "space_id": research, "description": "cv"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    revs.advanced(&created);
    assert_eq!(created.body["space_id"], research.as_str());
    assert_eq!(created.body["organization_id"], org.as_str());
    let vision = id_of(&created);
    let dup = app
        .post(
            "/v1/projects",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "Vision", "space_id": research}),
        )
        .await;
    assert_error(&dup, StatusCode::CONFLICT, "already_exists");
    let no_space = app
        .post(
            "/v1/projects",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "Lost", "space_id": "spc_nowhere"}),
        )
        .await;
    assert_error(&no_space, StatusCode::NOT_FOUND, "not_found");
    let missing = app
        .post(
            "/v1/projects",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "Lost"}),
        )
        .await;
    assert_error(&missing, StatusCode::BAD_REQUEST, "invalid_body");
    revs.unchanged(&app).await;
    // The same name in another space is fine.
    let other = app.create_project(&org, &ops, "Vision").await;
    revs.last = app.head_revision().await;

    assert_eq!(app.total("/v1/projects", ADMIN_KEY, Some(&org)).await, 2);
    let filtered = app
        .get(
            &format!("/v1/projects?space_id={research}"),
            ADMIN_KEY,
            Some(&org),
        )
        .await;
    assert_eq!(ids(&filtered), vec![vision.clone()], "{}", filtered.text);
    let got = app
        .get(&format!("/v1/projects/{vision}"), ADMIN_KEY, Some(&org))
        .await;
    assert_eq!(got.body["name"], "Vision", "{}", got.text);

    let empty = app
        .patch(
            &format!("/v1/projects/{vision}"),
            ADMIN_KEY,
            Some(&org),
            json!({}),
        )
        .await;
    assert_error(&empty, StatusCode::BAD_REQUEST, "invalid_field");
    let patched = app
        .patch(
            &format!("/v1/projects/{vision}"),
            ADMIN_KEY,
            Some(&org),
            json!({"description": "computer vision"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    revs.advanced(&patched);
    assert_eq!(patched.body["description"], "computer vision");
    assert_eq!(patched.body["name"], "Vision");

    // A project holding registered resources cannot be deleted.
    let put = app
        .put(
            "/v1/resources/model/m1",
            ADMIN_KEY,
            Some(&org),
            json!({"project_id": vision}),
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text);
    revs.advanced(&put);
    let busy = app
        .delete(&format!("/v1/projects/{vision}"), ADMIN_KEY, Some(&org))
        .await;
    assert_error(&busy, StatusCode::CONFLICT, "project_not_empty");
    revs.unchanged(&app).await;
    let unregistered = app
        .delete("/v1/resources/model/m1", ADMIN_KEY, Some(&org))
        .await;
    assert_eq!(unregistered.status, StatusCode::NO_CONTENT);
    revs.advanced(&unregistered);
    let deleted = app
        .delete(&format!("/v1/projects/{vision}"), ADMIN_KEY, Some(&org))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    revs.advanced(&deleted);
    let gone = app
        .get(&format!("/v1/projects/{vision}"), ADMIN_KEY, Some(&org))
        .await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
    let left = app.get("/v1/projects", ADMIN_KEY, Some(&org)).await;
    assert_eq!(ids(&left), vec![other]);
}

#[tokio::test]
async fn users_me_auth_info_and_invitations() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let mut revs = Revisions::new(&app).await;

    let created = app
        .post(
            "/v1/users",
            ADMIN_KEY,
            Some(&org),
            json!({"email": "alice@acme.test", "name": "Alice", "external_ids": ["idp|alice"], "properties": {"dept": "ml", "cost_center": "c42", "band": 3}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    revs.advanced(&created);
    assert_eq!(created.body["email"], "alice@acme.test");
    assert_eq!(created.body["external_ids"], json!(["idp|alice"]));
    assert_eq!(created.body["properties"]["dept"], "ml");
    let alice = id_of(&created);
    for (body, status, code) in [
        (
            json!({"email": "not-an-email"}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"email": "ALICE@acme.test"}),
            StatusCode::CONFLICT,
            "already_exists",
        ),
        (
            json!({"email": "other@acme.test", "external_ids": ["idp|alice"]}),
            StatusCode::CONFLICT,
            "already_exists",
        ),
        (
            json!({"name": "No email"}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
    ] {
        let refused = app.post("/v1/users", ADMIN_KEY, Some(&org), body).await;
        assert_error(&refused, status, code);
    }
    revs.unchanged(&app).await;
    let bob = app.create_user(&org, "bob@acme.test").await;
    let alice_key = app.create_key(&org, &alice).await;
    revs.last = app.head_revision().await;

    let listed = app.get("/v1/users", ADMIN_KEY, Some(&org)).await;
    assert_eq!(listed.body["total"], 2, "{}", listed.text);
    assert!(listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["membership_status"] == "active"));
    let got = app
        .get(&format!("/v1/users/{alice}"), ADMIN_KEY, Some(&org))
        .await;
    assert_eq!(got.body["name"], "Alice", "{}", got.text);
    // Properties come back in the order they were written, not sorted (the README's choices).
    let at = |key: &str| got.text.find(&format!("\"{key}\":")).unwrap_or(usize::MAX);
    assert!(
        at("dept") < at("cost_center") && at("cost_center") < at("band") && at("band") < usize::MAX,
        "{}",
        got.text
    );

    let empty = app
        .patch(
            &format!("/v1/users/{bob}"),
            ADMIN_KEY,
            Some(&org),
            json!({}),
        )
        .await;
    assert_error(&empty, StatusCode::BAD_REQUEST, "invalid_field");
    let patched = app
        .patch(
            &format!("/v1/users/{bob}"),
            ADMIN_KEY,
            Some(&org),
            json!({"name": "Robert", "properties": {"level": 3}}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    revs.advanced(&patched);
    assert_eq!(patched.body["name"], "Robert");
    assert_eq!(patched.body["email"], "bob@acme.test");

    // A member reads and updates itself, and nobody else.
    let me = app.get("/v1/users/me", &alice_key, None).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["id"], alice.as_str());
    assert_eq!(me.body["organizations"], json!([org]));
    let renamed = app
        .patch(
            "/v1/users/me",
            &alice_key,
            None,
            json!({"name": "Alice A."}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    revs.advanced(&renamed);
    let seen = app
        .get(&format!("/v1/users/{alice}"), ADMIN_KEY, Some(&org))
        .await;
    assert_eq!(seen.body["name"], "Alice A.", "{}", seen.text);
    let empty = app.patch("/v1/users/me", &alice_key, None, json!({})).await;
    assert_error(&empty, StatusCode::BAD_REQUEST, "invalid_field");
    let own = app
        .get(&format!("/v1/users/{alice}"), &alice_key, None)
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    let other = app.get(&format!("/v1/users/{bob}"), &alice_key, None).await;
    assert_error(&other, StatusCode::FORBIDDEN, "forbidden");
    let other = app
        .patch(
            &format!("/v1/users/{bob}"),
            &alice_key,
            None,
            json!({"name": "Hacked"}),
        )
        .await;
    assert_error(&other, StatusCode::FORBIDDEN, "forbidden");
    let list = app.get("/v1/users", &alice_key, None).await;
    assert_error(&list, StatusCode::FORBIDDEN, "forbidden");
    let delete = app
        .delete(&format!("/v1/users/{bob}"), &alice_key, None)
        .await;
    assert_error(&delete, StatusCode::FORBIDDEN, "forbidden");
    revs.unchanged(&app).await;

    // auth_info: the caller, its organization, keys, roles and effective permissions.
    app.bind(&org, &predefined("developer"), &alice, "ORGANIZATION", None)
        .await;
    let info = app.get("/v1/users/me/auth_info", &alice_key, None).await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.text);
    assert_eq!(info.body["user"]["id"], alice.as_str());
    assert_eq!(info.body["organization"]["id"], org.as_str());
    let roles: Vec<&str> = info.body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["role_name"].as_str())
        .collect();
    assert!(
        roles.contains(&"base") && roles.contains(&"developer"),
        "{roles:?}"
    );
    let permissions = info.body["permissions"].as_array().unwrap();
    assert!(
        permissions
            .iter()
            .any(|p| p["permission"] == "job:read" && p["scope"] == "OWN"),
        "{}",
        info.text
    );
    assert!(
        !permissions.iter().any(|p| p["permission"] == "*:*"),
        "{}",
        info.text
    );
    assert_eq!(
        info.body["keys"].as_array().map(Vec::len),
        Some(1),
        "{}",
        info.text
    );

    // Invitations: pending members, optionally bound to a role on the organization.
    revs.last = app.head_revision().await;
    let invited = app
        .post(
            "/v1/users/invite_users",
            ADMIN_KEY,
            Some(&org),
            json!({"emails": ["carol@acme.test", "alice@acme.test"], "role_id": predefined("auditor")}),
        )
        .await;
    assert_eq!(invited.status, StatusCode::OK, "{}", invited.text);
    revs.advanced(&invited);
    let users = invited.body["users"].as_array().unwrap();
    assert_eq!(users.len(), 2, "{}", invited.text);
    assert_eq!(users[0]["email"], "carol@acme.test");
    assert_eq!(users[0]["membership_status"], "pending");
    assert_eq!(users[1]["id"], alice.as_str());
    assert_eq!(users[1]["membership_status"], "active", "{}", invited.text);
    let carol = users[0]["id"].as_str().unwrap().to_owned();
    let carol_seen = app
        .get(&format!("/v1/users/{carol}"), ADMIN_KEY, Some(&org))
        .await;
    assert_eq!(
        carol_seen.body["membership_status"], "pending",
        "{}",
        carol_seen.text
    );
    let carol_bindings = app
        .get(
            &format!("/v1/role-bindings?user_id={carol}"),
            ADMIN_KEY,
            Some(&org),
        )
        .await;
    assert_eq!(carol_bindings.body["total"], 1, "{}", carol_bindings.text);
    assert_eq!(
        carol_bindings.body["items"][0]["role_id"],
        predefined("auditor")
    );
    assert!(app.allowed(&org, &carol, "model:read", "model", "m1").await);
    for (key, body, status, code) in [
        (
            ADMIN_KEY,
            json!({"emails": []}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            ADMIN_KEY,
            json!({"emails": ["nope"]}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            ADMIN_KEY,
            json!({"emails": ["dan@acme.test"], "role_id": predefined("project_key")}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "system_role",
        ),
        (
            ADMIN_KEY,
            json!({"emails": ["dan@acme.test"], "role_id": "role_nosuch"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            alice_key.as_str(),
            json!({"emails": ["dan@acme.test"]}),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
    ] {
        let refused = app
            .post("/v1/users/invite_users", key, Some(&org), body)
            .await;
        assert_error(&refused, status, code);
    }
    revs.unchanged(&app).await;

    // Deleting a user whose only organization this was deletes it, and its keys stop.
    let bob_key = app.create_key(&org, &bob).await;
    assert_eq!(
        app.get("/v1/users/me", &bob_key, None).await.status,
        StatusCode::OK
    );
    revs.last = app.head_revision().await;
    let deleted = app
        .delete(&format!("/v1/users/{bob}"), ADMIN_KEY, Some(&org))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    revs.advanced(&deleted);
    let gone = app
        .get(&format!("/v1/users/{bob}"), ADMIN_KEY, Some(&org))
        .await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
    let refused = app.get("/v1/users/me", &bob_key, None).await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn groups_and_permission_profiles() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let (alice, alice_key) = app.member_with_key(&org, "alice@acme.test").await;
    let mut revs = Revisions::new(&app).await;

    for (route, prefix) in [("groups", "grp_"), ("permission-profiles", "prf_")] {
        let created = app
            .post(
                &format!("/v1/{route}"),
                ADMIN_KEY,
                Some(&org),
                json!({"name": "Reviewers", "description": "they review"}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        revs.advanced(&created);
        assert_eq!(created.body["members"], json!([]));
        let id = id_of(&created);
        assert!(id.starts_with(prefix), "{id}");
        let dup = app
            .post(
                &format!("/v1/{route}"),
                ADMIN_KEY,
                Some(&org),
                json!({"name": "reviewers"}),
            )
            .await;
        assert_error(&dup, StatusCode::CONFLICT, "already_exists");
        let refused = app
            .post(
                &format!("/v1/{route}"),
                &alice_key,
                None,
                json!({"name": "Mine"}),
            )
            .await;
        assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
        revs.unchanged(&app).await;

        let path = format!("/v1/{route}/{id}");
        assert_eq!(
            app.total(&format!("/v1/{route}"), ADMIN_KEY, Some(&org))
                .await,
            1
        );
        let got = app.get(&path, ADMIN_KEY, Some(&org)).await;
        assert_eq!(got.body["name"], "Reviewers", "{}", got.text);
        let empty = app.patch(&path, ADMIN_KEY, Some(&org), json!({})).await;
        assert_error(&empty, StatusCode::BAD_REQUEST, "invalid_field");
        let patched = app
            .patch(
                &path,
                ADMIN_KEY,
                Some(&org),
                json!({"description": "they approve"}),
            )
            .await;
        assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
        revs.advanced(&patched);
        assert_eq!(patched.body["description"], "they approve");
        assert_eq!(patched.body["name"], "Reviewers");

        let member = format!("{path}/members/{alice}");
        let added = app
            .call(Method::PUT, &member, Some(ADMIN_KEY), Some(&org), None)
            .await;
        assert_eq!(added.status, StatusCode::OK, "{}", added.text);
        revs.advanced(&added);
        let got = app.get(&path, ADMIN_KEY, Some(&org)).await;
        assert_eq!(got.body["members"], json!([alice]), "{}", got.text);
        let stranger = app
            .call(
                Method::PUT,
                &format!("{path}/members/usr_nobody"),
                Some(ADMIN_KEY),
                Some(&org),
                None,
            )
            .await;
        assert_error(&stranger, StatusCode::NOT_FOUND, "not_found");
        let removed = app.delete(&member, ADMIN_KEY, Some(&org)).await;
        assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
        revs.advanced(&removed);
        let twice = app.delete(&member, ADMIN_KEY, Some(&org)).await;
        assert_error(&twice, StatusCode::NOT_FOUND, "not_found");
        let got = app.get(&path, ADMIN_KEY, Some(&org)).await;
        assert_eq!(got.body["members"], json!([]), "{}", got.text);

        // A group is not a profile, nor the other way round.
        let other_route = if route == "groups" {
            "permission-profiles"
        } else {
            "groups"
        };
        let wrong = app
            .get(&format!("/v1/{other_route}/{id}"), ADMIN_KEY, Some(&org))
            .await;
        assert_error(&wrong, StatusCode::NOT_FOUND, "not_found");

        let deleted = app.delete(&path, ADMIN_KEY, Some(&org)).await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
        revs.advanced(&deleted);
        let gone = app.get(&path, ADMIN_KEY, Some(&org)).await;
        assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn resources_registry() {
    let mut app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let space = app.create_space(&org, "Research").await;
    let project = app.create_project(&org, &space, "Vision").await;
    let mut revs = Revisions::new(&app).await;

    let created = app
        .put(
            "/v1/resources/model/m1",
            ADMIN_KEY,
            Some(&org),
            json!({"project_id": project, "owner_id": "alice@acme.test", "properties": {"stage": "prod"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    revs.advanced(&created);
    assert_eq!(created.body["project_id"], project.as_str());
    assert_eq!(created.body["properties"]["stage"], "prod");
    let replaced = app
        .put(
            "/v1/resources/model/m1",
            ADMIN_KEY,
            Some(&org),
            json!({"properties": {"stage": "dev", "team": "vision", "accuracy": 0.9}}),
        )
        .await;
    assert_eq!(
        replaced.status,
        StatusCode::OK,
        "a replacement: {}",
        replaced.text
    );
    revs.advanced(&replaced);
    assert!(replaced.body["project_id"].is_null(), "{}", replaced.text);
    assert_eq!(replaced.body["created_at"], created.body["created_at"]);
    // No project: the resource sits directly in the organization; every field is optional.
    let bare = app
        .put("/v1/resources/dataset/d1", ADMIN_KEY, Some(&org), json!({}))
        .await;
    assert_eq!(bare.status, StatusCode::CREATED, "{}", bare.text);
    revs.advanced(&bare);
    let in_project = app
        .put(
            "/v1/resources/dataset/d2",
            ADMIN_KEY,
            Some(&org),
            json!({"project_id": project}),
        )
        .await;
    revs.advanced(&in_project);

    for (path, body, status, code) in [
        (
            "/v1/resources/nosuchtype/x",
            json!({}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "/v1/resources/space/x",
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "reserved_type",
        ),
        (
            "/v1/resources/model/m9",
            json!({"project_id": "prj_nowhere"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        let refused = app.put(path, ADMIN_KEY, Some(&org), body).await;
        assert_error(&refused, status, code);
    }
    revs.unchanged(&app).await;

    assert_eq!(app.total("/v1/resources", ADMIN_KEY, Some(&org)).await, 3);
    assert_eq!(
        app.total("/v1/resources?type=dataset", ADMIN_KEY, Some(&org))
            .await,
        2
    );
    let by_project = app
        .get(
            &format!("/v1/resources?project_id={project}"),
            ADMIN_KEY,
            Some(&org),
        )
        .await;
    assert_eq!(by_project.body["total"], 1, "{}", by_project.text);
    assert_eq!(by_project.body["items"][0]["id"], "d2");
    let got = app
        .get("/v1/resources/model/m1", ADMIN_KEY, Some(&org))
        .await;
    assert_eq!(got.body["properties"]["stage"], "dev", "{}", got.text);
    // Properties keep the order their keys were written in (the README's choices), in the
    // answer and once read back from the store.
    let in_written_order = |text: &str| {
        let at = |key: &str| text.find(&format!("\"{key}\":")).unwrap_or(usize::MAX);
        at("stage") < at("team") && at("team") < at("accuracy") && at("accuracy") < usize::MAX
    };
    assert!(in_written_order(&got.text), "{}", got.text);
    app.kill_and_restart();
    let reloaded = app
        .get("/v1/resources/model/m1", ADMIN_KEY, Some(&org))
        .await;
    assert!(in_written_order(&reloaded.text), "{}", reloaded.text);

    let alice = app.create_user(&org, "alice@acme.test").await;
    let on_model = app
        .bind(
            &org,
            &predefined("auditor"),
            &alice,
            "RESOURCE",
            Some("model:m1"),
        )
        .await;
    let on_dataset = app
        .bind(
            &org,
            &predefined("auditor"),
            &alice,
            "RESOURCE",
            Some("dataset:d1"),
        )
        .await;
    assert!(app.allowed(&org, &alice, "model:read", "model", "m1").await);
    revs.last = app.head_revision().await;
    let deleted = app
        .delete("/v1/resources/model/m1", ADMIN_KEY, Some(&org))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    revs.advanced(&deleted);
    let binding = app
        .get(
            &format!("/v1/role-bindings/{on_model}"),
            ADMIN_KEY,
            Some(&org),
        )
        .await;
    assert_error(&binding, StatusCode::NOT_FOUND, "not_found");
    let binding = app
        .get(
            &format!("/v1/role-bindings/{on_dataset}"),
            ADMIN_KEY,
            Some(&org),
        )
        .await;
    assert_eq!(binding.status, StatusCode::OK, "{}", binding.text);
    assert!(!app.allowed(&org, &alice, "model:read", "model", "m1").await);
    let gone = app
        .get("/v1/resources/model/m1", ADMIN_KEY, Some(&org))
        .await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
    let twice = app
        .delete("/v1/resources/model/m1", ADMIN_KEY, Some(&org))
        .await;
    assert_error(&twice, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn catalog_and_role_permissions() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let (_, alice_key) = app.member_with_key(&org, "alice@acme.test").await;

    // Any member may read the catalog and ask what a role holds.
    let catalog = app.get("/v1/permissions/catalog", &alice_key, None).await;
    assert_eq!(catalog.status, StatusCode::OK, "{}", catalog.text);
    let types = catalog.body["types"].as_array().unwrap();
    let model = types
        .iter()
        .find(|t| t["name"] == "model")
        .unwrap_or_else(|| panic!("no model type: {}", catalog.text));
    assert!(
        model["actions"]
            .as_array()
            .unwrap()
            .contains(&json!("deploy")),
        "{model}"
    );
    let mut roles: Vec<&str> = catalog.body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    roles.sort_unstable();
    assert_eq!(
        roles,
        vec![
            "auditor",
            "base",
            "data_scientist",
            "developer",
            "org_admin",
            "platform_admin",
            "project_key",
            "team_admin"
        ]
    );

    let permissions = app
        .get(
            &format!(
                "/v1/authorization/permissions?role_id={}",
                predefined("auditor")
            ),
            &alice_key,
            None,
        )
        .await;
    assert_eq!(permissions.status, StatusCode::OK, "{}", permissions.text);
    assert_eq!(permissions.body["role_name"], "auditor");
    assert_eq!(permissions.body["permissions"][0]["permission"], "*:read");
    let custom = app
        .custom_role(&org, "readers", json!(["model:read", "dataset:read"]))
        .await;
    let permissions = app
        .get(
            &format!("/v1/authorization/permissions?role_id={custom}"),
            &alice_key,
            None,
        )
        .await;
    assert_eq!(
        permissions.body["permissions"].as_array().map(Vec::len),
        Some(2),
        "{}",
        permissions.text
    );
    let unknown = app
        .get(
            "/v1/authorization/permissions?role_id=role_nosuch",
            &alice_key,
            None,
        )
        .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "not_found");

    for (role, permission, expected) in [
        (predefined("auditor"), "model:read", true),
        (predefined("auditor"), "model:write", false),
        (custom.clone(), "dataset:read", true),
        (custom.clone(), "dataset:write", false),
        (predefined("org_admin"), "alert:resolve", true),
    ] {
        let a = app
            .post(
                "/v1/authorization/authorize",
                &alice_key,
                None,
                json!({"role_id": role, "permission": permission}),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(
            a.body,
            json!({"authorized": expected}),
            "{role} {permission}"
        );
    }
    let bad = app
        .post(
            "/v1/authorization/authorize",
            &alice_key,
            None,
            json!({"role_id": custom, "permission": "nosuch:read"}),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "unknown_permission");
}

#[tokio::test]
async fn audit_events_record_every_write_with_its_actor() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let (alice, alice_key) = app.member_with_key(&org, "alice@acme.test").await;

    let created = app
        .call_with_headers(
            Method::POST,
            "/v1/spaces",
            Some(ADMIN_KEY),
            &[("X-Organization-Id", &org), ("X-Request-ID", "req-audit-1")],
            Some(&json!({"name": "Research"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let space = id_of(&created);
    let renamed = app
        .patch(
            &format!("/v1/spaces/{space}"),
            ADMIN_KEY,
            Some(&org),
            json!({"name": "Lab"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK);

    let events = app
        .get(
            &format!("/v1/audit-events?object_id={space}"),
            ADMIN_KEY,
            Some(&org),
        )
        .await;
    assert_eq!(events.status, StatusCode::OK, "{}", events.text);
    assert_eq!(events.body["total"], 2, "{}", events.text);
    let items = events.body["items"].as_array().unwrap();
    let create = items
        .iter()
        .find(|e| e["action"] == "space.create")
        .unwrap();
    assert_eq!(create["actor_user_id"], "usr_admin");
    assert_eq!(create["actor_key_id"], "key_bootstrap");
    assert_eq!(create["request_id"], "req-audit-1");
    assert_eq!(create["after"]["name"], "Research");
    assert!(create["before"].is_null());
    assert!(create["at"].is_string());
    let update = items
        .iter()
        .find(|e| e["action"] == "space.update")
        .unwrap();
    assert_eq!(update["before"]["name"], "Research");
    assert_eq!(update["after"]["name"], "Lab");

    // Filters.
    let by_action = app
        .get("/v1/audit-events?action=user.create", ADMIN_KEY, Some(&org))
        .await;
    assert_eq!(by_action.body["total"], 1, "{}", by_action.text);
    assert_eq!(by_action.body["items"][0]["object_id"], alice.as_str());
    // A self-service write is recorded with its actor.
    let patched = app
        .patch("/v1/users/me", &alice_key, None, json!({"name": "Alice"}))
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    let by_actor = app
        .get(
            &format!("/v1/audit-events?actor_user_id={alice}"),
            ADMIN_KEY,
            Some(&org),
        )
        .await;
    assert_eq!(by_actor.body["total"], 1, "{}", by_actor.text);
    assert_eq!(by_actor.body["items"][0]["action"], "user.update");
    // A refused write leaves no trace.
    let refused = app
        .post("/v1/spaces", &alice_key, None, json!({"name": "Nope"}))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.total(
            "/v1/audit-events?action=space.create",
            ADMIN_KEY,
            Some(&org)
        )
        .await,
        1
    );
    // Reading the log needs audit:read.
    let denied = app.get("/v1/audit-events", &alice_key, None).await;
    assert_error(&denied, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi_need_no_key() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    app.create_user(&org, "alice@acme.test").await;

    let health = app.call(Method::GET, "/healthz", None, None, None).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text);
    assert_eq!(health.body["status"], "ok");

    let ready = app.call(Method::GET, "/readyz", None, None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_eq!(ready.body["status"], "ready");
    let revision: u64 = ready.body["revision"].as_str().unwrap().parse().unwrap();
    assert!(
        revision >= 3,
        "bootstrap, organization and user: {}",
        ready.text
    );
    assert_eq!(ready.body["revision"], ready.body["store_revision"]);

    let metrics = app.call(Method::GET, "/metrics", None, None, None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let content_type = metrics.headers["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(
        metrics
            .text
            .contains(&format!("arbiter_revision {revision}")),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains("arbiter_index_objects{kind=\"user\"} 2"),
        "{}",
        metrics.text
    );
    assert!(metrics.text.contains("# TYPE arbiter_revision gauge"));

    let openapi = app
        .call(Method::GET, "/openapi.json", None, None, None)
        .await;
    assert_eq!(openapi.status, StatusCode::OK);
    assert!(
        openapi.body["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with('3')),
        "{}",
        openapi.text
    );
    // Every route the router serves is described.
    let paths = openapi.body["paths"].as_object().unwrap();
    for (path, method) in [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/v1/organizations", "get"),
        ("/v1/organizations", "post"),
        ("/v1/organizations/current", "get"),
        ("/v1/organizations/current", "put"),
        ("/v1/organizations/{id}", "get"),
        ("/v1/organizations/{id}", "delete"),
        ("/v1/organizations/{id}/users", "patch"),
        ("/v1/spaces", "post"),
        ("/v1/spaces/{id}", "patch"),
        ("/v1/spaces/{id}/members", "get"),
        ("/v1/spaces/{id}/members/{user_id}", "put"),
        ("/v1/spaces/{id}/members/{user_id}", "delete"),
        ("/v1/projects", "post"),
        ("/v1/projects/{id}", "delete"),
        ("/v1/users", "post"),
        ("/v1/users/me", "get"),
        ("/v1/users/me", "patch"),
        ("/v1/users/me/auth_info", "get"),
        ("/v1/users/invite_users", "post"),
        ("/v1/users/{id}", "delete"),
        ("/v1/groups", "post"),
        ("/v1/groups/{id}/members/{user_id}", "put"),
        ("/v1/permission-profiles", "post"),
        ("/v1/permission-profiles/{id}/members/{user_id}", "delete"),
        ("/v1/api-keys", "get"),
        ("/v1/api-keys", "post"),
        ("/v1/api-keys/{id}", "delete"),
        ("/v1/api-keys/{id}/rotate", "post"),
        ("/v1/permissions/catalog", "get"),
        ("/v1/resources", "get"),
        ("/v1/resources/{type}/{id}", "put"),
        ("/v1/roles", "get"),
        ("/v1/roles/{id}", "patch"),
        ("/v1/role-bindings", "post"),
        ("/v1/role-bindings/{id}", "delete"),
        ("/v1/authorization/permissions", "get"),
        ("/v1/authorization/authorize", "post"),
        ("/v1/check", "post"),
        ("/v1/check/batch", "post"),
        ("/v1/audit-events", "get"),
    ] {
        assert!(
            paths.get(path).is_some_and(|p| p.get(method).is_some()),
            "openapi.json lacks {method} {path}"
        );
    }
}

#[tokio::test]
async fn request_id_is_echoed_when_sent_and_generated_when_not() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    for (path, key) in [
        ("/healthz", None),
        ("/v1/spaces", Some(ADMIN_KEY)),
        ("/v1/spaces", None),
        ("/v1/no/such/route", Some(ADMIN_KEY)),
    ] {
        let sent = app
            .call_with_headers(
                Method::GET,
                path,
                key,
                &[("X-Request-ID", "trace-42"), ("X-Organization-Id", &org)],
                None,
            )
            .await;
        assert_eq!(
            sent.headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok()),
            Some("trace-42"),
            "{path}: {}",
            sent.text
        );
        let first = app
            .call_with_headers(Method::GET, path, key, &[("X-Organization-Id", &org)], None)
            .await;
        let second = app
            .call_with_headers(Method::GET, path, key, &[("X-Organization-Id", &org)], None)
            .await;
        let first = first.headers["x-request-id"].to_str().unwrap().to_owned();
        let second = second.headers["x-request-id"].to_str().unwrap().to_owned();
        assert!(first.len() >= 16, "{path}: generated id `{first}`");
        assert_ne!(first, second, "{path}: each request gets its own id");
        assert_ne!(first, "trace-42");
    }
}

#[tokio::test]
async fn inviting_twice_neither_duplicates_the_member_nor_its_binding() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let invite = json!({"emails": ["carol@acme.test"], "role_id": predefined("auditor")});
    let first = app
        .post(
            "/v1/users/invite_users",
            ADMIN_KEY,
            Some(&org),
            invite.clone(),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let carol = first.body["users"][0]["id"].as_str().unwrap().to_owned();
    let second = app
        .post("/v1/users/invite_users", ADMIN_KEY, Some(&org), invite)
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    assert_eq!(
        second.body["users"][0]["id"],
        carol.as_str(),
        "the same user"
    );
    assert_eq!(second.body["users"][0]["membership_status"], "pending");
    assert_eq!(app.total("/v1/users", ADMIN_KEY, Some(&org)).await, 1);
    let bindings = app
        .get(
            &format!("/v1/role-bindings?user_id={carol}"),
            ADMIN_KEY,
            Some(&org),
        )
        .await;
    assert_eq!(bindings.body["total"], 1, "{}", bindings.text);
    // So deleting the one binding listed takes the access away.
    let id = bindings.body["items"][0]["id"].as_str().unwrap();
    let deleted = app
        .delete(&format!("/v1/role-bindings/{id}"), ADMIN_KEY, Some(&org))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(!app.allowed(&org, &carol, "model:read", "model", "m1").await);
}

#[tokio::test]
async fn concurrent_writes_get_distinct_increasing_revisions() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let start = app.head_revision().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let client = app.client.clone();
        let url = format!("{}/v1/spaces", app.base);
        let org = org.clone();
        tasks.spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(ADMIN_KEY)
                .header("X-Organization-Id", org)
                .json(&json!({"name": format!("space {i}")}))
                .send()
                .await
                .expect("send");
            assert_eq!(response.status(), StatusCode::CREATED);
            response.headers()["x-arbiter-revision"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        });
    }
    let mut revisions = Vec::new();
    while let Some(revision) = tasks.join_next().await {
        revisions.push(revision.expect("task"));
    }
    revisions.sort_unstable();
    let expected: Vec<u64> = (start + 1..=start + 16).collect();
    assert_eq!(revisions, expected, "one revision per write, none lost");
    assert_eq!(app.head_revision().await, start + 16);
    assert_eq!(app.total("/v1/spaces", ADMIN_KEY, Some(&org)).await, 16);
}
