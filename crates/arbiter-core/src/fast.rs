//! The check path: the same decision as the reference evaluator in [`crate::engine`], made
//! without allocating. It looks up only the bindings on the resource's ancestors (each
//! subject's bindings in one array sorted by node), finds a role's entries for the permission
//! by hash, and resolves the subject and the resource to borrowed views. Whatever it does not
//! handle itself (conditions, grant criteria) it leaves to the reference evaluator by answering
//! `None`.

use std::cell::Cell;

use chrono::{DateTime, Utc};

use crate::cowmap::{hash_key, same_id};
use crate::engine::{CheckRequest, SubjectQuery, PLATFORM_TYPE};
use crate::index::{
    node_hash, node_kind, project_node_hash, AskedPermission, CompiledBinding, CompiledEntry,
    CompiledRole, HashedBinding, Index, NodeBindings, UserRecord,
};
use crate::model::{ApiKey, ApiKeyKind, NodeView, Resource, Scope, SubjectRefView, User};
use crate::permission::WILDCARD;

/// Who a check is about.
enum Who<'i> {
    /// A user, with its record (its links, none when it has none, and its own bindings).
    User(&'i User, &'i UserRecord),
    ProjectKey(&'i ApiKey),
}

/// The resource and its ancestors, borrowed.
struct TargetView<'a> {
    resource_type: &'a str,
    id: &'a str,
    organization: Option<&'a str>,
    space: Option<&'a str>,
    project: Option<&'a str>,
    /// The project's [`node_hash`], from the hash it was looked up by.
    project_hash: u64,
    /// The organization's [`node_hash`] when a registered resource has it ready (0 otherwise).
    organization_hash: u64,
    /// The resource is a node of its own (not an organization, space or project).
    is_resource: bool,
    owner: Option<&'a str>,
}

fn owner_from(props: &crate::model::Properties) -> Option<&str> {
    props.get("owner_id").and_then(|v| v.as_str())
}

impl<'a> TargetView<'a> {
    fn resolve(index: &'a Index, org: Option<&'a str>, request: &'a CheckRequest<'a>) -> Self {
        let query = request.resource;
        let mut view = TargetView {
            resource_type: &query.resource_type,
            id: &query.id,
            organization: org,
            space: None,
            project: None,
            project_hash: 0,
            organization_hash: 0,
            is_resource: false,
            owner: None,
        };
        let Some(org) = org else { return view };
        // A project of the organization, with its node's hash (from the hash it was found by).
        let project_in = |id: &str, hash: u64| {
            let project = index.projects.find_hashed(hash, |p| same_id(p, id))?;
            same_id(&project.organization_id, org).then(|| (project, project_node_hash(hash)))
        };
        // A checked project is looked up once: to choose the arm below, and as the ancestor.
        let mut project = (query.resource_type == "project")
            .then(|| project_in(&query.id, hash_key(query.id.as_str())))
            .flatten();
        // The resource's project's id, with its hash.
        let mut project_id: Option<(&'a str, u64)> = None;
        let mut registered: Option<&'a Resource> = None;
        match query.resource_type.as_str() {
            PLATFORM_TYPE => {
                view.organization = None;
                return view;
            }
            "organization" if query.id == org => {}
            "space"
                if index
                    .spaces
                    .get(&query.id)
                    .is_some_and(|s| s.organization_id == org) =>
            {
                view.space = Some(&query.id)
            }
            "project" if project.is_some() => {}
            resource_type => {
                view.is_resource = true;
                if let Some(r) = index.registered(org, resource_type, &query.id) {
                    registered = Some(&r.resource);
                    view.organization_hash = r.organization_node_hash;
                    project_id = r
                        .resource
                        .project_id
                        .as_deref()
                        .map(|p| (p, r.project_hash));
                    view.owner = r.resource.owner_id.as_deref();
                } else if resource_type == "user" && index.is_member(org, &query.id) {
                    view.owner = Some(&query.id);
                } else if resource_type == "api_key" {
                    if let Some(key) = index.api_keys.get(&query.id) {
                        // A user key is its user's; a project key belongs to its project.
                        if key.kind == ApiKeyKind::User {
                            view.owner = Some(&key.user_id);
                        }
                        project_id = key.project_id.as_deref().map(|p| (p, hash_key(p)));
                    }
                }
            }
        }
        if project.is_none() {
            project = project_id.and_then(|(id, hash)| project_in(id, hash));
        }
        if let Some((project, hash)) = project {
            view.project = Some(&project.id);
            view.project_hash = hash;
            view.space = Some(&project.space_id);
        }
        if view.owner.is_none() {
            // As the reference does: the sent properties overlay the registered ones.
            view.owner = owner_from(&query.properties)
                .or_else(|| registered.and_then(|r| owner_from(&r.properties)));
        }
        view
    }
}

struct Fast<'a> {
    index: &'a Index,
    who: Who<'a>,
    target: TargetView<'a>,
    /// The [`node_hash`]es of the nodes of [`TargetView::chain`], each computed when a subject
    /// first holds bindings on its kind (the project's is known from its lookup); bit `i` of
    /// `hashed` says `hashes[i]` is.
    hashes: [u64; CHAIN],
    hashed: u8,
    /// The asked permission, prepared for the roles' tables.
    asked: AskedPermission<'a>,
    now: DateTime<Utc>,
    /// Set when something needs the reference evaluator.
    unsupported: Cell<bool>,
}

