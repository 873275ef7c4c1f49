//! The in-memory index: an immutable snapshot of every object at one revision, with the derived
//! maps that make a check a handful of hash lookups.
//!
//! A writer clones the snapshot, applies the ops of one or more committed revisions, and publishes
//! the result; readers keep using the snapshot they took. Cloning copies the maps' tables, not the
//! objects, which are shared behind `Arc`.

use std::collections::{BTreeMap, BTreeSet};

/// The maps of the index: a fast hasher, seeded per process (so ids chosen to collide cannot be
/// planned).
pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use smol_str::SmolStr;

pub use crate::binding::CompiledBinding;
use crate::binding::Names;
use crate::catalog::{Catalog, ResourceType, BASE_ROLE, PREDEFINED_ROLE_PREFIX};
use crate::condition::{compile_stored, CompiledCondition};
use crate::cowmap::{hash_key, same_id, CowMap, CowSet, Keyed, SharedBag};
use crate::grants::{CompiledGrant, PatternIndex};
use crate::idset::{IdSet, SetOfIds};
use crate::model::{
    pair_key, resource_key, ApiKey, DeclaredType, Group, GroupMember, Id, Membership,
    MembershipStatus, NodeView, Object, ObjectKey, ObjectKind, Op, Organization, Project, Resource,
    Role, RoleEntry, Scope, Space, SpaceMember, SubjectRef, User,
};
use crate::permission::{Permission, WILDCARD};

/// A set of ids that may grow large (an organization's members, a type's registered resources):
/// a persistent sorted set, so that a write changing one id in a new snapshot copies a path of
/// the tree, not the whole set (a member added to an organization of 100,000 copied 100,000
/// ids).
pub type MemberSet = imbl::OrdSet<Id>;

/// A revision of the store: every committed write advances it by one.
pub type Revision = u64;

/// A role entry with its condition compiled.
#[derive(Debug)]
pub struct CompiledEntry {
    pub permission: Permission,
    pub scope: Scope,
    /// `Err` holds the compile error of a stored condition that no longer compiles; such an entry
    /// never grants.
    pub condition: Option<CompiledCondition>,
}

/// A role with its entries compiled.
#[derive(Debug)]
pub struct CompiledRole {
    pub role: Role,
    pub entries: Vec<CompiledEntry>,
    /// Entries by their concrete permission ([`Permission::hash`] of it), for the check path.
    exact: hashbrown::HashTable<(Permission, Vec<usize>)>,
    /// Entries whose permission holds a wildcard.
    patterns: Vec<usize>,
    /// A filter of what the role may cover, so that the check path passes over most roles that
    /// cannot cover the asked permission without a lookup (never one that can): a bit
    /// ([`filter_bit`]) per concrete permission, and one per resource type of a pattern (every
    /// bit for `*:…`).
    exact_bits: u64,
    pattern_type_bits: u64,
}

/// The bit of a hash in a 64-bit filter: the hash's top six bits.
fn filter_bit(hash: u64) -> u64 {
    1 << (hash >> 58)
}

/// A permission asked, with what the roles' tables and filters need of it, taken once per check
/// however many roles are asked: the hashes from the permission (computed when it was parsed),
/// the filters' bits from them. Copied, not read through the reference each time: the roles
/// asked then find them beside the filters' bits.
pub struct AskedPermission<'a> {
    pub permission: &'a Permission,
    /// Neither half is `*` ([`Permission::is_concrete`]), known once for all the roles asked.
    concrete: bool,
    hash: u64,
    /// The bits of [`CompiledRole`]'s filters it falls on (every bit for a pattern, which the
    /// filters do not describe).
    permission_bit: u64,
    type_bit: u64,
}

impl<'a> AskedPermission<'a> {
    #[inline]
    pub fn new(permission: &'a Permission) -> Self {
        // The hashes were computed when the permission was parsed.
        let hash = permission.hash();
        let concrete = permission.is_concrete();
        let (permission_bit, type_bit) = if concrete {
            (filter_bit(hash), filter_bit(permission.type_hash()))
        } else {
            (u64::MAX, u64::MAX)
        };
        Self {
            permission,
            concrete,
            hash,
            permission_bit,
            type_bit,
        }
    }
}

impl CompiledRole {
    /// Compiles a role's entries.
    pub fn new(role: Role) -> Self {
        let entries: Vec<CompiledEntry> = role.permissions.iter().map(compile_entry).collect();
        let mut exact: hashbrown::HashTable<(Permission, Vec<usize>)> = Default::default();
        let mut patterns = Vec::new();
        let (mut exact_bits, mut pattern_type_bits) = (0, 0);
        for (i, e) in entries.iter().enumerate() {
            if e.permission.is_concrete() {
                let hash = e.permission.hash();
                exact_bits |= filter_bit(hash);
                match exact.find_mut(hash, |(p, _)| *p == e.permission) {
                    Some((_, list)) => list.push(i),
                    None => {
                        exact.insert_unique(hash, (e.permission.clone(), vec![i]), |(p, _)| {
                            p.hash()
                        });
                    }
                }
            } else {
                patterns.push(i);
                pattern_type_bits |= match e.permission.resource_type() {
                    WILDCARD => u64::MAX,
                    _ => filter_bit(e.permission.type_hash()),
                };
            }
        }
        Self {
            role,
            entries,
            exact,
            patterns,
            exact_bits,
            pattern_type_bits,
        }
    }

    /// Calls `f` with every entry whose permission covers `asked`, without allocating, until
    /// `f` answers true; true when it did.
    pub fn for_each_covering(
        &self,
        asked: &Permission,
        f: &mut dyn FnMut(&CompiledEntry) -> bool,
    ) -> bool {
        self.for_each_covering_asked(&AskedPermission::new(asked), f)
    }

    /// [`CompiledRole::for_each_covering`] for a permission prepared once for all the roles a
    /// check asks.
    ///
    /// Generic over `f`, not a `dyn` call: the check path calls it with two closures in turn,
    /// and an indirect call whose target alternates is one the processor mispredicts.
    ///
    /// The filters are tested where it is called: most roles a check asks cover nothing asked,
    /// and the filters say so for most of those in a few instructions, fewer than a call.
    #[inline(always)]
    pub fn for_each_covering_asked<F: FnMut(&CompiledEntry) -> bool + ?Sized>(
        &self,
        asked: &AskedPermission<'_>,
        f: &mut F,
    ) -> bool {
        let may_cover = self.exact_bits & asked.permission_bit != 0
            || self.pattern_type_bits & asked.type_bit != 0;
        may_cover && self.for_each_covering_past_the_filters(asked, f)
    }

    /// [`CompiledRole::for_each_covering_asked`] once the filters have let `asked` through.
    /// Not inlined: the check path asks it for few of the roles it asks.
    #[inline(never)]
    fn for_each_covering_past_the_filters<F: FnMut(&CompiledEntry) -> bool + ?Sized>(
        &self,
        asked: &AskedPermission<'_>,
        f: &mut F,
    ) -> bool {
        let (asked_hash, concrete) = (asked.hash, asked.concrete);
        let asked = asked.permission;
        if concrete {
            // An exact entry's permission is the one asked: it covers it.
            if let Some((_, list)) = self.exact.find(asked_hash, |(p, _)| p.same(asked)) {
                for i in list {
                    if self.entries.get(*i).is_some_and(&mut *f) {
                        return true;
                    }
                }
            }
            for i in &self.patterns {
                if let Some(e) = self.entries.get(*i) {
                    if e.permission.covers(asked) && f(e) {
                        return true;
                    }
                }
            }
            false
        } else {
            self.entries
                .iter()
                .any(|e| e.permission.covers(asked) && f(e))
        }
    }
}

/// What the check path searches a subject's bindings by, one for each binding: the number of
/// its node and what it needs to ask its role without reading the binding itself, in 8 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindingKey {
    /// The number of the binding's node in its organization ([`NodeNumbers`]). A number names
    /// one (organization, node) and nothing else, so a binding found by it is on the node asked
    /// for: the check path does not read the binding to confirm it.
    node_number: u32,
    /// The binding's role slot, with [`PLAIN`] set when the binding has neither condition nor
    /// expiry: then the role alone says whether it allows what is asked.
    slot_and_plain: u32,
}

/// The bit of [`BindingKey::slot_and_plain`] that marks a plain binding.
const PLAIN: u32 = 1 << 31;

impl BindingKey {
    fn of(binding: &CompiledBinding) -> Self {
        // A slot that needs the top bit (two billion roles) is left to the binding itself.
        let plain = binding.condition.is_none()
            && binding.expires_at.is_none()
            && binding.role_slot & PLAIN == 0;
        Self {
            node_number: binding.node_number,
            slot_and_plain: if plain { binding.role_slot | PLAIN } else { 0 },
        }
    }
}

/// A binding as the check path walks it: its key, and the binding, read only when the key
/// does not say enough.
#[derive(Clone, Copy, Debug)]
pub struct NumberedBinding<'a> {
    key: BindingKey,
    binding: &'a Arc<CompiledBinding>,
}

impl<'a> NumberedBinding<'a> {
    /// The binding's role slot when the binding is plain: no condition, no expiry, so that
    /// its role alone decides what it allows.
    #[inline]
    pub fn plain_role_slot(&self) -> Option<u32> {
        let slot_and_plain = self.key.slot_and_plain;
        (slot_and_plain & PLAIN != 0).then_some(slot_and_plain & !PLAIN)
    }

    pub fn binding(&self) -> &'a Arc<CompiledBinding> {
        self.binding
    }
}

/// How many keys a subject's [`NodeBindings`] keeps in itself, and so in a user's record: as
/// many as fill the record's three cache lines. The workload's users hold 5 to 15 bindings, so
/// all their keys are in place, read with the record and not after it from elsewhere.
pub const INLINE_KEYS: usize = 15;

/// A subject's binding keys: in place when they are few, else in an array of their own; with
/// the kinds of node they are on ([`NodeBindings::kinds`]), in the byte beside the variant's tag
/// that would otherwise be padding, so that a user's record, whose id is kept in place too,
/// stays three lines.
#[derive(Clone, Debug)]
enum BindingKeys {
    Inline {
        kinds: u8,
        len: u8,
        keys: [BindingKey; INLINE_KEYS],
    },
    Shared {
        kinds: u8,
        keys: Arc<[BindingKey]>,
    },
}

impl Default for BindingKeys {
    fn default() -> Self {
        Self::new(&[], 0)
    }
}

impl BindingKeys {
    fn new(keys: &[BindingKey], kinds: u8) -> Self {
        if keys.len() > INLINE_KEYS {
            return Self::Shared {
                kinds,
                keys: Arc::from(keys),
            };
        }
        let mut slots = [BindingKey {
            node_number: 0,
            slot_and_plain: 0,
        }; INLINE_KEYS];
        if let Some(slots) = slots.get_mut(..keys.len()) {
            slots.copy_from_slice(keys);
        }
        Self::Inline {
            kinds,
            len: keys.len() as u8,
            keys: slots,
        }
    }

    #[inline]
    fn as_slice(&self) -> &[BindingKey] {
        match self {
            Self::Inline { len, keys, .. } => keys.get(..usize::from(*len)).unwrap_or_default(),
            Self::Shared { keys, .. } => keys,
        }
    }

    #[inline]
    fn kinds(&self) -> u8 {
        match self {
            Self::Inline { kinds, .. } | Self::Shared { kinds, .. } => *kinds,
        }
    }
}

/// One subject's bindings, sorted by the number of the node each is on ([`NodeNumbers`]): the
/// check path finds the bindings on each ancestor of the resource by a binary search of their
/// keys ([`BindingKey`]). (A map per kind of node, keyed by the node's id, cost more memory than
/// the bindings themselves.) Up to [`INLINE_KEYS`] keys are kept in place, in a user's record:
/// the check path then reads them with the record, where an array of their own was one more
/// trip to memory once the index outgrows the caches.
///
/// The bindings are shared and never changed: a write makes the subject new ones
/// ([`NodeBindings::changed`]), so that copying a user's record (a write copies the shard of the
/// users it changes) copies a pointer and the keys, not the bindings.
#[derive(Clone, Debug, Default)]
pub struct NodeBindings {
    /// The bindings' keys, in the order of `bindings`, and their kinds of node
    /// ([`NodeBindings::kinds`]).
    keys: BindingKeys,
    /// `None` when the subject has no binding: most records of the index hold none.
    bindings: Option<Arc<[Arc<CompiledBinding>]>>,
}

