//! The check path: the same decision as the reference evaluator in [`crate::engine`], made
//! without allocating. It looks up only the bindings on the resource's ancestors (each
//! subject's bindings searched by keys sorted by the number of their node), finds a role's entries
//! for the permission by hash, and resolves the subject and the resource to borrowed views.
//! Whatever it does not handle itself (conditions, grant criteria) it leaves to the reference
//! evaluator by answering `None`.

use std::cell::Cell;

use chrono::{DateTime, Utc};

use crate::cowmap::{hash_key, same_id};
use crate::engine::{CheckRequest, SubjectQuery, PLATFORM_TYPE};
use crate::index::{
    node_kind, AskedPermission, CompiledBinding, CompiledEntry, CompiledRole, Index, NodeBindings,
    NumberedBinding, ProjectRecord, UserRecord, PLATFORM_NUMBER, UNNUMBERED,
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
    /// The resource's project, with the numbers of its chain's nodes.
    project: Option<&'a ProjectRecord>,
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
            is_resource: false,
            owner: None,
        };
        let Some(org) = org else { return view };
        // A project of the organization.
        let project_in = |id: &str| {
            let record = index
                .projects
                .find_hashed(hash_key(id), |p| same_id(p, id))?;
            same_id(&record.project.organization_id, org).then_some(record)
        };
        // A checked project is looked up once: to choose the arm below, and as the ancestor.
        let mut project = (query.resource_type == "project")
            .then(|| project_in(&query.id))
            .flatten();
        // The project of a key checked as a resource.
        let mut key_project: Option<&'a str> = None;
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
                    // Its project by the slot of its id, which holds that id's project while
                    // the resource names it; of the organization only.
                    project = (r.project_slot)
                        .and_then(|slot| index.project_slots.get(slot))
                        .filter(|record| same_id(&record.project.organization_id, org));
                    debug_assert!(project.is_none_or(|record| {
                        r.resource.project_id.as_deref() == Some(record.project.id.as_str())
                    }));
                    view.owner = r.resource.owner_id.as_deref();
                } else if resource_type == "user" && index.is_member(org, &query.id) {
                    view.owner = Some(&query.id);
                } else if resource_type == "api_key" {
                    if let Some(key) = index.api_keys.get(&query.id) {
                        // A user key is its user's; a project key belongs to its project.
                        if key.kind == ApiKeyKind::User {
                            view.owner = Some(&key.user_id);
                        }
                        key_project = key.project_id.as_deref();
                    }
                }
            }
        }
        if project.is_none() {
            project = key_project.and_then(project_in);
        }
        if let Some(record) = project {
            view.project = Some(record);
            view.space = Some(&record.project.space_id);
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
    /// The numbers of the nodes of [`TargetView::chain`] ([`crate::index::NodeNumbers`]), each
    /// looked up when a subject first holds bindings on its kind (the platform's is known, and
    /// a project keeps its chain's); [`ABSENT`] for a node nothing numbers. Bit `i` of
    /// `numbered` says `numbers[i]` is known.
    numbers: [u32; CHAIN],
    numbered: u8,
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
            // A project keeps its chain's numbers (each in its organization, which is the
            // resource's: `TargetView::resolve` takes no project of another).
            numbers: {
                let mut numbers = [ABSENT; CHAIN];
                numbers[PLATFORM_IN_CHAIN] = PLATFORM_NUMBER;
                if let Some(record) = target.project {
                    numbers[PROJECT_IN_CHAIN] = record.number;
                    numbers[SPACE_IN_CHAIN] = record.space_number;
                    numbers[ORGANIZATION_IN_CHAIN] = record.organization_number;
                }
                numbers
            },
            numbered: (1 << PLATFORM_IN_CHAIN)
                | if target.project.is_some() {
                    (1 << PROJECT_IN_CHAIN) | (1 << SPACE_IN_CHAIN) | (1 << ORGANIZATION_IN_CHAIN)
                } else {
                    0
                },
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
                .and_then(|p| self.index.project(p))
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

    /// The bindings of `list`, all on one node of the chain: true when one allows. They were
    /// found by the node's number, which names that node in the resource's organization and no
    /// other ([`crate::index::NodeNumbers`]), so none is read to confirm where it is.
    fn bindings<'l>(&mut self, list: impl IntoIterator<Item = NumberedBinding<'l>>) -> bool {
        for entry in list {
            // A plain binding's role alone decides, by the slot kept beside it: the binding is
            // never read. (A slot holds its id's role while a binding names the id, so the
            // role is the binding's.)
            if let Some(slot) = entry.plain_role_slot() {
                if let Some(role) = self.index.role_slots.get(slot) {
                    debug_assert!(same_id(&role.role.id, entry.binding().role_id()));
                    if self.role(role, None) {
                        return true;
                    }
                }
                continue;
            }
            let b = entry.binding();
            if !b.is_active(self.now) {
                continue;
            }
            // The id compared too, as the binding is read anyway.
            let role = (self.index.role_slots.get(b.role_slot))
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
        if kinds & UNNUMBERED != 0 {
            // A binding on a number this path does not look for may allow: the reference
            // decides unless another allows.
            self.unsupported.set(true);
        }
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
        if self.numbered & (1 << I) == 0 {
            // Not the platform (known from the start): a node of the resource's organization.
            self.numbers[I] = match (self.target.chain(I), self.target.organization) {
                (Some(node), Some(org)) => self.index.node_numbers.number(Some(org), node),
                _ => None,
            }
            .unwrap_or(ABSENT);
            self.numbered |= 1 << I;
        }
        // A node nothing numbers has no binding on it. (Nor has a node numbered `ABSENT`, past
        // the numbers there are: a binding there is marked `UNNUMBERED`.)
        let number = self.numbers[I];
        number != ABSENT && self.bindings(nb.walk_on(number))
    }
}