impl<'a> Fast<'a> {
    /// The state of a check by `who` of `request`, its resource resolved.
    #[inline(always)]
    fn new(index: &'a Index, who: Who<'a>, request: &'a CheckRequest<'a>) -> Self {
        let target = TargetView::resolve(index, request.organization_id, request);
        Fast {
            index,
            who,
            // The project's hash is known from its lookup, the organization's from a registered
            // resource.
            hashes: {
                let mut hashes = [0; CHAIN];
                hashes[PROJECT_IN_CHAIN] = target.project_hash;
                hashes[ORGANIZATION_IN_CHAIN] = target.organization_hash;
                hashes
            },
            hashed: (u8::from(target.project.is_some()) << PROJECT_IN_CHAIN)
                | (u8::from(target.organization_hash != 0) << ORGANIZATION_IN_CHAIN),
            asked: AskedPermission::new(request.permission),
            target,
            now: request.now,
            unsupported: Cell::new(false),
        }
    }

    fn in_team(&self, space: &str) -> bool {
        match &self.who {
            Who::User(_, record) => record
                .links
                .as_ref()
                .is_some_and(|l| l.spaces.contains(space)),
            Who::ProjectKey(k) => k
                .project_id
                .as_deref()
                .and_then(|p| self.index.projects.get(p))
                .is_some_and(|p| p.space_id == space),
        }
    }

    fn owns(&self, owner: &str) -> bool {
        match &self.who {
            Who::User(u, record) => {
                u.id == owner
                    || u.email == owner
                    || u.external_ids.iter().any(|e| e == owner)
                    || record.links.as_ref().is_some_and(|l| {
                        l.keys.contains(owner)
                            && self.index.api_keys.get(owner).is_some_and(|k| {
                                k.kind == ApiKeyKind::User && k.is_usable(self.now)
                            })
                    })
            }
            Who::ProjectKey(k) => k.id == owner,
        }
    }

    fn entry(&self, entry: &CompiledEntry, binding: Option<&CompiledBinding>) -> bool {
        let scope_ok = match entry.scope {
            Scope::All => true,
            Scope::Team => self.target.space.is_some_and(|s| self.in_team(s)),
            Scope::Own => self.target.owner.is_some_and(|o| self.owns(o)),
        };
        if !scope_ok {
            return false;
        }
        if entry.condition.is_some() || binding.is_some_and(|b| b.condition.is_some()) {
            self.unsupported.set(true);
            return false;
        }
        true
    }

    fn role(&self, role: &CompiledRole, binding: Option<&CompiledBinding>) -> bool {
        role.for_each_covering_asked(&self.asked, &mut |e| self.entry(e, binding))
    }

