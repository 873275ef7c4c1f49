//! The declarative bundle: organizations, users, groups, roles, keys, bindings and resources in one
//! YAML or JSON document. `arbiter import` applies one idempotently (objects are put by id, so a
//! second import changes nothing), `arbiter export` writes one, and every conformance case starts
//! from one.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, EntryFile, ResourceType, PREDEFINED_ROLE_PREFIX};
use crate::condition::Condition;
use crate::error::CoreError;
use crate::grants::map_actions;
use crate::irn::{IrnPattern, Segment};
use crate::model::{
    ApiKey, ApiKeyKind, DeclaredType, GrantSubject, Group, GroupKind, GroupMember, Membership,
    MembershipStatus, Node, Object, Organization, Project, Properties, Resource, ResourceGrant,
    Role, RoleBinding, RoleEntry, RoleKind, Space, SpaceMember, SubjectRef, User,
};

/// A whole bundle.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<BundleOrganization>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<BundleUser>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<BundleGroup>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<BundleRole>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<BundleApiKey>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<BundleBinding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<BundleResource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_types: Vec<BundleResourceType>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<BundleGrant>,
}

/// A type an organization declares, or actions it adds to a built-in type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleResourceType {
    pub organization: String,
    pub name: String,
    /// Ignored for a built-in type, which keeps its service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub actions: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A resource grant: actions on an IRN or IRN pattern to a user, group or permission profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleGrant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub organization: String,
    pub irn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A user group or a permission profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub actions: Vec<String>,
    #[serde(default, skip_serializing_if = "Properties::is_empty")]
    pub criteria: Properties,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleOrganization {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spaces: Vec<BundleSpace>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleSpace {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// User ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<BundleProject>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleProject {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleUser {
    pub id: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Properties::is_empty")]
    pub properties: Properties,
    /// Organization ids the user is a member of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleGroup {
    pub id: String,
    pub organization: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default = "default_group_kind")]
    pub kind: GroupKind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