impl NodeBindings {
    /// These bindings without those of `gone` (by identity, not id: a binding deleted and put
    /// again in one write is two bindings) and with those of `added` not in `gone`, in one pass
    /// however many there are of each. Bindings on one node keep the order they were added in.
    fn changed(&self, gone: &[Arc<CompiledBinding>], added: Vec<Arc<CompiledBinding>>) -> Self {
        let gone_set: Option<
            hashbrown::HashSet<*const CompiledBinding, foldhash::fast::RandomState>,
        > = (gone.len() > 8).then(|| gone.iter().map(Arc::as_ptr).collect());
        let stays = |b: &Arc<CompiledBinding>| match &gone_set {
            Some(set) => !set.contains(&Arc::as_ptr(b)),
            None => !gone.iter().any(|g| Arc::ptr_eq(g, b)),
        };
        let mut list: Vec<Arc<CompiledBinding>> =
            Vec::with_capacity(self.entries().len() + added.len());
        list.extend(self.entries().iter().filter(|b| stays(b)).cloned());
        list.extend(added.into_iter().filter(|b| stays(b)));
        // Stable: the bindings already there, then the added ones, in order.
        list.sort_by_key(|b| b.node_number);
        let keys: Vec<BindingKey> = list.iter().map(|b| BindingKey::of(b)).collect();
        let kinds = list.iter().fold(0, |kinds, b| {
            let exact = NodeNumbers::numbers_exactly(b.organization_id(), b.node())
                && b.node_number != NodeNumbers::PAST_THE_LAST;
            kinds | node_kind(b.node()) | if exact { 0 } else { UNNUMBERED }
        });
        Self {
            keys: BindingKeys::new(&keys, kinds),
            bindings: (!list.is_empty()).then(|| Arc::from(list)),
        }
    }

    /// Every binding, by node number.
    fn entries(&self) -> &[Arc<CompiledBinding>] {
        self.bindings.as_deref().unwrap_or_default()
    }

    /// The kinds of node the bindings are on ([`node_kind`] bits), so that the check path
    /// neither looks up nor searches for a node of a kind the subject holds nothing on (most
    /// subjects' bindings are on one or two kinds); with [`UNNUMBERED`] when a binding's
    /// organization is not its node's kind's ([`NodeNumbers::numbers_exactly`]).
    #[inline]
    pub fn kinds(&self) -> u8 {
        self.keys.kinds()
    }

    /// True when the subject has no binding.
    pub fn is_empty(&self) -> bool {
        self.bindings.is_none()
    }

    /// Reads what a search of the keys reads first (their middle), and answers it: for the
    /// check path to start the memory reads a search will need while it does other work.
    pub fn first_probe(&self) -> u32 {
        let keys = self.keys.as_slice();
        keys.get(keys.len() / 2).map_or(0, |k| k.node_number)
    }

    /// What [`NodeBindings::walk_on`] should walk, found by reading every key rather than by
    /// a search (for tests).
    #[cfg(test)]
    pub fn on(&self, number: u32) -> Vec<NumberedBinding<'_>> {
        (self.keys.as_slice().iter().zip(self.entries()))
            .filter(|(key, _)| key.node_number == number)
            .map(|(&key, binding)| NumberedBinding { key, binding })
            .collect()
    }

    /// The bindings on the node numbered `number` ([`NodeNumbers`]), as the check path walks
    /// them: from the first on that node up to the first on another. One loop, where finding the
    /// end of the run first and then walking it was two, each ending where the processor cannot
    /// foresee.
    #[inline]
    pub fn walk_on(&self, number: u32) -> impl Iterator<Item = NumberedBinding<'_>> {
        let keys = self.keys.as_slice();
        let from = keys.partition_point(|k| k.node_number < number);
        let bindings = self.entries().get(from..).unwrap_or_default();
        keys.get(from..)
            .unwrap_or_default()
            .iter()
            .zip(bindings)
            .take_while(move |(key, _)| key.node_number == number)
            .map(|(&key, binding)| NumberedBinding { key, binding })
    }
}

/// What the index keeps about one user's memberships and keys, in one record, so that the check
/// path finds them all with one lookup of the user's id.
#[derive(Clone, Debug, Default)]
pub struct UserLinks {
    pub organizations: IdSet,
    pub spaces: IdSet,
    pub groups: IdSet,
    pub keys: IdSet,
}

impl UserLinks {
    fn is_empty(&self) -> bool {
        self.organizations.is_empty()
            && self.spaces.is_empty()
            && self.groups.is_empty()
            && self.keys.is_empty()
    }
}

/// One user id's entry in [`Users`]: the user, once known, its links and its bindings, so that
/// the check path finds them with one lookup. The links and bindings may come first: a store's
/// objects load in any order, and a membership may precede its user.
///
/// Three cache lines, aligned to one: the check path reads the id (in place up to 23 bytes), the
/// user, the links and the bindings' keys (up to [`INLINE_KEYS`] in place) of a record it has
/// never seen. Once the users outgrow the caches, it has the three lines' addresses as soon as
/// the record's, so their reads from memory overlap, where an id or keys kept apart were read
/// after the record; and a record across four lines would cost four.
#[derive(Clone, Debug)]
#[repr(align(64))]
pub struct UserRecord {
    /// In place up to 23 bytes (a `SmolStr`), so that the lookup that compares it reads no
    /// line but the record's.
    id: SmolStr,
    pub user: Option<Arc<User>>,
    pub links: Option<Arc<UserLinks>>,
    /// The user's own bindings (not its groups' or keys'), in the record itself and not in its
    /// links: the check path reads the keys straight from the record, not after the links.
    pub bindings: NodeBindings,
    /// True when the links hold a group or a key, whose bindings count as the user's: a check
    /// that the user's own bindings do not allow reads the links only then. (Kept by
    /// [`Users::change_links`], the one way links change.)
    pub has_groups_or_keys: bool,
}

impl UserRecord {
    /// True when the record holds nothing: it leaves the index.
    fn is_empty(&self) -> bool {
        self.user.is_none() && self.links.is_none() && self.bindings.is_empty()
    }
}

impl Keyed for UserRecord {
    fn key(&self) -> &str {
        self.id.as_str()
    }
}

/// A membership as [`Index::memberships`] keeps it: under its key ([`pair_key`] of the
/// organization and the user) with its status and date, where the stored record (64 bytes and two
/// ids of its own, behind a pointer) was most of what a user's membership cost.
#[derive(Clone, Debug)]
pub struct MembershipEntry {
    key: Box<str>,
    /// Where the organization's id ends in the key: an id may hold the key's `/`.
    organization_len: u32,
    pub status: MembershipStatus,
    pub created_at: DateTime<Utc>,
}

impl MembershipEntry {
    fn new(membership: &Membership) -> Self {
        Self {
            key: pair_key(&membership.organization_id, &membership.user_id).into_boxed_str(),
            organization_len: u32::try_from(membership.organization_id.len()).unwrap_or(u32::MAX),
            status: membership.status,
            created_at: membership.created_at,
        }
    }

    pub fn organization_id(&self) -> &str {
        self.key
            .get(..self.organization_len as usize)
            .unwrap_or_default()
    }

    pub fn user_id(&self) -> &str {
        self.key
            .get(self.organization_len as usize + 1..)
            .unwrap_or_default()
    }

    /// The membership as stored.
    pub fn to_membership(&self) -> Membership {
        Membership {
            organization_id: self.organization_id().to_owned(),
            user_id: self.user_id().to_owned(),
            status: self.status,
            created_at: self.created_at,
        }
    }
}

impl Keyed for MembershipEntry {
    fn key(&self) -> &str {
        &self.key
    }
}

/// The users by id, each with its [`UserLinks`].
#[derive(Clone, Debug, Default)]
pub struct Users {
    records: CowSet<UserRecord>,
    /// How many records hold a user.
    users: usize,
}

impl Users {
    /// The record of a user id whose hash ([`hash_key`]) the caller has: what the check path
    /// looks up.
    #[inline(always)]
    pub fn record_hashed(&self, hash: u64, id: &str) -> Option<&UserRecord> {
        self.records.get_hashed(hash, id)
    }

    /// A user by id.
    pub fn get(&self, id: &str) -> Option<&Arc<User>> {
        self.records.get(id).and_then(|r| r.user.as_ref())
    }

    /// A user id's record.
    pub fn record(&self, id: &str) -> Option<&UserRecord> {
        self.records.get(id)
    }

    /// A user's links.
    pub fn links(&self, id: &str) -> Option<&Arc<UserLinks>> {
        self.records.get(id).and_then(|r| r.links.as_ref())
    }

    /// A user's own bindings.
    pub fn bindings(&self, id: &str) -> Option<&NodeBindings> {
        self.records.get(id).map(|r| &r.bindings)
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// How many users.
    pub fn len(&self) -> usize {
        self.users
    }

    pub fn is_empty(&self) -> bool {
        self.users == 0
    }

    /// Every user, in no order.
    pub fn values(&self) -> impl Iterator<Item = &Arc<User>> {
        self.records.values().filter_map(|r| r.user.as_ref())
    }

    fn record_mut(&mut self, id: &str) -> &mut UserRecord {
        self.records.get_or_insert_with(id, || UserRecord {
            id: SmolStr::new(id),
            user: None,
            links: None,
            bindings: NodeBindings::default(),
            has_groups_or_keys: false,
        })
    }

    fn insert(&mut self, user: Arc<User>) {
        let record = self.record_mut(&user.id);
        if record.user.replace(user).is_none() {
            self.users += 1;
        }
    }

    fn remove(&mut self, id: &str) -> Option<Arc<User>> {
        let record = self.records.get_mut(id)?;
        let user = record.user.take()?;
        if record.is_empty() {
            self.records.remove(id);
        }
        self.users -= 1;
        Some(user)
    }

    /// Adds to a user id's links, making its record and links when it has none.
    fn add_links(&mut self, id: &str, add: impl FnOnce(&mut UserLinks)) {
        self.record_mut(id);
        self.change_links(id, add);
    }

    /// Changes a user's links, if it has a record, and drops them when nothing is left in them.
    fn change_links(&mut self, id: &str, change: impl FnOnce(&mut UserLinks)) {
        let Some(record) = self.records.get_mut(id) else {
            return;
        };
        let links = Arc::make_mut(record.links.get_or_insert_default());
        change(links);
        record.has_groups_or_keys = !links.groups.is_empty() || !links.keys.is_empty();
        if links.is_empty() {
            record.links = None;
            if record.is_empty() {
                self.records.remove(id);
            }
        }
    }

    /// Sets a user's bindings, and drops a record left with nothing.
    fn set_bindings(&mut self, id: &str, bindings: NodeBindings) {
        if !bindings.is_empty() {
            self.record_mut(id).bindings = bindings;
        } else if let Some(record) = self.records.get_mut(id) {
            record.bindings = bindings;
            if record.is_empty() {
                self.records.remove(id);
            }
        }
    }
}

/// A node as a binding names it: with the organization the binding belongs to. Two bindings
/// on one node of two organizations (a project deleted and made again in another organization
/// while a binding on it stays) are on two keys, so that a number found says both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeKey {
    organization: Option<Id>,
    node: crate::model::Node,
}

impl std::hash::Hash for NodeKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As the check path hashes the borrowed form ([`NodeNumbers::number`]).
        (self.organization.as_deref(), self.node.view()).hash(state)
    }
}

