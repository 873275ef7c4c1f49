//! A deterministic benchmark workload (fixed seed): one organization with `users` users, 10
//! roles of 10 `type:action` permissions each, 100 projects in 10 spaces, each user bound to 5 to
//! 15 roles on random projects or on the organization, and a stream of checks "may user U do P
//! on a model in project X", about half of them allowed. The expected answer of every check is
//! computed independently, from a plain map of (user, project) to permissions, so that a
//! benchmark can assert the engine before timing it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use chrono::{DateTime, Utc};

use crate::engine::{CheckRequest, ResourceQuery, SubjectQuery};
use crate::model::{
    Membership, MembershipStatus, Node, Object, Op, Organization, Project, Resource, Role,
    RoleBinding, RoleEntry, Scope, Space, SubjectRef, User,
};
use crate::permission::Permission;

/// The organization of the workload.
pub const ORG: &str = "bench-org";
const SPACES: usize = 10;
const PROJECTS: usize = 100;
const ROLES: usize = 10;
const TYPES: [&str; 10] = [
    "model",
    "dataset",
    "job",
    "raw_data",
    "metric_query",
    "alert_rule",
    "alert",
    "insight",
    "tag",
    "enrichment_config",
];
const ACTIONS: [&str; 4] = ["read", "write", "delete", "resolve"];

/// A small, fast, deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// One check of the stream and its expected answer.
#[derive(Clone, Debug)]
pub struct WorkloadCheck {
    pub user: usize,
    pub user_id: String,
    pub permission: Permission,
    pub project: usize,
    /// The model checked; registered in `project`.
    pub model_id: String,
    pub expected: bool,
}

impl WorkloadCheck {
    /// The check's subject and resource, as the engine takes them.
    pub fn queries(&self) -> (SubjectQuery, ResourceQuery) {
        (
            SubjectQuery::User(self.user_id.clone()),
            ResourceQuery {
                resource_type: "model".to_owned(),
                id: self.model_id.clone(),
                properties: Default::default(),
            },
        )
    }

    /// The check as the engine takes it, in the workload's organization, given its
    /// [`WorkloadCheck::queries`].
    pub fn request<'a>(
        &'a self,
        (subject, resource): &'a (SubjectQuery, ResourceQuery),
        now: DateTime<Utc>,
    ) -> CheckRequest<'a> {
        CheckRequest {
            organization_id: Some(ORG),
            subject,
            subject_properties: None,
            permission: &self.permission,
            resource,
            action_properties: None,
            context: None,
            now,
            explain: false,
        }
    }
}

/// The generated workload.
pub struct Workload {
    pub objects: Vec<Object>,
    pub bindings: usize,
    pub checks: Vec<WorkloadCheck>,
    /// The baseline: (user, project) → the permissions held there, precomputed.
    pub baseline: HashMap<(u32, u32), HashSet<Permission>>,
    /// The permissions of each role.
    pub role_permissions: Vec<Vec<Permission>>,
}

impl Workload {
    /// The baseline keyed by strings (`user/project` → `type:action`), as a service holding
    /// string ids would. Built on demand: only the benchmarks time it.
    pub fn baseline_strings(&self) -> HashMap<String, HashSet<String>> {
        self.baseline
            .iter()
            .map(|((u, p), set)| {
                (
                    format!("u{u}/p{p}"),
                    set.iter().map(ToString::to_string).collect(),
                )
            })
            .collect()
    }

    /// Every object, as the ops of one write.
    pub fn ops(&self) -> Vec<Op> {
        self.objects
            .iter()
            .cloned()
            .map(|object| Op::Put { object })
            .collect()
    }
}

/// Every permission the workload uses: the product of its types and actions.
fn all_permissions() -> Vec<Permission> {
    TYPES
        .iter()
        .flat_map(|t| {
            ACTIONS
                .iter()
                .filter_map(move |a| Permission::parse(&format!("{t}:{a}")).ok())
        })
        .collect()
}

/// One of the single writes that the engine benchmark and `examples/write_loop` time, in a
/// generated workload: a binding of `u0` on project `p0` (`kind` 0), one on the organization
/// (1, whose node holds a tenth of all bindings), a new member of the organization (2, which has
/// every user as a member). `n` makes its ids new.
pub fn single_write(kind: usize, n: usize, now: DateTime<Utc>) -> Object {
    if kind == 2 {
        return Object::Membership(Membership {
            organization_id: ORG.to_owned(),
            user_id: format!("write-member-{n}"),
            status: MembershipStatus::Active,
            created_at: now,
        });
    }
    Object::RoleBinding(RoleBinding {
        id: format!("write-binding-{n}"),
        role_id: "r0".to_owned(),
        subject: SubjectRef::User("u0".to_owned()),
        node: if kind == 1 {
            Node::Organization(ORG.to_owned())
        } else {
            Node::Project("p0".to_owned())
        },
        organization_id: Some(ORG.to_owned()),
        condition: None,
        expires_at: None,
        created_at: now,
        updated_at: now,
    })
}

