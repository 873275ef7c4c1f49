//! The decision engine: may a subject exercise a permission on a resource?
//!
//! The answer is allow only if one role entry reachable from the subject satisfies the check
//! (see `PRODUCT.md`, "Deciding"); the default is deny. A deny is a decision, never an error.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::condition::{CompiledCondition, ConditionInput};
use crate::grants::CompiledGrant;
use crate::index::{CompiledBinding, CompiledEntry, CompiledRole, Index, Revision};
use crate::model::{ApiKey, ApiKeyKind, Id, Node, NodeView, Properties, Scope, SubjectRef, User};
use crate::permission::Permission;

/// Resource type that names the platform itself.
pub const PLATFORM_TYPE: &str = "platform";

/// Who a check is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubjectQuery {
    /// A user, by id, email or external id.
    User(String),
    /// An API key by id: a user key stands for its user, a project key for itself.
    ApiKey(Id),
}

/// What a check is about.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceQuery {
    pub resource_type: String,
    pub id: String,
    /// Sent with the request; overlays the registered properties.
    pub properties: Properties,
}

/// One check.
#[derive(Clone, Debug)]
pub struct CheckRequest<'a> {
    /// The organization the check is made in; `None` only for a platform-level check.
    pub organization_id: Option<&'a str>,
    pub subject: &'a SubjectQuery,
    /// Sent with the request; overlays the subject's stored properties.
    pub subject_properties: Option<&'a Properties>,
    pub permission: &'a Permission,
    pub resource: &'a ResourceQuery,
    pub action_properties: Option<&'a Properties>,
    pub context: Option<&'a Value>,
    pub now: DateTime<Utc>,
    /// Build a reason for the decision.
    pub explain: bool,
}

/// A decision and the revision it was made at.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    pub revision: Revision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

/// Why a decision went the way it did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reason {
    /// One sentence.
    pub message: String,
    /// The grant that allowed, for an allow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granted_by: Option<GrantSource>,
    /// The nearest misses, for a deny.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub misses: Vec<Miss>,
}

/// What a decision rests on: a role entry reached through a binding (or the implicit `base`
/// role), or a resource grant.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GrantSource {
    /// `binding`, `base` or `resource_grant`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
    /// The resource grant, for `resource_grant`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<Id>,
    /// The grant's IRN or pattern.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub irn: Option<String>,
    /// `None` for the implicit `base` role.
    pub binding_id: Option<Id>,
    /// The subject the binding is to: the user, one of its groups or keys, or a project key.
    pub via: Option<SubjectRef>,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub permission: Permission,
    pub scope: Scope,
}

/// A grant that came close and why it did not satisfy the check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Miss {
    #[serde(flatten)]
    pub source: GrantSource,
    pub why: String,
}

/// The resolved subject of a check.
pub struct Subject<'i> {
    pub user: Option<&'i Arc<User>>,
    pub key: Option<&'i Arc<ApiKey>>,
    /// The subjects whose bindings count: the user, its groups and keys; or the project key.
    pub refs: Vec<SubjectRef>,
    /// Identities that can own a resource.
    pub identities: Vec<&'i str>,
    /// The spaces the subject counts as a member of, for TEAM scope.
    pub spaces: BTreeSet<&'i str>,
}

/// The resolved resource of a check.
#[derive(Clone, Debug)]
pub struct Target {
    pub resource_type: String,
    pub id: String,
    /// The resource and its ancestors, the resource first, the platform last.
    pub chain: Vec<Node>,
    pub organization_id: Option<Id>,
    pub space_id: Option<Id>,
    pub owner: Option<String>,
    pub properties: Properties,
}

