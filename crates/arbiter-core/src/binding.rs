//! A role binding as the index keeps it. There are ten or more bindings for every user, so the
//! record is compact: the ids bindings repeat (the role, the subject, the node, the
//! organization) are interned, one shared copy of each in the index's [`Names`]; the binding's
//! own id is a boxed `str`; the condition's source lives in its compiled form. The stored
//! [`RoleBinding`] is rebuilt from it when the API shows one ([`CompiledBinding::to_binding`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::condition::{compile_stored, CompiledCondition};
use crate::cowmap::{CowSet, Keyed};
use crate::model::{Node, NodeView, RoleBinding, SubjectRef, SubjectRefView};

/// An interned id: one copy shared by every binding that names it, held by a pointer the size
/// of one word (an `Arc<str>` is two).
pub type Name = arcstr::ArcStr;

/// An interned id and how many bindings name it (each name a binding holds counts once).
#[derive(Clone, Debug)]
struct NameUses {
    name: Name,
    uses: usize,
}

impl Keyed for NameUses {
    fn key(&self) -> &str {
        &self.name
    }
}

/// The index's interned ids. Counted, not garbage-collected: a name goes when the last binding
/// naming it does, whatever older snapshots still hold.
#[derive(Clone, Debug, Default)]
pub struct Names(CowSet<NameUses>);

impl Names {
    /// The shared copy of `id`, counting one more use of it.
    pub fn intern(&mut self, id: &str) -> Name {
        if let Some(entry) = self.0.get_mut(id) {
            entry.uses += 1;
            return entry.name.clone();
        }
        let name = Name::from(id);
        self.0.insert(NameUses {
            name: name.clone(),
            uses: 1,
        });
        name
    }

    /// Counts one use of `id` fewer, and forgets it after its last.
    pub fn release(&mut self, id: &str) {
        let Some(entry) = self.0.get_mut(id) else {
            return;
        };
        entry.uses -= 1;
        if entry.uses == 0 {
            self.0.remove(id);
        }
    }

    /// How many distinct ids are interned.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no id is interned.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The kind of a binding's subject, whose interned id is beside it: one byte, where an enum of
/// the three ids was eight more than the id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SubjectKind {
    User,
    Group,
    ApiKey,
}

/// The node of a binding, by interned ids (a resource's type and id are its own).
#[derive(Clone, Debug, PartialEq, Eq)]
enum BoundNode {
    Platform,
    Organization(Name),
    Space(Name),
    Project(Name),
    Resource(Box<(Name, Box<str>, Box<str>)>),
}

/// A role binding with its condition compiled and its ids interned.
///
/// In declared order (`repr(C)`), the fields the check path reads first, together in 64 bytes:
/// a binding the caches do not hold then costs at most two lines of memory to check (it starts
/// 16 bytes into its `Arc`'s allocation, which is not aligned to a line), where the compiler's
/// order spread those fields over up to three.
#[derive(Debug)]
#[repr(C)]
pub struct CompiledBinding {
    /// Where the index keeps the binding's role ([`crate::index::RoleSlots`]), so that the check
    /// path finds it without a lookup of its id.
    pub role_slot: u32,
    /// The number the index gives the binding's node within its organization
    /// ([`crate::index::NodeNumbers`]): what the check path finds the binding by, so that it
    /// knows the binding is on the node asked for without reading the node's ids. (Beside the
    /// slot, in what was padding.)
    pub node_number: u32,
    node: BoundNode,
    role_id: Name,
    organization_id: Option<Name>,
    pub expires_at: Option<DateTime<Utc>>,
    /// In what was padding after `expires_at`: with it, the record is 112 bytes, 128 with its
    /// `Arc`'s counts, an allocator's size class (mimalloc's next is 160).
    subject_kind: SubjectKind,
    pub condition: Option<CompiledCondition>,
    id: Box<str>,
    subject_id: Name,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Keyed for Arc<CompiledBinding> {
    fn key(&self) -> &str {
        &self.id
    }
}

impl CompiledBinding {
    /// Compiles a stored binding, interning its ids in `names`; [`CompiledBinding::release`]
    /// gives them back when the binding leaves the index. The index gives the binding its role's
    /// slot and its node's number.
    pub fn new(binding: RoleBinding, names: &mut Names, role_slot: u32, node_number: u32) -> Self {
        let (subject_kind, subject_id) = match &binding.subject {
            SubjectRef::User(id) => (SubjectKind::User, names.intern(id)),
            SubjectRef::Group(id) => (SubjectKind::Group, names.intern(id)),
            SubjectRef::ApiKey(id) => (SubjectKind::ApiKey, names.intern(id)),
        };
        let node = match &binding.node {
            Node::Platform => BoundNode::Platform,
            Node::Organization(id) => BoundNode::Organization(names.intern(id)),
            Node::Space(id) => BoundNode::Space(names.intern(id)),
            Node::Project(id) => BoundNode::Project(names.intern(id)),
            Node::Resource(r) => BoundNode::Resource(Box::new((
                names.intern(&r.0),
                r.1.as_str().into(),
                r.2.as_str().into(),
            ))),
        };
        Self {
            role_slot,
            node_number,
            role_id: names.intern(&binding.role_id),
            organization_id: binding.organization_id.as_deref().map(|o| names.intern(o)),
            condition: compile_stored(binding.condition.as_deref()),
            id: binding.id.into_boxed_str(),
            subject_kind,
            subject_id,
            node,
            expires_at: binding.expires_at,
            created_at: binding.created_at,
            updated_at: binding.updated_at,
        }
    }

