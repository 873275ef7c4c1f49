//! Searches that turn a check around: who may do this, what may this subject do it on, which
//! actions may it take. Each gathers candidates from the index, never from a scan of every
//! subject or resource of the platform, and confirms every candidate with a full check, so that a
//! search and a check never disagree.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::engine::{
    check, resolve_subject, resolve_target, CheckRequest, ResourceQuery, SubjectQuery,
};
use crate::index::{Index, MemberSet};
use crate::model::{Properties, SubjectRef, User};
use crate::permission::Permission;

/// What every search shares.
pub struct SearchContext<'a> {
    pub organization_id: &'a str,
    pub context: Option<&'a Value>,
    pub now: DateTime<Utc>,
}

fn allowed(
    index: &Index,
    sc: &SearchContext<'_>,
    subject: &SubjectQuery,
    subject_properties: Option<&Properties>,
    permission: &Permission,
    resource: &ResourceQuery,
) -> bool {
    check(
        index,
        &CheckRequest {
            organization_id: Some(sc.organization_id),
            subject,
            subject_properties,
            permission,
            resource,
            action_properties: None,
            context: sc.context,
            now: sc.now,
            explain: false,
        },
    )
    .allowed
}

/// The users who may exercise `permission` on `resource`, sorted by id.
///
/// Candidates: the subjects of the bindings on the resource and its ancestors whose role has an
/// entry covering the permission (users; the members of groups; the users of user keys), every
/// member of the organization when the implicit `base` role covers it, and the subjects of the
/// organization's grants whose pattern matches the resource. Cost: O(bindings on the resource's
/// ancestors + grants of the organization + candidates × one check).
pub fn search_subjects(
    index: &Index,
    sc: &SearchContext<'_>,
    permission: &Permission,
    resource: &ResourceQuery,
) -> Vec<Arc<User>> {
    let org = sc.organization_id;
    let target = resolve_target(index, Some(org), resource);
    let mut candidates: BTreeSet<String> = BTreeSet::new();
    let add_subject = |subject: &SubjectRef, candidates: &mut BTreeSet<String>| match subject {
        SubjectRef::User(id) => {
            candidates.insert(id.clone());
        }
        SubjectRef::Group(id) => {
            candidates.extend(index.group_members.get(id).into_iter().flatten().cloned())
        }
        SubjectRef::ApiKey(id) => {
            if let Some(key) = index.api_keys.get(id) {
                if key.kind == crate::model::ApiKeyKind::User {
                    candidates.insert(key.user_id.clone());
                }
            }
        }
    };
    for node in &target.chain {
        for binding in index.bindings_by_node.get(node).into_iter().flatten() {
            let covers = index
                .roles
                .get(binding.role_id())
                .is_some_and(|r| r.entries.iter().any(|e| e.permission.covers(permission)));
            if covers {
                add_subject(&binding.subject().to_subject_ref(), &mut candidates);
            }
        }
    }
    if index
        .base_role
        .as_ref()
        .is_some_and(|b| b.entries.iter().any(|e| e.permission.covers(permission)))
    {
        candidates.extend(
            index
                .organization_users
                .get(org)
                .into_iter()
                .flatten()
                .cloned(),
        );
    }
    if let Some(service) = index.type_service(org, &target.resource_type) {
        for grant in index.grants_by_organization.get(org).into_iter().flatten() {
            let matches = grant.pattern.as_ref().is_some_and(|p| {
                p.service().matches(service)
                    && p.resource_type().matches(&target.resource_type)
                    && p.id().matches(&target.id)
            });
            if matches {
                add_subject(&grant.grant.subject.as_subject_ref(), &mut candidates);
            }
        }
    }
    candidates
        .into_iter()
        .filter_map(|id| index.users.get(&id).cloned())
        .filter(|u| {
            allowed(
                index,
                sc,
                &SubjectQuery::User(u.id.clone()),
                None,
                permission,
                resource,
            )
        })
        .collect()
}

/// The ids of the resources of the permission's type that `subject` may exercise it on, sorted.
///
/// Candidates: the registered resources of that type in the organization, and the ids the
/// subject's grants name exactly. Cost: O(registered resources of the type in the organization +
/// the subject's grants + candidates × one check).
pub fn search_resources(
    index: &Index,
    sc: &SearchContext<'_>,
    subject: &SubjectQuery,
    subject_properties: Option<&Properties>,
    permission: &Permission,
) -> Vec<String> {
    let org = sc.organization_id;
    let resource_type = permission.resource_type();
    // A persistent set: this copy costs a pointer, not the type's every id.
    let mut candidates: MemberSet = index
        .resource_ids_by_type
        .get(&(org.to_owned(), resource_type.to_owned()))
        .cloned()
        .unwrap_or_default();
    if let Some(resolved) = resolve_subject(index, subject, sc.now) {
        for subject_ref in &resolved.refs {
            for grant in index
                .grants_by_organization
                .get(org)
                .into_iter()
                .flatten()
                .filter(|g| &g.grant.subject.as_subject_ref() == subject_ref)
            {
                if let Some(p) = &grant.pattern {
                    if let (crate::irn::Segment::Exact(t), crate::irn::Segment::Exact(id)) =
                        (p.resource_type(), p.id())
                    {
                        if t == resource_type {
                            candidates.insert(id.clone());
                        }
                    }
                }
            }
        }
    }
    candidates
        .into_iter()
        .filter(|id| {
            let resource = ResourceQuery {
                resource_type: resource_type.to_owned(),
                id: id.clone(),
                properties: Properties::new(),
            };
            allowed(
                index,
                sc,
                subject,
                subject_properties,
                permission,
                &resource,
            )
        })
        .collect()
}

/// The actions of the resource's type (built-in and declared) that `subject` may take on it,
/// sorted. Cost: O(actions of the type × one check).
pub fn search_actions(
    index: &Index,
    sc: &SearchContext<'_>,
    subject: &SubjectQuery,
    subject_properties: Option<&Properties>,
    resource: &ResourceQuery,
) -> Vec<String> {
    let actions = index
        .type_actions(sc.organization_id, &resource.resource_type)
        .unwrap_or_default();
    actions
        .into_iter()
        .filter(|action| {
            Permission::parse(&format!("{}:{action}", resource.resource_type))
                .is_ok_and(|p| allowed(index, sc, subject, subject_properties, &p, resource))
        })
        .collect()
}