/// Generates the workload for `users` users with `checks` checks.
pub fn generate(users: usize, checks: usize, seed: u64) -> Workload {
    let mut rng = Rng::new(seed);
    let now: DateTime<Utc> = DateTime::<Utc>::UNIX_EPOCH;
    let mut objects = vec![Object::Organization(Organization {
        id: ORG.to_owned(),
        name: ORG.to_owned(),
        created_at: now,
        updated_at: now,
    })];
    for s in 0..SPACES {
        objects.push(Object::Space(Space {
            id: format!("s{s}"),
            organization_id: ORG.to_owned(),
            name: format!("s{s}"),
            description: String::new(),
            created_at: now,
            updated_at: now,
        }));
    }
    for p in 0..PROJECTS {
        objects.push(Object::Project(Project {
            id: format!("p{p}"),
            organization_id: ORG.to_owned(),
            space_id: format!("s{}", p % SPACES),
            name: format!("p{p}"),
            description: String::new(),
            created_at: now,
            updated_at: now,
        }));
        objects.push(Object::Resource(Resource {
            organization_id: ORG.to_owned(),
            resource_type: "model".to_owned(),
            id: format!("m{p}"),
            project_id: Some(format!("p{p}")),
            owner_id: None,
            properties: Default::default(),
            created_at: now,
            updated_at: now,
        }));
    }
    let all = all_permissions();
    let mut role_permissions = Vec::new();
    for r in 0..ROLES {
        let mut perms: Vec<Permission> = Vec::new();
        while perms.len() < 10 {
            let p = all[rng.below(all.len())].clone();
            if !perms.contains(&p) {
                perms.push(p);
            }
        }
        objects.push(Object::Role(Role {
            id: format!("r{r}"),
            organization_id: Some(ORG.to_owned()),
            name: format!("r{r}"),
            description: String::new(),
            kind: Default::default(),
            permissions: perms
                .iter()
                .cloned()
                .map(|p| RoleEntry {
                    permission: p,
                    scope: Scope::All,
                    condition: None,
                })
                .collect(),
            is_predefined: false,
            created_at: now,
            updated_at: now,
        }));
        role_permissions.push(perms);
    }
    let mut baseline: HashMap<(u32, u32), HashSet<Permission>> = HashMap::new();
    let mut bindings = 0;
    for u in 0..users {
        let user_id = format!("u{u}");
        objects.push(Object::User(User {
            id: user_id.clone(),
            email: format!("u{u}@bench.test"),
            name: None,
            external_ids: Vec::new(),
            properties: Default::default(),
            created_at: now,
            updated_at: now,
        }));
        objects.push(Object::Membership(Membership {
            organization_id: ORG.to_owned(),
            user_id: user_id.clone(),
            status: MembershipStatus::Active,
            created_at: now,
        }));
        let count = 5 + rng.below(11);
        for b in 0..count {
            let role = rng.below(ROLES);
            // One binding in ten is on the whole organization.
            let on_org = rng.below(10) == 0;
            let project = rng.below(PROJECTS);
            let node = if on_org {
                Node::Organization(ORG.to_owned())
            } else {
                Node::Project(format!("p{project}"))
            };
            objects.push(Object::RoleBinding(RoleBinding {
                id: format!("b{u}-{b}"),
                role_id: format!("r{role}"),
                subject: SubjectRef::User(user_id.clone()),
                node,
                organization_id: Some(ORG.to_owned()),
                condition: None,
                expires_at: None,
                created_at: now,
                updated_at: now,
            }));
            bindings += 1;
            let projects: Vec<usize> = if on_org {
                (0..PROJECTS).collect()
            } else {
                vec![project]
            };
            for p in projects {
                baseline
                    .entry((u as u32, p as u32))
                    .or_default()
                    .extend(role_permissions[role].iter().cloned());
            }
        }
    }
    let mut stream = Vec::with_capacity(checks);
    while stream.len() < checks {
        let user = rng.below(users.max(1));
        let want_allowed = stream.len() % 2 == 0;
        // Pick a project and permission; for an allowed check, one the user holds there.
        let project = rng.below(PROJECTS);
        let held = baseline.get(&(user as u32, project as u32));
        let permission = match (want_allowed, held) {
            (true, Some(set)) if !set.is_empty() => {
                let mut v: Vec<&Permission> = set.iter().collect();
                v.sort();
                v[rng.below(v.len())].clone()
            }
            _ => all[rng.below(all.len())].clone(),
        };
        let expected = held.is_some_and(|s| s.contains(&permission));
        stream.push(WorkloadCheck {
            user,
            user_id: format!("u{user}"),
            permission,
            project,
            model_id: format!("m{project}"),
            expected,
        });
    }
    Workload {
        objects,
        bindings,
        checks: stream,
        baseline,
        role_permissions,
    }
}

/// The system allocator, counting live heap bytes and allocation calls: for the benchmarks
/// (how much an index holds) and the allocation test (that a check allocates nothing). A bench
/// or test installs it with `#[global_allocator] static A: CountingAllocator = CountingAllocator;`.
pub struct CountingAllocator;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

impl CountingAllocator {
    /// Heap bytes allocated and not yet freed, by every thread.
    pub fn live_bytes() -> isize {
        LIVE_BYTES.load(Ordering::Relaxed)
    }

    /// Allocation calls so far (reallocations included), by every thread.
    pub fn allocations() -> usize {
        ALLOCATIONS.load(Ordering::Relaxed)
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are atomics.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