    /// True when `binding`, found by its node's hash, is on `node`, the node at position `I` of
    /// the chain, and of the resource's organization.
    #[inline(always)]
    fn is_on<const I: usize>(&self, binding: &CompiledBinding, node: &NodeView<'_>) -> bool {
        // Another node may share the hash. The kind compared is the position's, known here:
        // a comparison of any two nodes jumps by their kind, a jump the processor mispredicts
        // when the kinds asked alternate.
        let bound = binding.node();
        let same = match (I, bound, node) {
            (PROJECT_IN_CHAIN, NodeView::Project(a), NodeView::Project(b))
            | (ORGANIZATION_IN_CHAIN, NodeView::Organization(a), NodeView::Organization(b))
            | (SPACE_IN_CHAIN, NodeView::Space(a), NodeView::Space(b)) => same_id(a, b),
            (PROJECT_IN_CHAIN | ORGANIZATION_IN_CHAIN | SPACE_IN_CHAIN, _, _) => false,
            _ => bound.same(node),
        };
        same
            // Another organization's binding never applies here (as in the reference).
            && binding
                .organization_id()
                .is_none_or(|o| self.target.organization.is_some_and(|t| same_id(o, t)))
    }

    /// The bindings on one node of the chain: those of `list` that are on `node`.
    fn bindings<'l, const I: usize>(
        &mut self,
        list: impl IntoIterator<Item = &'l HashedBinding>,
        node: NodeView<'_>,
    ) -> bool {
        for entry in list {
            let b = entry.binding();
            // A plain binding's role is asked first, by the slot kept beside it: a binding whose
            // role allows nothing asked (most, on a denied check) is then never read. The
            // binding is read only to confirm a role that allows.
            if let Some(slot) = entry.plain_role_slot() {
                if let Some(role) = self.index.role_slots.role(slot) {
                    if self.role(role, None)
                        && self.is_on::<I>(b, &node)
                        && same_id(&role.role.id, b.role_id())
                    {
                        return true;
                    }
                }
                continue;
            }
            if !self.is_on::<I>(b, &node) || !b.is_active(self.now) {
                continue;
            }
            // The id compared too: a slot holds its id's role, and only that.
            let role = (self.index.role_slots.role(b.role_slot))
                .filter(|r| same_id(&r.role.id, b.role_id()));
            if let Some(role) = role {
                if self.role(role, Some(b)) {
                    return true;
                }
            }
        }
        false
    }

    /// The subject's bindings on each node of the resource's chain, the nearest first: the
    /// resource, its project, its space, its organization, the platform. (One call per position
    /// rather than a loop over them: each position's node is then made by code of its own, not
    /// through a jump the processor mispredicts about once a check.)
    fn node_bindings(&mut self, nb: &NodeBindings) -> bool {
        let kinds = nb.kinds();
        self.bindings_at::<RESOURCE_IN_CHAIN>(nb, kinds)
            || self.bindings_at::<PROJECT_IN_CHAIN>(nb, kinds)
            || self.bindings_at::<SPACE_IN_CHAIN>(nb, kinds)
            || self.bindings_at::<ORGANIZATION_IN_CHAIN>(nb, kinds)
            || self.bindings_at::<PLATFORM_IN_CHAIN>(nb, kinds)
    }

    /// The subject's bindings on the node at position `I` of the resource's chain.
    #[inline(always)]
    fn bindings_at<const I: usize>(&mut self, nb: &NodeBindings, kinds: u8) -> bool {
        // Only the kinds of node the subject holds bindings on: most hold one or two.
        if kinds & (1 << I) == 0 {
            return false;
        }
        let Some(node) = self.target.chain(I) else {
            return false;
        };
        if self.hashed & (1 << I) == 0 {
            self.hashes[I] = node_hash(node);
            self.hashed |= 1 << I;
        }
        // A node of another organization never shares the view, so a resource binding of
        // another organization does not count here.
        self.bindings::<I>(nb.walk_on(self.hashes[I]), node)
    }
}

/// How many nodes a binding may be on to apply to a resource (see [`TargetView::chain`]).
const CHAIN: usize = 5;
/// Where each kind of node is in [`TargetView::chain`]: at its [`node_kind`] bit.
const fn chain_position(node: NodeView<'_>) -> usize {
    node_kind(node).trailing_zeros() as usize
}
const PLATFORM_IN_CHAIN: usize = chain_position(NodeView::Platform);
const ORGANIZATION_IN_CHAIN: usize = chain_position(NodeView::Organization(""));
const SPACE_IN_CHAIN: usize = chain_position(NodeView::Space(""));
const PROJECT_IN_CHAIN: usize = chain_position(NodeView::Project(""));
const RESOURCE_IN_CHAIN: usize = chain_position(NodeView::Resource("", "", ""));