/// The numbers of the nodes the index knows, each within an organization: every (organization,
/// node) that a binding or a project names holds a number while any does, and a binding carries
/// its node's ([`CompiledBinding::node_number`]), so that a subject's bindings are sorted and
/// searched by number. A project keeps the numbers of its own node, its space and its
/// organization ([`ProjectRecord`]): a check of a resource in a project finds every node of its
/// chain's number there, without hashing an id. Like [`RoleSlots`], counted: a number goes when
/// the last of what names it does, and is given again to another node.
#[derive(Clone, Debug)]
pub struct NodeNumbers {
    /// Each (organization, node) named, with its number and how many name it.
    numbers: CowMap<NodeKey, (u32, usize)>,
    /// Numbers given back, for reuse: the numbers stay as few as the nodes named. A persistent
    /// vector, not a shared `Vec`: after many nodes go (a large delete of resource bindings), a
    /// write that numbers one more node then copies a path of a tree, not the whole list.
    free: imbl::Vector<u32>,
}

/// The number of the platform (of no organization), named from the start and never given back.
pub const PLATFORM_NUMBER: u32 = 0;

/// The bit of [`NodeBindings::kinds`] that says a binding's organization is not its node's kind's
/// (an organization on a platform binding, none on another), or that its node's number is
/// [`NodeNumbers::PAST_THE_LAST`]: such a binding is on a number the check path does not look
/// for, and the reference evaluator decides a check it could deny.
pub const UNNUMBERED: u8 = 1 << 7;

impl Default for NodeNumbers {
    fn default() -> Self {
        let mut numbers = Self {
            numbers: CowMap::default(),
            free: imbl::Vector::new(),
        };
        let platform = numbers.take(None, NodeView::Platform);
        debug_assert_eq!(platform, PLATFORM_NUMBER);
        numbers
    }
}

impl NodeNumbers {
    /// The number every node gets once four billion hold one: the check path never searches
    /// for it, and a binding on it is marked [`UNNUMBERED`].
    pub const PAST_THE_LAST: u32 = u32::MAX;

    /// The number of `node` in `organization`, if anything names it: when nothing does, no
    /// binding is on it.
    #[inline]
    pub fn number(&self, organization: Option<&str>, node: NodeView<'_>) -> Option<u32> {
        self.numbers
            .find_hashed(
                hash_key(&(organization, node)),
                Self::is(organization, node),
            )
            .map(|(number, _)| *number)
    }

    /// The test of a key for `node` in `organization` (found by the hash of the two, so that
    /// neither a lookup nor a use counted builds a key).
    fn is<'k>(organization: Option<&'k str>, node: NodeView<'k>) -> impl Fn(&NodeKey) -> bool + 'k {
        move |k| k.organization.as_deref() == organization && k.node.view().same(&node)
    }

    /// True when a binding of `organization` on `node` is on the number the check path looks
    /// for: the platform's with no organization, any other node's with one. The index and the
    /// API make no other, but the store is not trusted to.
    pub fn numbers_exactly(organization: Option<&str>, node: NodeView<'_>) -> bool {
        organization.is_none() == matches!(node, NodeView::Platform)
    }

    /// The number of `node` in `organization`, counting one more use of it.
    fn take(&mut self, organization: Option<&str>, node: NodeView<'_>) -> u32 {
        let hash = hash_key(&(organization, node));
        let named = self
            .numbers
            .find_hashed_mut(hash, Self::is(organization, node));
        if let Some((number, uses)) = named {
            *uses += 1;
            return *number;
        }
        let key = NodeKey {
            organization: organization.map(str::to_owned),
            node: node.to_node(),
        };
        let number = match self.free.pop_back() {
            Some(number) => number,
            None => u32::try_from(self.numbers.len()).unwrap_or(Self::PAST_THE_LAST),
        };
        self.numbers.insert(key, (number, 1));
        number
    }

    /// Counts one use of `node` in `organization` fewer, and frees its number after its last.
    fn give_back(&mut self, organization: Option<&str>, node: NodeView<'_>) {
        let hash = hash_key(&(organization, node));
        let named = self
            .numbers
            .find_hashed_mut(hash, Self::is(organization, node));
        let Some((number, uses)) = named else {
            return;
        };
        *uses -= 1;
        if *uses == 0 {
            let number = *number;
            self.numbers
                .remove_hashed(hash, Self::is(organization, node));
            self.free.push_back(number);
        }
    }

    /// How many nodes hold a number.
    pub fn len(&self) -> usize {
        self.numbers.len()
    }

    /// True when only the platform holds one.
    pub fn is_empty(&self) -> bool {
        self.numbers.len() <= 1
    }
}

/// A project as the index keeps it: with the numbers of the nodes of its chain
/// ([`NodeNumbers`]), each in the project's organization.
#[derive(Clone, Debug)]
pub struct ProjectRecord {
    pub project: Arc<Project>,
    /// The project's own node's number.
    pub number: u32,
    /// Its space's.
    pub space_number: u32,
    /// Its organization's.
    pub organization_number: u32,
}

impl ProjectRecord {
    /// The nodes of a project's chain whose numbers it keeps, in its organization.
    fn nodes(project: &Project) -> [NodeView<'_>; 3] {
        [
            NodeView::Project(&project.id),
            NodeView::Space(&project.space_id),
            NodeView::Organization(&project.organization_id),
        ]
    }
}

/// A node's kind, as one bit of [`NodeBindings`]' kinds.
pub const fn node_kind(node: NodeView<'_>) -> u8 {
    match node {
        NodeView::Platform => 1,
        NodeView::Organization(_) => 2,
        NodeView::Space(_) => 4,
        NodeView::Project(_) => 8,
        NodeView::Resource(..) => 16,
    }
}

fn compile_entry(entry: &RoleEntry) -> CompiledEntry {
    CompiledEntry {
        permission: entry.permission.clone(),
        scope: entry.scope,
        condition: compile_stored(entry.condition.as_deref()),
    }
}

/// Values by slot, for the check path: every id that a value or a reference of the index names
/// holds a slot while any does, and a reference carries its id's slot, so that a check finds the
/// value by reading an array, not by a hash lookup of its id. A value changed or deleted changes
/// its slot's content, never a reference. Two kinds: [`RoleSlots`] and [`ProjectSlots`].
///
/// The array is copy-on-write in chunks of [`SLOTS_A_CHUNK`]: a write that puts or deletes a
/// value (a role, a project) copies its chunk and the array of chunk pointers, not every slot
/// (with 100,000 projects in one array, a project written took 2.7 ms to copy it whole); a
/// write that only names an id (a binding, a resource) counts a use and copies nothing.
#[derive(Clone, Debug)]
pub struct Slots<T> {
    /// Each id named, with its slot and how many (its value, its references) name it.
    slots: CowMap<Id, (u32, usize)>,
    /// Slots given back, for reuse: the slots stay as few as the ids named.
    free: Arc<Vec<u32>>,
    /// The value in each slot, if it exists, by chunks of [`SLOTS_A_CHUNK`] slots; ends at the
    /// last chunk that holds one.
    values: Arc<Vec<Arc<Vec<Option<T>>>>>,
}

/// How many slots a chunk of [`Slots`] holds.
const SLOTS_A_CHUNK: usize = 256;

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self {
            slots: CowMap::default(),
            free: Arc::default(),
            values: Arc::default(),
        }
    }
}

/// The roles by slot: a binding carries its role's ([`CompiledBinding::role_slot`]).
pub type RoleSlots = Slots<Arc<CompiledRole>>;

/// The projects by slot: a registered resource carries its project's
/// ([`RegisteredResource::project_slot`]), so that a check of it finds the numbers of its chain
/// without hashing the project's id.
pub type ProjectSlots = Slots<ProjectRecord>;

impl<T: Clone> Slots<T> {
    /// The value in a slot.
    #[inline]
    pub fn get(&self, slot: u32) -> Option<&T> {
        let slot = slot as usize;
        (self.values.get(slot / SLOTS_A_CHUNK)?)
            .get(slot % SLOTS_A_CHUNK)?
            .as_ref()
    }

    /// The slot of `id`, counting one more use of it.
    fn take(&mut self, id: &str) -> u32 {
        if let Some((slot, uses)) = self.slots.get_mut(id) {
            *uses += 1;
            return *slot;
        }
        let slot = match Arc::make_mut(&mut self.free).pop() {
            Some(slot) => slot,
            None => u32::try_from(self.slots.len()).unwrap_or(u32::MAX),
        };
        self.slots.insert(id.to_owned(), (slot, 1));
        slot
    }

    /// Counts one use of `id` fewer, and frees its slot after its last.
    fn give_back(&mut self, id: &str) {
        let Some((slot, uses)) = self.slots.get_mut(id) else {
            return;
        };
        *uses -= 1;
        if *uses == 0 {
            let slot = *slot;
            self.slots.remove(id);
            Arc::make_mut(&mut self.free).push(slot);
        }
    }

    /// Puts a value in its slot (its id's, taken by the caller), or takes it out.
    fn set(&mut self, slot: u32, value: Option<T>) {
        let (chunk, at) = (slot as usize / SLOTS_A_CHUNK, slot as usize % SLOTS_A_CHUNK);
        if value.is_none() && self.get(slot).is_none() {
            return;
        }
        let chunks = Arc::make_mut(&mut self.values);
        if chunks.len() <= chunk {
            chunks.resize_with(chunk + 1, Arc::default);
        }
        if let Some(slots) = chunks.get_mut(chunk) {
            let slots = Arc::make_mut(slots);
            if slots.len() <= at {
                slots.resize(at + 1, None);
            }
            if let Some(place) = slots.get_mut(at) {
                *place = value;
            }
            while slots.last().is_some_and(Option::is_none) {
                slots.pop();
            }
        }
        while chunks.last().is_some_and(|slots| slots.is_empty()) {
            chunks.pop();
        }
    }

    /// Puts the value of `id` in, or in place of the one there (which already counts as a use).
    fn put(&mut self, id: &str, value: T) {
        let slot = match self.slots.get(id) {
            Some((slot, _)) if self.get(*slot).is_some() => *slot,
            _ => self.take(id),
        };
        self.set(slot, Some(value));
    }

    /// Takes the value of `id` out.
    fn remove(&mut self, id: &str) {
        if let Some((slot, _)) = self.slots.get(id) {
            self.set(*slot, None);
            self.give_back(id);
        }
    }
}

/// A registered resource as [`Index::registered`] finds it.
#[derive(Clone, Debug)]
pub struct RegisteredResource {
    pub resource: Arc<Resource>,
    /// Its project id's slot ([`ProjectSlots`]), when it names one: the check path finds the
    /// project there without looking its id up.
    pub project_slot: Option<u32>,
}