/// The number of a node of the chain that nothing numbers, or that has none of its own
/// ([`NodeNumbers::PAST_THE_LAST`](crate::index::NodeNumbers::PAST_THE_LAST)).
const ABSENT: u32 = crate::index::NodeNumbers::PAST_THE_LAST;

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
            PROJECT_IN_CHAIN => org
                .and(self.project)
                .map(|record| NodeView::Project(&record.project.id)),
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
    use crate::workload::{generate, ORG};

    /// The user `u`, a member of `organization`.
    fn member(organization: &str, now: DateTime<Utc>) -> [Op; 2] {
        [
            Op::Put {
                object: Object::User(User {
                    id: "u".to_owned(),
                    email: "u@x.test".to_owned(),
                    name: None,
                    external_ids: Vec::new(),
                    properties: Default::default(),
                    created_at: now,
                    updated_at: now,
                }),
            },
            Op::Put {
                object: Object::Membership(Membership {
                    organization_id: organization.to_owned(),
                    user_id: "u".to_owned(),
                    status: MembershipStatus::Active,
                    created_at: now,
                }),
            },
        ]
    }

    /// `u`'s binding of role r0 on project p1, made in `organization`.
    fn binding_on_p1(id: &str, organization: Option<&str>, now: DateTime<Utc>) -> Op {
        Op::Put {
            object: Object::RoleBinding(RoleBinding {
                id: id.to_owned(),
                role_id: "r0".to_owned(),
                subject: SubjectRef::User("u".to_owned()),
                node: Node::Project("p1".to_owned()),
                organization_id: organization.map(str::to_owned),
                condition: None,
                expires_at: None,
                created_at: now,
                updated_at: now,
            }),
        }
    }

    /// The fast path's answer and the reference evaluator's.
    fn both(index: &Index, request: &CheckRequest<'_>) -> (Option<bool>, bool) {
        let reference = crate::engine::check(
            index,
            &CheckRequest {
                explain: true,
                ..*request
            },
        );
        (check_fast(index, request), reference.allowed)
    }

    /// A binding is found by the number of its node in its own organization. A project deleted
    /// and made again in another organization is another node there: a binding made on it in
    /// the first allows nothing in the second, as in the reference. A binding of no
    /// organization on a project (the API makes none; the store is not trusted) is on no
    /// number the check path looks for, so the reference decides what it would deny.
    #[test]
    fn a_binding_allows_only_on_its_node_in_its_organization() {
        let workload = generate(0, 0, 7);
        let now = Utc::now();
        let mut ops = workload.ops();
        ops.extend(member(ORG, now));
        ops.push(binding_on_p1("b-org", Some(ORG), now));
        let catalog = Arc::new(Catalog::builtin().unwrap_or_else(|e| panic!("{e}")));
        let mut index = Index::new(catalog);
        index.apply(1, &ops);
        let permission = workload.role_permissions[0][0].clone();
        let subject = SubjectQuery::User("u".to_owned());
        let model = |id: &str| crate::engine::ResourceQuery {
            resource_type: "model".to_owned(),
            id: id.to_owned(),
            properties: Default::default(),
        };
        let request = |organization, resource| CheckRequest {
            organization_id: Some(organization),
            subject: &subject,
            subject_properties: None,
            permission: &permission,
            resource,
            action_properties: None,
            context: None,
            now,
            explain: false,
        };
        let (m1, m_other) = (model("m1"), model("m-other"));
        assert_eq!(both(&index, &request(ORG, &m1)), (Some(true), true));

        // p1 goes, and comes back in another organization, with a model of its own there.
        let other = "other-org";
        let mut moved = vec![
            Op::Delete {
                key: crate::model::ObjectKey {
                    kind: crate::model::ObjectKind::Project,
                    id: "p1".to_owned(),
                },
            },
            Op::Put {
                object: Object::Organization(crate::model::Organization {
                    id: other.to_owned(),
                    name: other.to_owned(),
                    created_at: now,
                    updated_at: now,
                }),
            },
            Op::Put {
                object: Object::Space(crate::model::Space {
                    id: "s-other".to_owned(),
                    organization_id: other.to_owned(),
                    name: "s-other".to_owned(),
                    description: String::new(),
                    created_at: now,
                    updated_at: now,
                }),
            },
            Op::Put {
                object: Object::Project(crate::model::Project {
                    id: "p1".to_owned(),
                    organization_id: other.to_owned(),
                    space_id: "s-other".to_owned(),
                    name: "p1".to_owned(),
                    description: String::new(),
                    created_at: now,
                    updated_at: now,
                }),
            },
            Op::Put {
                object: Object::Resource(Resource {
                    organization_id: other.to_owned(),
                    resource_type: "model".to_owned(),
                    id: "m-other".to_owned(),
                    project_id: Some("p1".to_owned()),
                    owner_id: None,
                    properties: Default::default(),
                    created_at: now,
                    updated_at: now,
                }),
            },
        ];
        moved.extend(member(other, now).into_iter().skip(1));
        index.apply(2, &moved);
        assert_eq!(
            both(&index, &request(other, &m_other)),
            (Some(false), false)
        );
        assert_eq!(
            both(&index, &request(ORG, &m1)),
            (Some(false), false),
            "m1's project is no longer its organization's"
        );
        let numbers = &index.node_numbers;
        let (p1_in_org, p1_in_other) = (
            numbers.number(Some(ORG), NodeView::Project("p1")),
            numbers.number(Some(other), NodeView::Project("p1")),
        );
        assert!(p1_in_org.is_some() && p1_in_other.is_some() && p1_in_org != p1_in_other);

        // A binding of no organization on p1: the reference applies it wherever p1 is.
        index.apply(3, &[binding_on_p1("b-none", None, now)]);
        assert_eq!(both(&index, &request(other, &m_other)), (None, true));
        assert!(crate::engine::check(&index, &request(other, &m_other)).allowed);
    }
}
