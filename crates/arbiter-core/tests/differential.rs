//! Differential property test: on random organizations, the check path (`fast`) and the
//! reference evaluator agree on every decision, before and after random writes.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use arbiter_core::catalog::Catalog;
use arbiter_core::engine::{check, reference_check, CheckRequest, ResourceQuery, SubjectQuery};
use arbiter_core::index::Index;
use arbiter_core::model::*;
use arbiter_core::permission::Permission;
use chrono::{Duration, Utc};
use proptest::prelude::*;

const PERMISSIONS: [&str; 8] = [
    "model:read",
    "model:write",
    "model:*",
    "dataset:read",
    "*:read",
    "job:cancel",
    "*:*",
    "dataset:delete",
];
const SCOPES: [Scope; 3] = [Scope::All, Scope::Team, Scope::Own];

#[derive(Debug, Clone)]
struct World {
    /// (user, space) memberships.
    space_members: Vec<(usize, usize)>,
    group_members: Vec<(usize, usize)>,
    /// (user, usable?) keys; project keys on a project.
    user_keys: Vec<(usize, bool)>,
    project_keys: Vec<usize>,
    /// Roles: entries of (permission, scope).
    roles: Vec<Vec<(usize, usize)>>,
    /// Bindings: (role, subject kind 0 user 1 group 2 user key 3 project key, subject, node kind, node, expired?,
    /// organization 0-3 `o`, 4 none, 5 `o2`).
    bindings: Vec<(usize, u8, usize, u8, usize, bool, u8)>,
    /// Resources: (type 0 model 1 dataset 2 job, id, project or none, owner kind 0 none 1 user id 2 email 3 key, owner).
    resources: Vec<(usize, usize, Option<usize>, u8, usize)>,
}

fn world() -> impl Strategy<Value = World> {
    (
        proptest::collection::vec((0..4usize, 0..2usize), 0..5),
        proptest::collection::vec((0..4usize, 0..2usize), 0..4),
        proptest::collection::vec((0..4usize, any::<bool>()), 0..4),
        proptest::collection::vec(0..4usize, 0..2),
        proptest::collection::vec(
            proptest::collection::vec((0..PERMISSIONS.len(), 0..3usize), 1..4),
            1..4,
        ),
        proptest::collection::vec(
            (
                0..4usize,
                0..4u8,
                0..4usize,
                0..5u8,
                0..4usize,
                proptest::bool::weighted(0.15),
                0..6u8,
            ),
            0..12,
        ),
        proptest::collection::vec(
            (
                0..3usize,
                0..4usize,
                proptest::option::of(0..4usize),
                0..4u8,
                0..4usize,
            ),
            0..10,
        ),
        // More bindings for user u0, enough at times to take its keys past those its record
        // holds in place (`index::INLINE_KEYS`): (role, node kind, node, expired?, organization).
        proptest::collection::vec(
            (
                0..4usize,
                0..5u8,
                0..4usize,
                proptest::bool::weighted(0.15),
                0..6u8,
            ),
            0..24,
        ),
    )
        .prop_map(
            |(
                space_members,
                group_members,
                user_keys,
                project_keys,
                roles,
                mut bindings,
                resources,
                u0s,
            )| {
                bindings.extend(u0s.into_iter().map(|(role, kind, node, expired, org)| {
                    (role, 0, 0, kind, node, expired, org)
                }));
                World {
                    space_members,
                    group_members,
                    user_keys,
                    project_keys,
                    roles,
                    bindings,
                    resources,
                }
            },
        )
}

const TYPES: [&str; 3] = ["model", "dataset", "job"];