/// The snapshot. Fields are public for reading; only [`Index::apply`] changes them, on a clone.
#[derive(Clone, Debug)]
pub struct Index {
    /// The revision of the last change applied.
    pub revision: Revision,
    pub catalog: Arc<Catalog>,
    pub organizations: CowMap<Id, Arc<Organization>>,
    /// Users, each with its links (organizations, spaces, groups, keys, bindings by node).
    pub users: Users,
    /// Lowercased email → user id.
    pub user_by_email: CowMap<Box<str>, Id>,
    pub user_by_external_id: CowMap<Box<str>, Id>,
    /// `organization/user` → membership.
    pub memberships: CowSet<MembershipEntry>,
    pub organization_users: CowMap<Id, MemberSet>,
    pub spaces: CowMap<Id, Arc<Space>>,
    pub space_members: CowMap<Id, MemberSet>,
    /// `space/user` → membership record.
    pub space_memberships: CowMap<String, Arc<SpaceMember>>,
    pub projects: CowMap<Id, ProjectRecord>,
    pub groups: CowMap<Id, Arc<Group>>,
    pub group_members: CowMap<Id, MemberSet>,
    /// `group/user` → membership record.
    pub group_memberships: CowMap<String, Arc<GroupMember>>,
    pub api_keys: CowMap<Id, Arc<ApiKey>>,
    /// Hex SHA-256 of a secret → key id.
    pub key_by_hash: CowMap<Box<str>, Id>,
    /// Resource grants by id.
    pub grants: CowMap<Id, Arc<CompiledGrant>>,
    /// Each subject's grants, indexed by pattern.
    pub grants_by_subject: CowMap<SubjectRef, Arc<PatternIndex>>,
    /// Types declared (or extended) by each organization.
    /// (Shared, so that a write to a map in one table copies a pointer for each organization.)
    pub declared_types: CowMap<Id, Arc<BTreeMap<String, ResourceType>>>,
    /// The stored declarations, for export.
    pub declarations: CowMap<String, Arc<DeclaredType>>,
    /// Predefined and custom roles by id.
    pub roles: CowMap<Id, Arc<CompiledRole>>,
    /// The same roles by slot, for the check path.
    pub role_slots: RoleSlots,
    /// The projects by slot, for the check path.
    pub project_slots: ProjectSlots,
    /// The numbers of the nodes bindings and projects name, for the check path.
    pub node_numbers: NodeNumbers,
    pub bindings: CowSet<Arc<CompiledBinding>>,
    /// The ids the bindings repeat, interned.
    names: Names,
    /// Each group's and key's bindings by node: what the check path walks.
    pub group_node_bindings: CowMap<Id, NodeBindings>,
    pub key_node_bindings: CowMap<Id, NodeBindings>,
    /// The bindings on each node, for subject search. (A bag, not a list: the organization's
    /// node may hold most of its bindings, and a write must not copy them all.)
    pub bindings_by_node: CowMap<crate::model::Node, SharedBag<CompiledBinding>>,
    /// Each organization's grants, for subject search.
    pub grants_by_organization: CowMap<Id, SharedBag<CompiledGrant>>,
    /// Registered resources by organization, type and id: looked up without allocating, and
    /// listed per type for resource search.
    pub resources_by_id: CowMap<String, Vec<RegisteredResource>>,
    /// The ids of the registered resources of each (organization, type), for resource search.
    pub resource_ids_by_type: CowMap<(Id, String), MemberSet>,
    /// `organization/type/id` → registered resource.
    pub resources: CowMap<String, Arc<Resource>>,
    /// The implicit `base` role.
    pub base_role: Option<Arc<CompiledRole>>,
    /// Bindings put since the last [`Index::settle`], by subject: a subject's list is made again
    /// once per write (or load), not once per binding put.
    added_bindings: HashMap<SubjectRef, Vec<Arc<CompiledBinding>>>,
    /// Bindings deleted since the last [`Index::settle`], by subject: a write that deletes a
    /// subject's bindings (a group, a user leaving its organization) takes them out of its list
    /// in one pass, not one pass each.
    removed_bindings: HashMap<SubjectRef, Vec<Arc<CompiledBinding>>>,
}

fn insert_set<S: SetOfIds>(map: &mut CowMap<Id, S>, key: &str, value: &str) {
    map.entry_or_default(key.to_owned()).add(value);
}

