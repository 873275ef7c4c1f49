//! Bad input answers the JSON error shape and changes nothing; every refused key answers the
//! same 401.

use arbiter_core::bundle::hash_secret;
use arbiter_core::model::{ApiKey, ApiKeyKind, Object, Op};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

fn nested(levels: usize) -> String {
    format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
}

#[tokio::test]
async fn malformed_bodies_answer_400_and_change_nothing() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let space = app.create_space(&org, "Research").await;
    let revs = Revisions::new(&app).await;
    let json_type = "application/json";

    let too_big = format!(
        r#"{{"name": "big", "description": "{}"}}"#,
        "a".repeat(1024 * 1024 + 16)
    );
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            json_type,
            br#"{"name": "#.to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            json_type,
            b"".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            json_type,
            b"   ".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            json_type,
            b"{'name': 'x'}".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            json_type,
            br#"{"name": "x"} trailing"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            json_type,
            b"{\"name\": \"\xff\xfe\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        // In a value no route reads (serde skips those bytes unchecked).
        (
            json_type,
            b"{\"name\": \"x\", \"unread\": \"\xff\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "text/plain",
            br#"{"name": "x"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "unsupported_content_type",
        ),
        (
            "application/x-www-form-urlencoded",
            b"name=x".to_vec(),
            StatusCode::BAD_REQUEST,
            "unsupported_content_type",
        ),
        (
            json_type,
            br#"{"name": 5}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json_type,
            br#"{"name": ["x"]}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json_type,
            br#"{"name": null}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json_type,
            b"{}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json_type,
            b"[]".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json_type,
            b"\"Research 2\"".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json_type,
            format!(r#"{{"name": "deep", "x": {}}}"#, nested(32)).into_bytes(),
            StatusCode::BAD_REQUEST,
            "too_deep",
        ),
        (
            json_type,
            format!(r#"{{"name": "deep", "x": {}}}"#, nested(200)).into_bytes(),
            StatusCode::BAD_REQUEST,
            "too_deep",
        ),
        (
            json_type,
            too_big.into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    // The same answers from a create and from the batch endpoint, which reads its body its own
    // way (items borrowed from it) but must refuse it as every route does.
    let batch_only = (
        json_type,
        br#"{"checks": 5}"#.to_vec(),
        StatusCode::BAD_REQUEST,
        "invalid_body",
    );
    let routes = [
        ("/v1/spaces", cases.clone()),
        ("/v1/check/batch", [cases, vec![batch_only]].concat()),
    ];
    for (path, cases) in routes {
        for (content_type, body, status, code) in cases {
            let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
            let a = app
                .raw(
                    Method::POST,
                    path,
                    Some(ADMIN_KEY),
                    Some(&org),
                    content_type,
                    body,
                )
                .await;
            assert_eq!(
                a.status, status,
                "{path} {content_type} {shown}: {}",
                a.text
            );
            assert_error(&a, status, code);
            assert!(
                !a.text.contains("panicked") && !a.text.contains("src/"),
                "{}",
                a.text
            );
        }
    }
    // The same on other writes.
    let patch = app
        .raw(
            Method::PATCH,
            &format!("/v1/spaces/{space}"),
            Some(ADMIN_KEY),
            Some(&org),
            json_type,
            br#"{"name": 12}"#.to_vec(),
        )
        .await;
    assert_error(&patch, StatusCode::BAD_REQUEST, "invalid_body");
    let put = app
        .raw(
            Method::PUT,
            "/v1/resources/model/m1",
            Some(ADMIN_KEY),
            Some(&org),
            "text/plain",
            b"{}".to_vec(),
        )
        .await;
    assert_error(&put, StatusCode::BAD_REQUEST, "unsupported_content_type");
    let role = app
        .post(
            "/v1/roles",
            ADMIN_KEY,
            Some(&org),
            json!({"name": "r", "permissions": ["model:read", "nosuch:read"]}),
        )
        .await;
    assert_error(&role, StatusCode::BAD_REQUEST, "unknown_permission");
    assert_eq!(role.body["error"]["details"]["permission"], "nosuch:read");
    let irn = app
        .post(
            "/v1/check",
            ADMIN_KEY,
            Some(&org),
            json!({"permission": "agent:read", "resource": {"irn": "not-an-irn"}}),
        )
        .await;
    assert_error(&irn, StatusCode::BAD_REQUEST, "malformed_irn");
    let permission = app
        .post(
            "/v1/check",
            ADMIN_KEY,
            Some(&org),
            json!({"permission": "read", "resource": {"type": "model", "id": "m1"}}),
        )
        .await;
    assert_error(&permission, StatusCode::BAD_REQUEST, "malformed_permission");
    let header = app
        .call_with_headers(
            Method::GET,
            "/v1/spaces",
            Some(ADMIN_KEY),
            &[("X-Organization-Id", "org_nowhere")],
            None,
        )
        .await;
    assert_error(&header, StatusCode::NOT_FOUND, "not_found");

    revs.unchanged(&app).await;
    assert_eq!(app.total("/v1/spaces", ADMIN_KEY, Some(&org)).await, 1);
    assert_eq!(
        app.total("/v1/roles?is_predefined=false", ADMIN_KEY, Some(&org))
            .await,
        0
    );

    // The limits themselves are accepted: 32 levels, a parameterised JSON type, unknown fields.
    let at_limit = app
        .raw(
            Method::POST,
            "/v1/spaces",
            Some(ADMIN_KEY),
            Some(&org),
            "application/json; charset=utf-8",
            format!(r#"{{"name": "deep", "x": {}}}"#, nested(31)).into_bytes(),
        )
        .await;
    assert_eq!(at_limit.status, StatusCode::CREATED, "{}", at_limit.text);
    assert_eq!(app.total("/v1/spaces", ADMIN_KEY, Some(&org)).await, 2);
}

#[tokio::test]
async fn bad_query_strings_answer_400_json() {
    let app = spawn_app().await;
    let org = app.create_org("Acme").await;
    for path in [
        "/v1/spaces?limit=abc",
        "/v1/spaces?limit=0",
        "/v1/spaces?offset=-1",
        "/v1/roles?is_predefined=maybe",
        "/v1/role-bindings?resource_type=GALAXY",
        "/v1/audit-events?since=yesterday",
        "/v1/authorization/permissions",
        "/v1/projects?limit=1&offset=x",
        "/v1/spaces/%FF",
        "/v1/resources/model/%FF%FE",
    ] {
        let a = app.get(path, ADMIN_KEY, Some(&org)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}: {}", a.text);
        assert_error(&a, StatusCode::BAD_REQUEST, &error_code(&a));
    }
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_json() {
    let app = spawn_app().await;
    for (method, path, key) in [
        (Method::GET, "/v1/nope", Some(ADMIN_KEY)),
        (Method::GET, "/nope", None),
        (Method::POST, "/v1/spaces/x/y/z", Some(ADMIN_KEY)),
        (Method::GET, "/v2/organizations", None),
    ] {
        let a = app.call(method.clone(), path, key, None, None).await;
        assert_error(&a, StatusCode::NOT_FOUND, "no_route");
    }
    for (method, path) in [
        (Method::POST, "/healthz"),
        (Method::PUT, "/v1/organizations"),
        (Method::DELETE, "/v1/check"),
        (Method::GET, "/v1/check/batch"),
        (Method::PATCH, "/v1/role-bindings/rb_1"),
        (Method::POST, "/v1/roles/role_org_admin"),
    ] {
        let a = app
            .call(method.clone(), path, Some(ADMIN_KEY), None, None)
            .await;
        assert_error(&a, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
}

/// Why a key is refused, the key sent, and any raw headers sent instead.
type Refused = (&'static str, Option<String>, Vec<(&'static str, String)>);

#[tokio::test]
async fn every_refused_key_answers_the_same_401() {
    let mut app = spawn_app().await;
    let org = app.create_org("Acme").await;
    let (alice, alice_key) = app.member_with_key(&org, "alice@acme.test").await;
    // Revoked.
    let revoked = app
        .post(
            "/v1/api-keys",
            &alice_key,
            None,
            json!({"name": "to revoke"}),
        )
        .await;
    let revoked_secret = revoked.body["key"].as_str().unwrap().to_owned();
    let gone = app
        .delete(
            &format!("/v1/api-keys/{}", id_of(&revoked)),
            &alice_key,
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    // Expired: written straight to the store, since the API refuses a key that is already
    // expired.
    let expired_secret = arbiter_server::keys::generate();
    let store = arbiter_store::open(&app.database_url).await.expect("store");
    let head = store.head().await.expect("head");
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    let key = ApiKey {
        id: "key_expired".to_owned(),
        name: "expired".to_owned(),
        kind: ApiKeyKind::User,
        user_id: alice.clone(),
        project_id: None,
        organization_id: Some(org.clone()),
        secret_hash: hash_secret(&expired_secret),
        display_prefix: expired_secret[..10].to_owned(),
        expires_at: Some(past),
        revoked_at: None,
        created_at: past - chrono::Duration::hours(1),
        updated_at: past - chrono::Duration::hours(1),
    };
    let revision = store
        .commit(
            head,
            &[Op::Put {
                object: Object::ApiKey(key),
            }],
            &[],
            None,
        )
        .await
        .expect("commit");
    drop(store);
    // A restart loads the store, the expired key included.
    app.kill_and_restart();
    assert_eq!(app.head_revision().await, revision);
    let listed = app.get("/v1/api-keys", &alice_key, None).await;
    assert!(
        listed.text.contains("key_expired"),
        "the key is stored: {}",
        listed.text
    );

    // A well-formed key with a valid checksum that was never issued; a real key with its
    // checksum broken; garbage.
    let unknown = arbiter_server::keys::generate();
    let mut tampered = alice_key.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let mut body_changed = alice_key.clone().into_bytes();
    body_changed[8] = if body_changed[8] == b'x' { b'y' } else { b'x' };
    let body_changed = String::from_utf8(body_changed).unwrap();

    let reference = app.call(Method::GET, "/v1/spaces", None, None, None).await;
    assert_error(&reference, StatusCode::UNAUTHORIZED, "unauthenticated");
    let challenge = reference.headers.get("www-authenticate").cloned();
    assert!(challenge.is_some(), "401 carries WWW-Authenticate");

    let mut refused: Vec<Refused> = vec![
        ("revoked", Some(revoked_secret), vec![]),
        ("expired", Some(expired_secret), vec![]),
        ("unknown", Some(unknown), vec![]),
        ("bad checksum", Some(tampered), vec![]),
        ("changed body", Some(body_changed), vec![]),
        ("short", Some("arb_short".to_owned()), vec![]),
        ("garbage", Some("x".repeat(300)), vec![]),
        (
            "not a key",
            Some("an-operator-chosen-but-wrong-key-0123456789".to_owned()),
            vec![],
        ),
    ];
    refused.push((
        "basic",
        None,
        vec![("Authorization", format!("Basic {alice_key}"))],
    ));
    refused.push((
        "empty bearer",
        None,
        vec![("Authorization", "Bearer ".to_owned())],
    ));
    refused.push(("bare key", None, vec![("Authorization", alice_key.clone())]));
    for (why, key, headers) in refused {
        for path in ["/v1/spaces", "/v1/users/me", "/v1/organizations"] {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let a = app
                .call_with_headers(Method::GET, path, key.as_deref(), &headers, None)
                .await;
            assert_eq!(
                a.status,
                StatusCode::UNAUTHORIZED,
                "{why} {path}: {}",
                a.text
            );
            assert_eq!(
                a.text, reference.text,
                "{why}: the same body whatever the reason"
            );
            assert_eq!(
                a.headers.get("www-authenticate").cloned(),
                challenge,
                "{why}"
            );
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let check = app
            .call_with_headers(
                Method::POST,
                "/v1/check",
                key.as_deref(),
                &headers,
                Some(
                    &json!({"permission": "model:read", "resource": {"type": "model", "id": "m"}}),
                ),
            )
            .await;
        assert_eq!(check.text, reference.text, "{why}");
    }
    // The genuine key still works.
    assert_eq!(
        app.get("/v1/users/me", &alice_key, None).await.status,
        StatusCode::OK
    );
}