fn build(w: &World) -> (Index, Vec<Object>) {
    let now = Utc::now();
    let catalog = Arc::new(Catalog::builtin().unwrap());
    // A second organization, holding p3: a binding made in one organization on a node of the
    // other, or in none, is of another (organization, node) than the check asks for.
    let mut objects: Vec<Object> = ["o", "o2"]
        .into_iter()
        .map(|id| {
            Object::Organization(Organization {
                id: id.into(),
                name: id.into(),
                created_at: now,
                updated_at: now,
            })
        })
        .collect();
    for s in 0..2 {
        objects.push(Object::Space(Space {
            id: format!("s{s}"),
            organization_id: "o".into(),
            name: format!("s{s}"),
            description: String::new(),
            created_at: now,
            updated_at: now,
        }));
    }
    for p in 0..4 {
        objects.push(Object::Project(Project {
            id: format!("p{p}"),
            organization_id: if p == 3 { "o2" } else { "o" }.into(),
            space_id: format!("s{}", p % 2),
            name: format!("p{p}"),
            description: String::new(),
            created_at: now,
            updated_at: now,
        }));
    }
    for u in 0..4 {
        objects.push(Object::User(User {
            id: format!("u{u}"),
            email: format!("u{u}@x"),
            name: None,
            external_ids: vec![format!("ext{u}")],
            properties: Default::default(),
            created_at: now,
            updated_at: now,
        }));
        if u != 3 {
            objects.push(Object::Membership(Membership {
                organization_id: "o".into(),
                user_id: format!("u{u}"),
                status: MembershipStatus::Active,
                created_at: now,
            }));
        }
    }
    for g in 0..2 {
        objects.push(Object::Group(Group {
            id: format!("g{g}"),
            organization_id: "o".into(),
            kind: GroupKind::Group,
            name: format!("g{g}"),
            description: String::new(),
            created_at: now,
            updated_at: now,
        }));
    }
    for (u, s) in &w.space_members {
        objects.push(Object::SpaceMember(SpaceMember {
            space_id: format!("s{s}"),
            user_id: format!("u{u}"),
            organization_id: "o".into(),
            created_at: now,
        }));
    }
    for (u, g) in &w.group_members {
        objects.push(Object::GroupMember(GroupMember {
            group_id: format!("g{g}"),
            user_id: format!("u{u}"),
            organization_id: "o".into(),
            created_at: now,
        }));
    }
    let key = |id: String, kind, user: usize, project: Option<usize>, usable: bool| {
        Object::ApiKey(ApiKey {
            id,
            name: "k".into(),
            kind,
            user_id: format!("u{user}"),
            project_id: project.map(|p| format!("p{p}")),
            organization_id: Some("o".into()),
            secret_hash: format!("h{}", rand_id()),
            display_prefix: "arb_".into(),
            expires_at: None,
            revoked_at: (!usable).then_some(now),
            created_at: now,
            updated_at: now,
        })
    };
    for (i, (u, usable)) in w.user_keys.iter().enumerate() {
        objects.push(key(format!("k{i}"), ApiKeyKind::User, *u, None, *usable));
    }
    for (i, p) in w.project_keys.iter().enumerate() {
        objects.push(key(
            format!("pk{i}"),
            ApiKeyKind::Project,
            0,
            Some(*p),
            true,
        ));
    }
    for (r, entries) in w.roles.iter().enumerate() {
        let permissions = entries
            .iter()
            .map(|(p, s)| RoleEntry {
                permission: Permission::parse(PERMISSIONS[*p]).unwrap(),
                scope: SCOPES[*s],
                condition: None,
            })
            .collect();
        objects.push(Object::Role(Role {
            id: format!("r{r}"),
            organization_id: Some("o".into()),
            name: format!("r{r}"),
            description: String::new(),
            kind: RoleKind::User,
            permissions,
            is_predefined: false,
            created_at: now,
            updated_at: now,
        }));
    }
    for (i, (role, kind, subject, node_kind, node, expired, organization)) in
        w.bindings.iter().enumerate()
    {
        let subject = match kind {
            0 => SubjectRef::User(format!("u{subject}")),
            1 => SubjectRef::Group(format!("g{}", subject % 2)),
            2 if !w.user_keys.is_empty() => {
                SubjectRef::ApiKey(format!("k{}", subject % w.user_keys.len()))
            }
            3 if !w.project_keys.is_empty() => {
                SubjectRef::ApiKey(format!("pk{}", subject % w.project_keys.len()))
            }
            _ => SubjectRef::User(format!("u{subject}")),
        };
        let node = match node_kind {
            0 => Node::Platform,
            1 => Node::Organization("o".into()),
            2 => Node::Space(format!("s{}", node % 2)),
            3 => Node::Project(format!("p{node}")),
            _ => Node::resource("o", TYPES[node % 3], format!("r{node}")),
        };
        objects.push(Object::RoleBinding(RoleBinding {
            id: format!("b{i}"),
            role_id: format!("r{}", role % w.roles.len()),
            subject,
            node,
            organization_id: match organization {
                4 => None,
                5 => Some("o2".into()),
                _ => Some("o".into()),
            },
            condition: None,
            expires_at: expired.then(|| now - Duration::hours(1)),
            created_at: now,
            updated_at: now,
        }));
    }
    for (t, id, project, owner_kind, owner) in &w.resources {
        let owner_id = match owner_kind {
            1 => Some(format!("u{owner}")),
            2 => Some(format!("u{owner}@x")),
            3 => Some(format!("k{owner}")),
            _ => None,
        };
        objects.push(Object::Resource(Resource {
            organization_id: "o".into(),
            resource_type: TYPES[*t].into(),
            id: format!("r{id}"),
            project_id: project.map(|p| format!("p{p}")),
            owner_id,
            properties: Default::default(),
            created_at: now,
            updated_at: now,
        }));
    }
    let mut index = Index::new(catalog);
    index.apply(
        1,
        &objects
            .iter()
            .cloned()
            .map(|object| Op::Put { object })
            .collect::<Vec<_>>(),
    );
    (index, objects)
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn subjects(w: &World) -> Vec<SubjectQuery> {
    let mut out: Vec<SubjectQuery> = (0..4)
        .map(|u| SubjectQuery::User(format!("u{u}")))
        .collect();
    out.push(SubjectQuery::User("ext1".into()));
    out.extend((0..w.user_keys.len()).map(|k| SubjectQuery::ApiKey(format!("k{k}"))));
    out.extend((0..w.project_keys.len()).map(|k| SubjectQuery::ApiKey(format!("pk{k}"))));
    out
}

fn resources() -> Vec<ResourceQuery> {
    let mut out = Vec::new();
    for t in TYPES {
        for id in 0..5 {
            out.push(ResourceQuery {
                resource_type: t.into(),
                id: format!("r{id}"),
                properties: Default::default(),
            });
        }
    }
    for project in ["p1", "p3"] {
        out.push(ResourceQuery {
            resource_type: "project".into(),
            id: project.into(),
            properties: Default::default(),
        });
    }
    out.push(ResourceQuery {
        resource_type: "space".into(),
        id: "s0".into(),
        properties: Default::default(),
    });
    out.push(ResourceQuery {
        resource_type: "organization".into(),
        id: "o".into(),
        properties: Default::default(),
    });
    let mut owned = ResourceQuery {
        resource_type: "model".into(),
        id: "unregistered".into(),
        properties: Default::default(),
    };
    owned
        .properties
        .insert("owner_id".into(), serde_json::json!("u1"));
    out.push(owned);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn the_check_path_agrees_with_the_reference(
        w in world(),
        removed in proptest::collection::vec(any::<proptest::sample::Index>(), 0..8),
    ) {
        agree_through_writes(&w, |objects| {
            removed.iter().map(|i| i.index(objects.len())).collect()
        })?;
    }
}

/// The worlds proptest once shrank failures to, written out: its saved seeds replay whatever
/// the strategy makes of them, which changed as [`world`] grew (a binding's organization, more
/// bindings for `u0`), so the seeds alone no longer pin these. The objects deleted and put back
/// are named, not given as proptest's `Index` values were: those are fractions of the objects'
/// count, which [`build`] has changed since.
#[test]
fn the_worlds_proptest_shrank_failures_to_still_agree() {
    let world = |roles: Vec<Vec<(usize, usize)>>, bindings, resources| World {
        space_members: Vec::new(),
        group_members: Vec::new(),
        user_keys: Vec::new(),
        project_keys: Vec::new(),
        roles,
        bindings,
        resources,
    };
    let none = |_: &[Object]| Vec::new();
    // `model:read` with scope TEAM, on the platform, for a user-key binding in a world without
    // keys (so `u0`'s own).
    let team_on_the_platform = world(vec![vec![(0, 1)]], vec![(0, 2, 0, 0, 0, false, 0)], vec![]);
    agree_through_writes(&team_on_the_platform, none).unwrap();
    // Two roles alike and three of `u0`'s bindings on the platform, one expired; two
    // registrations of one model id without a project; the two live bindings, alike, deleted
    // in one write and put back.
    let alike_and_expired = world(
        vec![vec![(0, 0)], vec![(0, 0)]],
        vec![
            (0, 0, 0, 0, 0, false, 0),
            (0, 0, 0, 0, 0, false, 0),
            (0, 0, 0, 0, 0, true, 0),
        ],
        vec![(0, 0, None, 0, 0), (0, 0, None, 0, 0)],
    );
    let the_live_bindings = |objects: &[Object]| -> Vec<usize> {
        let positions: Vec<usize> = (objects.iter().enumerate())
            .filter(|(_, o)| matches!(o, Object::RoleBinding(b) if b.id == "b0" || b.id == "b1"))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(positions.len(), 2, "b0 and b1 are in the world");
        positions
    };
    agree_through_writes(&alike_and_expired, the_live_bindings).unwrap();
    // A binding on the organization made in no organization.
    let of_no_organization = world(vec![vec![(0, 0)]], vec![(0, 2, 0, 1, 0, false, 4)], vec![]);
    agree_through_writes(&of_no_organization, none).unwrap();
}

/// The world's index and the reference agree; then the objects at the positions `removed`
/// picks of the world's objects are deleted in one write and put back one write each, and they
/// agree after each step, as does a snapshot taken before the writes.
fn agree_through_writes(
    w: &World,
    removed: impl FnOnce(&[Object]) -> Vec<usize>,
) -> Result<(), TestCaseError> {
    let (mut index, objects) = build(w);
    agree(w, &index)?;
    // A snapshot kept across the writes below: they must not change what it answers.
    let before = index.clone();
    // Deletes in one write (memberships, keys, bindings...), then the same objects put back one
    // write each: the index's removal and re-insertion paths.
    let gone: Vec<&Object> = removed(&objects).into_iter().map(|i| &objects[i]).collect();
    let deletes: Vec<Op> = gone.iter().map(|o| Op::Delete { key: o.key() }).collect();
    index.apply(2, &deletes);
    agree(w, &index)?;
    for (n, object) in gone.into_iter().enumerate() {
        index.apply(
            3 + n as u64,
            &[Op::Put {
                object: object.clone(),
            }],
        );
    }
    agree(w, &index)?;
    agree(w, &before)
}

/// The check path and the reference agree on every subject, resource, permission and
/// organization of the world.
fn agree(w: &World, index: &Index) -> Result<(), TestCaseError> {
    let now = Utc::now();
    for subject in subjects(w) {
        for resource in resources() {
            for p in PERMISSIONS {
                let permission = Permission::parse(p).unwrap();
                for org in [Some("o"), Some("o2"), None] {
                    let request = |explain| CheckRequest {
                        organization_id: org,
                        subject: &subject,
                        subject_properties: None,
                        permission: &permission,
                        resource: &resource,
                        action_properties: None,
                        context: None,
                        now,
                        explain,
                    };
                    let fast = check(index, &request(false)).allowed;
                    let reference = reference_check(index, &request(false)).allowed;
                    prop_assert_eq!(
                        fast,
                        reference,
                        "{:?} {} {:?} in {:?}",
                        subject,
                        p,
                        resource,
                        org
                    );
                }
            }
        }
    }
    Ok(())
}
