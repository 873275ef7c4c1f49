//! The OpenID AuthZEN Authorization API 1.0 over the AuthZEN "Todo" interop scenario
//! (`tests/fixtures/authzen-todo.yaml`): the basic level (evaluation), the batch level
//! (evaluations), the search level (subject, resource, action, with paging), discovery, the 400s
//! the 1.0 text asks for, and who may ask about whom.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

const ORG: &str = "todo-org";

const RICK: &str = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
const MORTY: &str = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
const SUMMER: &str = "CiRmZDI2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
const BETH: &str = "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
const JERRY: &str = "CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";

const MORTY_EMAIL: &str = "morty@the-citadel.com";
const SUMMER_EMAIL: &str = "summer@the-smiths.com";

const EVALUATION: &str = "/access/v1/evaluation";
const EVALUATIONS: &str = "/access/v1/evaluations";
const SEARCH_SUBJECT: &str = "/access/v1/search/subject";
const SEARCH_RESOURCE: &str = "/access/v1/search/resource";
const SEARCH_ACTION: &str = "/access/v1/search/action";

const TODO_ACTIONS: [&str; 4] = [
    "can_read_todos",
    "can_create_todo",
    "can_update_todo",
    "can_delete_todo",
];

/// A server whose store holds the Todo scenario (imported with `arbiter import`, then reloaded).
async fn todo_app() -> TestApp {
    let mut app = spawn_app().await;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/authzen-todo.yaml"
    );
    let text = std::fs::read_to_string(path).expect("read the Todo fixture");
    let bundle = arbiter_core::bundle::Bundle::from_text(&text).expect("the Todo fixture parses");
    crate::conformance::import(&app.database_url, &app.path(), &bundle);
    app.kill_and_restart();
    app
}

fn subject(kind: &str, id: &str) -> Value {
    json!({"type": kind, "id": id})
}

fn action(name: &str) -> Value {
    json!({"name": name})
}

/// A todo whose owner (`properties.ownerID`) is `owner`.
fn todo(id: &str, owner: &str) -> Value {
    json!({"type": "todo", "id": id, "properties": {"ownerID": owner}})
}

/// The decision of a 200 answer; asserts the JSON content type and the body shape.
fn decision(a: &Answer) -> bool {
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let content_type = a
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "content type `{content_type}`: {}",
        a.text
    );
    a.body["decision"]
        .as_bool()
        .unwrap_or_else(|| panic!("no boolean decision: {}", a.text))
}

impl TestApp {
    /// `POST` of an AuthZEN body as the platform administrator, in the Todo organization.
    async fn pep(&self, path: &str, body: Value) -> Answer {
        self.post(path, ADMIN_KEY, Some(ORG), body).await
    }
}