impl<'a> TargetView<'a> {
    /// The node a binding may be on to apply to the resource at position `i`, that of its kind
    /// ([`chain_position`]): the platform, the resource's organization, its space, its project
    /// or the resource itself. Made when asked for, not kept: most checks ask for two of them.
    fn chain(&self, i: usize) -> Option<NodeView<'a>> {
        let org = self.organization;
        match i {
            PLATFORM_IN_CHAIN => Some(NodeView::Platform),
            ORGANIZATION_IN_CHAIN => org.map(NodeView::Organization),
            SPACE_IN_CHAIN => org.and(self.space).map(NodeView::Space),
            PROJECT_IN_CHAIN => org.and(self.project).map(NodeView::Project),
            RESOURCE_IN_CHAIN if self.is_resource => {
                org.map(|org| NodeView::Resource(org, self.resource_type, self.id))
            }
            _ => None,
        }
    }
}

/// True when the subject holds resource grants.
fn has_grants(index: &Index, subject: SubjectRefView<'_>) -> bool {
    index
        .grants_by_subject
        .find_hashed(hash_key(&subject), |s| subject.is(s))
        .is_some()
}

/// The user of a record that has one, with the record (its links and bindings).
fn user_of(record: &UserRecord) -> Option<Who<'_>> {
    let user = record.user.as_ref()?;
    Some(Who::User(user, record))
}

