//! The stored objects of Arbiter. Every object serialises to JSON; the store keeps that JSON and
//! the change log carries it to the index.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cowmap::same_id;
use crate::permission::Permission;

/// Opaque identifier.
pub type Id = String;

/// Free-form JSON properties of a user or resource.
pub type Properties = Map<String, Value>;

/// An organization: the tenant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Organization {
    pub id: Id,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A person.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: Id,
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub external_ids: Vec<String>,
    #[serde(default)]
    pub properties: Properties,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Whether a member has accepted an invitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipStatus {
    Active,
    Pending,
}

/// A user's membership of an organization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Membership {
    pub organization_id: Id,
    pub user_id: Id,
    pub status: MembershipStatus,
    pub created_at: DateTime<Utc>,
}

/// A space (a team): projects and members inside an organization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Space {
    pub id: Id,
    pub organization_id: Id,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A user's membership of a space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpaceMember {
    pub space_id: Id,
    pub user_id: Id,
    pub organization_id: Id,
    pub created_at: DateTime<Utc>,
}

/// A project inside a space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub id: Id,
    pub organization_id: Id,
    pub space_id: Id,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a group of users is for: a user group or a permission profile. Both are subjects that
/// users are attached to; they differ only in the API that manages them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    Group,
    PermissionProfile,
}

/// A user group or permission profile of an organization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub id: Id,
    pub organization_id: Id,
    pub kind: GroupKind,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A user's membership of a group or profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupMember {
    pub group_id: Id,
    pub user_id: Id,
    pub organization_id: Id,
    pub created_at: DateTime<Utc>,
}

/// A user key acts as its user; a project key is bound to one project and acts as itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyKind {
    User,
    Project,
}

/// An API key. Only the SHA-256 of the secret is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: Id,
    pub name: String,
    pub kind: ApiKeyKind,
    /// The user a user key acts as; the creator of a project key.
    pub user_id: Id,
    #[serde(default)]
    pub project_id: Option<Id>,
    /// A project key's fixed organization; a user key's current organization, if chosen.
    #[serde(default)]
    pub organization_id: Option<Id>,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    /// The first characters of the secret, to recognise a key in a list.
    pub display_prefix: String,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ApiKey {
    /// True when the key may authenticate at `now`.
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// How far a role entry reaches under its binding.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Scope {
    /// Anything under the binding.
    #[default]
    All,
    /// Only resources in a space the subject is a member of.
    Team,
    /// Only resources the subject owns.
    Own,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::All => "ALL",
            Scope::Team => "TEAM",
            Scope::Own => "OWN",
        })
    }
}

/// A role of kind `system` may be bound only to project keys; `user` roles to anything else.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleKind {
    #[default]
    User,
    System,
}

/// One permission of a role, with its scope and optional CEL condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RoleEntry {
    pub permission: Permission,
    #[serde(default)]
    pub scope: Scope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

impl RoleEntry {
    /// An entry with scope ALL and no condition.
    pub fn all(permission: Permission) -> Self {
        Self {
            permission,
            scope: Scope::All,
            condition: None,
        }
    }
}

/// A named set of role entries. Predefined roles have no organization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub id: Id,
    #[serde(default)]
    pub organization_id: Option<Id>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub kind: RoleKind,
    pub permissions: Vec<RoleEntry>,
    #[serde(default)]
    pub is_predefined: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Who a role binding gives its role to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum SubjectRef {
    User(Id),
    Group(Id),
    ApiKey(Id),
}