/// The `(type, id)` of every search result.
fn found(a: &Answer) -> Vec<(String, String)> {
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    a.body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {}", a.text))
        .iter()
        .map(|r| {
            (
                r["type"].as_str().unwrap_or_default().to_owned(),
                r["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The ids of the results of a subject or resource search, as a set.
fn ids(a: &Answer) -> BTreeSet<String> {
    found(a).into_iter().map(|(_, id)| id).collect()
}

/// The action names of the results of an action search, as a set.
fn names(a: &Answer) -> BTreeSet<String> {
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    a.body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {}", a.text))
        .iter()
        .map(|r| {
            r["name"]
                .as_str()
                .unwrap_or_else(|| panic!("a result without a name: {}", a.text))
                .to_owned()
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The decisions of an evaluations answer, in order.
fn decisions(a: &Answer) -> Vec<bool> {
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    a.body["evaluations"]
        .as_array()
        .unwrap_or_else(|| panic!("no evaluations: {}", a.text))
        .iter()
        .map(|e| {
            e["decision"]
                .as_bool()
                .unwrap_or_else(|| panic!("an evaluation without a decision: {}", a.text))
        })
        .collect()
}

#[tokio::test]
async fn the_todo_matrix_is_decided_at_the_basic_level() {
    let app = todo_app().await;
    // (name, external id, may create, may update and delete Morty's todo, may update and delete
    // Summer's todo).
    let users = [
        ("rick", RICK, true, true, true),
        ("morty", MORTY, true, true, false),
        ("summer", SUMMER, true, false, true),
        ("beth", BETH, false, false, false),
        ("jerry", JERRY, false, false, false),
    ];
    let mut failures = Vec::new();
    let mut asked = 0;
    for (name, id, create, mortys, summers) in users {
        // The interop PEP names its subjects `identity`; `user` is Arbiter's own word.
        for kind in ["identity", "user"] {
            let questions = [
                (
                    "can_read_user",
                    json!({"type": "user", "id": "rick@the-citadel.com"}),
                    true,
                ),
                (
                    "can_read_user",
                    json!({"type": "user", "id": "beth@the-smiths.com"}),
                    true,
                ),
                (
                    "can_read_todos",
                    json!({"type": "todo", "id": "todo-1"}),
                    true,
                ),
                (
                    "can_create_todo",
                    json!({"type": "todo", "id": "todo-new"}),
                    create,
                ),
                ("can_update_todo", todo("todo-1", MORTY_EMAIL), mortys),
                ("can_update_todo", todo("todo-2", SUMMER_EMAIL), summers),
                ("can_delete_todo", todo("todo-1", MORTY_EMAIL), mortys),
                ("can_delete_todo", todo("todo-2", SUMMER_EMAIL), summers),
                // An unregistered todo: only the `ownerID` sent decides.
                ("can_update_todo", todo("todo-9", MORTY_EMAIL), mortys),
                ("can_delete_todo", todo("todo-9", SUMMER_EMAIL), summers),
            ];
            for (act, resource, expected) in questions {
                asked += 1;
                let a = app
                    .pep(
                        EVALUATION,
                        json!({"subject": subject(kind, id), "action": action(act), "resource": resource}),
                    )
                    .await;
                let got = decision(&a);
                if got != expected {
                    failures.push(format!(
                        "{name} ({kind}) {act} on {resource}: expected {expected}, got {}",
                        a.text
                    ));
                }
            }
        }
    }
    assert_eq!(asked, 100);
    assert!(
        failures.is_empty(),
        "{} of {asked} decisions are wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // An editor's condition reads the `ownerID` sent: without it, or with another owner, an
    // unregistered todo is not Morty's.
    for resource in [
        json!({"type": "todo", "id": "todo-9"}),
        todo("todo-9", SUMMER_EMAIL),
        todo("todo-9", "MORTY@the-citadel.com "),
    ] {
        let a = app
            .pep(
                EVALUATION,
                json!({"subject": subject("identity", MORTY), "action": action("can_update_todo"), "resource": resource}),
            )
            .await;
        assert!(!decision(&a), "{resource}: {}", a.text);
    }
    // A subject known by its email or its Arbiter id is the same user.
    for id in [MORTY_EMAIL, "morty"] {
        let a = app
            .pep(
                EVALUATION,
                json!({"subject": subject("user", id), "action": action("can_delete_todo"), "resource": todo("todo-1", MORTY_EMAIL)}),
            )
            .await;
        assert!(decision(&a), "{id}: {}", a.text);
    }
    // An unknown subject, an unknown action and an unknown resource type are denied, not errors.
    for (who, act, kind) in [
        ("CiRunknown", "can_read_todos", "todo"),
        (RICK, "can_fly_todo", "todo"),
        (RICK, "can_read_todos", "spaceship"),
    ] {
        let a = app
            .pep(
                EVALUATION,
                json!({"subject": subject("identity", who), "action": action(act), "resource": {"type": kind, "id": "x"}}),
            )
            .await;
        assert!(!decision(&a), "{who} {act} {kind}: {}", a.text);
    }
}

#[tokio::test]
async fn evaluation_refuses_what_the_1_0_text_refuses_with_400() {
    let app = todo_app().await;
    let valid = json!({
        "subject": subject("identity", RICK),
        "action": action("can_read_todos"),
        "resource": {"type": "todo", "id": "todo-1"},
    });
    let without = |path: &[&str]| {
        let mut body = valid.clone();
        let (last, parents) = path.split_last().expect("a path");
        let mut at = &mut body;
        for p in parents {
            at = &mut at[*p];
        }
        at.as_object_mut().expect("an object").remove(*last);
        body
    };
    let with = |path: &[&str], value: Value| {
        let mut body = valid.clone();
        let mut at = &mut body;
        for p in path {
            at = &mut at[*p];
        }
        *at = value;
        body
    };
    let cases = [
        (without(&["subject"]), "subject"),
        (without(&["action"]), "action"),
        (without(&["resource"]), "resource"),
        (without(&["subject", "type"]), "subject.type"),
        (without(&["subject", "id"]), "subject.id"),
        (without(&["resource", "type"]), "resource.type"),
        (without(&["resource", "id"]), "resource.id"),
        (without(&["action", "name"]), "action.name"),
        (with(&["subject", "id"], json!("")), "subject.id"),
        (with(&["subject", "type"], json!("")), "subject.type"),
        (with(&["action", "name"], json!("")), "action.name"),
        (with(&["subject"], json!("rick")), "subject"),
        (with(&["subject", "id"], json!(42)), "subject.id"),
        (
            with(&["subject", "type"], json!(["identity"])),
            "subject.type",
        ),
        (with(&["resource", "id"], json!(1)), "resource.id"),
        (with(&["resource"], json!([])), "resource"),
        (with(&["action"], json!("can_read_todos")), "action"),
        (with(&["action", "name"], json!(true)), "action.name"),
        (
            with(&["resource", "properties"], json!("mine")),
            "resource.properties",
        ),
        (with(&["context"], json!("now")), "context"),
    ];
    for (body, field) in cases {
        for path in [EVALUATION, EVALUATIONS] {
            let a = app.pep(path, body.clone()).await;
            assert_error(&a, StatusCode::BAD_REQUEST, "invalid_field");
            assert_eq!(
                a.body["error"]["details"]["field"], field,
                "{path} {body}: {}",
                a.text
            );
        }
    }
    // Bodies that are not a JSON object.
    for (content_type, body, code) in [
        ("text/plain", valid.to_string(), "unsupported_content_type"),
        (
            "application/x-www-form-urlencoded",
            "subject=rick".to_owned(),
            "unsupported_content_type",
        ),
        ("application/json", String::new(), "malformed_json"),
        ("application/json", "   ".to_owned(), "malformed_json"),
        (
            "application/json",
            "{\"subject\": ".to_owned(),
            "malformed_json",
        ),
        (
            "application/json",
            "{subject: 1}".to_owned(),
            "malformed_json",
        ),
        ("application/json", "[]".to_owned(), "invalid_body"),
        ("application/json", "\"rick\"".to_owned(), "invalid_body"),
        ("application/json", "null".to_owned(), "invalid_body"),
    ] {
        for path in [
            EVALUATION,
            EVALUATIONS,
            SEARCH_SUBJECT,
            SEARCH_RESOURCE,
            SEARCH_ACTION,
        ] {
            let a = app
                .raw(
                    Method::POST,
                    path,
                    Some(ADMIN_KEY),
                    Some(ORG),
                    content_type,
                    body.clone().into_bytes(),
                )
                .await;
            assert_error(&a, StatusCode::BAD_REQUEST, code);
        }
    }
    // The searches refuse their own missing parts.
    for (path, body, field) in [
        (
            SEARCH_SUBJECT,
            json!({"subject": {"type": "identity"}, "action": action("can_read_todos")}),
            "resource",
        ),
        (
            SEARCH_SUBJECT,
            json!({"action": action("can_read_todos"), "resource": {"type": "todo", "id": "todo-1"}}),
            "subject",
        ),
        (
            SEARCH_SUBJECT,
            json!({"subject": {"id": "x"}, "action": action("can_read_todos"), "resource": {"type": "todo", "id": "todo-1"}}),
            "subject.type",
        ),
        (
            SEARCH_RESOURCE,
            json!({"subject": {"type": "identity"}, "action": action("can_read_todos"), "resource": {"type": "todo"}}),
            "subject.id",
        ),
        (
            SEARCH_RESOURCE,
            json!({"subject": subject("identity", RICK), "action": action("can_read_todos"), "resource": {"id": "todo-1"}}),
            "resource.type",
        ),
        (
            SEARCH_RESOURCE,
            json!({"subject": subject("identity", RICK), "resource": {"type": "todo"}}),
            "action",
        ),
        (
            SEARCH_ACTION,
            json!({"subject": subject("identity", RICK)}),
            "resource",
        ),
        (
            SEARCH_ACTION,
            json!({"subject": subject("identity", RICK), "resource": {"type": "todo", "id": 7}}),
            "resource.id",
        ),
    ] {
        let a = app.pep(path, body.clone()).await;
        assert_error(&a, StatusCode::BAD_REQUEST, "invalid_field");
        assert_eq!(
            a.body["error"]["details"]["field"], field,
            "{path} {body}: {}",
            a.text
        );
    }

    // Unknown fields, at the top and inside each part, are ignored.
    let mut extra = valid.clone();
    extra["foo"] = json!({"bar": [1, 2]});
    extra["subject"]["nickname"] = json!("Pickle Rick");
    extra["resource"]["colour"] = json!("green");
    extra["action"]["urgency"] = json!(3);
    let a = app.pep(EVALUATION, extra.clone()).await;
    assert!(decision(&a), "{}", a.text);
    // A deny is still told from an allow with unknown fields present.
    extra["subject"]["id"] = json!(BETH);
    extra["action"]["name"] = json!("can_create_todo");
    let a = app.pep(EVALUATION, extra).await;
    assert!(!decision(&a), "{}", a.text);
}

#[tokio::test]
async fn the_request_id_is_echoed_or_made() {
    let app = todo_app().await;
    let body = json!({
        "subject": subject("identity", SUMMER),
        "action": action("can_read_todos"),
        "resource": {"type": "todo", "id": "todo-1"},
    });
    for (path, body) in [
        (EVALUATION, body.clone()),
        (EVALUATIONS, json!({"evaluations": [body.clone()]})),
        // An error answer echoes it too.
        (EVALUATION, json!({"subject": subject("identity", SUMMER)})),
    ] {
        let sent = "authzen-req-7f3c";
        let a = app
            .call_with_headers(
                Method::POST,
                path,
                Some(ADMIN_KEY),
                &[("X-Organization-Id", ORG), ("X-Request-ID", sent)],
                Some(&body),
            )
            .await;
        assert_eq!(
            a.headers.get("x-request-id").and_then(|v| v.to_str().ok()),
            Some(sent),
            "{path}: {:?}",
            a.headers
        );
        let a = app.pep(path, body).await;
        let made = a
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{path}: no request id made: {:?}", a.headers));
        assert!(!made.is_empty() && made != sent, "{made}");
    }
    // Two requests without one get different ids.
    let first = app.pep(EVALUATION, body.clone()).await;
    let second = app.pep(EVALUATION, body).await;
    assert_ne!(
        first.headers.get("x-request-id"),
        second.headers.get("x-request-id")
    );
}

#[tokio::test]
async fn evaluations_merge_defaults_and_answer_in_order() {
    let app = todo_app().await;
    // A role whose one permission depends on the request's context, so that the context each
    // item is evaluated with shows in its decision.
    let night = app
        .custom_role(
            ORG,
            "night_shift",
            json!([{"permission": "todo:can_delete_todo", "condition": "context.shift == 'night'"}]),
        )
        .await;
    app.bind(ORG, &night, "beth", "ORGANIZATION", None).await;

    // Top-level defaults: Morty updating; each item replaces what it names.
    let a = app
        .pep(
            EVALUATIONS,
            json!({
                "subject": subject("identity", MORTY),
                "action": action("can_update_todo"),
                "resource": todo("todo-1", MORTY_EMAIL),
                "evaluations": [
                    {},
                    {"resource": todo("todo-2", SUMMER_EMAIL)},
                    {"subject": subject("identity", SUMMER), "resource": todo("todo-2", SUMMER_EMAIL)},
                    {"action": action("can_read_todos"), "resource": todo("todo-2", SUMMER_EMAIL)},
                    {"subject": subject("identity", JERRY)},
                    {"subject": subject("identity", RICK), "action": action("can_delete_todo")},
                    {"action": action("can_delete_todo")},
                    {"subject": subject("identity", BETH), "action": action("can_create_todo")},
                ],
            }),
        )
        .await;
    assert_eq!(
        decisions(&a),
        [true, false, true, true, false, true, true, false],
        "{}",
        a.text
    );
    // An item's resource replaces the default whole: its properties are not merged in.
    let a = app
        .pep(
            EVALUATIONS,
            json!({
                "subject": subject("identity", MORTY),
                "action": action("can_update_todo"),
                "resource": todo("todo-9", MORTY_EMAIL),
                "evaluations": [{"resource": {"type": "todo", "id": "todo-9"}}, {}],
            }),
        )
        .await;
    assert_eq!(decisions(&a), [false, true], "{}", a.text);

    // The top-level context is every item's default; an item's own context replaces it.
    let a = app
        .pep(
            EVALUATIONS,
            json!({
                "subject": subject("identity", BETH),
                "action": action("can_delete_todo"),
                "resource": todo("todo-1", MORTY_EMAIL),
                "context": {"shift": "day"},
                "evaluations": [
                    {},
                    {"context": {"shift": "night"}},
                    {"context": {}},
                    {"context": {"shift": "night"}, "subject": subject("identity", JERRY)},
                    {"context": {"shift": "night"}, "resource": todo("todo-2", SUMMER_EMAIL)},
                ],
            }),
        )
        .await;
    assert_eq!(
        decisions(&a),
        [false, true, false, false, true],
        "{}",
        a.text
    );
    let a = app
        .pep(
            EVALUATIONS,
            json!({
                "subject": subject("identity", BETH),
                "action": action("can_delete_todo"),
                "resource": todo("todo-1", MORTY_EMAIL),
                "context": {"shift": "night"},
                "evaluations": [{}, {"context": {"shift": "day"}}],
            }),
        )
        .await;
    assert_eq!(decisions(&a), [true, false], "{}", a.text);
    // And the single evaluation reads its context too.
    for (shift, expected) in [("night", true), ("day", false)] {
        let a = app
            .pep(
                EVALUATION,
                json!({
                    "subject": subject("identity", BETH),
                    "action": action("can_delete_todo"),
                    "resource": todo("todo-1", MORTY_EMAIL),
                    "context": {"shift": shift},
                }),
            )
            .await;
        assert_eq!(decision(&a), expected, "{shift}: {}", a.text);
    }

    // Items without defaults, each whole; the answers keep the order asked.
    let pattern = [true, false, false, true, true, false, true];
    let askers = [RICK, BETH, JERRY, SUMMER, MORTY, BETH, RICK];
    let items: Vec<Value> = askers
        .iter()
        .map(|who| {
            json!({"subject": subject("identity", who), "action": action("can_create_todo"),
                   "resource": {"type": "todo", "id": "todo-new"}})
        })
        .collect();
    let a = app.pep(EVALUATIONS, json!({"evaluations": items})).await;
    assert_eq!(decisions(&a), pattern, "{}", a.text);
    let a = app
        .pep(
            EVALUATIONS,
            json!({"evaluations": items, "options": {"evaluations_semantic": "execute_all"}}),
        )
        .await;
    assert_eq!(decisions(&a), pattern, "{}", a.text);
}

#[tokio::test]
async fn evaluations_semantics_are_honoured() {
    let app = todo_app().await;
    let create = |who: &str| {
        json!({"subject": subject("identity", who), "action": action("can_create_todo"),
               "resource": {"type": "todo", "id": "todo-new"}})
    };
    let ask = |semantic: &str, items: Vec<Value>| json!({"options": {"evaluations_semantic": semantic}, "evaluations": items});

    // execute_all: an invalid item answers a deny with an error, and the rest are evaluated.
    let a = app
        .pep(
            EVALUATIONS,
            ask(
                "execute_all",
                vec![
                    create(RICK),
                    json!({"subject": {"type": "identity"}, "action": action("can_create_todo"),
                           "resource": {"type": "todo", "id": "todo-new"}}),
                    create(BETH),
                    json!("not an object"),
                    json!({"subject": subject("identity", MORTY), "action": action("can_create_todo")}),
                    create(SUMMER),
                ],
            ),
        )
        .await;
    assert_eq!(
        decisions(&a),
        [true, false, false, false, false, true],
        "{}",
        a.text
    );
    let results = a.body["evaluations"].as_array().expect("evaluations");
    for n in [1, 3, 4] {
        let error = &results[n]["context"]["error"];
        assert!(error.is_object(), "item {n} has no error: {}", a.text);
        assert_eq!(error["status"], 400, "item {n}: {}", a.text);
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "item {n}: {}",
            a.text
        );
    }
    assert!(
        results[1]["context"]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("subject.id")),
        "{}",
        a.text
    );
    assert!(
        results[4]["context"]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("resource")),
        "{}",
        a.text
    );
    for n in [0, 2, 5] {
        assert!(
            results[n]["context"].get("error").is_none(),
            "item {n}: {}",
            a.text
        );
    }
    // A plain deny is not an error.
    assert!(results[2]["context"]["error"].is_null(), "{}", a.text);

    // deny_on_first_deny: stops after the first deny.
    let a = app
        .pep(
            EVALUATIONS,
            ask(
                "deny_on_first_deny",
                vec![
                    create(RICK),
                    create(MORTY),
                    create(JERRY),
                    create(SUMMER),
                    create(BETH),
                ],
            ),
        )
        .await;
    assert_eq!(decisions(&a), [true, true, false], "{}", a.text);
    // An invalid item is a deny.
    let a = app
        .pep(
            EVALUATIONS,
            ask(
                "deny_on_first_deny",
                vec![
                    create(RICK),
                    json!({"subject": subject("identity", RICK)}),
                    create(SUMMER),
                ],
            ),
        )
        .await;
    assert_eq!(decisions(&a), [true, false], "{}", a.text);
    // Without a deny every item is answered.
    let a = app
        .pep(
            EVALUATIONS,
            ask(
                "deny_on_first_deny",
                vec![create(RICK), create(MORTY), create(SUMMER)],
            ),
        )
        .await;
    assert_eq!(decisions(&a), [true, true, true], "{}", a.text);

    // permit_on_first_permit: stops after the first permit.
    let a = app
        .pep(
            EVALUATIONS,
            ask(
                "permit_on_first_permit",
                vec![
                    create(BETH),
                    create(JERRY),
                    create(SUMMER),
                    create(RICK),
                    create(BETH),
                ],
            ),
        )
        .await;
    assert_eq!(decisions(&a), [false, false, true], "{}", a.text);
    let a = app
        .pep(
            EVALUATIONS,
            ask("permit_on_first_permit", vec![create(MORTY), create(BETH)]),
        )
        .await;
    assert_eq!(decisions(&a), [true], "{}", a.text);
    let a = app
        .pep(
            EVALUATIONS,
            ask("permit_on_first_permit", vec![create(BETH), create(JERRY)]),
        )
        .await;
    assert_eq!(decisions(&a), [false, false], "{}", a.text);

    // An unknown semantic, or options of the wrong shape, are refused.
    for (body, field) in [
        (
            ask("first_wins", vec![create(RICK)]),
            "options.evaluations_semantic",
        ),
        (
            json!({"options": {"evaluations_semantic": 1}, "evaluations": [create(RICK)]}),
            "options.evaluations_semantic",
        ),
        (
            json!({"options": "execute_all", "evaluations": [create(RICK)]}),
            "options",
        ),
        (json!({"evaluations": create(RICK)}), "evaluations"),
    ] {
        let a = app.pep(EVALUATIONS, body.clone()).await;
        assert_error(&a, StatusCode::BAD_REQUEST, "invalid_field");
        assert_eq!(
            a.body["error"]["details"]["field"], field,
            "{body}: {}",
            a.text
        );
    }

    // No `evaluations`, or an empty one: one evaluation of the top-level fields.
    for (who, expected) in [(RICK, true), (JERRY, false)] {
        let single = create(who);
        let mut empty = single.clone();
        empty["evaluations"] = json!([]);
        let mut null = single.clone();
        null["evaluations"] = Value::Null;
        for body in [single, empty, null] {
            let a = app.pep(EVALUATIONS, body.clone()).await;
            assert_eq!(decision(&a), expected, "{body}: {}", a.text);
            assert!(a.body.get("evaluations").is_none(), "{}", a.text);
        }
    }
    // ... which then needs its fields like a single evaluation does.
    let a = app
        .pep(
            EVALUATIONS,
            json!({"subject": subject("identity", RICK), "evaluations": []}),
        )
        .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(a.body["error"]["details"]["field"], "action", "{}", a.text);
}

#[tokio::test]
async fn searches_find_subjects_resources_and_actions() {
    let app = todo_app().await;

    // Who may update Morty's todo: Rick (admin, evil_genius) and Morty (its owner), named by the
    // external ids the enforcement point knows them by. `subject.id` is ignored.
    for subject_id in [None, Some(BETH), Some("nobody")] {
        let mut who = json!({"type": "identity"});
        if let Some(id) = subject_id {
            who["id"] = json!(id);
        }
        let a = app
            .pep(
                SEARCH_SUBJECT,
                json!({"subject": who, "action": action("can_update_todo"), "resource": todo("todo-1", MORTY_EMAIL)}),
            )
            .await;
        let results = found(&a);
        assert_eq!(
            results
                .iter()
                .map(|(_, id)| id.clone())
                .collect::<BTreeSet<_>>(),
            set(&[RICK, MORTY]),
            "{subject_id:?}: {}",
            a.text
        );
        assert_eq!(results.len(), 2, "no duplicates: {}", a.text);
        assert!(
            results.iter().all(|(kind, _)| kind == "identity"),
            "{}",
            a.text
        );
    }
    for (act, resource, expected) in [
        (
            "can_delete_todo",
            todo("todo-1", MORTY_EMAIL),
            set(&[RICK, MORTY]),
        ),
        (
            "can_update_todo",
            todo("todo-2", SUMMER_EMAIL),
            set(&[RICK, SUMMER]),
        ),
        (
            "can_delete_todo",
            todo("todo-2", SUMMER_EMAIL),
            set(&[RICK, SUMMER]),
        ),
        // Registered todos bring their own ownerID.
        (
            "can_update_todo",
            json!({"type": "todo", "id": "todo-2"}),
            set(&[RICK, SUMMER]),
        ),
        // An unregistered one has only what is sent.
        (
            "can_update_todo",
            todo("todo-9", SUMMER_EMAIL),
            set(&[RICK, SUMMER]),
        ),
        (
            "can_update_todo",
            json!({"type": "todo", "id": "todo-9"}),
            set(&[RICK]),
        ),
        (
            "can_create_todo",
            json!({"type": "todo", "id": "todo-new"}),
            set(&[RICK, MORTY, SUMMER]),
        ),
        (
            "can_read_todos",
            json!({"type": "todo", "id": "todo-1"}),
            set(&[RICK, MORTY, SUMMER, BETH, JERRY]),
        ),
        (
            "can_read_user",
            json!({"type": "user", "id": "rick@the-citadel.com"}),
            set(&[RICK, MORTY, SUMMER, BETH, JERRY]),
        ),
        (
            "can_fly_todo",
            json!({"type": "todo", "id": "todo-1"}),
            set(&[]),
        ),
    ] {
        let a = app
            .pep(
                SEARCH_SUBJECT,
                json!({"subject": {"type": "user"}, "action": action(act), "resource": resource}),
            )
            .await;
        assert_eq!(ids(&a), expected, "{act} on {resource}: {}", a.text);
        assert!(
            found(&a).iter().all(|(kind, _)| kind == "user"),
            "{}",
            a.text
        );
    }

    // Which todos each may delete: Summer only todo-2, registered with her as ownerID.
    // `resource.id` is ignored.
    for (who, act, expected) in [
        (SUMMER, "can_delete_todo", set(&["todo-2"])),
        (MORTY, "can_delete_todo", set(&["todo-1"])),
        (RICK, "can_delete_todo", set(&["todo-1", "todo-2"])),
        (BETH, "can_delete_todo", set(&[])),
        (SUMMER, "can_update_todo", set(&["todo-2"])),
        (JERRY, "can_read_todos", set(&["todo-1", "todo-2"])),
    ] {
        for resource in [
            json!({"type": "todo"}),
            json!({"type": "todo", "id": "todo-1"}),
        ] {
            let a = app
                .pep(
                    SEARCH_RESOURCE,
                    json!({"subject": subject("identity", who), "action": action(act), "resource": resource}),
                )
                .await;
            assert_eq!(ids(&a), expected, "{who} {act} ({resource}): {}", a.text);
            assert!(
                found(&a).iter().all(|(kind, _)| kind == "todo"),
                "{}",
                a.text
            );
        }
    }

    // What each may do to todo-1 (Morty's) and todo-2 (Summer's).
    for (who, resource, expected) in [
        (BETH, "todo-1", set(&["can_read_todos"])),
        (JERRY, "todo-2", set(&["can_read_todos"])),
        (RICK, "todo-1", set(&TODO_ACTIONS)),
        (RICK, "todo-2", set(&TODO_ACTIONS)),
        (MORTY, "todo-1", set(&TODO_ACTIONS)),
        (MORTY, "todo-2", set(&["can_read_todos", "can_create_todo"])),
        (SUMMER, "todo-2", set(&TODO_ACTIONS)),
    ] {
        let a = app
            .pep(
                SEARCH_ACTION,
                json!({"subject": subject("identity", who), "resource": {"type": "todo", "id": resource}}),
            )
            .await;
        assert_eq!(names(&a), expected, "{who} on {resource}: {}", a.text);
        // The search and the evaluation agree on every action.
        for act in TODO_ACTIONS {
            let e = app
                .pep(
                    EVALUATION,
                    json!({"subject": subject("identity", who), "action": action(act),
                           "resource": {"type": "todo", "id": resource}}),
                )
                .await;
            assert_eq!(
                decision(&e),
                expected.contains(act),
                "{who} {act} on {resource}: {}",
                e.text
            );
        }
    }
    // The ownerID sent counts in an action search too.
    let a = app
        .pep(
            SEARCH_ACTION,
            json!({"subject": subject("identity", SUMMER), "resource": todo("todo-9", SUMMER_EMAIL)}),
        )
        .await;
    assert_eq!(names(&a), set(&TODO_ACTIONS), "{}", a.text);
}

/// Walks every page of a search with `page.limit` = `limit`; answers the results and the number
/// of pages. Every page but the last is full and hands a token; the last hands `""`.
async fn walk(app: &TestApp, path: &str, body: &Value, limit: u64) -> (Vec<Value>, usize) {
    let mut results = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= 50, "{path}: the pages never end");
        let mut body = body.clone();
        body["page"] = json!({"limit": limit});
        if let Some(token) = &token {
            body["page"]["token"] = json!(token);
        }
        let a = app.pep(path, body).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let page = a.body["results"]
            .as_array()
            .unwrap_or_else(|| panic!("no results: {}", a.text));
        let next = a.body["page"]["next_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no page.next_token: {}", a.text))
            .to_owned();
        assert!(page.len() as u64 <= limit, "{}", a.text);
        results.extend(page.iter().cloned());
        if next.is_empty() {
            return (results, pages);
        }
        assert_eq!(
            page.len() as u64,
            limit,
            "a short page before the end: {}",
            a.text
        );
        assert_ne!(
            Some(&next),
            token.as_ref(),
            "the token did not move: {}",
            a.text
        );
        token = Some(next);
    }
}

#[tokio::test]
async fn search_results_are_paged() {
    let app = todo_app().await;
    let searches = [
        (
            SEARCH_SUBJECT,
            json!({"subject": {"type": "identity"}, "action": action("can_read_todos"),
                   "resource": {"type": "todo", "id": "todo-1"}}),
            5,
        ),
        (
            SEARCH_RESOURCE,
            json!({"subject": subject("identity", RICK), "action": action("can_delete_todo"),
                   "resource": {"type": "todo"}}),
            2,
        ),
        (
            SEARCH_ACTION,
            json!({"subject": subject("identity", RICK), "resource": {"type": "todo", "id": "todo-1"}}),
            4,
        ),
    ];
    for (path, body, total) in searches {
        // One big page holds everything and hands no token.
        let mut big = body.clone();
        big["page"] = json!({"limit": 1000});
        let all = app.pep(path, big).await;
        assert_eq!(all.status, StatusCode::OK, "{}", all.text);
        let everything = all.body["results"].as_array().expect("results").clone();
        assert_eq!(everything.len(), total, "{path}: {}", all.text);
        assert_eq!(all.body["page"]["next_token"], "", "{path}: {}", all.text);
        // So does the default page.
        let default = app.pep(path, body.clone()).await;
        assert_eq!(
            default.body["results"],
            json!(everything),
            "{}",
            default.text
        );
        assert_eq!(default.body["page"]["next_token"], "", "{}", default.text);

        for limit in [1, 2, 3] {
            let (walked, pages) = walk(&app, path, &body, limit).await;
            assert_eq!(
                pages,
                total.div_ceil(limit as usize).max(1),
                "{path} limit {limit}"
            );
            // The same results, each once, in the same order as one big page.
            assert_eq!(walked, everything, "{path} limit {limit}");
        }
        let (walked, pages) = walk(&app, path, &body, total as u64).await;
        assert_eq!((walked.len(), pages), (total, 1), "{path}");

        // The first page of size 1 hands a token that a later call may reuse.
        let mut first = body.clone();
        first["page"] = json!({"limit": 1});
        let a = app.pep(path, first.clone()).await;
        let token = a.body["page"]["next_token"]
            .as_str()
            .expect("next_token")
            .to_owned();
        assert!(!token.is_empty(), "{}", a.text);
        first["page"]["token"] = json!(token);
        let again = app.pep(path, first.clone()).await;
        let once_more = app.pep(path, first).await;
        assert_eq!(again.body, once_more.body);
        assert_eq!(again.body["results"][0], everything[1], "{}", again.text);
        // An empty token is the first page.
        let mut fresh = body.clone();
        fresh["page"] = json!({"limit": 1, "token": ""});
        let a = app.pep(path, fresh).await;
        assert_eq!(a.body["results"], json!([everything[0]]), "{}", a.text);

        // Pages the server cannot give are refused.
        for (page, field) in [
            (json!({"limit": 0}), "page.limit"),
            (json!({"limit": 1001}), "page.limit"),
            (json!({"limit": -1}), "page.limit"),
            (json!({"limit": "5"}), "page.limit"),
            (json!({"token": "not-a-token"}), "page.token"),
            (json!({"token": 5}), "page.token"),
            (json!("first"), "page"),
        ] {
            let mut bad = body.clone();
            bad["page"] = page.clone();
            let a = app.pep(path, bad).await;
            assert_error(&a, StatusCode::BAD_REQUEST, "invalid_field");
            assert_eq!(
                a.body["error"]["details"]["field"], field,
                "{path} {page}: {}",
                a.text
            );
        }
    }
}

#[tokio::test]
async fn discovery_names_endpoints_that_work() {
    let app = todo_app().await;
    let a = app
        .call(
            Method::GET,
            "/.well-known/authzen-configuration",
            None,
            None,
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert!(
        a.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        a.headers
    );
    let pdp = a.body["policy_decision_point"]
        .as_str()
        .unwrap_or_else(|| panic!("no policy_decision_point: {}", a.text));
    assert_eq!(pdp.trim_end_matches('/'), app.base, "{}", a.text);

    let evaluation = json!({"subject": subject("identity", MORTY), "action": action("can_delete_todo"),
                            "resource": todo("todo-1", MORTY_EMAIL)});
    let endpoints = [
        ("access_evaluation_endpoint", EVALUATION, evaluation.clone()),
        (
            "access_evaluations_endpoint",
            EVALUATIONS,
            json!({"evaluations": [evaluation.clone(), {"subject": subject("identity", BETH),
                   "action": action("can_delete_todo"), "resource": todo("todo-1", MORTY_EMAIL)}]}),
        ),
        (
            "search_subject_endpoint",
            SEARCH_SUBJECT,
            json!({"subject": {"type": "identity"}, "action": action("can_delete_todo"),
                   "resource": todo("todo-1", MORTY_EMAIL)}),
        ),
        (
            "search_resource_endpoint",
            SEARCH_RESOURCE,
            json!({"subject": subject("identity", SUMMER), "action": action("can_delete_todo"),
                   "resource": {"type": "todo"}}),
        ),
        (
            "search_action_endpoint",
            SEARCH_ACTION,
            json!({"subject": subject("identity", BETH), "resource": {"type": "todo", "id": "todo-1"}}),
        ),
    ];
    for (field, expected_path, body) in endpoints {
        let url = a.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no {field}: {}", a.text));
        let parsed = reqwest::Url::parse(url).unwrap_or_else(|e| panic!("{field} `{url}`: {e}"));
        assert!(
            url.starts_with(pdp.trim_end_matches('/')),
            "{field} `{url}` is not under `{pdp}`"
        );
        let path = parsed.path();
        assert_eq!(path, expected_path, "{field}");
        // Called as derived, the endpoint answers.
        let answer = app.pep(path, body.clone()).await;
        assert_eq!(answer.status, StatusCode::OK, "{field}: {}", answer.text);
        match field {
            "access_evaluation_endpoint" => assert!(decision(&answer), "{}", answer.text),
            "access_evaluations_endpoint" => {
                assert_eq!(decisions(&answer), [true, false], "{}", answer.text)
            }
            "search_subject_endpoint" => {
                assert_eq!(ids(&answer), set(&[RICK, MORTY]), "{}", answer.text)
            }
            "search_resource_endpoint" => {
                assert_eq!(ids(&answer), set(&["todo-2"]), "{}", answer.text)
            }
            _ => assert_eq!(names(&answer), set(&["can_read_todos"]), "{}", answer.text),
        }
        // And the URL itself, as given, reaches this server.
        let direct = app
            .client
            .post(url)
            .bearer_auth(ADMIN_KEY)
            .header("X-Organization-Id", ORG)
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(direct.status(), StatusCode::OK, "{field}: {url}");
        let direct: Value = direct.json().await.expect("JSON");
        assert_eq!(direct, answer.body, "{field}");
    }

    // The endpoints themselves need a key.
    let anonymous = app
        .call(Method::POST, EVALUATION, None, Some(ORG), Some(&evaluation))
        .await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "unauthenticated");
    let wrong = app
        .call(
            Method::POST,
            SEARCH_ACTION,
            Some("not-a-key-at-all-0123456789-abcdefghijkl"),
            Some(ORG),
            Some(&evaluation),
        )
        .await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn a_member_without_check_execute_may_ask_only_about_itself() {
    let app = todo_app().await;
    let (me, key) = app.member_with_key(ORG, "birdperson@the-citadel.com").await;
    // A viewer: may read todos, nothing else, and not `check:execute`.
    app.bind(ORG, "viewer", &me, "ORGANIZATION", None).await;
    let post = |path: &'static str, body: Value| {
        let key = key.clone();
        let app = &app;
        async move { app.post(path, &key, Some(ORG), body).await }
    };
    let read = |who: &str| {
        json!({"subject": subject("user", who), "action": action("can_read_todos"),
               "resource": {"type": "todo", "id": "todo-1"}})
    };
    let create = |who: &str| {
        json!({"subject": subject("user", who), "action": action("can_create_todo"),
               "resource": {"type": "todo", "id": "todo-new"}})
    };

    // Itself, by id or email: answered.
    for who in [me.as_str(), "birdperson@the-citadel.com"] {
        let a = post(EVALUATION, read(who)).await;
        assert!(decision(&a), "{who}: {}", a.text);
        let a = post(EVALUATION, create(who)).await;
        assert!(!decision(&a), "{who}: {}", a.text);
    }
    let a = post(
        EVALUATIONS,
        json!({"subject": subject("user", &me), "evaluations": [
            {"action": action("can_read_todos"), "resource": {"type": "todo", "id": "todo-1"}},
            {"action": action("can_delete_todo"), "resource": todo("todo-1", MORTY_EMAIL)},
        ]}),
    )
    .await;
    assert_eq!(decisions(&a), [true, false], "{}", a.text);
    let a = post(
        SEARCH_RESOURCE,
        json!({"subject": subject("user", &me), "action": action("can_read_todos"), "resource": {"type": "todo"}}),
    )
    .await;
    assert_eq!(ids(&a), set(&["todo-1", "todo-2"]), "{}", a.text);
    let a = post(
        SEARCH_ACTION,
        json!({"subject": subject("user", &me), "resource": {"type": "todo", "id": "todo-1"}}),
    )
    .await;
    assert_eq!(names(&a), set(&["can_read_todos"]), "{}", a.text);

    // Anyone else: 403, whether allowed or not, and however named.
    for who in [RICK, BETH, "rick", "beth@the-smiths.com", "nobody-at-all"] {
        for (path, body) in [
            (EVALUATION, read(who)),
            (EVALUATION, create(who)),
            (EVALUATIONS, read(who)),
            (EVALUATIONS, json!({"evaluations": [read(who)]})),
            // One item about another subject refuses the whole batch.
            (
                EVALUATIONS,
                json!({"evaluations": [read(&me), create(who), read(&me)]}),
            ),
            (
                SEARCH_RESOURCE,
                json!({"subject": subject("identity", who), "action": action("can_read_todos"),
                       "resource": {"type": "todo"}}),
            ),
            (
                SEARCH_ACTION,
                json!({"subject": subject("identity", who), "resource": {"type": "todo", "id": "todo-1"}}),
            ),
        ] {
            let a = post(path, body).await;
            assert_error(&a, StatusCode::FORBIDDEN, "forbidden");
            assert_eq!(
                a.body["error"]["details"]["permission"], "check:execute",
                "{path} {who}: {}",
                a.text
            );
        }
    }
    // A subject search is always about others.
    let a = post(
        SEARCH_SUBJECT,
        json!({"subject": {"type": "user", "id": me}, "action": action("can_read_todos"),
               "resource": {"type": "todo", "id": "todo-1"}}),
    )
    .await;
    assert_error(&a, StatusCode::FORBIDDEN, "forbidden");

    // Given check:execute (org_admin holds it), the same key may ask about anyone.
    app.bind(ORG, &predefined("org_admin"), &me, "ORGANIZATION", None)
        .await;
    let a = post(EVALUATION, create(RICK)).await;
    assert!(decision(&a), "{}", a.text);
    let a = post(EVALUATION, create(BETH)).await;
    assert!(!decision(&a), "{}", a.text);
}

#[tokio::test]
async fn a_project_key_asks_about_anyone_as_it_may_on_v1_check() {
    let app = todo_app().await;
    let space = app.create_space(ORG, "Apps").await;
    let project = app.create_project(ORG, &space, "Todo PEP").await;
    let created = app
        .post(
            "/v1/api-keys",
            ADMIN_KEY,
            Some(ORG),
            json!({"name": "pep", "kind": "project", "project_id": project}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let pep = created.body["key"].as_str().expect("key").to_owned();

    // `project_key` holds check:execute: /v1/check answers it about another subject ...
    for (who, expected) in [(RICK, true), (BETH, false)] {
        let a = app
            .post(
                "/v1/check",
                &pep,
                None,
                json!({"subject": {"type": "user", "id": who}, "permission": "todo:can_delete_todo",
                       "resource": {"type": "todo", "id": "todo-1"}}),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["allowed"], expected, "{}", a.text);
        // ... and so does the AuthZEN evaluation, in the key's organization.
        let a = app
            .post(
                EVALUATION,
                &pep,
                None,
                json!({"subject": subject("identity", who), "action": action("can_delete_todo"),
                       "resource": {"type": "todo", "id": "todo-1"}}),
            )
            .await;
        assert_eq!(decision(&a), expected, "{}", a.text);
    }
    let a = app
        .post(
            EVALUATIONS,
            &pep,
            None,
            json!({"resource": {"type": "todo", "id": "todo-2"}, "action": action("can_update_todo"),
                   "evaluations": [{"subject": subject("identity", SUMMER)}, {"subject": subject("identity", MORTY)}]}),
        )
        .await;
    assert_eq!(decisions(&a), [true, false], "{}", a.text);
    let a = app
        .post(
            SEARCH_SUBJECT,
            &pep,
            None,
            json!({"subject": {"type": "identity"}, "action": action("can_update_todo"),
                   "resource": {"type": "todo", "id": "todo-2"}}),
        )
        .await;
    assert_eq!(ids(&a), set(&[RICK, SUMMER]), "{}", a.text);
    let a = app
        .post(
            SEARCH_RESOURCE,
            &pep,
            None,
            json!({"subject": subject("identity", MORTY), "action": action("can_delete_todo"),
                   "resource": {"type": "todo"}}),
        )
        .await;
    assert_eq!(ids(&a), set(&["todo-1"]), "{}", a.text);
    let a = app
        .post(
            SEARCH_ACTION,
            &pep,
            None,
            json!({"subject": subject("identity", JERRY), "resource": {"type": "todo", "id": "todo-2"}}),
        )
        .await;
    assert_eq!(names(&a), set(&["can_read_todos"]), "{}", a.text);
}