/// Resolves a subject, or `None` when it is unknown or its key cannot be used at `now`.
pub fn resolve_subject<'i>(
    index: &'i Index,
    query: &SubjectQuery,
    now: DateTime<Utc>,
) -> Option<Subject<'i>> {
    match query {
        SubjectQuery::User(reference) => index
            .find_user(reference)
            .map(|u| user_subject(index, u, now)),
        SubjectQuery::ApiKey(id) => {
            let key = index.api_keys.get(id).filter(|k| k.is_usable(now))?;
            match key.kind {
                ApiKeyKind::User => index
                    .users
                    .get(&key.user_id)
                    .map(|u| user_subject(index, u, now)),
                ApiKeyKind::Project => {
                    let mut spaces = BTreeSet::new();
                    if let Some(project) = key.project_id.as_ref().and_then(|p| index.project(p)) {
                        spaces.insert(project.space_id.as_str());
                    }
                    Some(Subject {
                        user: None,
                        key: Some(key),
                        refs: vec![SubjectRef::ApiKey(key.id.clone())],
                        identities: vec![key.id.as_str()],
                        spaces,
                    })
                }
            }
        }
    }
}

fn user_subject<'i>(index: &'i Index, user: &'i Arc<User>, now: DateTime<Utc>) -> Subject<'i> {
    let mut refs = vec![SubjectRef::User(user.id.clone())];
    let mut identities: Vec<&str> = vec![user.id.as_str(), user.email.as_str()];
    identities.extend(user.external_ids.iter().map(String::as_str));
    if let Some(groups) = index.user_groups(&user.id) {
        refs.extend(groups.iter().map(|g| SubjectRef::Group(g.clone())));
    }
    if let Some(keys) = index.user_keys(&user.id) {
        for key_id in keys {
            if let Some(key) = index.api_keys.get(key_id) {
                if key.kind == ApiKeyKind::User && key.is_usable(now) {
                    refs.push(SubjectRef::ApiKey(key.id.clone()));
                    identities.push(key.id.as_str());
                }
            }
        }
    }
    let spaces = index
        .user_spaces(&user.id)
        .map(|s| s.iter().map(String::as_str).collect())
        .unwrap_or_default();
    Subject {
        user: Some(user),
        key: None,
        refs,
        identities,
        spaces,
    }
}