/// A borrowed [`SubjectRef`] that hashes as the owned one does, so that a map keyed by subjects
/// can be searched without building one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubjectRefView<'a> {
    User(&'a str),
    Group(&'a str),
    ApiKey(&'a str),
}

impl SubjectRefView<'_> {
    /// The subject's id, whatever its kind.
    pub fn id(&self) -> &str {
        match self {
            Self::User(id) | Self::Group(id) | Self::ApiKey(id) => id,
        }
    }

    /// The subject, owned.
    pub fn to_subject_ref(&self) -> SubjectRef {
        match self {
            Self::User(id) => SubjectRef::User((*id).to_owned()),
            Self::Group(id) => SubjectRef::Group((*id).to_owned()),
            Self::ApiKey(id) => SubjectRef::ApiKey((*id).to_owned()),
        }
    }

    /// True when `subject` is this subject.
    pub fn is(&self, subject: &SubjectRef) -> bool {
        match (self, subject) {
            (Self::User(a), SubjectRef::User(b))
            | (Self::Group(a), SubjectRef::Group(b))
            | (Self::ApiKey(a), SubjectRef::ApiKey(b)) => *a == b,
            _ => false,
        }
    }
}

impl SubjectRef {
    /// The subject's id, whatever its kind.
    pub fn id(&self) -> &str {
        match self {
            SubjectRef::User(id) | SubjectRef::Group(id) | SubjectRef::ApiKey(id) => id,
        }
    }
}

/// What a role binding is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum BindingResourceType {
    Platform,
    Organization,
    Space,
    Project,
    Resource,
}

impl fmt::Display for BindingResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BindingResourceType::Platform => "PLATFORM",
            BindingResourceType::Organization => "ORGANIZATION",
            BindingResourceType::Space => "SPACE",
            BindingResourceType::Project => "PROJECT",
            BindingResourceType::Resource => "RESOURCE",
        })
    }
}

/// A node of the resource hierarchy: what a binding is on, and what a resource lies under.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(
    tag = "resource_type",
    content = "resource_id",
    rename_all = "UPPERCASE"
)]
pub enum Node {
    Platform,
    Organization(Id),
    Space(Id),
    Project(Id),
    /// A registered resource of an organization: (organization, type, id). Boxed: most nodes
    /// are one id, and every binding holds a node.
    Resource(Box<(Id, String, String)>),
}

/// A [`Node`] named by borrowed ids: the check path hashes and compares the nodes of a
/// resource's chain without building them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeView<'a> {
    Platform,
    Organization(&'a str),
    Space(&'a str),
    Project(&'a str),
    Resource(&'a str, &'a str, &'a str),
}

impl NodeView<'_> {
    /// True when both name the same node (as `==`, comparing ids inline: see [`same_id`]).
    #[inline]
    pub fn same(&self, other: &NodeView<'_>) -> bool {
        match (*self, *other) {
            (NodeView::Platform, NodeView::Platform) => true,
            (NodeView::Organization(a), NodeView::Organization(b))
            | (NodeView::Space(a), NodeView::Space(b))
            | (NodeView::Project(a), NodeView::Project(b)) => same_id(a, b),
            (NodeView::Resource(o, t, i), NodeView::Resource(p, u, j)) => {
                same_id(i, j) && same_id(t, u) && same_id(o, p)
            }
            _ => false,
        }
    }

    /// The node, owned.
    pub fn to_node(&self) -> Node {
        match *self {
            NodeView::Platform => Node::Platform,
            NodeView::Organization(id) => Node::Organization(id.to_owned()),
            NodeView::Space(id) => Node::Space(id.to_owned()),
            NodeView::Project(id) => Node::Project(id.to_owned()),
            NodeView::Resource(org, t, id) => Node::resource(org, t, id),
        }
    }
}

impl Node {
    /// A registered resource's node.
    pub fn resource(
        organization_id: impl Into<Id>,
        resource_type: impl Into<String>,
        id: impl Into<String>,
    ) -> Self {
        Node::Resource(Box::new((
            organization_id.into(),
            resource_type.into(),
            id.into(),
        )))
    }

    /// The node, borrowed.
    pub fn view(&self) -> NodeView<'_> {
        match self {
            Node::Platform => NodeView::Platform,
            Node::Organization(id) => NodeView::Organization(id),
            Node::Space(id) => NodeView::Space(id),
            Node::Project(id) => NodeView::Project(id),
            Node::Resource(r) => NodeView::Resource(&r.0, &r.1, &r.2),
        }
    }

    /// The node's binding type.
    pub fn binding_type(&self) -> BindingResourceType {
        self.view().binding_type()
    }

    /// The node's id as the API shows it: `None` for the platform, `type:id` for a resource.
    pub fn api_id(&self) -> Option<String> {
        self.view().api_id()
    }
}

impl NodeView<'_> {
    /// The node's binding type.
    pub fn binding_type(&self) -> BindingResourceType {
        match self {
            NodeView::Platform => BindingResourceType::Platform,
            NodeView::Organization(_) => BindingResourceType::Organization,
            NodeView::Space(_) => BindingResourceType::Space,
            NodeView::Project(_) => BindingResourceType::Project,
            NodeView::Resource(..) => BindingResourceType::Resource,
        }
    }

    /// The node's id as the API shows it: `None` for the platform, `type:id` for a resource.
    pub fn api_id(&self) -> Option<String> {
        match *self {
            NodeView::Platform => None,
            NodeView::Organization(id) | NodeView::Space(id) | NodeView::Project(id) => {
                Some(id.to_owned())
            }
            NodeView::Resource(_, t, id) => Some(format!("{t}:{id}")),
        }
    }
}