/// Decides a check without allocating, or answers `None` when the reference evaluator must.
pub fn check_fast(index: &Index, request: &CheckRequest<'_>) -> Option<bool> {
    let now = request.now;
    let who = match request.subject {
        SubjectQuery::User(reference) => {
            // Most checks name the user by id: then the reference's hash is the id's.
            let hash = hash_key(reference.as_str());
            match index.users.record_hashed(hash, reference.as_str()) {
                Some(record @ UserRecord { user: Some(_), .. }) => user_of(record)?,
                _ => user_of(index.users.record(&index.find_user(reference)?.id)?)?,
            }
        }
        SubjectQuery::ApiKey(id) => {
            let key = index.api_keys.get(id).filter(|k| k.is_usable(now))?;
            match key.kind {
                ApiKeyKind::User => user_of(index.users.record(&key.user_id)?)?,
                ApiKeyKind::Project => Who::ProjectKey(key),
            }
        }
    };
    // Start reading the user's bindings now: resolving the resource does not depend on them,
    // so when neither is in the caches the processor waits for both at once, not in turn.
    if let Who::User(_, record) = &who {
        std::hint::black_box(record.bindings.first_probe());
    }
    let mut fast = Fast::new(index, who, request);

    // The implicit base role of members.
    if let (Who::User(_, record), Some(org), Some(base)) = (
        &fast.who,
        fast.target.organization,
        index.base_role.as_ref(),
    ) {
        // The role first: it is shared and in cache, and covers few permissions, so that most
        // checks skip reading the user's organizations.
        let covers = base.for_each_covering_asked(&fast.asked, &mut |_| true);
        let links = record.links.as_ref();
        let member = covers && links.is_some_and(|l| l.organizations.contains(org));
        if member && fast.role(base, None) {
            return Some(true);
        }
    }
    match fast.who {
        Who::User(_, record) => {
            if fast.node_bindings(&record.bindings) {
                return Some(true);
            }
            // The links are read only when they hold groups or keys: most users' hold neither.
            if let Some(links) = record.links.as_ref().filter(|_| record.has_groups_or_keys) {
                for group in &links.groups {
                    if let Some(nb) = index.group_node_bindings.get(group) {
                        if fast.node_bindings(nb) {
                            return Some(true);
                        }
                    }
                }
                for key_id in &links.keys {
                    let usable = index
                        .api_keys
                        .get(key_id)
                        .is_some_and(|k| k.kind == ApiKeyKind::User && k.is_usable(now));
                    if let (true, Some(nb)) = (usable, index.key_node_bindings.get(key_id)) {
                        if fast.node_bindings(nb) {
                            return Some(true);
                        }
                    }
                }
            }
        }
        Who::ProjectKey(key) => {
            if let Some(nb) = index.key_node_bindings.get(&key.id) {
                if fast.node_bindings(nb) {
                    return Some(true);
                }
            }
        }
    }
    if fast.unsupported.get() {
        return None;
    }
    // Resource grants: only when the subject may have some; the reference evaluator handles
    // them (criteria and conditions included).
    // An index that holds no grants needs nothing more read.
    let org_has_grants = !index.grants_by_subject.is_empty()
        && fast.target.organization.is_some_and(|o| {
            index
                .grants_by_organization
                .get(o)
                .is_some_and(|g| !g.is_empty())
        });
    let has_grants = org_has_grants
        && match fast.who {
            Who::User(user, record) => {
                has_grants(index, SubjectRefView::User(&user.id))
                    || record.links.as_ref().is_some_and(|l| {
                        l.groups
                            .iter()
                            .any(|g| has_grants(index, SubjectRefView::Group(g)))
                    })
            }
            Who::ProjectKey(_) => false,
        };
    let asked_type = request.permission.resource_type();
    if has_grants && (asked_type == fast.target.resource_type || asked_type == WILDCARD) {
        return None;
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::catalog::Catalog;
    use crate::model::{Membership, MembershipStatus, Node, Object, Op, RoleBinding, SubjectRef};
    use crate::workload::{generate, WorkloadCheck, ORG};

    /// A binding found by its node's hash is confirmed by its node before it allows anything:
    /// offered for another node (as a collision of the 32 bits of hash kept would offer it), it
    /// allows nothing, whether plain (its role asked first) or not (read first).
    #[test]
    fn a_binding_found_by_its_hash_allows_only_on_its_own_node() {
        let workload = generate(0, 0, 7);
        let now = Utc::now();
        let mut ops = workload.ops();
        for (user, expires_at) in [
            ("plain", None),
            ("expiring", Some(DateTime::<Utc>::MAX_UTC)),
        ] {
            ops.push(Op::Put {
                object: Object::User(User {
                    id: user.to_owned(),
                    email: format!("{user}@x.test"),
                    name: None,
                    external_ids: Vec::new(),
                    properties: Default::default(),
                    created_at: now,
                    updated_at: now,
                }),
            });
            ops.push(Op::Put {
                object: Object::Membership(Membership {
                    organization_id: ORG.to_owned(),
                    user_id: user.to_owned(),
                    status: MembershipStatus::Active,
                    created_at: now,
                }),
            });
            ops.push(Op::Put {
                object: Object::RoleBinding(RoleBinding {
                    id: format!("b-{user}"),
                    role_id: "r0".to_owned(),
                    subject: SubjectRef::User(user.to_owned()),
                    node: Node::Project("p1".to_owned()),
                    organization_id: Some(ORG.to_owned()),
                    condition: None,
                    expires_at,
                    created_at: now,
                    updated_at: now,
                }),
            });
        }
        let catalog = Arc::new(Catalog::builtin().unwrap_or_else(|e| panic!("{e}")));
        let mut index = Index::new(catalog);
        index.apply(1, &ops);
        for user in ["plain", "expiring"] {
            // A check of the workload's kind: a permission of r0 on the model of p1.
            let check = WorkloadCheck {
                user: 0,
                user_id: user.to_owned(),
                permission: workload.role_permissions[0][0].clone(),
                project: 1,
                model_id: "m1".to_owned(),
                expected: true,
            };
            let queries = check.queries();
            let request = check.request(&queries, now);
            assert_eq!(check_fast(&index, &request), Some(true), "{user} on m1");
            let record = index
                .users
                .record(user)
                .unwrap_or_else(|| panic!("{user}'s record"));
            let who = user_of(record).unwrap_or_else(|| panic!("{user} is a user"));
            let mut fast = Fast::new(&index, who, &request);
            let found = record.bindings.on(node_hash(NodeView::Project("p1")));
            assert_eq!(found.len(), 1, "{user}");
            assert_eq!(
                found
                    .first()
                    .and_then(HashedBinding::plain_role_slot)
                    .is_some(),
                user == "plain"
            );
            assert!(
                fast.bindings::<PROJECT_IN_CHAIN>(found, NodeView::Project("p1")),
                "{user} on p1"
            );
            assert!(
                !fast.bindings::<PROJECT_IN_CHAIN>(found, NodeView::Project("p2")),
                "{user}'s binding on p1 offered for p2"
            );
        }
    }
}
