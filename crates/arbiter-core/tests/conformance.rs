//! Plays every case of `tests/conformance/` against the engine over the compiled index.

// Tests and benchmarks fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use arbiter_core::bundle::Nothing;
use arbiter_core::catalog::Catalog;
use arbiter_core::conformance::Case;
use arbiter_core::engine::{check, CheckRequest, SubjectQuery};
use arbiter_core::index::Index;
use arbiter_core::model::{ObjectKey, ObjectKind, Op};
use arbiter_core::permission::Permission;
use arbiter_core::search::{search_resources, search_subjects, SearchContext};
use chrono::Utc;

fn cases() -> Vec<(String, Case)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/conformance");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("conformance dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("read case");
            let case = Case::from_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((path.display().to_string(), case));
        }
    }
    assert!(out.len() >= 3, "expected conformance cases in {dir}");
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_case_holds_against_the_engine() {
    let catalog = Arc::new(Catalog::builtin().unwrap());
    let mut failures = Vec::new();
    let mut checked = 0;
    for (file, case) in cases() {
        let mut index = Index::new(catalog.clone());
        let objects = case
            .bundle
            .to_objects(&catalog, &Nothing, Utc::now())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let ops: Vec<Op> = objects
            .into_iter()
            .map(|object| Op::Put { object })
            .collect();
        index.apply(1, &ops);
        for (n, stage) in case.stages.iter().enumerate() {
            let mut ops = Vec::new();
            if let Some(bundle) = &stage.apply {
                let objects = bundle
                    .to_objects(&catalog, &index, Utc::now())
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
                ops.extend(objects.into_iter().map(|object| Op::Put { object }));
            }
            for id in &stage.delete_bindings {
                ops.push(Op::Delete {
                    key: ObjectKey {
                        kind: ObjectKind::RoleBinding,
                        id: id.clone(),
                    },
                });
            }
            let revision = index.revision + 1;
            index.apply(revision, &ops);
            for expected in &stage.checks {
                checked += 1;
                let subject = expected.subject_query().unwrap();
                let resource = expected.resource_query().unwrap();
                let permission = Permission::parse(&expected.permission).unwrap();
                index
                    .validate_permission(Some(&expected.organization), &permission)
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
                let decision = check(
                    &index,
                    &CheckRequest {
                        organization_id: Some(&expected.organization),
                        subject: &subject,
                        subject_properties: Some(&expected.subject_properties),
                        permission: &permission,
                        resource: &resource,
                        action_properties: None,
                        context: expected.context.as_ref(),
                        now: Utc::now(),
                        explain: true,
                    },
                );
                let fast = check(
                    &index,
                    &CheckRequest {
                        organization_id: Some(&expected.organization),
                        subject: &subject,
                        subject_properties: Some(&expected.subject_properties),
                        permission: &permission,
                        resource: &resource,
                        action_properties: None,
                        context: expected.context.as_ref(),
                        now: Utc::now(),
                        explain: false,
                    },
                );
                if fast.allowed != decision.allowed {
                    failures.push(format!(
                        "{file} [{}] stage {n}: {}: the check path says {} and the reference {}",
                        case.name,
                        expected.describe(),
                        fast.allowed,
                        decision.allowed
                    ));
                }
                let reason = serde_json::to_string(&decision.reason).unwrap();
                // Searches must agree with the check: the subject is found by subject search
                // exactly when it is allowed, and a registered resource by resource search.
                if expected.subject_properties.is_empty() {
                    if let Some(user) = match &subject {
                        SubjectQuery::User(r) => index.find_user(r).cloned(),
                        SubjectQuery::ApiKey(_) => None,
                    } {
                        let sc = SearchContext {
                            organization_id: &expected.organization,
                            context: expected.context.as_ref(),
                            now: Utc::now(),
                        };
                        let found = search_subjects(&index, &sc, &permission, &resource)
                            .iter()
                            .any(|u| u.id == user.id);
                        if found != decision.allowed {
                            failures.push(format!(
                                "{file} [{}] stage {n}: {}: subject search says {found}",
                                case.name,
                                expected.describe()
                            ));
                        }
                        let registered = index
                            .resource(
                                &expected.organization,
                                &resource.resource_type,
                                &resource.id,
                            )
                            .is_some();
                        if registered
                            && resource.properties.is_empty()
                            && permission.resource_type() == resource.resource_type
                        {
                            let found = search_resources(&index, &sc, &subject, None, &permission)
                                .contains(&resource.id);
                            if found != decision.allowed {
                                failures.push(format!(
                                    "{file} [{}] stage {n}: {}: resource search says {found}",
                                    case.name,
                                    expected.describe()
                                ));
                            }
                        }
                    }
                }
                if decision.allowed != expected.allowed {
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
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