impl fmt::Display for NodeView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.api_id() {
            None => f.write_str("the platform"),
            Some(id) => write!(f, "{} {id}", self.binding_type().to_string().to_lowercase()),
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.view().fmt(f)
    }
}

/// A role given to a subject on a node and everything beneath it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoleBinding {
    pub id: Id,
    pub role_id: Id,
    pub subject: SubjectRef,
    pub node: Node,
    /// The organization the binding belongs to; `None` only for platform bindings.
    #[serde(default)]
    pub organization_id: Option<Id>,
    #[serde(default)]
    pub condition: Option<String>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl RoleBinding {
    /// True while the binding applies.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

/// A registered resource of the protected platform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub organization_id: Id,
    pub resource_type: String,
    pub id: String,
    #[serde(default)]
    pub project_id: Option<Id>,
    #[serde(default)]
    pub owner_id: Option<String>,
    #[serde(default)]
    pub properties: Properties,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Who a resource grant is to: a user, a user group or a permission profile (both groups).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum GrantSubject {
    User(Id),
    Group(Id),
}

impl GrantSubject {
    /// The same subject as a binding subject, to find it in the index.
    pub fn as_subject_ref(&self) -> SubjectRef {
        match self {
            GrantSubject::User(id) => SubjectRef::User(id.clone()),
            GrantSubject::Group(id) => SubjectRef::Group(id.clone()),
        }
    }
}

/// Actions given directly to a subject on an IRN or IRN pattern inside one organization (the
/// `_namespace`), with optional criteria on the subject and an optional CEL condition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResourceGrant {
    pub id: Id,
    pub organization_id: Id,
    /// The IRN or IRN pattern, as written.
    pub irn: String,
    pub subject: GrantSubject,
    /// Catalog actions of the IRN's type (`read`, `edit`...), or `*` for all of them.
    pub actions: Vec<String>,
    /// `_key: value` pairs that must equal the subject's property `key`.
    #[serde(default)]
    pub criteria: Properties,
    #[serde(default)]
    pub condition: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A resource type declared by an organization, or actions it added to a built-in type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeclaredType {
    pub organization_id: Id,
    pub name: String,
    pub service: String,
    pub actions: Vec<String>,
    #[serde(default)]
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Every kind of stored object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Organization,
    User,
    Membership,
    Space,
    SpaceMember,
    Project,
    Group,
    GroupMember,
    ApiKey,
    Role,
    RoleBinding,
    Resource,
    ResourceGrant,
    DeclaredType,
}

impl ObjectKind {
    /// The kind's stable name, as stored.
    pub fn as_str(&self) -> &'static str {
        match self {
            ObjectKind::Organization => "organization",
            ObjectKind::User => "user",
            ObjectKind::Membership => "membership",
            ObjectKind::Space => "space",
            ObjectKind::SpaceMember => "space_member",
            ObjectKind::Project => "project",
            ObjectKind::Group => "group",
            ObjectKind::GroupMember => "group_member",
            ObjectKind::ApiKey => "api_key",
            ObjectKind::Role => "role",
            ObjectKind::RoleBinding => "role_binding",
            ObjectKind::Resource => "resource",
            ObjectKind::ResourceGrant => "resource_grant",
            ObjectKind::DeclaredType => "declared_type",
        }
    }
}

