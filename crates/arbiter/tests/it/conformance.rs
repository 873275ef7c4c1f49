//! Plays every case of `tests/conformance/` through the real binary: the bundle is loaded with
//! `arbiter import`, each stage's writes by import (then a restart, so the index is rebuilt from
//! the store) or the HTTP API, and every check is asked of `POST /v1/check`.

use std::process::Command;

use arbiter_core::conformance::Case;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

fn cases() -> Vec<(String, Case)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/conformance");
    let mut out: Vec<(String, Case)> = std::fs::read_dir(dir)
        .expect("conformance dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read");
            (
                p.display().to_string(),
                Case::from_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Runs `arbiter import` of a bundle into a store.
pub fn import(database_url: &str, dir: &std::path::Path, bundle: &arbiter_core::bundle::Bundle) {
    let file = dir.join("bundle.yaml");
    std::fs::write(&file, serde_yaml::to_string(bundle).expect("yaml")).expect("write bundle");
    let out = Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args([
            "import",
            file.to_str().expect("path"),
            "--database-url",
            database_url,
        ])
        .output()
        .expect("run import");
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Plays every case against a server on a fresh store per case, made by `new_store`.
pub async fn play_all<S, F>(new_store: impl Fn() -> F)
where
    F: std::future::Future<Output = (String, tempfile::TempDir, S)>,
{
    let mut failures = Vec::new();
    let mut checked = 0;
    for (file, case) in cases() {
        let (url, dir, _store) = new_store().await;
        // Start once so that the store is created and bootstrapped, then import and restart.
        let mut app = spawn_app_on(url.clone(), dir, &[]).await;
        import(&url, &app.path(), &case.bundle);
        app.kill_and_restart();
        for (n, stage) in case.stages.iter().enumerate() {
            if let Some(bundle) = &stage.apply {
                import(&url, &app.path(), bundle);
                app.kill_and_restart();
            }
            for id in &stage.delete_bindings {
                let a = app
                    .delete(&format!("/v1/role-bindings/{id}"), ADMIN_KEY, None)
                    .await;
                // Platform-level lookups need an organization context: try the check organizations.
                if a.status != StatusCode::NO_CONTENT {
                    let org = &stage.checks.first().expect("a check").organization;
                    let a = app
                        .delete(&format!("/v1/role-bindings/{id}"), ADMIN_KEY, Some(org))
                        .await;
                    assert_eq!(
                        a.status,
                        StatusCode::NO_CONTENT,
                        "{file}: delete {id}: {}",
                        a.text
                    );
                }
            }
            for expected in &stage.checks {
                checked += 1;
                let (subject_type, subject_id) = expected.subject.split_once(':').expect("subject");
                let resource = expected.resource_query().expect("resource");
                let mut body = json!({
                    "subject": {"type": subject_type, "id": subject_id, "properties": expected.subject_properties},
                    "permission": expected.permission,
                    "resource": {"type": resource.resource_type, "id": resource.id, "properties": resource.properties},
                    "explain": true,
                });
                if let Some(context) = &expected.context {
                    body["context"] = context.clone();
                }
                let a = app
                    .post("/v1/check", ADMIN_KEY, Some(&expected.organization), body)
                    .await;
                if a.status != StatusCode::OK {
                    failures.push(format!(
                        "{file} [{}] stage {n}: {}: HTTP {}: {}",
                        case.name,
                        expected.describe(),
                        a.status,
                        a.text
                    ));
                    continue;
                }
                let reason = a.body["reason"].to_string();
                if a.body["allowed"] != json!(expected.allowed) {
                    failures.push(format!(
                        "{file} [{}] stage {n}: {}; reason: {reason}",
                        case.name,
                        expected.describe()
                    ));
                } else if let Some(text) = &expected.reason_contains {
                    if !reason.contains(text.as_str()) {
                        failures.push(format!(
                            "{file} [{}] stage {n}: {}: reason lacks `{text}`: {reason}",
                            case.name,
                            expected.describe()
                        ));
                    }
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} checks were played");
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn every_case_holds_over_http_on_sqlite() {
    play_all(|| async {
        let dir = tempfile::tempdir().expect("dir");
        (
            format!("sqlite://{}", dir.path().join("arbiter.db").display()),
            dir,
            (),
        )
    })
    .await;
}

#[tokio::test]
async fn every_case_holds_over_http_on_postgres() {
    if postgres_database().await.is_none() {
        return;
    }
    play_all(|| async {
        let db = postgres_database().await.expect("postgres");
        (db.url.clone(), tempfile::tempdir().expect("dir"), db)
    })
    .await;
}