    /// Gives back the ids [`CompiledBinding::new`] interned.
    pub fn release(&self, names: &mut Names) {
        names.release(&self.role_id);
        names.release(self.subject().id());
        match &self.node {
            BoundNode::Platform => {}
            BoundNode::Organization(id) | BoundNode::Space(id) | BoundNode::Project(id) => {
                names.release(id)
            }
            BoundNode::Resource(r) => names.release(&r.0),
        }
        if let Some(o) = &self.organization_id {
            names.release(o);
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn role_id(&self) -> &str {
        &self.role_id
    }

    pub fn subject(&self) -> SubjectRefView<'_> {
        let id = &self.subject_id;
        match self.subject_kind {
            SubjectKind::User => SubjectRefView::User(id),
            SubjectKind::Group => SubjectRefView::Group(id),
            SubjectKind::ApiKey => SubjectRefView::ApiKey(id),
        }
    }

    pub fn node(&self) -> NodeView<'_> {
        match &self.node {
            BoundNode::Platform => NodeView::Platform,
            BoundNode::Organization(id) => NodeView::Organization(id),
            BoundNode::Space(id) => NodeView::Space(id),
            BoundNode::Project(id) => NodeView::Project(id),
            BoundNode::Resource(r) => NodeView::Resource(&r.0, &r.1, &r.2),
        }
    }

    /// The organization the binding belongs to; `None` only for platform bindings.
    pub fn organization_id(&self) -> Option<&str> {
        self.organization_id.as_deref()
    }

    /// The condition as written.
    pub fn condition_source(&self) -> Option<&str> {
        self.condition.as_ref().map(|c| c.source())
    }

    /// True while the binding applies.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }

    /// The binding as stored.
    pub fn to_binding(&self) -> RoleBinding {
        RoleBinding {
            id: self.id.to_string(),
            role_id: self.role_id.to_string(),
            subject: self.subject().to_subject_ref(),
            node: self.node().to_node(),
            organization_id: self.organization_id.as_deref().map(str::to_owned),
            condition: self.condition_source().map(str::to_owned),
            expires_at: self.expires_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_a_check_reads_fit_in_64_bytes() {
        assert!(std::mem::offset_of!(CompiledBinding, id) <= 64);
    }

    fn binding(id: &str, subject: SubjectRef, node: Node, condition: Option<&str>) -> RoleBinding {
        let at = DateTime::parse_from_rfc3339("2026-11-30T10:00:00.123456789Z")
            .map(|t| t.with_timezone(&Utc))
            .ok();
        RoleBinding {
            id: id.to_owned(),
            role_id: "role_1".to_owned(),
            subject,
            node,
            organization_id: Some("org_1".to_owned()),
            condition: condition.map(str::to_owned),
            expires_at: at,
            created_at: at.unwrap_or_default(),
            updated_at: at.unwrap_or_default(),
        }
    }

    #[test]
    fn is_compact() {
        // Ten or more per user: what each costs is what the index costs.
        assert_eq!(std::mem::size_of::<CompiledBinding>(), 112);
    }

    #[test]
    fn gives_back_the_stored_binding_and_its_names() {
        let mut names = Names::default();
        let stored = [
            binding(
                "b1",
                SubjectRef::User("u1".into()),
                Node::Organization("org_1".into()),
                None,
            ),
            binding(
                "b2",
                SubjectRef::Group("g1".into()),
                Node::Project("p1".into()),
                Some("1 == 1"),
            ),
            binding(
                "b3",
                SubjectRef::ApiKey("k1".into()),
                Node::resource("org_1", "model", "m1"),
                None,
            ),
            // A condition that does not compile keeps its source.
            binding(
                "b4",
                SubjectRef::User("u1".into()),
                Node::Platform,
                Some("1 =="),
            ),
        ];
        let compiled: Vec<CompiledBinding> = stored
            .iter()
            .map(|b| CompiledBinding::new(b.clone(), &mut names, 0, 0))
            .collect();
        for (b, c) in stored.iter().zip(&compiled) {
            assert_eq!(&c.to_binding(), b);
        }
        // role_1, org_1, u1, g1, p1, k1.
        assert_eq!(names.len(), 6);
        let (first, second) = (&compiled[0], &compiled[3]);
        assert!(
            Name::ptr_eq(&first.role_id, &second.role_id),
            "one copy of a repeated id"
        );
        for c in &compiled {
            c.release(&mut names);
        }
        assert!(names.is_empty(), "{names:?}");
    }
}