fn remove_set<S: SetOfIds>(map: &mut CowMap<Id, S>, key: &str, value: &str) {
    if let Some(set) = map.get_mut(key) {
        set.take_out(value);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

impl Index {
    /// An empty index at revision 0 holding the catalog's predefined roles.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        let mut roles = CowMap::default();
        let mut role_slots = RoleSlots::default();
        let mut base_role = None;
        for role in catalog.predefined_roles() {
            let compiled = Arc::new(CompiledRole::new(role.clone()));
            if role.name == BASE_ROLE {
                base_role = Some(compiled.clone());
            }
            roles.insert(role.id.clone(), compiled.clone());
            role_slots.put(&role.id, compiled);
        }
        Self {
            revision: 0,
            catalog,
            organizations: CowMap::default(),
            users: Users::default(),
            user_by_email: CowMap::default(),
            user_by_external_id: CowMap::default(),
            memberships: CowSet::default(),
            organization_users: CowMap::default(),
            spaces: CowMap::default(),
            space_members: CowMap::default(),
            space_memberships: CowMap::default(),
            projects: CowMap::default(),
            groups: CowMap::default(),
            group_members: CowMap::default(),
            group_memberships: CowMap::default(),
            api_keys: CowMap::default(),
            key_by_hash: CowMap::default(),
            grants: CowMap::default(),
            grants_by_subject: CowMap::default(),
            declared_types: CowMap::default(),
            declarations: CowMap::default(),
            roles,
            role_slots,
            project_slots: ProjectSlots::default(),
            node_numbers: NodeNumbers::default(),
            bindings: CowSet::default(),
            names: Names::default(),
            group_node_bindings: CowMap::default(),
            key_node_bindings: CowMap::default(),
            bindings_by_node: CowMap::default(),
            grants_by_organization: CowMap::default(),
            resources_by_id: CowMap::default(),
            resource_ids_by_type: CowMap::default(),
            resources: CowMap::default(),
            base_role,
            added_bindings: HashMap::default(),
            removed_bindings: HashMap::default(),
        }
    }

    /// Builds an index from every object of a store at `revision`.
    pub fn load(
        catalog: Arc<Catalog>,
        revision: Revision,
        objects: impl IntoIterator<Item = Object>,
    ) -> Self {
        let mut index = Self::new(catalog);
        for object in objects {
            index.put(object);
        }
        index.settle();
        index.revision = revision;
        index
    }

    /// Makes again the lists of the subjects whose bindings were put or deleted since the last
    /// settle, each once.
    fn settle(&mut self) {
        let mut removed = std::mem::take(&mut self.removed_bindings);
        for (subject, added) in std::mem::take(&mut self.added_bindings) {
            let gone = removed.remove(&subject).unwrap_or_default();
            self.change_node_bindings(&subject, &gone, added);
        }
        for (subject, gone) in removed {
            self.change_node_bindings(&subject, &gone, Vec::new());
        }
    }

    /// Applies the ops of one committed revision.
    pub fn apply(&mut self, revision: Revision, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Put { object } => self.put(object.clone()),
                Op::Delete { key } => self.remove(key),
            }
        }
        self.settle();
        self.revision = revision;
    }

    /// A project by id.
    pub fn project(&self, id: &str) -> Option<&Arc<Project>> {
        self.projects.get(id).map(|record| &record.project)
    }

    /// A user by id, email (any case) or external id, in that order.
    pub fn find_user(&self, reference: &str) -> Option<&Arc<User>> {
        self.users
            .get(reference)
            .or_else(|| {
                // Emails are kept in lower case; most references already are, and a check by
                // email then allocates nothing.
                let email = if !reference
                    .bytes()
                    .any(|b| !b.is_ascii() || b.is_ascii_uppercase())
                {
                    std::borrow::Cow::Borrowed(reference)
                } else {
                    std::borrow::Cow::Owned(reference.to_lowercase())
                };
                self.user_by_email
                    .get(email.as_ref())
                    .and_then(|id| self.users.get(id))
            })
            .or_else(|| {
                self.user_by_external_id
                    .get(reference)
                    .and_then(|id| self.users.get(id))
            })
    }

    /// True when the user is a member (active or pending) of the organization.
    pub fn is_member(&self, organization_id: &str, user_id: &str) -> bool {
        self.user_organizations(user_id)
            .is_some_and(|orgs| orgs.contains(organization_id))
    }

    /// The organizations a user is a member of.
    pub fn user_organizations(&self, user_id: &str) -> Option<&IdSet> {
        self.users.links(user_id).map(|l| &l.organizations)
    }

    /// The spaces a user is a member of.
    pub fn user_spaces(&self, user_id: &str) -> Option<&IdSet> {
        self.users.links(user_id).map(|l| &l.spaces)
    }

    /// The groups a user is a member of.
    pub fn user_groups(&self, user_id: &str) -> Option<&IdSet> {
        self.users.links(user_id).map(|l| &l.groups)
    }

    /// A user's API keys.
    pub fn user_keys(&self, user_id: &str) -> Option<&IdSet> {
        self.users.links(user_id).map(|l| &l.keys)
    }

    /// A registered resource.
    pub fn resource(
        &self,
        organization_id: &str,
        resource_type: &str,
        id: &str,
    ) -> Option<&Arc<Resource>> {
        self.registered(organization_id, resource_type, id)
            .map(|r| &r.resource)
    }

    /// A registered resource, with its project's slot.
    #[inline(always)]
    pub fn registered(
        &self,
        organization_id: &str,
        resource_type: &str,
        id: &str,
    ) -> Option<&RegisteredResource> {
        let resources = (self.resources_by_id).find_hashed(hash_key(id), |k| same_id(k, id))?;
        resources.iter().find(|r| {
            same_id(&r.resource.organization_id, organization_id)
                && same_id(&r.resource.resource_type, resource_type)
        })
    }

    /// A role visible in an organization: predefined, or custom of that organization.
    pub fn role_in(
        &self,
        organization_id: Option<&str>,
        role_id: &str,
    ) -> Option<&Arc<CompiledRole>> {
        self.roles.get(role_id).filter(|r| {
            r.role.is_predefined || r.role.organization_id.as_deref() == organization_id
        })
    }

    /// True when `role_id` names a predefined role.
    pub fn is_predefined_role_id(role_id: &str) -> bool {
        role_id.starts_with(PREDEFINED_ROLE_PREFIX)
    }

    fn put(&mut self, object: Object) {
        self.remove(&object.key());
        match object {
            Object::Organization(o) => {
                self.organizations.insert(o.id.clone(), Arc::new(o));
            }
            Object::User(u) => {
                self.user_by_email
                    .insert(u.email.to_lowercase().into_boxed_str(), u.id.clone());
                for e in &u.external_ids {
                    self.user_by_external_id
                        .insert(e.as_str().into(), u.id.clone());
                }
                self.users.insert(Arc::new(u));
            }
            Object::Membership(m) => {
                self.users
                    .add_links(&m.user_id, |l| l.organizations.add(&m.organization_id));
                insert_set(&mut self.organization_users, &m.organization_id, &m.user_id);
                self.memberships.insert(MembershipEntry::new(&m));
            }
            Object::Space(s) => {
                self.spaces.insert(s.id.clone(), Arc::new(s));
            }
            Object::SpaceMember(m) => {
                insert_set(&mut self.space_members, &m.space_id, &m.user_id);
                self.users
                    .add_links(&m.user_id, |l| l.spaces.add(&m.space_id));
                self.space_memberships
                    .insert(pair_key(&m.space_id, &m.user_id), Arc::new(m));
            }
            Object::Project(p) => {
                let [number, space_number, organization_number] = ProjectRecord::nodes(&p)
                    .map(|node| self.node_numbers.take(Some(&p.organization_id), node));
                let record = ProjectRecord {
                    project: Arc::new(p),
                    number,
                    space_number,
                    organization_number,
                };
                self.project_slots.put(&record.project.id, record.clone());
                self.projects.insert(record.project.id.clone(), record);
            }
            Object::Group(g) => {
                self.groups.insert(g.id.clone(), Arc::new(g));
            }
            Object::GroupMember(m) => {
                insert_set(&mut self.group_members, &m.group_id, &m.user_id);
                self.users
                    .add_links(&m.user_id, |l| l.groups.add(&m.group_id));
                self.group_memberships
                    .insert(pair_key(&m.group_id, &m.user_id), Arc::new(m));
            }
            Object::ApiKey(k) => {
                self.key_by_hash
                    .insert(k.secret_hash.as_str().into(), k.id.clone());
                self.users.add_links(&k.user_id, |l| l.keys.add(&k.id));
                self.api_keys.insert(k.id.clone(), Arc::new(k));
            }
            Object::Role(r) => {
                let role = Arc::new(CompiledRole::new(r));
                self.roles.insert(role.role.id.clone(), role.clone());
                self.role_slots.put(&role.role.id, role.clone());
            }
            Object::RoleBinding(b) => {
                let subject = b.subject.clone();
                let node = b.node.clone();
                let role_slot = self.role_slots.take(&b.role_id);
                let node_number = self
                    .node_numbers
                    .take(b.organization_id.as_deref(), node.view());
                let compiled = Arc::new(CompiledBinding::new(
                    b,
                    &mut self.names,
                    role_slot,
                    node_number,
                ));
                self.bindings_by_node
                    .entry_or_default(node)
                    .push(compiled.clone());
                self.added_bindings
                    .entry(subject)
                    .or_default()
                    .push(compiled.clone());
                self.bindings.insert(compiled);
            }
            Object::Resource(r) => {
                let r = Arc::new(r);
                self.resources_by_id
                    .entry_or_default(r.id.clone())
                    .push(RegisteredResource {
                        project_slot: (r.project_id.as_deref()).map(|p| self.project_slots.take(p)),
                        resource: r.clone(),
                    });
                self.resource_ids_by_type
                    .entry_or_default((r.organization_id.clone(), r.resource_type.clone()))
                    .insert(r.id.clone());
                self.resources
                    .insert(resource_key(&r.organization_id, &r.resource_type, &r.id), r);
            }
            Object::ResourceGrant(g) => {
                let compiled = Arc::new(CompiledGrant::new(g));
                let subject = compiled.grant.subject.as_subject_ref();
                Arc::make_mut(self.grants_by_subject.entry_or_default(subject))
                    .insert(compiled.clone());
                self.grants_by_organization
                    .entry_or_default(compiled.grant.organization_id.clone())
                    .push(compiled.clone());
                self.grants.insert(compiled.grant.id.clone(), compiled);
            }
            Object::DeclaredType(d) => {
                let declaration = Arc::new(d);
                let (org, name) = (
                    declaration.organization_id.clone(),
                    declaration.name.clone(),
                );
                self.declarations.insert(pair_key(&org, &name), declaration);
                self.refresh_declared_type(&org, &name);
            }
        }
    }

    fn remove(&mut self, key: &ObjectKey) {
        let id = key.id.as_str();
        match key.kind {
            ObjectKind::Organization => {
                self.organizations.remove(id);
            }
            ObjectKind::User => {
                if let Some(u) = self.users.remove(id) {
                    self.user_by_email.remove(u.email.to_lowercase().as_str());
                    for e in &u.external_ids {
                        self.user_by_external_id.remove(e.as_str());
                    }
                }
            }
            ObjectKind::Membership => {
                if let Some(m) = self.memberships.remove(id) {
                    let (organization, user) = (m.organization_id(), m.user_id());
                    self.change_user_links(user, |l| l.organizations.take_out(organization));
                    remove_set(&mut self.organization_users, organization, user);
                }
            }
            ObjectKind::Space => {
                self.spaces.remove(id);
            }
            ObjectKind::SpaceMember => {
                if let Some(m) = self.space_memberships.remove(id) {
                    remove_set(&mut self.space_members, &m.space_id, &m.user_id);
                    self.change_user_links(&m.user_id, |l| l.spaces.take_out(&m.space_id));
                }
            }
            ObjectKind::Project => {
                if let Some(record) = self.projects.remove(id) {
                    self.project_slots.remove(id);
                    let p = &record.project;
                    for node in ProjectRecord::nodes(p) {
                        self.node_numbers.give_back(Some(&p.organization_id), node);
                    }
                }
            }
            ObjectKind::Group => {
                self.groups.remove(id);
            }
            ObjectKind::GroupMember => {
                if let Some(m) = self.group_memberships.remove(id) {
                    remove_set(&mut self.group_members, &m.group_id, &m.user_id);
                    self.change_user_links(&m.user_id, |l| l.groups.take_out(&m.group_id));
                }
            }
            ObjectKind::ApiKey => {
                if let Some(k) = self.api_keys.remove(id) {
                    self.key_by_hash.remove(k.secret_hash.as_str());
                    self.change_user_links(&k.user_id, |l| l.keys.take_out(&k.id));
                }
            }
            ObjectKind::Role => {
                if !Self::is_predefined_role_id(id) && self.roles.remove(id).is_some() {
                    self.role_slots.remove(id);
                }
            }
            ObjectKind::RoleBinding => {
                if let Some(b) = self.bindings.remove(id) {
                    self.removed_bindings
                        .entry(b.subject().to_subject_ref())
                        .or_default()
                        .push(b.clone());
                    let node = b.node().to_node();
                    if let Some(list) = self.bindings_by_node.get_mut(&node) {
                        list.remove(&b);
                        if list.is_empty() {
                            self.bindings_by_node.remove(&node);
                        }
                    }
                    b.release(&mut self.names);
                    self.role_slots.give_back(b.role_id());
                    self.node_numbers.give_back(b.organization_id(), b.node());
                }
            }
            ObjectKind::Resource => {
                if let Some(r) = self.resources.remove(id) {
                    if let Some(p) = &r.project_id {
                        self.project_slots.give_back(p);
                    }
                    if let Some(list) = self.resources_by_id.get_mut(r.id.as_str()) {
                        list.retain(|x| !Arc::ptr_eq(&x.resource, &r));
                        if list.is_empty() {
                            self.resources_by_id.remove(r.id.as_str());
                        }
                    }
                    let key = (r.organization_id.clone(), r.resource_type.clone());
                    if let Some(ids) = self.resource_ids_by_type.get_mut(&key) {
                        ids.remove(&r.id);
                        if ids.is_empty() {
                            self.resource_ids_by_type.remove(&key);
                        }
                    }
                }
            }
            ObjectKind::ResourceGrant => {
                if let Some(g) = self.grants.remove(id) {
                    let org = &g.grant.organization_id;
                    if let Some(list) = self.grants_by_organization.get_mut(org) {
                        list.remove(&g);
                        if list.is_empty() {
                            self.grants_by_organization.remove(org);
                        }
                    }
                    let subject = g.grant.subject.as_subject_ref();
                    if let Some(index) = self.grants_by_subject.get_mut(&subject) {
                        Arc::make_mut(index).remove(&g);
                        if index.is_empty() {
                            self.grants_by_subject.remove(&subject);
                        }
                    }
                }
            }
            ObjectKind::DeclaredType => {
                if let Some(d) = self.declarations.remove(id) {
                    self.refresh_declared_type(&d.organization_id, &d.name);
                }
            }
        }
    }

    /// Changes a user's links, if it has a record, and drops them when nothing is left in them.
    fn change_user_links(&mut self, user_id: &str, change: impl FnOnce(&mut UserLinks)) {
        self.users.change_links(user_id, change)
    }

    /// How many distinct ids the bindings name (interned once each).
    pub fn interned_names(&self) -> usize {
        self.names.len()
    }

    /// A subject's bindings, ordered by id (the order the server created them in: its ids
    /// begin with the time), so that listings and explanations do not depend on the order the
    /// index took them in.
    pub fn subject_bindings(&self, subject: &SubjectRef) -> Vec<&Arc<CompiledBinding>> {
        let mut list: Vec<&Arc<CompiledBinding>> = self
            .node_bindings(subject)
            .into_iter()
            .flat_map(|nb| nb.entries())
            .collect();
        list.sort_unstable_by(|a, b| a.id().cmp(b.id()));
        list
    }

    /// A subject's bindings by node.
    fn node_bindings(&self, subject: &SubjectRef) -> Option<&NodeBindings> {
        match subject {
            SubjectRef::User(id) => self.users.bindings(id),
            SubjectRef::Group(id) => self.group_node_bindings.get(id),
            SubjectRef::ApiKey(id) => self.key_node_bindings.get(id),
        }
    }

    /// Makes a subject's bindings by node again without those of `gone` and with those of
    /// `added`; a subject left with none loses its entry.
    fn change_node_bindings(
        &mut self,
        subject: &SubjectRef,
        gone: &[Arc<CompiledBinding>],
        added: Vec<Arc<CompiledBinding>>,
    ) {
        let now = match self.node_bindings(subject) {
            Some(nb) => nb.changed(gone, added),
            None => NodeBindings::default().changed(gone, added),
        };
        let (map, id) = match subject {
            SubjectRef::User(id) => return self.users.set_bindings(id, now),
            SubjectRef::Group(id) => (&mut self.group_node_bindings, id),
            SubjectRef::ApiKey(id) => (&mut self.key_node_bindings, id),
        };
        if now.is_empty() {
            map.remove(id);
        } else {
            map.insert(id.clone(), now);
        }
    }

    /// Updates one organization's view of one declared type: a declaration of a built-in type
    /// adds actions to it and keeps its service. There is one declaration per (organization,
    /// name), so the view is that declaration.
    fn refresh_declared_type(&mut self, organization_id: &str, name: &str) {
        let declaration = self
            .declarations
            .get(&pair_key(organization_id, name))
            .cloned();
        let types = Arc::make_mut(
            self.declared_types
                .entry_or_default(organization_id.to_owned()),
        );
        match declaration {
            Some(d) => {
                let service = self
                    .catalog
                    .resource_type(&d.name)
                    .map_or_else(|| d.service.clone(), |t| t.service.clone());
                types.insert(
                    d.name.clone(),
                    ResourceType {
                        name: d.name.clone(),
                        service,
                        description: d.description.clone(),
                        actions: d.actions.iter().cloned().collect(),
                        organization_id: Some(d.organization_id.clone()),
                    },
                );
            }
            None => {
                types.remove(name);
            }
        }
        if types.is_empty() {
            self.declared_types.remove(organization_id);
        }
    }

    /// The types an organization declared or extended.
    pub fn organization_types(&self, organization_id: &str) -> &BTreeMap<String, ResourceType> {
        static EMPTY: BTreeMap<String, ResourceType> = BTreeMap::new();
        self.declared_types
            .get(organization_id)
            .map_or(&EMPTY, |types| &**types)
    }

    /// The service a type belongs to in an organization: built-in first, then declared.
    pub fn type_service(&self, organization_id: &str, resource_type: &str) -> Option<&str> {
        self.catalog
            .resource_type(resource_type)
            .map(|t| t.service.as_str())
            .or_else(|| {
                self.organization_types(organization_id)
                    .get(resource_type)
                    .map(|t| t.service.as_str())
            })
    }

    /// The actions a type has in an organization (built-in and declared).
    pub fn type_actions(
        &self,
        organization_id: &str,
        resource_type: &str,
    ) -> Option<BTreeSet<String>> {
        let builtin = self
            .catalog
            .resource_type(resource_type)
            .map(|t| t.actions.clone());
        let declared = self
            .organization_types(organization_id)
            .get(resource_type)
            .map(|t| t.actions.clone());
        match (builtin, declared) {
            (None, None) => None,
            (a, b) => Some(a.into_iter().chain(b).flatten().collect()),
        }
    }

    /// Validates a permission against the catalog and the organization's declared types.
    pub fn validate_permission(
        &self,
        organization_id: Option<&str>,
        permission: &crate::permission::Permission,
    ) -> Result<(), crate::CoreError> {
        match organization_id {
            Some(org) => self
                .catalog
                .validate_with(permission, self.organization_types(org)),
            None => self.catalog.validate(permission),
        }
    }

    /// Every object of the index, for export. Predefined roles are not objects.
    pub fn objects(&self) -> Vec<Object> {
        let mut out: Vec<Object> = Vec::new();
        out.extend(
            self.organizations
                .values()
                .map(|o| Object::Organization((**o).clone())),
        );
        out.extend(self.users.values().map(|o| Object::User((**o).clone())));
        out.extend(
            self.memberships
                .values()
                .map(|m| Object::Membership(m.to_membership())),
        );
        out.extend(self.spaces.values().map(|o| Object::Space((**o).clone())));
        out.extend(
            self.projects
                .values()
                .map(|o| Object::Project((*o.project).clone())),
        );
        out.extend(self.groups.values().map(|o| Object::Group((**o).clone())));
        out.extend(
            self.api_keys
                .values()
                .map(|o| Object::ApiKey((**o).clone())),
        );
        out.extend(
            self.roles
                .values()
                .filter(|r| !r.role.is_predefined)
                .map(|r| Object::Role(r.role.clone())),
        );
        out.extend(
            self.bindings
                .values()
                .map(|b| Object::RoleBinding(b.to_binding())),
        );
        out.extend(
            self.resources
                .values()
                .map(|o| Object::Resource((**o).clone())),
        );
        out.extend(
            self.space_memberships
                .values()
                .map(|o| Object::SpaceMember((**o).clone())),
        );
        out.extend(
            self.group_memberships
                .values()
                .map(|o| Object::GroupMember((**o).clone())),
        );
        out.sort_by_key(|o| o.key());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cowmap::process_seed;
    use crate::model::{ApiKeyKind, MembershipStatus, Node, RoleBinding};
    use crate::permission::name_hash;
    use chrono::{DateTime, Utc};

    /// The catalog's types and actions hash apart as permissions, the same however often they
    /// are parsed (a role's are parsed apart from those asked), and their filter bits spread: a
    /// filter whose bits pile up passes over fewer roles.
    #[test]
    fn the_builtin_permissions_hash_apart() {
        let catalog = Catalog::builtin().unwrap();
        let mut hashes = std::collections::HashSet::new();
        let mut bits = 0u64;
        let mut count = 0;
        for t in catalog.types().values() {
            for action in &t.actions {
                let permission = Permission::parse(&format!("{}:{action}", t.name)).unwrap();
                let asked = AskedPermission::new(&permission);
                let again = Permission::parse(&permission.to_string()).unwrap();
                assert_eq!(
                    (asked.hash, again.hash()),
                    (permission.hash(), permission.hash())
                );
                let type_hash = name_hash(&t.name, process_seed());
                assert_eq!(permission.type_hash(), type_hash);
                assert_eq!(permission.hash(), name_hash(action, type_hash));
                assert!(hashes.insert(asked.hash), "{permission} collides");
                // The bits under a fixed seed (the process's is drawn at random), so that the
                // count below is the same every run.
                bits |= filter_bit(name_hash(action, name_hash(&t.name, 1)));
                count += 1;
            }
        }
        assert!(count > 50, "{count} permissions");
        // A random hash puts 111 permissions on about 53 of the 64 bits.
        assert!(
            bits.count_ones() >= 48,
            "{count} permissions on {bits:064b}"
        );
    }

    fn user(id: &str) -> Object {
        Object::User(User {
            id: id.to_owned(),
            email: format!("{id}@x.test"),
            name: None,
            external_ids: Vec::new(),
            properties: Default::default(),
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
        })
    }

    fn membership(org: &str, user: &str) -> Object {
        Object::Membership(Membership {
            organization_id: org.to_owned(),
            user_id: user.to_owned(),
            status: MembershipStatus::Active,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
        })
    }

    fn delete(object: &Object) -> Op {
        Op::Delete { key: object.key() }
    }

    /// A binding compiled as the index compiles it: its node numbered in `numbers`.
    fn compiled(
        binding: RoleBinding,
        names: &mut Names,
        numbers: &mut NodeNumbers,
        role_slot: u32,
    ) -> Arc<CompiledBinding> {
        let number = numbers.take(binding.organization_id.as_deref(), binding.node.view());
        Arc::new(CompiledBinding::new(binding, names, role_slot, number))
    }

    /// The number of a node of the tests' organization `o` (`PAST_THE_LAST` when none).
    fn number_in_o(numbers: &NodeNumbers, node: NodeView<'_>) -> u32 {
        numbers
            .number(Some("o"), node)
            .unwrap_or(NodeNumbers::PAST_THE_LAST)
    }

    fn role_binding(id: String, subject: SubjectRef, node: Node) -> RoleBinding {
        RoleBinding {
            id,
            role_id: "r".to_owned(),
            subject,
            node,
            organization_id: Some("o".to_owned()),
            condition: None,
            expires_at: None,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_users_links_may_come_before_it_and_outlive_it() {
        let catalog = Arc::new(Catalog::builtin().unwrap_or_else(|e| panic!("{e}")));
        let mut index = Index::new(catalog);
        let (u1, m1) = (user("u1"), membership("o1", "u1"));
        index.apply(1, &[Op::Put { object: m1.clone() }]);
        assert!(index.users.get("u1").is_none(), "links alone are no user");
        assert_eq!(index.users.len(), 0);
        assert!(index.is_member("o1", "u1"));

        index.apply(2, &[Op::Put { object: u1.clone() }]);
        assert_eq!(index.users.len(), 1);
        assert!(index.users.contains_key("u1"));
        assert!(index.find_user("u1@x.test").is_some());

        index.apply(3, &[delete(&u1)]);
        assert_eq!(index.users.len(), 0);
        assert!(index.users.get("u1").is_none());
        assert!(
            index.is_member("o1", "u1"),
            "the membership outlives its user"
        );

        index.apply(4, &[delete(&m1)]);
        assert!(!index.is_member("o1", "u1"));
        assert_eq!(index.users.values().count(), 0);
        assert!(index.users.records.is_empty(), "nothing is left of u1");
    }

    /// A membership kept as its key, status and date gives back the stored membership, even
    /// when an id holds the key's `/`, and its deletion finds both ids.
    #[test]
    fn a_membership_entry_gives_back_the_stored_membership() {
        let catalog = Arc::new(Catalog::builtin().unwrap_or_else(|e| panic!("{e}")));
        let mut index = Index::new(catalog);
        let pending = Object::Membership(Membership {
            organization_id: "o/1".to_owned(),
            user_id: "u/2".to_owned(),
            status: MembershipStatus::Pending,
            created_at: DateTime::parse_from_rfc3339("2026-12-04T10:00:00.123456789Z")
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|e| panic!("{e}")),
        });
        let plain = membership("o", "u/2");
        index.apply(
            1,
            &[
                Op::Put {
                    object: pending.clone(),
                },
                Op::Put {
                    object: plain.clone(),
                },
            ],
        );
        let entry = index
            .memberships
            .get(&pair_key("o/1", "u/2"))
            .unwrap_or_else(|| panic!("the membership is kept"));
        assert_eq!((entry.organization_id(), entry.user_id()), ("o/1", "u/2"));
        assert_eq!(Object::Membership(entry.to_membership()), pending);
        let mut kept: Vec<Object> = index
            .objects()
            .into_iter()
            .filter(|o| matches!(o, Object::Membership(_)))
            .collect();
        kept.sort_by_key(|o| o.key().id);
        // By key: `o/1/u/2` before `o/u/2`.
        assert_eq!(kept, [pending.clone(), plain]);

        index.apply(2, &[delete(&pending)]);
        assert!(!index.is_member("o/1", "u/2"));
        assert!(index.is_member("o", "u/2"));
        assert_eq!(index.memberships.len(), 1);
    }

    /// A user id of up to 23 bytes is in the record's own lines, so that the lookup compares it
    /// without reading memory elsewhere; a longer one is kept apart, and both are found.
    #[test]
    fn a_short_user_id_is_kept_in_its_record() {
        let long = "a-user-id-longer-than-twenty-three-bytes";
        let mut users = Users::default();
        for id in [
            "u1",
            "exactly-23-bytes-long-u",
            "exactly-24-bytes-long-u1",
            long,
        ] {
            users.record_mut(id);
        }
        let in_record = |id: &str| {
            let record = users.record(id).unwrap_or_else(|| panic!("{id} not found"));
            assert_eq!(record.key(), id);
            let start = record as *const UserRecord as usize;
            let at = record.key().as_ptr() as usize;
            (start..start + std::mem::size_of::<UserRecord>()).contains(&at)
        };
        assert!(in_record("u1"));
        assert!(in_record("exactly-23-bytes-long-u"));
        assert!(!in_record(long));
        assert!(!in_record("exactly-24-bytes-long-u1"));
        assert!(users.record("u2").is_none());
    }

    /// The check path reads a user's links for groups and keys only when the record says they
    /// hold some: the record must say so exactly while they do, whatever the order of writes.
    #[test]
    fn a_user_record_says_whether_its_links_hold_groups_or_keys() {
        // With up to `INLINE_KEYS` keys in place.
        assert_eq!(
            std::mem::size_of::<UserRecord>(),
            3 * 64,
            "three cache lines"
        );
        assert_eq!(
            std::mem::align_of::<UserRecord>(),
            64,
            "from a cache line's start"
        );
        // The kinds of node in the keys' padding, the id in place: a record's parts fill 185 of
        // its 192 bytes.
        assert_eq!(std::mem::size_of::<NodeBindings>(), 144);
        assert_eq!(std::mem::size_of::<SmolStr>(), 24);
        let catalog = Arc::new(Catalog::builtin().unwrap_or_else(|e| panic!("{e}")));
        let mut index = Index::new(catalog);
        let says = |index: &Index| {
            let record = index.users.record("u1");
            record.map(|r| r.has_groups_or_keys)
        };
        let group_member = Object::GroupMember(GroupMember {
            group_id: "g1".to_owned(),
            user_id: "u1".to_owned(),
            organization_id: "o1".to_owned(),
            created_at: DateTime::<Utc>::UNIX_EPOCH,
        });
        let key = Object::ApiKey(ApiKey {
            id: "k1".to_owned(),
            name: "k".to_owned(),
            kind: ApiKeyKind::User,
            user_id: "u1".to_owned(),
            project_id: None,
            organization_id: Some("o1".to_owned()),
            secret_hash: "h1".to_owned(),
            display_prefix: "arb_".to_owned(),
            expires_at: None,
            revoked_at: None,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
        });
        // A group's membership before its user, then the user and an organization.
        index.apply(
            1,
            &[Op::Put {
                object: group_member.clone(),
            }],
        );
        assert_eq!(says(&index), Some(true));
        index.apply(
            2,
            &[
                Op::Put { object: user("u1") },
                Op::Put {
                    object: membership("o1", "u1"),
                },
            ],
        );
        assert_eq!(says(&index), Some(true));
        index.apply(3, &[delete(&group_member)]);
        assert_eq!(
            says(&index),
            Some(false),
            "an organization alone is neither"
        );
        index.apply(
            4,
            &[Op::Put {
                object: key.clone(),
            }],
        );
        assert_eq!(says(&index), Some(true));
        index.apply(
            5,
            &[
                Op::Put {
                    object: group_member.clone(),
                },
                delete(&key),
            ],
        );
        assert_eq!(says(&index), Some(true), "the group is still there");
        index.apply(6, &[delete(&group_member)]);
        assert_eq!(says(&index), Some(false));
    }

    #[test]
    fn a_roles_filter_passes_over_only_what_it_cannot_cover() {
        let role = |permissions: &[&str]| {
            CompiledRole::new(Role {
                id: "r".to_owned(),
                organization_id: None,
                name: "r".to_owned(),
                description: String::new(),
                kind: Default::default(),
                permissions: permissions
                    .iter()
                    .map(|p| RoleEntry {
                        permission: Permission::parse(p).unwrap_or_else(|e| panic!("{e}")),
                        scope: Scope::All,
                        condition: None,
                    })
                    .collect(),
                is_predefined: false,
                created_at: DateTime::<Utc>::UNIX_EPOCH,
                updated_at: DateTime::<Utc>::UNIX_EPOCH,
            })
        };
        let covers = |role: &CompiledRole, asked: &str| {
            let asked = Permission::parse(asked).unwrap_or_else(|e| panic!("{e}"));
            let mut seen = 0;
            let answer = role.for_each_covering_asked(&AskedPermission::new(&asked), &mut |e| {
                seen += 1;
                assert!(
                    e.permission.covers(&asked),
                    "{:?} does not cover",
                    e.permission
                );
                false
            });
            assert!(!answer, "`f` never answered true");
            seen
        };
        let some = role(&["model:read", "model:write", "dataset:*"]);
        assert_eq!(covers(&some, "model:read"), 1);
        assert_eq!(covers(&some, "dataset:delete"), 1);
        assert_eq!(covers(&some, "job:cancel"), 0);
        assert_eq!(covers(&some, "model:delete"), 0);
        // A pattern asked passes the filter; only a pattern at least as wide covers it.
        assert_eq!(covers(&some, "*:read"), 0);
        assert_eq!(covers(&some, "dataset:*"), 1);
        // Many types, so that every bit of the filter is likely set somewhere.
        let types: Vec<String> = (0..200).map(|i| format!("t{i}:read")).collect();
        let many = role(&types.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(covers(&many, "t7:read"), 1);
        assert_eq!(covers(&many, "t7:write"), 0);
        let all = role(&["*:read", "model:read"]);
        assert_eq!(covers(&all, "anything:read"), 1);
        assert_eq!(covers(&all, "model:read"), 2);
        assert_eq!(covers(&all, "*:read"), 1);
        assert_eq!(covers(&role(&[]), "model:read"), 0);
    }

    #[test]
    fn one_write_deletes_many_of_a_subjects_bindings_and_may_put_one_back() {
        let catalog = Arc::new(Catalog::builtin().unwrap_or_else(|e| panic!("{e}")));
        let mut index = Index::new(catalog);
        let binding = |id: String, node: Node| {
            Object::RoleBinding(role_binding(id, SubjectRef::Group("g".to_owned()), node))
        };
        let on_resources: Vec<Object> = (0..3000)
            .map(|i| {
                binding(
                    format!("b{i}"),
                    Node::resource("o", "model", format!("m{i}")),
                )
            })
            .collect();
        let on_project = binding("p".to_owned(), Node::Project("p1".to_owned()));
        let mut puts: Vec<Op> = on_resources
            .iter()
            .map(|o| Op::Put { object: o.clone() })
            .collect();
        puts.push(Op::Put {
            object: on_project.clone(),
        });
        index.apply(1, &puts);
        let group = SubjectRef::Group("g".to_owned());
        assert_eq!(index.subject_bindings(&group).len(), 3001);

        // One write: two thirds of the resource bindings and the project one go; b0 goes and
        // comes back.
        let mut ops: Vec<Op> = on_resources[..2000].iter().map(delete).collect();
        ops.push(delete(&on_project));
        ops.push(Op::Put {
            object: on_resources[0].clone(),
        });
        index.apply(2, &ops);
        let left: Vec<&str> = index
            .subject_bindings(&group)
            .iter()
            .map(|b| b.id())
            .collect();
        assert_eq!(left.len(), 1001);
        assert!(left.contains(&"b0"), "put back in the same write");
        assert!(!left.contains(&"b1") && !left.contains(&"p"));
        assert!(left.contains(&"b2999"));
        let nb = index
            .group_node_bindings
            .get("g")
            .unwrap_or_else(|| panic!("the group has bindings left"));
        assert_eq!(nb.kinds() & node_kind(NodeView::Project("p1")), 0);
        let number = |node| number_in_o(&index.node_numbers, node);
        let m0 = NodeView::Resource("o", "model", "m0");
        assert_eq!(nb.on(number(m0)).len(), 1, "b0 is found on its node");
        assert_eq!(
            index
                .node_numbers
                .number(Some("o"), NodeView::Resource("o", "model", "m1")),
            None,
            "nothing numbers a node no binding is on"
        );

        // Deleting the rest leaves the group nothing.
        let rest: Vec<Op> = std::iter::once(&on_resources[0])
            .chain(&on_resources[2000..])
            .map(delete)
            .collect();
        index.apply(3, &rest);
        assert!(index.subject_bindings(&group).is_empty());
        assert!(index.group_node_bindings.get("g").is_none());
        assert!(index.node_numbers.is_empty(), "every number given back");
    }

    #[test]
    fn a_subjects_bindings_know_the_kinds_of_node_they_are_on() {
        let (mut names, mut numbers) = (Names::default(), NodeNumbers::default());
        let mut binding = |id: &str, node: Node| {
            let subject = SubjectRef::User("u".to_owned());
            let binding = role_binding(id.to_owned(), subject, node);
            compiled(binding, &mut names, &mut numbers, 0)
        };
        let on_project = binding("b1", Node::Project("p".to_owned()));
        let on_org = binding("b2", Node::Organization("o".to_owned()));
        let on_space = binding("b3", Node::Space("s".to_owned()));
        let empty = NodeBindings::default();
        assert_eq!(empty.kinds(), 0);
        let nb = empty.changed(&[], vec![on_project.clone(), on_org.clone()]);
        assert_ne!(nb.kinds() & node_kind(NodeView::Project("another")), 0);
        assert_ne!(nb.kinds() & node_kind(NodeView::Organization("o")), 0);
        assert_eq!(nb.kinds() & node_kind(NodeView::Space("s")), 0);
        assert_eq!(
            nb.kinds() & node_kind(NodeView::Resource("o", "model", "m")),
            0
        );
        let p = number_in_o(&numbers, NodeView::Project("p"));
        assert_eq!(nb.on(p).len(), 1);
        let s = number_in_o(&numbers, NodeView::Space("s"));
        assert!(nb.on(s).is_empty());

        let nb = nb.changed(&[on_project, on_space.clone()], vec![on_space]);
        assert_eq!(
            nb.entries().len(),
            1,
            "a binding put and deleted in one write is not kept"
        );
        assert_eq!(nb.kinds() & node_kind(NodeView::Space("s")), 0);
        assert_eq!(
            nb.kinds() & node_kind(NodeView::Project("p")),
            0,
            "no binding on a project is left"
        );
        assert_ne!(nb.kinds() & node_kind(NodeView::Organization("o")), 0);
        assert!(nb.on(p).is_empty());
        assert!(nb.changed(&[on_org], Vec::new()).is_empty());
    }

    /// The check path's walk of the bindings on a node finds what [`NodeBindings::on`] finds:
    /// a whole run of bindings on one node, and nothing of the nodes beside it.
    #[test]
    fn walking_a_nodes_bindings_finds_its_run_and_no_more() {
        let (mut names, mut numbers) = (Names::default(), NodeNumbers::default());
        let compiled = [
            ("b1", Node::Project("p1".to_owned())),
            ("b2", Node::Project("p2".to_owned())),
            ("b3", Node::Project("p1".to_owned())),
            ("b4", Node::Organization("o".to_owned())),
            ("b5", Node::Project("p1".to_owned())),
        ]
        .into_iter()
        .map(|(id, node)| {
            let subject = SubjectRef::User("u".to_owned());
            let binding = role_binding(id.to_owned(), subject, node);
            compiled(binding, &mut names, &mut numbers, 0)
        })
        .collect();
        // A space of the same id as a project, numbered as another node.
        let space = numbers.take(Some("o"), NodeView::Space("p1"));
        let nb = NodeBindings::default().changed(&[], compiled);
        for (node, expected) in [
            (NodeView::Project("p1"), vec!["b1", "b3", "b5"]),
            (NodeView::Project("p2"), vec!["b2"]),
            (NodeView::Organization("o"), vec!["b4"]),
            (NodeView::Space("p1"), vec![]),
        ] {
            let number = number_in_o(&numbers, node);
            let walked: Vec<&str> = nb.walk_on(number).map(|e| e.binding().id()).collect();
            let found: Vec<&str> = nb.on(number).iter().map(|e| e.binding().id()).collect();
            assert_eq!(walked, expected, "{node:?}");
            assert_eq!(found, expected, "{node:?}");
        }
        for number in [space, space + 1, NodeNumbers::PAST_THE_LAST] {
            assert!(nb.walk_on(number).next().is_none(), "{number}");
        }
        let none = NodeBindings::default();
        assert!(none.walk_on(PLATFORM_NUMBER).next().is_none());
    }

    /// A subject's keys are kept in place up to [`INLINE_KEYS`] and in an array of their own
    /// beyond: either way, each walk finds the bindings on its node, each with its own key,
    /// as bindings come one by one and go again.
    #[test]
    fn a_subjects_keys_in_place_or_apart_find_the_same_bindings() {
        let (mut names, mut numbers) = (Names::default(), NodeNumbers::default());
        let projects = ["p0", "p1", "p2", "p3"];
        let all: Vec<Arc<CompiledBinding>> = (0..INLINE_KEYS + 3)
            .map(|i| {
                let subject = SubjectRef::User("u".to_owned());
                let node = Node::Project(projects[i % projects.len()].to_owned());
                let binding = role_binding(format!("b{i}"), subject, node);
                compiled(binding, &mut names, &mut numbers, i as u32)
            })
            .collect();
        let holds_what_it_should = |nb: &NodeBindings, held: &[Arc<CompiledBinding>]| {
            let n = held.len();
            assert_eq!(nb.entries().len(), n);
            assert_eq!(
                matches!(nb.keys, BindingKeys::Inline { .. }),
                n <= INLINE_KEYS,
                "{n} keys"
            );
            for project in projects {
                let number = number_in_o(&numbers, NodeView::Project(project));
                let walked: Vec<(&str, Option<u32>)> = nb
                    .walk_on(number)
                    .map(|e| (e.binding().id(), e.plain_role_slot()))
                    .collect();
                // Each binding's slot is its place in `all`.
                let expected: Vec<(&str, Option<u32>)> = held
                    .iter()
                    .filter(|b| b.node_number == number)
                    .map(|b| (b.id(), Some(b.role_slot)))
                    .collect();
                assert_eq!(walked, expected, "{n} bindings, {project}");
            }
        };
        let mut nb = NodeBindings::default();
        for n in 1..=all.len() {
            nb = nb.changed(&[], vec![all[n - 1].clone()]);
            holds_what_it_should(&nb, &all[..n]);
        }
        for n in 1..=all.len() {
            nb = nb.changed(&[all[n - 1].clone()], vec![]);
            holds_what_it_should(&nb, &all[n..]);
        }
        assert!(nb.is_empty());
    }

    #[test]
    fn a_node_holds_one_number_in_each_organization_while_anything_names_it() {
        let mut numbers = NodeNumbers::default();
        assert!(numbers.is_empty());
        assert_eq!(
            numbers.number(None, NodeView::Platform),
            Some(PLATFORM_NUMBER)
        );
        let p_in_o = numbers.take(Some("o"), NodeView::Project("p"));
        assert_eq!(numbers.take(Some("o"), NodeView::Project("p")), p_in_o);
        let others = [
            numbers.take(Some("o2"), NodeView::Project("p")),
            numbers.take(Some("o"), NodeView::Space("p")),
            numbers.take(None, NodeView::Project("p")),
            numbers.take(Some("o"), NodeView::Platform),
        ];
        let mut all = vec![PLATFORM_NUMBER, p_in_o];
        all.extend(others);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 6, "each (organization, node) its own number");
        assert_eq!(numbers.len(), 6);

        // Named twice, given back twice: the number is kept by the first's snapshot only, and
        // given to the next node named.
        let snapshot = numbers.clone();
        numbers.give_back(Some("o"), NodeView::Project("p"));
        assert_eq!(
            numbers.number(Some("o"), NodeView::Project("p")),
            Some(p_in_o)
        );
        numbers.give_back(Some("o"), NodeView::Project("p"));
        assert_eq!(numbers.number(Some("o"), NodeView::Project("p")), None);
        assert_eq!(
            snapshot.number(Some("o"), NodeView::Project("p")),
            Some(p_in_o)
        );
        assert_eq!(numbers.take(Some("o"), NodeView::Organization("o")), p_in_o);
        // The platform's is never given back: the last binding on it leaves it numbered.
        assert_eq!(numbers.take(None, NodeView::Platform), PLATFORM_NUMBER);
        numbers.give_back(None, NodeView::Platform);
        assert_eq!(
            numbers.number(None, NodeView::Platform),
            Some(PLATFORM_NUMBER)
        );
    }

    /// A binding the check path cannot find by its number marks its subject's bindings: its
    /// organization is not its node's kind's, or its node has no number of its own.
    #[test]
    fn a_binding_on_a_number_the_check_path_does_not_ask_marks_its_subjects_bindings() {
        let mut names = Names::default();
        let on = |node: Node, organization: Option<&str>, number: u32, names: &mut Names| {
            let binding = RoleBinding {
                organization_id: organization.map(str::to_owned),
                ..role_binding("b".to_owned(), SubjectRef::User("u".to_owned()), node)
            };
            let compiled = Arc::new(CompiledBinding::new(binding, names, 0, number));
            NodeBindings::default().changed(&[], vec![compiled]).kinds() & UNNUMBERED != 0
        };
        let project = || Node::Project("p".to_owned());
        assert!(!on(project(), Some("o"), 5, &mut names));
        assert!(!on(Node::Platform, None, PLATFORM_NUMBER, &mut names));
        assert!(on(project(), None, 5, &mut names));
        assert!(on(Node::Platform, Some("o"), 5, &mut names));
        assert!(on(
            project(),
            Some("o"),
            NodeNumbers::PAST_THE_LAST,
            &mut names
        ));
    }

    #[test]
    fn a_subjects_keys_carry_the_role_slot_of_its_plain_bindings_only() {
        // Half the entry of 16 bytes (number, slot, pointer) it replaced.
        assert_eq!(std::mem::size_of::<BindingKey>(), 8);
        let (mut names, mut numbers) = (Names::default(), NodeNumbers::default());
        let on_project = |id: &str, project: &str| {
            let subject = SubjectRef::User("u".to_owned());
            role_binding(id.to_owned(), subject, Node::Project(project.to_owned()))
        };
        let plain = on_project("b1", "p1");
        let conditional = RoleBinding {
            condition: Some("1 == 1".to_owned()),
            ..on_project("b2", "p2")
        };
        let expiring = RoleBinding {
            expires_at: Some(DateTime::<Utc>::MAX_UTC),
            ..on_project("b3", "p3")
        };
        let compiled = [plain, conditional, expiring]
            .into_iter()
            .map(|b| compiled(b, &mut names, &mut numbers, 7))
            .collect();
        let nb = NodeBindings::default().changed(&[], compiled);
        let slot_on = |project: &str| {
            let found = nb.on(number_in_o(&numbers, NodeView::Project(project)));
            assert_eq!(found.len(), 1, "{project}");
            found.first().and_then(NumberedBinding::plain_role_slot)
        };
        assert_eq!(slot_on("p1"), Some(7));
        assert_eq!(slot_on("p2"), None, "a condition needs the binding");
        assert_eq!(slot_on("p3"), None, "an expiry needs the binding");
    }

    #[test]
    fn a_user_ids_record_holds_its_bindings_and_goes_with_the_last_of_them() {
        let catalog = Arc::new(Catalog::builtin().unwrap_or_else(|e| panic!("{e}")));
        let mut index = Index::new(catalog);
        let on = |id: &str, project: &str| {
            Object::RoleBinding(role_binding(
                id.to_owned(),
                SubjectRef::User("u".to_owned()),
                Node::Project(project.to_owned()),
            ))
        };
        let put = |o: &Object| Op::Put { object: o.clone() };
        // Bindings of a user id the index does not know as a user yet (objects load in any
        // order).
        let (b1, b2) = (on("b1", "p1"), on("b2", "p2"));
        index.apply(1, &[put(&b1), put(&b2)]);
        let record = index
            .users
            .record("u")
            .unwrap_or_else(|| panic!("a record"));
        assert!(record.user.is_none() && record.links.is_none());
        let p2 = number_in_o(&index.node_numbers, NodeView::Project("p2"));
        assert_eq!(record.bindings.on(p2).len(), 1);
        let user = SubjectRef::User("u".to_owned());
        assert_eq!(index.subject_bindings(&user).len(), 2);

        index.apply(2, &[delete(&b1)]);
        assert_eq!(index.subject_bindings(&user).len(), 1);
        index.apply(3, &[delete(&b2)]);
        assert!(
            index.users.record("u").is_none(),
            "nothing is left of the id"
        );
    }

    fn role(id: &str, permission: &str) -> Object {
        Object::Role(Role {
            id: id.to_owned(),
            organization_id: Some("o".to_owned()),
            name: id.to_owned(),
            description: String::new(),
            kind: Default::default(),
            permissions: vec![RoleEntry {
                permission: Permission::parse(permission).unwrap_or_else(|e| panic!("{e}")),
                scope: Scope::All,
                condition: None,
            }],
            is_predefined: false,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
        })
    }

    /// The role the check path finds for a binding, by its slot.
    fn slot_role(index: &Index, binding_id: &str) -> Option<String> {
        let binding = index.bindings.get(binding_id)?;
        let role = index.role_slots.get(binding.role_slot)?;
        Some(format!(
            "{} {}",
            role.role.id, role.role.permissions[0].permission
        ))
    }

    #[test]
    fn a_bindings_role_is_found_by_its_slot_whatever_happens_to_the_role() {
        let catalog = Arc::new(Catalog::builtin().unwrap_or_else(|e| panic!("{e}")));
        let mut index = Index::new(catalog);
        let binding = |id: &str, role_id: &str| {
            let node = Node::Organization("o".to_owned());
            let mut b = role_binding(id.to_owned(), SubjectRef::User("u".to_owned()), node);
            b.role_id = role_id.to_owned();
            Object::RoleBinding(b)
        };
        let (b1, b2) = (binding("b1", "r1"), binding("b2", "r2"));
        // A binding may come before its role (a store's objects load in any order).
        index.apply(1, &[Op::Put { object: b1.clone() }]);
        assert_eq!(slot_role(&index, "b1"), None);
        let r1 = role("r1", "model:read");
        index.apply(2, &[Op::Put { object: r1.clone() }]);
        assert_eq!(slot_role(&index, "b1").as_deref(), Some("r1 model:read"));

        // The role changed, deleted, put back: the binding follows, never a stale role; a
        // snapshot taken before keeps the role it had.
        let before = index.clone();
        index.apply(
            3,
            &[Op::Put {
                object: role("r1", "model:write"),
            }],
        );
        assert_eq!(slot_role(&index, "b1").as_deref(), Some("r1 model:write"));
        assert_eq!(slot_role(&before, "b1").as_deref(), Some("r1 model:read"));
        index.apply(4, &[delete(&r1)]);
        assert_eq!(slot_role(&index, "b1"), None);
        index.apply(5, &[Op::Put { object: r1.clone() }]);
        assert_eq!(slot_role(&index, "b1").as_deref(), Some("r1 model:read"));

        // A slot given back (no role, no binding names r1 any more) serves the next role id,
        // and only that one.
        let slot = index.bindings.get("b1").map(|b| b.role_slot);
        index.apply(6, &[delete(&b1), delete(&r1)]);
        index.apply(7, &[Op::Put { object: b2.clone() }]);
        assert_eq!(index.bindings.get("b2").map(|b| b.role_slot), slot);
        assert_eq!(slot_role(&index, "b2"), None, "r1's role is not r2's");
        index.apply(
            8,
            &[Op::Put {
                object: role("r2", "dataset:read"),
            }],
        );
        assert_eq!(slot_role(&index, "b2").as_deref(), Some("r2 dataset:read"));

        // A predefined role's slot holds it from the start.
        let predefined = index.roles.values().find(|r| r.role.is_predefined).cloned();
        let predefined = predefined.unwrap_or_else(|| panic!("the catalog has roles"));
        let b3 = binding("b3", &predefined.role.id);
        index.apply(9, &[Op::Put { object: b3 }]);
        let found = index
            .bindings
            .get("b3")
            .map(|b| index.role_slots.get(b.role_slot));
        assert!(found.flatten().is_some_and(|r| Arc::ptr_eq(r, &predefined)));
    }

    /// Slots past the first chunk hold their values; a snapshot keeps what it had; an id put,
    /// deleted and named again keeps its slot while anything names it.
    #[test]
    fn slots_hold_their_values_across_chunks() {
        let mut slots: Slots<usize> = Slots::default();
        let n = 2 * SLOTS_A_CHUNK + 10;
        for i in 0..n {
            slots.put(&format!("id{i}"), i);
        }
        let slot_of = |slots: &Slots<usize>, i: usize| {
            slots
                .slots
                .get(format!("id{i}").as_str())
                .map(|(slot, _)| *slot)
        };
        for i in 0..n {
            let slot = slot_of(&slots, i).unwrap_or_else(|| panic!("id{i} has a slot"));
            assert_eq!(slots.get(slot), Some(&i));
        }
        let before = slots.clone();
        // The last chunk's values go: the array ends at the last chunk that holds one.
        for i in 2 * SLOTS_A_CHUNK..n {
            slots.remove(&format!("id{i}"));
        }
        assert_eq!(slots.values.len(), 2);
        let last = slot_of(&before, n - 1).unwrap_or_else(|| panic!("a slot"));
        assert_eq!(slots.get(last), None);
        assert_eq!(before.get(last), Some(&(n - 1)));
        // A value changed in the first chunk: the snapshot still has the old one.
        slots.put("id3", 1003);
        let three = slot_of(&slots, 3).unwrap_or_else(|| panic!("a slot"));
        assert_eq!(
            (slots.get(three), before.get(three)),
            (Some(&1003), Some(&3))
        );
        // A reference keeps an id's slot through its value's removal.
        let taken = slots.take("id7");
        slots.remove("id7");
        assert_eq!(slots.get(taken), None);
        slots.put("id7", 7007);
        assert_eq!(slot_of(&slots, 7), Some(taken));
        assert_eq!(slots.get(taken), Some(&7007));
    }

    /// The project the check path finds for a registered model, by its slot: its id and
    /// organization.
    fn slot_project(index: &Index, model: &str) -> Option<String> {
        let registered = index.registered("o", "model", model)?;
        let record = index.project_slots.get(registered.project_slot?)?;
        Some(format!(
            "{} in {}",
            record.project.id, record.project.organization_id
        ))
    }

    #[test]
    fn a_resources_project_is_found_by_its_slot_whatever_happens_to_the_project() {
        let catalog = Arc::new(Catalog::builtin().unwrap_or_else(|e| panic!("{e}")));
        let mut index = Index::new(catalog);
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let project = |organization: &str| {
            Object::Project(Project {
                id: "p1".to_owned(),
                organization_id: organization.to_owned(),
                space_id: "s1".to_owned(),
                name: "p1".to_owned(),
                description: String::new(),
                created_at: now,
                updated_at: now,
            })
        };
        let model = |id: &str, project: &str| {
            Object::Resource(Resource {
                organization_id: "o".to_owned(),
                resource_type: "model".to_owned(),
                id: id.to_owned(),
                project_id: Some(project.to_owned()),
                owner_id: None,
                properties: Default::default(),
                created_at: now,
                updated_at: now,
            })
        };
        let (m1, p1) = (model("m1", "p1"), project("o"));
        // A resource may come before its project (a store's objects load in any order).
        index.apply(1, &[Op::Put { object: m1.clone() }]);
        assert_eq!(slot_project(&index, "m1"), None);
        index.apply(2, &[Op::Put { object: p1.clone() }]);
        assert_eq!(slot_project(&index, "m1").as_deref(), Some("p1 in o"));

        // The project deleted and made again in another organization: the slot follows it (the
        // check path then compares the organization); a snapshot taken before keeps the first.
        let before = index.clone();
        index.apply(3, &[delete(&p1)]);
        assert_eq!(slot_project(&index, "m1"), None);
        index.apply(
            4,
            &[Op::Put {
                object: project("o2"),
            }],
        );
        assert_eq!(slot_project(&index, "m1").as_deref(), Some("p1 in o2"));
        assert_eq!(slot_project(&before, "m1").as_deref(), Some("p1 in o"));

        // A slot given back (no project, no resource names p1 any more) serves the next project
        // id, and only that one.
        let slot = index.registered("o", "model", "m1").map(|r| r.project_slot);
        index.apply(5, &[delete(&m1), delete(&project("o2"))]);
        index.apply(
            6,
            &[Op::Put {
                object: model("m2", "p2"),
            }],
        );
        let m2_slot = index.registered("o", "model", "m2").map(|r| r.project_slot);
        assert_eq!(m2_slot, slot);
        assert_eq!(slot_project(&index, "m2"), None, "p1 is not p2");
        let p2 = match project("o") {
            Object::Project(p) => Object::Project(Project {
                id: "p2".to_owned(),
                ..p
            }),
            other => other,
        };
        index.apply(7, &[Op::Put { object: p2 }]);
        assert_eq!(slot_project(&index, "m2").as_deref(), Some("p2 in o"));

        // What a project put or deleted copies, a slot of its chunk each (ARCHITECTURE.md: 6 KB
        // for 256).
        assert_eq!(std::mem::size_of::<Option<ProjectRecord>>(), 24);
    }
}