/// The primary key of a stored object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectKey {
    pub kind: ObjectKind,
    pub id: String,
}

/// A stored object. The tag is `object`, since several objects have a `kind` of their own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "object", rename_all = "snake_case")]
pub enum Object {
    Organization(Organization),
    User(User),
    Membership(Membership),
    Space(Space),
    SpaceMember(SpaceMember),
    Project(Project),
    Group(Group),
    GroupMember(GroupMember),
    ApiKey(ApiKey),
    Role(Role),
    RoleBinding(RoleBinding),
    Resource(Resource),
    ResourceGrant(ResourceGrant),
    DeclaredType(DeclaredType),
}

/// The key of a membership-like pair.
pub fn pair_key(a: &str, b: &str) -> String {
    format!("{a}/{b}")
}

/// The key of a registered resource.
pub fn resource_key(organization_id: &str, resource_type: &str, id: &str) -> String {
    format!("{organization_id}/{resource_type}/{id}")
}

impl Object {
    /// The object's primary key.
    pub fn key(&self) -> ObjectKey {
        let (kind, id) = match self {
            Object::Organization(o) => (ObjectKind::Organization, o.id.clone()),
            Object::User(o) => (ObjectKind::User, o.id.clone()),
            Object::Membership(o) => (
                ObjectKind::Membership,
                pair_key(&o.organization_id, &o.user_id),
            ),
            Object::Space(o) => (ObjectKind::Space, o.id.clone()),
            Object::SpaceMember(o) => (ObjectKind::SpaceMember, pair_key(&o.space_id, &o.user_id)),
            Object::Project(o) => (ObjectKind::Project, o.id.clone()),
            Object::Group(o) => (ObjectKind::Group, o.id.clone()),
            Object::GroupMember(o) => (ObjectKind::GroupMember, pair_key(&o.group_id, &o.user_id)),
            Object::ApiKey(o) => (ObjectKind::ApiKey, o.id.clone()),
            Object::Role(o) => (ObjectKind::Role, o.id.clone()),
            Object::RoleBinding(o) => (ObjectKind::RoleBinding, o.id.clone()),
            Object::Resource(o) => (
                ObjectKind::Resource,
                resource_key(&o.organization_id, &o.resource_type, &o.id),
            ),
            Object::ResourceGrant(o) => (ObjectKind::ResourceGrant, o.id.clone()),
            Object::DeclaredType(o) => (
                ObjectKind::DeclaredType,
                pair_key(&o.organization_id, &o.name),
            ),
        };
        ObjectKey { kind, id }
    }

    /// The organization the object belongs to, if any (users and platform bindings belong to none).
    pub fn organization_id(&self) -> Option<&str> {
        match self {
            Object::Organization(o) => Some(&o.id),
            Object::User(_) => None,
            Object::Membership(o) => Some(&o.organization_id),
            Object::Space(o) => Some(&o.organization_id),
            Object::SpaceMember(o) => Some(&o.organization_id),
            Object::Project(o) => Some(&o.organization_id),
            Object::Group(o) => Some(&o.organization_id),
            Object::GroupMember(o) => Some(&o.organization_id),
            Object::ApiKey(o) => o.organization_id.as_deref(),
            Object::Role(o) => o.organization_id.as_deref(),
            Object::RoleBinding(o) => o.organization_id.as_deref(),
            Object::Resource(o) => Some(&o.organization_id),
            Object::ResourceGrant(o) => Some(&o.organization_id),
            Object::DeclaredType(o) => Some(&o.organization_id),
        }
    }