fn default_group_kind() -> GroupKind {
    GroupKind::Group
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleRole {
    pub id: String,
    pub organization: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub kind: RoleKind,
    pub permissions: Vec<EntryFile>,
}

impl PartialEq for BundleRole {
    fn eq(&self, other: &Self) -> bool {
        serde_json::to_value(self).ok() == serde_json::to_value(other).ok()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleApiKey {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub kind: ApiKeyKind,
    /// The user a user key acts as; the creator of a project key.
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// The secret in clear, for test bundles; hashed on import and never exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Hex SHA-256 of the secret, as exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleBinding {
    /// Optional: derived from the binding's content when absent, so re-importing is idempotent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A role id, or the name of a predefined role.
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// PLATFORM, ORGANIZATION, SPACE, PROJECT or RESOURCE.
    pub resource_type: crate::model::BindingResourceType,
    /// The organization, space or project id; `type:id` for a resource; absent for the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// The organization of a RESOURCE binding (others know theirs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleResource {
    pub organization: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Properties::is_empty")]
    pub properties: Properties,
}

/// Hex SHA-256 of an API key secret: the only form in which a secret is kept.
pub fn hash_secret(secret: &str) -> String {
    // Kept apart from `hash_secret_into`, so that a failure there could never make a stored hash
    // equal what a lookup computes for every secret.
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// As [`hash_secret`], written into `out`: every authenticated request hashes its key, and
/// looks the hash up without allocating it.
pub fn hash_secret_into<'a>(secret: &str, out: &'a mut [u8; 64]) -> &'a str {
    // 32 bytes are always 64 hex digits: the encoding cannot fail, nor the digits be invalid
    // (were it to fail, `out` would stay zeros, which no stored hash is).
    let _ = hex::encode_to_slice(Sha256::digest(secret.as_bytes()), out);
    std::str::from_utf8(out).unwrap_or_default()
}

fn bad(message: String) -> CoreError {
    CoreError::InvalidBundle(message)
}

/// Resolves what a bundle refers to beyond itself: objects already in the store.
pub trait Existing {
    fn has_organization(&self, id: &str) -> bool;
    fn has_user(&self, id: &str) -> bool;
    fn space_organization(&self, id: &str) -> Option<String>;
    fn project_organization(&self, id: &str) -> Option<String>;
    fn group_organization(&self, id: &str) -> Option<String>;
    fn key_organization(&self, id: &str) -> Option<Option<String>>;
    fn role_organization(&self, id: &str) -> Option<Option<String>>;
    /// The types an organization declared already.
    fn declared_types(&self, _organization: &str) -> BTreeMap<String, ResourceType> {
        BTreeMap::new()
    }
}

/// Nothing exists beyond the bundle.
pub struct Nothing;

impl Existing for Nothing {
    fn has_organization(&self, _: &str) -> bool {
        false
    }
    fn has_user(&self, _: &str) -> bool {
        false
    }
    fn space_organization(&self, _: &str) -> Option<String> {
        None
    }
    fn project_organization(&self, _: &str) -> Option<String> {
        None
    }
    fn group_organization(&self, _: &str) -> Option<String> {
        None
    }
    fn key_organization(&self, _: &str) -> Option<Option<String>> {
        None
    }
    fn role_organization(&self, _: &str) -> Option<Option<String>> {
        None
    }
}

impl Existing for crate::index::Index {
    fn has_organization(&self, id: &str) -> bool {
        self.organizations.contains_key(id)
    }
    fn has_user(&self, id: &str) -> bool {
        self.users.contains_key(id)
    }
    fn space_organization(&self, id: &str) -> Option<String> {
        self.spaces.get(id).map(|s| s.organization_id.clone())
    }
    fn project_organization(&self, id: &str) -> Option<String> {
        self.project(id).map(|p| p.organization_id.clone())
    }
    fn group_organization(&self, id: &str) -> Option<String> {
        self.groups.get(id).map(|g| g.organization_id.clone())
    }
    fn key_organization(&self, id: &str) -> Option<Option<String>> {
        self.api_keys.get(id).map(|k| k.organization_id.clone())
    }
    fn role_organization(&self, id: &str) -> Option<Option<String>> {
        self.roles.get(id).map(|r| r.role.organization_id.clone())
    }
    fn declared_types(&self, organization: &str) -> BTreeMap<String, ResourceType> {
        self.organization_types(organization).clone()
    }
}

impl Bundle {
    /// Parses YAML (JSON is YAML too).
    pub fn from_text(text: &str) -> Result<Self, CoreError> {
        serde_yaml::from_str(text).map_err(|e| bad(e.to_string()))
    }

    /// Turns the bundle into the objects to put, validating every reference and permission.
    /// References may point into the bundle or at objects that `existing` knows.
    pub fn to_objects(
        &self,
        catalog: &Catalog,
        existing: &dyn Existing,
        now: DateTime<Utc>,
    ) -> Result<Vec<Object>, CoreError> {
        let mut out = Vec::new();
        let mut orgs = HashSet::new();
        let mut users = HashSet::new();
        let mut spaces: BTreeMap<&str, &str> = BTreeMap::new();
        let mut projects: BTreeMap<&str, &str> = BTreeMap::new();
        let mut groups: BTreeMap<&str, &str> = BTreeMap::new();
        let mut keys: BTreeMap<&str, Option<&str>> = BTreeMap::new();
        let mut roles: BTreeMap<&str, &str> = BTreeMap::new();
        let has_org =
            |orgs: &HashSet<&str>, id: &str| orgs.contains(id) || existing.has_organization(id);

        for o in &self.organizations {
            orgs.insert(o.id.as_str());
            out.push(Object::Organization(Organization {
                id: o.id.clone(),
                name: o.name.clone().unwrap_or_else(|| o.id.clone()),
                created_at: now,
                updated_at: now,
            }));
        }
        for u in &self.users {
            users.insert(u.id.as_str());
            out.push(Object::User(User {
                id: u.id.clone(),
                email: u.email.clone(),
                name: u.name.clone(),
                external_ids: u.external_ids.clone(),
                properties: u.properties.clone(),
                created_at: now,
                updated_at: now,
            }));
            for org in &u.organizations {
                if !has_org(&orgs, org) {
                    return Err(bad(format!(
                        "user `{}` is a member of unknown organization `{org}`",
                        u.id
                    )));
                }
                out.push(Object::Membership(Membership {
                    organization_id: org.clone(),
                    user_id: u.id.clone(),
                    status: MembershipStatus::Active,
                    created_at: now,
                }));
            }
        }
        let has_user =
            |users: &HashSet<&str>, id: &str| users.contains(id) || existing.has_user(id);
        for o in &self.organizations {
            for s in &o.spaces {
                spaces.insert(&s.id, &o.id);
                out.push(Object::Space(Space {
                    id: s.id.clone(),
                    organization_id: o.id.clone(),
                    name: s.name.clone().unwrap_or_else(|| s.id.clone()),
                    description: s.description.clone(),
                    created_at: now,
                    updated_at: now,
                }));
                for m in &s.members {
                    if !has_user(&users, m) {
                        return Err(bad(format!("space `{}` lists unknown member `{m}`", s.id)));
                    }
                    out.push(Object::SpaceMember(SpaceMember {
                        space_id: s.id.clone(),
                        user_id: m.clone(),
                        organization_id: o.id.clone(),
                        created_at: now,
                    }));
                }
                for p in &s.projects {
                    projects.insert(&p.id, &o.id);
                    out.push(Object::Project(Project {
                        id: p.id.clone(),
                        organization_id: o.id.clone(),
                        space_id: s.id.clone(),
                        name: p.name.clone().unwrap_or_else(|| p.id.clone()),
                        description: p.description.clone(),
                        created_at: now,
                        updated_at: now,
                    }));
                }
            }
        }
        for g in &self.groups {
            if !has_org(&orgs, &g.organization) {
                return Err(bad(format!(
                    "group `{}` names unknown organization `{}`",
                    g.id, g.organization
                )));
            }
            groups.insert(&g.id, &g.organization);
            out.push(Object::Group(Group {
                id: g.id.clone(),
                organization_id: g.organization.clone(),
                kind: g.kind,
                name: g.name.clone().unwrap_or_else(|| g.id.clone()),
                description: String::new(),
                created_at: now,
                updated_at: now,
            }));
            for m in &g.members {
                if !has_user(&users, m) {
                    return Err(bad(format!("group `{}` lists unknown member `{m}`", g.id)));
                }
                out.push(Object::GroupMember(GroupMember {
                    group_id: g.id.clone(),
                    user_id: m.clone(),
                    organization_id: g.organization.clone(),
                    created_at: now,
                }));
            }
        }
        let mut declared: BTreeMap<String, BTreeMap<String, ResourceType>> = BTreeMap::new();
        for t in &self.resource_types {
            if !has_org(&orgs, &t.organization) {
                return Err(bad(format!(
                    "type `{}` names unknown organization `{}`",
                    t.name, t.organization
                )));
            }
            let service = catalog
                .resource_type(&t.name)
                .map(|b| b.service.clone())
                .or_else(|| t.service.clone())
                .ok_or_else(|| bad(format!("type `{}` needs a service", t.name)))?;
            crate::permission::Permission::parse(&format!("{}:read", t.name))?;
            for a in &t.actions {
                crate::permission::Permission::parse(&format!("{}:{a}", t.name))?;
            }
            let types = declared
                .entry(t.organization.clone())
                .or_insert_with(|| existing.declared_types(&t.organization));
            let entry = types.entry(t.name.clone()).or_insert_with(|| ResourceType {
                name: t.name.clone(),
                service: service.clone(),
                description: t.description.clone(),
                actions: Default::default(),
                organization_id: Some(t.organization.clone()),
            });
            entry.actions.extend(t.actions.iter().cloned());
            out.push(Object::DeclaredType(DeclaredType {
                organization_id: t.organization.clone(),
                name: t.name.clone(),
                service,
                actions: t.actions.clone(),
                description: t.description.clone(),
                created_at: now,
                updated_at: now,
            }));
        }
        let types_of = |org: &str| {
            declared
                .get(org)
                .cloned()
                .unwrap_or_else(|| existing.declared_types(org))
        };
        for r in &self.roles {
            if !has_org(&orgs, &r.organization) {
                return Err(bad(format!(
                    "role `{}` names unknown organization `{}`",
                    r.id, r.organization
                )));
            }
            if r.id.starts_with(PREDEFINED_ROLE_PREFIX)
                || catalog
                    .predefined_role_by_name(r.name.as_deref().unwrap_or(&r.id))
                    .is_some()
            {
                return Err(bad(format!(
                    "role `{}` takes the id or name of a predefined role",
                    r.id
                )));
            }
            if r.permissions.is_empty() {
                return Err(bad(format!("role `{}` has no permission", r.id)));
            }
            let entries: Vec<RoleEntry> =
                r.permissions.iter().cloned().map(RoleEntry::from).collect();
            let org_types = types_of(&r.organization);
            for e in &entries {
                catalog.validate_with(&e.permission, &org_types)?;
                if let Some(c) = &e.condition {
                    Condition::compile(c)?;
                }
            }
            roles.insert(&r.id, &r.organization);
            out.push(Object::Role(Role {
                id: r.id.clone(),
                organization_id: Some(r.organization.clone()),
                name: r.name.clone().unwrap_or_else(|| r.id.clone()),
                description: r.description.clone(),
                kind: r.kind,
                permissions: entries,
                is_predefined: false,
                created_at: now,
                updated_at: now,
            }));
        }
        for k in &self.api_keys {
            if !has_user(&users, &k.user) {
                return Err(bad(format!(
                    "key `{}` names unknown user `{}`",
                    k.id, k.user
                )));
            }
            let organization = match (&k.project, &k.organization) {
                (Some(p), _) => Some(
                    projects
                        .get(p.as_str())
                        .map(|o| (*o).to_owned())
                        .or_else(|| existing.project_organization(p))
                        .ok_or_else(|| {
                            bad(format!("key `{}` names unknown project `{p}`", k.id))
                        })?,
                ),
                (None, org) => org.clone(),
            };
            if k.kind == ApiKeyKind::Project && k.project.is_none() {
                return Err(bad(format!("project key `{}` names no project", k.id)));
            }
            let secret_hash = match (&k.secret, &k.secret_hash) {
                (Some(secret), _) => hash_secret(secret),
                (None, Some(hash)) => hash.clone(),
                (None, None) => {
                    return Err(bad(format!(
                        "key `{}` has neither `secret` nor `secret_hash`",
                        k.id
                    )))
                }
            };
            keys.insert(&k.id, None);
            out.push(Object::ApiKey(ApiKey {
                id: k.id.clone(),
                name: k.name.clone().unwrap_or_else(|| k.id.clone()),
                kind: k.kind,
                user_id: k.user.clone(),
                project_id: k.project.clone(),
                organization_id: organization,
                display_prefix: k
                    .secret
                    .as_deref()
                    .map(|s| s.chars().take(8).collect())
                    .unwrap_or_else(|| "imported".to_owned()),
                secret_hash,
                expires_at: k.expires_at,
                revoked_at: k.revoked_at,
                created_at: now,
                updated_at: now,
            }));
        }
        for r in &self.resources {
            if !has_org(&orgs, &r.organization) {
                return Err(bad(format!(
                    "resource `{}` names unknown organization `{}`",
                    r.id, r.organization
                )));
            }
            if let Some(p) = &r.project {
                let org = projects
                    .get(p.as_str())
                    .map(|o| (*o).to_owned())
                    .or_else(|| existing.project_organization(p));
                if org.as_deref() != Some(r.organization.as_str()) {
                    return Err(bad(format!(
                        "resource `{}` names project `{p}` outside its organization",
                        r.id
                    )));
                }
            }
            out.push(Object::Resource(Resource {
                organization_id: r.organization.clone(),
                resource_type: r.resource_type.clone(),
                id: r.id.clone(),
                project_id: r.project.clone(),
                owner_id: r.owner.clone(),
                properties: r.properties.clone(),
                created_at: now,
                updated_at: now,
            }));
        }
        for g in &self.grants {
            if !has_org(&orgs, &g.organization) {
                return Err(bad(format!(
                    "grant on `{}` names unknown organization `{}`",
                    g.irn, g.organization
                )));
            }
            let pattern = IrnPattern::parse(&g.irn)?;
            let subject = match (&g.user, &g.group) {
                (Some(u), None) if has_user(&users, u) => GrantSubject::User(u.clone()),
                (None, Some(id))
                    if groups.contains_key(id.as_str())
                        || existing.group_organization(id).is_some() =>
                {
                    GrantSubject::Group(id.clone())
                }
                _ => {
                    return Err(bad(format!(
                        "grant on `{}` needs one known user or group",
                        g.irn
                    )))
                }
            };
            let org_types = types_of(&g.organization);
            let type_actions = match pattern.resource_type() {
                Segment::Exact(t) => {
                    let builtin = catalog.resource_type(t).map(|x| x.actions.clone());
                    let declared = org_types.get(t).map(|x| x.actions.clone());
                    match (builtin, declared) {
                        (None, None) => {
                            return Err(bad(format!(
                                "grant on `{}`: unknown resource type `{t}`",
                                g.irn
                            )))
                        }
                        (a, b) => Some(a.into_iter().chain(b).flatten().collect()),
                    }
                }
                _ => None,
            };
            let actions = map_actions(type_actions.as_ref(), &g.actions)
                .map_err(|e| bad(format!("grant on `{}`: {e}", g.irn)))?;
            if let Some(c) = &g.condition {
                Condition::compile(c)?;
            }
            let id = g.id.clone().unwrap_or_else(|| {
                format!(
                    "grant_{}",
                    &hash_secret(&format!("{}|{}|{subject:?}", g.organization, g.irn))[..20]
                )
            });
            out.push(Object::ResourceGrant(ResourceGrant {
                id,
                organization_id: g.organization.clone(),
                irn: g.irn.clone(),
                subject,
                actions,
                criteria: g.criteria.clone(),
                condition: g.condition.clone(),
                created_at: now,
                updated_at: now,
            }));
        }
        for b in &self.bindings {
            out.push(Object::RoleBinding(self.binding(
                b, catalog, existing, &orgs, &users, &spaces, &projects, &groups, &keys, &roles,
                now,
            )?));
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn binding(
        &self,
        b: &BundleBinding,
        catalog: &Catalog,
        existing: &dyn Existing,
        orgs: &HashSet<&str>,
        users: &HashSet<&str>,
        spaces: &BTreeMap<&str, &str>,
        projects: &BTreeMap<&str, &str>,
        groups: &BTreeMap<&str, &str>,
        keys: &BTreeMap<&str, Option<&str>>,
        roles: &BTreeMap<&str, &str>,
        now: DateTime<Utc>,
    ) -> Result<RoleBinding, CoreError> {
        use crate::model::BindingResourceType as T;
        let role_id = if let Some(r) = catalog.predefined_role_by_name(&b.role) {
            r.id.clone()
        } else if roles.contains_key(b.role.as_str())
            || existing.role_organization(&b.role).is_some()
            || catalog.predefined_roles().iter().any(|r| r.id == b.role)
        {
            b.role.clone()
        } else {
            return Err(bad(format!("binding names unknown role `{}`", b.role)));
        };
        let subject = match (&b.user, &b.group, &b.api_key) {
            (Some(u), None, None) => {
                if !users.contains(u.as_str()) && !existing.has_user(u) {
                    return Err(bad(format!("binding names unknown user `{u}`")));
                }
                SubjectRef::User(u.clone())
            }
            (None, Some(g), None) => {
                if !groups.contains_key(g.as_str()) && existing.group_organization(g).is_none() {
                    return Err(bad(format!("binding names unknown group `{g}`")));
                }
                SubjectRef::Group(g.clone())
            }
            (None, None, Some(k)) => {
                if !keys.contains_key(k.as_str()) && existing.key_organization(k).is_none() {
                    return Err(bad(format!("binding names unknown key `{k}`")));
                }
                SubjectRef::ApiKey(k.clone())
            }
            _ => {
                return Err(bad(format!(
                    "binding of role `{}` needs exactly one of user, group, api_key",
                    b.role
                )))
            }
        };
        let id_of = |what: &str| {
            b.resource_id
                .clone()
                .ok_or_else(|| bad(format!("a {what} binding needs resource_id")))
        };
        let (node, organization) = match b.resource_type {
            T::Platform => (Node::Platform, None),
            T::Organization => {
                let id = id_of("ORGANIZATION")?;
                if !orgs.contains(id.as_str()) && !existing.has_organization(&id) {
                    return Err(bad(format!("binding names unknown organization `{id}`")));
                }
                (Node::Organization(id.clone()), Some(id))
            }
            T::Space => {
                let id = id_of("SPACE")?;
                let org = spaces
                    .get(id.as_str())
                    .map(|o| (*o).to_owned())
                    .or_else(|| existing.space_organization(&id));
                let org = org.ok_or_else(|| bad(format!("binding names unknown space `{id}`")))?;
                (Node::Space(id), Some(org))
            }
            T::Project => {
                let id = id_of("PROJECT")?;
                let org = projects
                    .get(id.as_str())
                    .map(|o| (*o).to_owned())
                    .or_else(|| existing.project_organization(&id));
                let org =
                    org.ok_or_else(|| bad(format!("binding names unknown project `{id}`")))?;
                (Node::Project(id), Some(org))
            }
            T::Resource => {
                let id = id_of("RESOURCE")?;
                let (resource_type, resource_id) = id.split_once(':').ok_or_else(|| {
                    bad(format!(
                        "a RESOURCE binding's resource_id is `type:id`, not `{id}`"
                    ))
                })?;
                let org = b
                    .organization
                    .clone()
                    .ok_or_else(|| bad("a RESOURCE binding needs organization".to_owned()))?;
                (
                    Node::resource(
                        org.clone(),
                        resource_type.to_owned(),
                        resource_id.to_owned(),
                    ),
                    Some(org),
                )
            }
        };
        if let Some(c) = &b.condition {
            Condition::compile(c)?;
        }
        let id = b.id.clone().unwrap_or_else(|| {
            let content = format!("{role_id}|{subject:?}|{node:?}");
            format!("rb_{}", &hash_secret(&content)[..20])
        });
        Ok(RoleBinding {
            id,
            role_id,
            subject,
            node,
            organization_id: organization,
            condition: b.condition.clone(),
            expires_at: b.expires_at,
            created_at: now,
            updated_at: now,
        })
    }

    /// Builds a bundle from stored objects: the inverse of [`Bundle::to_objects`] (secrets are
    /// exported as hashes).
    pub fn from_objects(objects: &[Object]) -> Self {
        let mut bundle = Bundle::default();
        let mut org_index: BTreeMap<String, usize> = BTreeMap::new();
        let mut space_index: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        let mut user_index: BTreeMap<String, usize> = BTreeMap::new();
        let mut group_index: BTreeMap<String, usize> = BTreeMap::new();
        for o in objects {
            match o {
                Object::Organization(org) => {
                    org_index.insert(org.id.clone(), bundle.organizations.len());
                    bundle.organizations.push(BundleOrganization {
                        id: org.id.clone(),
                        name: Some(org.name.clone()),
                        spaces: Vec::new(),
                    });
                }
                Object::User(u) => {
                    user_index.insert(u.id.clone(), bundle.users.len());
                    bundle.users.push(BundleUser {
                        id: u.id.clone(),
                        email: u.email.clone(),
                        name: u.name.clone(),
                        external_ids: u.external_ids.clone(),
                        properties: u.properties.clone(),
                        organizations: Vec::new(),
                    });
                }
                Object::Group(g) => {
                    group_index.insert(g.id.clone(), bundle.groups.len());
                    bundle.groups.push(BundleGroup {
                        id: g.id.clone(),
                        organization: g.organization_id.clone(),
                        name: Some(g.name.clone()),
                        kind: g.kind,
                        members: Vec::new(),
                    });
                }
                _ => {}
            }
        }
        for o in objects {
            if let Object::Space(s) = o {
                if let Some(&i) = org_index.get(&s.organization_id) {
                    if let Some(org) = bundle.organizations.get_mut(i) {
                        space_index.insert(s.id.clone(), (i, org.spaces.len()));
                        org.spaces.push(BundleSpace {
                            id: s.id.clone(),
                            name: Some(s.name.clone()),
                            description: s.description.clone(),
                            members: Vec::new(),
                            projects: Vec::new(),
                        });
                    }
                }
            }
        }
        for o in objects {
            match o {
                Object::Membership(m) => {
                    if let Some(u) = user_index
                        .get(&m.user_id)
                        .and_then(|&i| bundle.users.get_mut(i))
                    {
                        u.organizations.push(m.organization_id.clone());
                    }
                }
                Object::SpaceMember(m) => {
                    if let Some(&(oi, si)) = space_index.get(&m.space_id) {
                        if let Some(s) = bundle
                            .organizations
                            .get_mut(oi)
                            .and_then(|o| o.spaces.get_mut(si))
                        {
                            s.members.push(m.user_id.clone());
                        }
                    }
                }
                Object::Project(p) => {
                    if let Some(&(oi, si)) = space_index.get(&p.space_id) {
                        if let Some(s) = bundle
                            .organizations
                            .get_mut(oi)
                            .and_then(|o| o.spaces.get_mut(si))
                        {
                            s.projects.push(BundleProject {
                                id: p.id.clone(),
                                name: Some(p.name.clone()),
                                description: p.description.clone(),
                            });
                        }
                    }
                }
                Object::GroupMember(m) => {
                    if let Some(g) = group_index
                        .get(&m.group_id)
                        .and_then(|&i| bundle.groups.get_mut(i))
                    {
                        g.members.push(m.user_id.clone());
                    }
                }
                Object::Role(r) if !r.is_predefined => bundle.roles.push(BundleRole {
                    id: r.id.clone(),
                    organization: r.organization_id.clone().unwrap_or_default(),
                    name: Some(r.name.clone()),
                    description: r.description.clone(),
                    kind: r.kind,
                    permissions: r.permissions.iter().cloned().map(EntryFile::Long).collect(),
                }),
                Object::ApiKey(k) => bundle.api_keys.push(BundleApiKey {
                    id: k.id.clone(),
                    name: Some(k.name.clone()),
                    kind: k.kind,
                    user: k.user_id.clone(),
                    project: k.project_id.clone(),
                    organization: if k.project_id.is_some() {
                        None
                    } else {
                        k.organization_id.clone()
                    },
                    secret: None,
                    secret_hash: Some(k.secret_hash.clone()),
                    expires_at: k.expires_at,
                    revoked_at: k.revoked_at,
                }),
                Object::RoleBinding(b) => {
                    let (user, group, api_key) = match &b.subject {
                        SubjectRef::User(u) => (Some(u.clone()), None, None),
                        SubjectRef::Group(g) => (None, Some(g.clone()), None),
                        SubjectRef::ApiKey(k) => (None, None, Some(k.clone())),
                    };
                    bundle.bindings.push(BundleBinding {
                        id: Some(b.id.clone()),
                        role: b.role_id.clone(),
                        user,
                        group,
                        api_key,
                        resource_type: b.node.binding_type(),
                        resource_id: b.node.api_id(),
                        organization: match &b.node {
                            Node::Resource(r) => Some(r.0.clone()),
                            _ => None,
                        },
                        condition: b.condition.clone(),
                        expires_at: b.expires_at,
                    });
                }
                Object::ResourceGrant(g) => bundle.grants.push(BundleGrant {
                    id: Some(g.id.clone()),
                    organization: g.organization_id.clone(),
                    irn: g.irn.clone(),
                    user: match &g.subject {
                        GrantSubject::User(u) => Some(u.clone()),
                        GrantSubject::Group(_) => None,
                    },
                    group: match &g.subject {
                        GrantSubject::Group(id) => Some(id.clone()),
                        GrantSubject::User(_) => None,
                    },
                    actions: g.actions.clone(),
                    criteria: g.criteria.clone(),
                    condition: g.condition.clone(),
                }),
                Object::DeclaredType(t) => bundle.resource_types.push(BundleResourceType {
                    organization: t.organization_id.clone(),
                    name: t.name.clone(),
                    service: Some(t.service.clone()),
                    actions: t.actions.clone(),
                    description: t.description.clone(),
                }),
                Object::Resource(r) => bundle.resources.push(BundleResource {
                    organization: r.organization_id.clone(),
                    resource_type: r.resource_type.clone(),
                    id: r.id.clone(),
                    project: r.project_id.clone(),
                    owner: r.owner_id.clone(),
                    properties: r.properties.clone(),
                }),
                _ => {}
            }
        }
        bundle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_kept_as_the_hex_of_its_sha256() {
        // FIPS 180-2's example: SHA-256("abc").
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(hash_secret("abc"), abc);
        let mut out = [0; 64];
        assert_eq!(hash_secret_into("abc", &mut out), abc);
        assert_ne!(hash_secret("abd"), abc);
    }
}