/// Resolves a resource inside the organization the check is made in. Organizations, spaces and
/// projects are themselves resources; a registered resource brings its project, owner and
/// properties; anything else sits directly in the organization. An object of another
/// organization is not found there, so it resolves like an unregistered resource.
pub fn resolve_target(
    index: &Index,
    organization_id: Option<&str>,
    query: &ResourceQuery,
) -> Target {
    let mut target = Target {
        resource_type: query.resource_type.clone(),
        id: query.id.clone(),
        chain: Vec::with_capacity(5),
        organization_id: organization_id.map(str::to_owned),
        space_id: None,
        owner: None,
        properties: Properties::new(),
    };
    let Some(org) = organization_id else {
        target.chain.push(Node::Platform);
        return target;
    };
    let in_org = |o: &str| o == org;
    let mut project_id: Option<Id> = None;
    match query.resource_type.as_str() {
        PLATFORM_TYPE => {
            target.chain.push(Node::Platform);
            target.organization_id = None;
            return target;
        }
        "organization" if query.id == org => {}
        "space"
            if index
                .spaces
                .get(&query.id)
                .is_some_and(|s| in_org(&s.organization_id)) =>
        {
            target.chain.push(Node::Space(query.id.clone()));
            target.space_id = Some(query.id.clone());
        }
        "project"
            if index
                .project(&query.id)
                .is_some_and(|p| in_org(&p.organization_id)) =>
        {
            project_id = Some(query.id.clone());
        }
        resource_type => {
            target.chain.push(Node::resource(
                org.to_owned(),
                resource_type.to_owned(),
                query.id.clone(),
            ));
            if let Some(registered) = index.resource(org, resource_type, &query.id) {
                project_id = registered.project_id.clone();
                target.owner = registered.owner_id.clone();
                target.properties = registered.properties.clone();
            } else {
                match resource_type {
                    "user" if index.is_member(org, &query.id) => {
                        target.owner = Some(query.id.clone())
                    }
                    "api_key" => {
                        if let Some(key) = index.api_keys.get(&query.id) {
                            // A user key is its user's; a project key belongs to its project.
                            if key.kind == ApiKeyKind::User {
                                target.owner = Some(key.user_id.clone());
                            }
                            project_id = key.project_id.clone();
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    if let Some(project) = project_id
        .as_ref()
        .and_then(|p| index.project(p))
        .filter(|p| in_org(&p.organization_id))
    {
        target.chain.push(Node::Project(project.id.clone()));
        target.chain.push(Node::Space(project.space_id.clone()));
        target.space_id = Some(project.space_id.clone());
    }
    target.chain.push(Node::Organization(org.to_owned()));
    target.chain.push(Node::Platform);
    for (k, v) in &query.properties {
        target.properties.insert(k.clone(), v.clone());
    }
    if target.owner.is_none() {
        if let Some(Value::String(owner)) = target.properties.get("owner_id") {
            target.owner = Some(owner.clone());
        }
    }
    target
}

/// Answers one check.
pub fn check(index: &Index, request: &CheckRequest<'_>) -> Decision {
    if !request.explain {
        if let Some(allowed) = crate::fast::check_fast(index, request) {
            return Decision {
                allowed,
                revision: index.revision,
                reason: None,
            };
        }
    }
    reference_check(index, request)
}

/// The reference evaluator: plain, allocating, and able to explain. The check path
/// ([`crate::fast`]) must agree with it on every decision; property tests hold them to it.
pub fn reference_check(index: &Index, request: &CheckRequest<'_>) -> Decision {
    let Some(subject) = resolve_subject(index, request.subject, request.now) else {
        return Decision {
            allowed: false,
            revision: index.revision,
            reason: request.explain.then(|| Reason {
                message: "the subject is unknown, or its key is revoked or expired".to_owned(),
                granted_by: None,
                misses: Vec::new(),
            }),
        };
    };
    let target = resolve_target(index, request.organization_id, request.resource);
    decide(index, &subject, &target, request)
}

/// The outcome of one role entry.
enum EntryOutcome {
    Granted,
    NotThisPermission,
    Missed(String),
}

struct Evaluation<'r, 'i> {
    index: &'i Index,
    subject: &'r Subject<'i>,
    target: &'r Target,
    request: &'r CheckRequest<'r>,
    /// Built on first use by a condition.
    condition_input: Option<[Value; 4]>,
}

impl Evaluation<'_, '_> {
    fn entry(
        &mut self,
        entry: &CompiledEntry,
        binding_condition: Option<&CompiledCondition>,
    ) -> EntryOutcome {
        if !entry.permission.covers(self.request.permission) {
            return EntryOutcome::NotThisPermission;
        }
        match entry.scope {
            Scope::All => {}
            Scope::Team => {
                let in_team = self
                    .target
                    .space_id
                    .as_deref()
                    .is_some_and(|s| self.subject.spaces.contains(s));
                if !in_team {
                    return EntryOutcome::Missed(match &self.target.space_id {
                        Some(space) => format!(
                            "scope TEAM: {} {} lies in space {space}, of which the subject is not a member",
                            self.target.resource_type, self.target.id
                        ),
                        None => format!(
                            "scope TEAM: {} {} lies in no space",
                            self.target.resource_type, self.target.id
                        ),
                    });
                }
            }
            Scope::Own => {
                let owned = self
                    .target
                    .owner
                    .as_deref()
                    .is_some_and(|o| self.subject.identities.contains(&o));
                if !owned {
                    return EntryOutcome::Missed(match &self.target.owner {
                        Some(owner) => format!(
                            "scope OWN: {} {}'s owner is {owner}",
                            self.target.resource_type, self.target.id
                        ),
                        None => format!(
                            "scope OWN: {} {} has no owner",
                            self.target.resource_type, self.target.id
                        ),
                    });
                }
            }
        }
        for condition in [binding_condition, entry.condition.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Err(why) = self.condition(condition) {
                return EntryOutcome::Missed(why);
            }
        }
        EntryOutcome::Granted
    }

    /// A resource grant that matched the resource's IRN: does it give the permission?
    fn grant(&mut self, grant: &CompiledGrant) -> EntryOutcome {
        if !grant.gives(self.request.permission.action()) {
            return EntryOutcome::NotThisPermission;
        }
        if !grant.grant.criteria.is_empty() {
            self.ensure_condition_input();
            let props = self
                .condition_input
                .as_ref()
                .map(|[subject, ..]| subject["properties"].clone())
                .unwrap_or(Value::Null);
            for (key, wanted) in &grant.grant.criteria {
                let name = key.strip_prefix('_').unwrap_or(key);
                if props.get(name) != Some(wanted) {
                    return EntryOutcome::Missed(format!(
                        "criteria: the subject's `{name}` is not {wanted}"
                    ));
                }
            }
        }
        if let Some(condition) = &grant.condition {
            if let Err(why) = self.condition(condition) {
                return EntryOutcome::Missed(why);
            }
        }
        EntryOutcome::Granted
    }

    fn ensure_condition_input(&mut self) {
        if self.condition_input.is_none() {
            self.condition_input = Some(self.build_condition_input());
        }
    }

    fn condition(&mut self, condition: &CompiledCondition) -> Result<(), String> {
        // Held apart from `self`, which building the input borrows.
        let compiled = condition.clone();
        let condition = match compiled.compiled() {
            Ok(c) => c,
            Err(e) => return Err(format!("the condition does not compile: {e}")),
        };
        self.ensure_condition_input();
        let Some([subject, resource, action, context]) = &self.condition_input else {
            return Err("no condition input".to_owned());
        };
        match condition.evaluate(&ConditionInput {
            subject,
            resource,
            action,
            context,
        }) {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!("condition `{}` is false", condition.source())),
            Err(why) => Err(format!("condition `{}` failed: {why}", condition.source())),
        }
    }

    fn build_condition_input(&self) -> [Value; 4] {
        let mut subject_props = Map::new();
        let (subject_type, subject_id) = match (self.subject.user, self.subject.key) {
            (Some(user), _) => {
                subject_props = user.properties.clone();
                subject_props.insert("email".to_owned(), Value::String(user.email.clone()));
                if let Some(name) = &user.name {
                    subject_props.insert("name".to_owned(), Value::String(name.clone()));
                }
                subject_props.insert("external_ids".to_owned(), json!(user.external_ids));
                ("user", user.id.clone())
            }
            (None, Some(key)) => ("api_key", key.id.clone()),
            (None, None) => ("user", String::new()),
        };
        if let Some(sent) = self.request.subject_properties {
            for (k, v) in sent {
                subject_props.insert(k.clone(), v.clone());
            }
        }
        let action_name = self.request.permission.action().to_owned();
        [
            json!({"type": subject_type, "id": subject_id, "properties": subject_props}),
            json!({"type": self.target.resource_type, "id": self.target.id, "properties": self.target.properties}),
            json!({"name": action_name, "properties": self.request.action_properties.cloned().unwrap_or_default()}),
            self.request.context.cloned().unwrap_or_else(|| json!({})),
        ]
    }
}

fn source(
    role: &CompiledRole,
    binding: Option<&CompiledBinding>,
    node: NodeView<'_>,
    entry: &CompiledEntry,
) -> GrantSource {
    GrantSource {
        kind: if binding.is_some() { "binding" } else { "base" },
        role_id: Some(role.role.id.clone()),
        role_name: Some(role.role.name.clone()),
        grant_id: None,
        irn: None,
        binding_id: binding.map(|b| b.id().to_owned()),
        via: binding.map(|b| b.subject().to_subject_ref()),
        resource_type: node.binding_type().to_string(),
        resource_id: node.api_id(),
        permission: entry.permission.clone(),
        scope: entry.scope,
    }
}

/// Decides for a resolved subject and target.
pub fn decide(
    index: &Index,
    subject: &Subject<'_>,
    target: &Target,
    request: &CheckRequest<'_>,
) -> Decision {
    let mut eval = Evaluation {
        index,
        subject,
        target,
        request,
        condition_input: None,
    };
    let mut misses: Vec<Miss> = Vec::new();
    let explain = request.explain;

    // The implicit base role, in the organization of the target, for its members.
    if let (Some(user), Some(org), Some(base)) = (
        subject.user,
        target.organization_id.as_deref(),
        index.base_role.as_ref(),
    ) {
        if index.is_member(org, &user.id) {
            let node = Node::Organization(org.to_owned());
            for entry in &base.entries {
                match eval.entry(entry, None) {
                    EntryOutcome::Granted => {
                        return allow(index, source(base, None, node.view(), entry), request)
                    }
                    EntryOutcome::Missed(why) if explain => misses.push(Miss {
                        source: source(base, None, node.view(), entry),
                        why,
                    }),
                    _ => {}
                }
            }
        }
    }

    for subject_ref in &subject.refs {
        for binding in index.subject_bindings(subject_ref) {
            // Another organization's binding can never apply here, and must not be shown.
            if binding
                .organization_id()
                .is_some_and(|o| Some(o) != target.organization_id.as_deref())
            {
                continue;
            }
            let Some(role) = eval.index.roles.get(binding.role_id()) else {
                continue;
            };
            let node = binding.node();
            let on_chain = target.chain.iter().any(|n| n.view() == node);
            if !on_chain || !binding.is_active(request.now) {
                if explain {
                    for entry in role
                        .entries
                        .iter()
                        .filter(|e| e.permission.covers(request.permission))
                    {
                        let why = if !on_chain {
                            format!(
                                "bound on {}, which does not contain {} {}",
                                node, target.resource_type, target.id
                            )
                        } else {
                            format!(
                                "the binding expired at {}",
                                binding
                                    .expires_at
                                    .map(|t| t.to_rfc3339())
                                    .unwrap_or_default()
                            )
                        };
                        misses.push(Miss {
                            source: source(role, Some(binding), node, entry),
                            why,
                        });
                    }
                }
                continue;
            }
            for entry in &role.entries {
                match eval.entry(entry, binding.condition.as_ref()) {
                    EntryOutcome::Granted => {
                        return allow(index, source(role, Some(binding), node, entry), request)
                    }
                    EntryOutcome::Missed(why) if explain => misses.push(Miss {
                        source: source(role, Some(binding), node, entry),
                        why,
                    }),
                    _ => {}
                }
            }
        }
    }

    // Resource grants to the user, its groups and its profiles whose pattern matches the
    // resource's IRN, in the organization of the check.
    let asked = request.permission;
    let same_type = asked.resource_type() == target.resource_type
        || asked.resource_type() == crate::permission::WILDCARD;
    if let (true, Some(org)) = (same_type, target.organization_id.as_deref()) {
        if let Some(service) = index.type_service(org, &target.resource_type) {
            for subject_ref in &subject.refs {
                let Some(patterns) = index.grants_by_subject.get(subject_ref) else {
                    continue;
                };
                let mut found: Vec<Arc<CompiledGrant>> = Vec::new();
                patterns.visit(service, &target.resource_type, &target.id, &mut |g| {
                    if g.grant.organization_id == org {
                        found.push(g.clone());
                    }
                });
                for grant in found {
                    let grant_source = || GrantSource {
                        kind: "resource_grant",
                        role_id: None,
                        role_name: None,
                        grant_id: Some(grant.grant.id.clone()),
                        irn: Some(grant.grant.irn.clone()),
                        binding_id: None,
                        via: Some(subject_ref.clone()),
                        resource_type: "RESOURCE".to_owned(),
                        resource_id: Some(grant.grant.irn.clone()),
                        permission: asked.clone(),
                        scope: Scope::All,
                    };
                    match eval.grant(&grant) {
                        EntryOutcome::Granted => return allow(index, grant_source(), request),
                        EntryOutcome::Missed(why) if explain => misses.push(Miss {
                            source: grant_source(),
                            why,
                        }),
                        _ => {}
                    }
                }
            }
        }
    }

    Decision {
        allowed: false,
        revision: index.revision,
        reason: explain.then(|| Reason {
            message: if misses.is_empty() {
                format!(
                    "no role grants `{}` on {} {}",
                    request.permission, target.resource_type, target.id
                )
            } else {
                let first = &misses[0];
                match (&first.source.role_name, &first.source.irn) {
                    (Some(role), _) => format!(
                        "role `{role}` grants `{}` with scope {} but {}",
                        first.source.permission, first.source.scope, first.why
                    ),
                    (None, irn) => format!(
                        "a grant on `{}` gives `{}` but {}",
                        irn.as_deref().unwrap_or_default(),
                        first.source.permission,
                        first.why
                    ),
                }
            },
            granted_by: None,
            misses,
        }),
    }
}

fn allow(index: &Index, granted_by: GrantSource, request: &CheckRequest<'_>) -> Decision {
    Decision {
        allowed: true,
        revision: index.revision,
        reason: request.explain.then(|| Reason {
            message: match &granted_by.role_name {
                Some(role) => format!(
                    "role `{role}` grants `{}` with scope {} on {}",
                    granted_by.permission,
                    granted_by.scope,
                    match &granted_by.resource_id {
                        Some(id) => format!("{} {id}", granted_by.resource_type.to_lowercase()),
                        None => "the platform".to_owned(),
                    }
                ),
                None => format!(
                    "grant `{}` gives `{}` on `{}`",
                    granted_by.grant_id.as_deref().unwrap_or_default(),
                    granted_by.permission,
                    granted_by.irn.as_deref().unwrap_or_default()
                ),
            },
            granted_by: Some(granted_by),
            misses: Vec::new(),
        }),
    }
}

/// One entry of a subject's effective permissions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EffectiveGrant {
    #[serde(flatten)]
    pub source: GrantSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Every active role entry reachable from a subject in an organization (platform bindings
/// included), with where it is bound.
pub fn effective_grants(
    index: &Index,
    subject: &Subject<'_>,
    organization_id: Option<&str>,
    now: DateTime<Utc>,
) -> Vec<EffectiveGrant> {
    let mut out = Vec::new();
    if let (Some(user), Some(org), Some(base)) =
        (subject.user, organization_id, index.base_role.as_ref())
    {
        if index.is_member(org, &user.id) {
            let node = Node::Organization(org.to_owned());
            for entry in &base.entries {
                out.push(EffectiveGrant {
                    source: source(base, None, node.view(), entry),
                    condition: entry
                        .condition
                        .as_ref()
                        .and_then(|c| c.compiled().ok())
                        .map(|c| c.source().to_owned()),
                    expires_at: None,
                });
            }
        }
    }
    for subject_ref in &subject.refs {
        for b in index.subject_bindings(subject_ref) {
            let relevant = b.organization_id().is_none() || b.organization_id() == organization_id;
            if !relevant || !b.is_active(now) {
                continue;
            }
            let Some(role) = index.roles.get(b.role_id()) else {
                continue;
            };
            for entry in &role.entries {
                out.push(EffectiveGrant {
                    source: source(role, Some(b), b.node(), entry),
                    condition: entry
                        .condition
                        .as_ref()
                        .and_then(|c| c.compiled().ok())
                        .map(|c| c.source().to_owned())
                        .or_else(|| b.condition_source().map(str::to_owned)),
                    expires_at: b.expires_at,
                });
            }
        }
    }
    out
}