    /// Names that must be unique across the store while this object exists (a user's email and
    /// external ids, a role's or space's name in its organization). The store refuses a write
    /// that would claim a name another object holds.
    pub fn unique_names(&self) -> Vec<String> {
        match self {
            Object::User(u) => {
                let mut names = vec![format!("user-email/{}", u.email.to_lowercase())];
                names.extend(
                    u.external_ids
                        .iter()
                        .map(|e| format!("user-external-id/{e}")),
                );
                names
            }
            Object::Role(r) => vec![format!(
                "role-name/{}/{}",
                r.organization_id.as_deref().unwrap_or("-"),
                r.name.to_lowercase()
            )],
            Object::Organization(o) => vec![format!("organization-name/{}", o.name.to_lowercase())],
            Object::Space(s) => vec![format!(
                "space-name/{}/{}",
                s.organization_id,
                s.name.to_lowercase()
            )],
            Object::Project(p) => vec![format!(
                "project-name/{}/{}",
                p.space_id,
                p.name.to_lowercase()
            )],
            Object::Group(g) => vec![format!(
                "group-name/{}/{:?}/{}",
                g.organization_id,
                g.kind,
                g.name.to_lowercase()
            )],
            Object::ResourceGrant(g) => vec![format!(
                "grant/{}/{}/{}",
                g.organization_id,
                g.irn,
                match &g.subject {
                    GrantSubject::User(id) => format!("user/{id}"),
                    GrantSubject::Group(id) => format!("group/{id}"),
                }
            )],
            _ => Vec::new(),
        }
    }
}

/// One change of a write: put (create or replace) an object, or delete one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
// Ops live only for the length of one write; boxing would add an allocation per put. (`allow`,
// not `expect`: whether the lint fires depends on the objects' sizes, which the index's work
// keeps shrinking.)
#[allow(clippy::large_enum_variant)]
pub enum Op {
    Put { object: Object },
    Delete { key: ObjectKey },
}

impl Op {
    /// The key of the object the op touches.
    pub fn key(&self) -> ObjectKey {
        match self {
            Op::Put { object } => object.key(),
            Op::Delete { key } => key.clone(),
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_subject_view_hashes_as_the_subject() {
        use crate::cowmap::hash_key;
        for (owned, view) in [
            (SubjectRef::User("u1".into()), SubjectRefView::User("u1")),
            (SubjectRef::Group("u1".into()), SubjectRefView::Group("u1")),
            (SubjectRef::ApiKey("k".into()), SubjectRefView::ApiKey("k")),
        ] {
            assert_eq!(hash_key(&owned), hash_key(&view));
            assert!(view.is(&owned));
        }
        assert!(!SubjectRefView::User("u1").is(&SubjectRef::Group("u1".into())));
        assert_ne!(
            hash_key(&SubjectRef::User("u1".into())),
            hash_key(&SubjectRefView::Group("u1"))
        );
    }
    use super::*;

    #[test]
    fn a_resource_node_is_stored_as_a_triple() {
        let node = Node::resource("o1", "model", "m1");
        let json =
            serde_json::json!({"resource_type": "RESOURCE", "resource_id": ["o1", "model", "m1"]});
        assert_eq!(serde_json::to_value(&node).unwrap(), json);
        assert_eq!(serde_json::from_value::<Node>(json).unwrap(), node);
        assert_eq!(node.view(), NodeView::Resource("o1", "model", "m1"));
    }

    #[test]
    fn every_object_round_trips_through_json() {
        let now = chrono::Utc::now();
        let objects = vec![
            Object::ApiKey(ApiKey {
                id: "k".into(),
                name: "n".into(),
                kind: ApiKeyKind::Project,
                user_id: "u".into(),
                project_id: Some("p".into()),
                organization_id: Some("o".into()),
                secret_hash: "h".into(),
                display_prefix: "arb_".into(),
                expires_at: None,
                revoked_at: None,
                created_at: now,
                updated_at: now,
            }),
            Object::Group(Group {
                id: "g".into(),
                organization_id: "o".into(),
                kind: GroupKind::PermissionProfile,
                name: "n".into(),
                description: String::new(),
                created_at: now,
                updated_at: now,
            }),
            Object::Role(Role {
                id: "r".into(),
                organization_id: None,
                name: "n".into(),
                description: String::new(),
                kind: RoleKind::System,
                permissions: vec![],
                is_predefined: false,
                created_at: now,
                updated_at: now,
            }),
        ];
        for object in objects {
            let text = serde_json::to_string(&object).unwrap();
            let back: Object = serde_json::from_str(&text).unwrap();
            assert_eq!(back, object);
        }
    }
}
