//! A hash map split into shards that are shared between snapshots and copied on write: cloning
//! the map copies one pointer (to its array of 256 shard pointers, shared too), and a write
//! copies that array and the one shard it touches. This is what
//! lets a write publish a new index snapshot in microseconds, whatever the size of the index.
//! A map of up to 256 entries is one table, which a write copies whole: no more entries than a
//! split map's array has pointers. A shard is copied with its values, so a value that grows
//! large is a [`SharedBag`] (or a persistent set, `crate::index::MemberSet`), which a write
//! changes without copying it whole, and whose copy is a count up on a pointer.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, OnceLock};

use hashbrown::hash_table::Entry;
use hashbrown::HashTable;

const SHARDS: usize = 256;

/// The process's random seed, drawn once (so that keys chosen to collide cannot be planned), with
/// the hasher of every `CowMap` built from it: shared, so that the check path can hash an id once
/// and look it up in several maps.
fn seeded() -> &'static (u64, foldhash::fast::FixedState) {
    static SEEDED: OnceLock<(u64, foldhash::fast::FixedState)> = OnceLock::new();
    SEEDED.get_or_init(|| {
        let seed = foldhash::fast::RandomState::default().hash_one(0x5eed_a7b1_7e12_u64);
        (seed, foldhash::fast::FixedState::with_seed(seed))
    })
}

/// The process's random seed ([`seeded`]), for what hashes with it other than through the maps'
/// hasher (`permission::name_hash`, which hashes names without the `Hash` trait).
pub fn process_seed() -> u64 {
    seeded().0
}

/// The hash a `CowMap` uses for a key, for [`CowMap::get_hashed`].
pub fn hash_key<Q: Hash + ?Sized>(key: &Q) -> u64 {
    seeded().1.hash_one(key)
}

/// True when two ids are equal, compared inline: ids are short, and for a short string a call
/// to `memcmp` costs more than the comparison (the check path compares several ids a check).
#[inline]
pub fn same_id(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    // Two overlapping words cover every byte of an id of 8 to 16 bytes (of 4 to 7 bytes, two
    // half words; of 1 to 3, its first, middle and last byte).
    match n {
        8..=16 => same_word::<8>(a, b, 0) && same_word::<8>(a, b, n - 8),
        4..=7 => same_word::<4>(a, b, 0) && same_word::<4>(a, b, n - 4),
        1..=3 => a.first() == b.first() && a.get(n / 2) == b.get(n / 2) && a.last() == b.last(),
        _ => a == b,
    }
}

/// True when `a` and `b` hold the same `W` bytes from `at` (false when either is shorter).
#[inline]
fn same_word<const W: usize>(a: &[u8], b: &[u8], at: usize) -> bool {
    let word = |s: &[u8]| -> Option<[u8; W]> { s.get(at..at + W)?.try_into().ok() };
    matches!((word(a), word(b)), (Some(x), Some(y)) if x == y)
}

/// A key's shard: bits the tables themselves do not use (they take the low bits for the bucket
/// and the top seven for the control byte).
fn shard_of(hash: u64) -> usize {
    ((hash >> 32) as usize) % SHARDS
}

/// The sharded copy-on-write table under [`CowMap`] and [`CowSet`]: entries found by a hash and
/// a test of the entry.
#[derive(Debug)]
struct CowTable<E> {
    shards: Shards<E>,
    len: usize,
}

/// A table's entries: in one table until it holds [`SHARDS`] entries, then split into
/// [`SHARDS`] shards for good.
///
/// Most of an index's few dozen maps hold a handful of entries in a small organization (its
/// projects, roles, resources, nodes), or none, and 256 shards each cost them more than their
/// entries did (at 1,000 users, about 16 bytes a binding); one table is copied whole by a write,
/// but then holds no more entries than a split table's array has pointers.
///
/// The array of shard pointers is shared between snapshots as the shards are: a snapshot of the
/// index (a write clones the index and changes the clone) then copies one pointer a map, where
/// copying the arrays of its few dozen maps cost thousands of reference counts, a count up on the
/// clone and one down when the older snapshot went; a write copies the array of each map it
/// changes.
#[derive(Debug)]
enum Shards<E> {
    One(Arc<HashTable<E>>),
    Split(ShardArray<E>),
}

/// A split table's shards.
type ShardArray<E> = Arc<[Arc<HashTable<E>>; SHARDS]>;

impl<E> Clone for CowTable<E> {
    fn clone(&self) -> Self {
        Self {
            shards: match &self.shards {
                Shards::One(table) => Shards::One(table.clone()),
                Shards::Split(shards) => Shards::Split(shards.clone()),
            },
            len: self.len,
        }
    }
}

impl<E> Default for CowTable<E> {
    fn default() -> Self {
        Self {
            shards: Shards::One(Arc::new(HashTable::new())),
            len: 0,
        }
    }
}

impl<E: Clone> CowTable<E> {
    fn shard_mut(&mut self, hash: u64) -> &mut HashTable<E> {
        match &mut self.shards {
            Shards::One(table) => Arc::make_mut(table),
            Shards::Split(shards) => Arc::make_mut(&mut Arc::make_mut(shards)[shard_of(hash)]),
        }
    }

    /// Before an insert: splits a table still in one piece that holds [`SHARDS`] entries, when
    /// `is` finds no entry (the insert adds one). Only such a table looks the key up here, so an
    /// insert looks it up once, as before tables began in one piece.
    fn split_if_full(&mut self, hash: u64, is: impl Fn(&E) -> bool, rehash: impl Fn(&E) -> u64) {
        if matches!(self.shards, Shards::One(_))
            && self.len >= SHARDS
            && self.find(hash, is).is_none()
        {
            self.split(rehash);
        }
    }

    fn split(&mut self, rehash: impl Fn(&E) -> u64) {
        let Shards::One(table) = &mut self.shards else {
            return;
        };
        let table = std::mem::take(table);
        let mut shards: [HashTable<E>; SHARDS] = std::array::from_fn(|_| HashTable::new());
        let mut place = |entry: E| {
            let hash = rehash(&entry);
            shards[shard_of(hash)].insert_unique(hash, entry, &rehash);
        };
        // Moved when no other snapshot holds the table, copied when one does.
        match Arc::try_unwrap(table) {
            Ok(table) => table.into_iter().for_each(&mut place),
            Err(table) => table.iter().cloned().for_each(&mut place),
        }
        self.shards = Shards::Split(Arc::new(shards.map(Arc::new)));
    }

    #[inline]
    fn find(&self, hash: u64, is: impl Fn(&E) -> bool) -> Option<&E> {
        let table = match &self.shards {
            Shards::One(table) => table,
            Shards::Split(shards) => &shards[shard_of(hash)],
        };
        table.find(hash, is)
    }

    /// Copies the entry's shard if another snapshot shares it, and only if the entry is there.
    fn find_mut(&mut self, hash: u64, is: impl Fn(&E) -> bool) -> Option<&mut E> {
        self.find(hash, &is)?;
        self.shard_mut(hash).find_mut(hash, is)
    }

    /// Inserts an entry the caller found absent.
    fn insert_new(&mut self, hash: u64, entry: E, rehash: impl Fn(&E) -> u64) {
        self.split_if_full(hash, |_| false, &rehash);
        self.shard_mut(hash).insert_unique(hash, entry, rehash);
        self.len += 1;
    }

    fn remove(&mut self, hash: u64, is: impl Fn(&E) -> bool) -> Option<E> {
        self.find(hash, &is)?;
        let removed = self
            .shard_mut(hash)
            .find_entry(hash, is)
            .ok()
            .map(|e| e.remove().0);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    fn iter(&self) -> impl Iterator<Item = &E> {
        let tables: &[Arc<HashTable<E>>] = match &self.shards {
            Shards::One(table) => std::slice::from_ref(table),
            Shards::Split(shards) => &shards[..],
        };
        tables.iter().flat_map(|s| s.iter())
    }
}

/// The sharded copy-on-write map.
#[derive(Debug)]
pub struct CowMap<K, V> {
    table: CowTable<(K, V)>,
}

impl<K, V> Clone for CowMap<K, V> {
    fn clone(&self) -> Self {
        Self {
            table: self.table.clone(),
        }
    }
}

impl<K, V> Default for CowMap<K, V> {
    fn default() -> Self {
        Self {
            table: CowTable::default(),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> CowMap<K, V> {
    /// The value of a key whose hash ([`hash_key`]) the caller already has.
    pub fn get_hashed<Q>(&self, hash: u64, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.table
            .find(hash, |(k, _)| k.borrow() == key)
            .map(|(_, v)| v)
    }

    /// The value of the key that hashes to `hash` and satisfies `is_key`: a lookup by a borrowed
    /// form of the key that `Borrow` cannot express.
    #[inline]
    pub fn find_hashed(&self, hash: u64, is_key: impl Fn(&K) -> bool) -> Option<&V> {
        self.table.find(hash, |(k, _)| is_key(k)).map(|(_, v)| v)
    }

    /// The value of a key.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_hashed(hash_key(key), key)
    }

    /// As [`CowMap::find_hashed`], to change the value; copies the key's shard if another
    /// snapshot shares it.
    pub fn find_hashed_mut(&mut self, hash: u64, is_key: impl Fn(&K) -> bool) -> Option<&mut V> {
        self.table
            .find_mut(hash, |(k, _)| is_key(k))
            .map(|(_, v)| v)
    }

    /// As [`CowMap::find_hashed`], to remove the entry, answering its value.
    pub fn remove_hashed(&mut self, hash: u64, is_key: impl Fn(&K) -> bool) -> Option<V> {
        self.table.remove(hash, |(k, _)| is_key(k)).map(|(_, v)| v)
    }

    /// True when the key is present.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// The value of a key, to change; copies the key's shard if another snapshot shares it.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.table
            .find_mut(hash_key(key), |(k, _)| k.borrow() == key)
            .map(|(_, v)| v)
    }

    /// Inserts, answering the value replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let hash = hash_key(&key);
        self.table
            .split_if_full(hash, |(k, _)| *k == key, |(k, _)| hash_key(k));
        let entry =
            self.table
                .shard_mut(hash)
                .entry(hash, |(k, _)| *k == key, |(k, _)| hash_key(k));
        match entry {
            Entry::Occupied(mut e) => Some(std::mem::replace(&mut e.get_mut().1, value)),
            Entry::Vacant(e) => {
                e.insert((key, value));
                self.table.len += 1;
                None
            }
        }
    }

    /// Removes, answering the value removed.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.table
            .remove(hash_key(key), |(k, _)| k.borrow() == key)
            .map(|(_, v)| v)
    }

    /// The value of a key, inserted as the default when absent.
    pub fn entry_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        let hash = hash_key(&key);
        self.table
            .split_if_full(hash, |(k, _)| *k == key, |(k, _)| hash_key(k));
        if self.table.find(hash, |(k, _)| *k == key).is_none() {
            self.table.len += 1;
        }
        let entry =
            self.table
                .shard_mut(hash)
                .entry(hash, |(k, _)| *k == key, |(k, _)| hash_key(k));
        match entry {
            Entry::Occupied(e) => &mut e.into_mut().1,
            Entry::Vacant(e) => &mut e.insert((key, V::default())).into_mut().1,
        }
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.table.len
    }

    /// True when there is no key.
    pub fn is_empty(&self) -> bool {
        self.table.len == 0
    }

    /// Every value, in no order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.table.iter().map(|(_, v)| v)
    }

    /// Every key, in no order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.table.iter().map(|(k, _)| k)
    }

    /// Every entry, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.table.iter().map(|(k, v)| (k, v))
    }
}

/// A value that carries its own key: a [`CowSet`] holds such values without a copy of the key.
pub trait Keyed {
    fn key(&self) -> &str;
}

/// A [`CowMap`] from ids to values that carry their id: for the index's largest maps (bindings,
/// users), where a second copy of every id would cost more than a few percent of the index.
#[derive(Debug)]
pub struct CowSet<V> {
    table: CowTable<V>,
}

impl<V> Clone for CowSet<V> {
    fn clone(&self) -> Self {
        Self {
            table: self.table.clone(),
        }
    }
}

impl<V> Default for CowSet<V> {
    fn default() -> Self {
        Self {
            table: CowTable::default(),
        }
    }
}

impl<V: Keyed + Clone> CowSet<V> {
    /// The value of a key whose hash ([`hash_key`] of the `str`) the caller already has.
    pub fn get_hashed(&self, hash: u64, key: &str) -> Option<&V> {
        self.table.find(hash, |v| same_id(v.key(), key))
    }

    /// The value of a key.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.get_hashed(hash_key(key), key)
    }

    /// True when the key is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The value of a key, to change in place (its key must stay the same).
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.table
            .find_mut(hash_key(key), |v| same_id(v.key(), key))
    }

    /// The value of a key, made by `make` when absent, to change in place (its key must stay
    /// the same).
    pub fn get_or_insert_with(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        let hash = hash_key(key);
        self.table
            .split_if_full(hash, |v| same_id(v.key(), key), |v| hash_key(v.key()));
        if self.table.find(hash, |v| same_id(v.key(), key)).is_none() {
            self.table.len += 1;
        }
        let entry =
            self.table
                .shard_mut(hash)
                .entry(hash, |v| v.key() == key, |v| hash_key(v.key()));
        match entry {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(make()).into_mut(),
        }
    }

    /// Inserts under the value's key, answering the value replaced.
    pub fn insert(&mut self, value: V) -> Option<V> {
        let hash = hash_key(value.key());
        if let Some(present) = self.table.find_mut(hash, |v| v.key() == value.key()) {
            return Some(std::mem::replace(present, value));
        }
        self.table.insert_new(hash, value, |v| hash_key(v.key()));
        None
    }

    /// Removes, answering the value removed.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.table.remove(hash_key(key), |v| v.key() == key)
    }

    /// How many values.
    pub fn len(&self) -> usize {
        self.table.len
    }

    /// True when there is no value.
    pub fn is_empty(&self) -> bool {
        self.table.len == 0
    }

    /// Every value, in no order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.table.iter()
    }
}

/// An unordered collection of shared values that a snapshot copies cheaply and a write changes
/// by copying a 256th of it: the bindings on an organization node (every binding on the
/// organization itself) or an organization's grants may number in the hundreds of thousands, and
/// a single write must not copy them all.
///
/// A small bag is one list; past [`SharedBag::SPLIT_AT`] values it is split into
/// [`SharedBag::BUCKETS`] lists by the address of each value, each shared between snapshots until
/// a write changes it, and it stays split (its 256 lists with it) until it is empty. Values are
/// told apart by identity ([`Arc::ptr_eq`]), not by equality. The order of iteration is the order
/// of insertion until the bag is split, and unspecified after.
///
/// The array of lists is shared too, so that copying a bag (a write copies every value of a map
/// in one table, [`CowMap`]) is a count up on one pointer, not on 256.
#[derive(Debug)]
pub struct SharedBag<T> {
    buckets: Arc<Vec<Arc<Vec<Arc<T>>>>>,
    len: usize,
}

impl<T> Clone for SharedBag<T> {
    fn clone(&self) -> Self {
        Self {
            buckets: self.buckets.clone(),
            len: self.len,
        }
    }
}

impl<T> Default for SharedBag<T> {
    fn default() -> Self {
        Self {
            buckets: Arc::new(Vec::new()),
            len: 0,
        }
    }
}

impl<T> SharedBag<T> {
    /// The size past which the bag is split into buckets.
    pub const SPLIT_AT: usize = 1024;
    /// How many buckets a split bag has.
    pub const BUCKETS: usize = 256;

    fn bucket_of(&self, value: &Arc<T>) -> usize {
        if self.buckets.len() < Self::BUCKETS {
            return 0;
        }
        Self::bucket_of_split(value)
    }

    fn bucket_of_split(value: &Arc<T>) -> usize {
        // The address's low bits are alignment; a multiplication spreads the rest.
        let address = Arc::as_ptr(value) as *const () as usize as u64;
        ((address >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as usize % Self::BUCKETS
    }

    /// Adds a value (the caller does not add one twice).
    pub fn push(&mut self, value: Arc<T>) {
        if self.buckets.is_empty() {
            Arc::make_mut(&mut self.buckets).push(Arc::default());
        }
        if self.len >= Self::SPLIT_AT && self.buckets.len() < Self::BUCKETS {
            self.split();
        }
        let i = self.bucket_of(&value);
        if let Some(bucket) = Arc::make_mut(&mut self.buckets).get_mut(i) {
            Arc::make_mut(bucket).push(value);
            self.len += 1;
        }
    }

    fn split(&mut self) {
        let values: Vec<Arc<T>> = self.iter().cloned().collect();
        self.buckets = Arc::new((0..Self::BUCKETS).map(|_| Arc::default()).collect());
        let buckets = Arc::make_mut(&mut self.buckets);
        for value in values {
            let i = Self::bucket_of_split(&value);
            if let Some(bucket) = buckets.get_mut(i) {
                Arc::make_mut(bucket).push(value);
            }
        }
    }

    /// Removes this very value (by identity); true when it was there.
    pub fn remove(&mut self, value: &Arc<T>) -> bool {
        let i = self.bucket_of(value);
        let small = self.buckets.len() == 1;
        // Found before the lists are copied, so that a miss copies nothing.
        let Some(at) = self
            .buckets
            .get(i)
            .and_then(|bucket| bucket.iter().position(|v| Arc::ptr_eq(v, value)))
        else {
            return false;
        };
        let Some(bucket) = Arc::make_mut(&mut self.buckets).get_mut(i) else {
            return false;
        };
        let bucket = Arc::make_mut(bucket);
        if small {
            // A small bag keeps the order of insertion.
            bucket.remove(at);
        } else {
            bucket.swap_remove(at);
        }
        self.len -= 1;
        if self.len == 0 {
            self.buckets = Arc::new(Vec::new());
        }
        true
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> BagIter<'_, T> {
        self.into_iter()
    }
}

/// What iterating a `&SharedBag` yields: each bucket's values in turn.
type BagIter<'a, T> = std::iter::FlatMap<
    std::slice::Iter<'a, Arc<Vec<Arc<T>>>>,
    std::slice::Iter<'a, Arc<T>>,
    fn(&'a Arc<Vec<Arc<T>>>) -> std::slice::Iter<'a, Arc<T>>,
>;

impl<'a, T> IntoIterator for &'a SharedBag<T> {
    type Item = &'a Arc<T>;
    type IntoIter = BagIter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.buckets.iter().flat_map(bucket_values as fn(_) -> _)
    }
}

fn bucket_values<T>(bucket: &Arc<Vec<Arc<T>>>) -> std::slice::Iter<'_, Arc<T>> {
    bucket.iter()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sorted(bag: &SharedBag<u32>) -> Vec<u32> {
        let mut values: Vec<u32> = bag.iter().map(|v| **v).collect();
        values.sort_unstable();
        values
    }

    #[test]
    fn a_shared_bag_holds_what_was_added_and_snapshots_stay_put() {
        let values: Vec<Arc<u32>> = (0..3000).map(Arc::new).collect();
        let mut bag = SharedBag::default();
        let mut snapshots = Vec::new();
        for (n, v) in values.iter().enumerate() {
            bag.push(v.clone());
            if n == 10 || n == 2000 {
                snapshots.push((bag.clone(), n + 1));
            }
        }
        // Small, it keeps the order of insertion.
        let (small, _) = &snapshots[0];
        assert_eq!(
            small.iter().map(|v| **v).collect::<Vec<_>>(),
            (0..11).collect::<Vec<_>>()
        );
        // Removing by identity: an equal value that is not the one added is not removed.
        assert!(!bag.remove(&Arc::new(7)));
        for v in values.iter().step_by(2) {
            assert!(bag.remove(v));
        }
        assert!(!bag.remove(&values[0]));
        assert_eq!(bag.len(), 1500);
        assert_eq!(sorted(&bag), (1..3000).step_by(2).collect::<Vec<_>>());
        for (snapshot, len) in &snapshots {
            assert_eq!(snapshot.len(), *len);
            assert_eq!(sorted(snapshot), (0..*len as u32).collect::<Vec<_>>());
        }
        for v in values.iter().skip(1).step_by(2) {
            assert!(bag.remove(v));
        }
        assert!(bag.is_empty());
        assert_eq!(bag.iter().count(), 0);
    }

    #[test]
    fn a_write_to_a_large_shared_bag_copies_one_bucket() {
        let mut bag = SharedBag::default();
        let values: Vec<Arc<u32>> = (0..5000).map(Arc::new).collect();
        for v in &values {
            bag.push(v.clone());
        }
        let snapshot = bag.clone();
        assert!(
            Arc::ptr_eq(&bag.buckets, &snapshot.buckets),
            "a copy shares the lists"
        );
        assert!(bag.remove(&values[1234]));
        bag.push(Arc::new(5000));
        let shared = bag
            .buckets
            .iter()
            .zip(snapshot.buckets.iter())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert_eq!(bag.buckets.len(), SharedBag::<u32>::BUCKETS);
        assert!(
            shared >= SharedBag::<u32>::BUCKETS - 2,
            "{shared} buckets still shared"
        );
        assert_eq!(snapshot.len(), 5000);
        assert_eq!(bag.len(), 5000);
    }

    /// A snapshot copies no shard pointer: the clone shares the array until a write to one of
    /// them copies it, and the other keeps what it held.
    #[test]
    fn a_snapshot_shares_the_array_of_shards_until_a_write() {
        fn array<K, V>(map: &CowMap<K, V>) -> &ShardArray<(K, V)> {
            match &map.table.shards {
                Shards::Split(shards) => shards,
                Shards::One(_) => panic!("a map of 1,000 entries is split"),
            }
        }
        let mut map: CowMap<String, usize> = CowMap::default();
        for n in 0..1000 {
            map.insert(format!("k{n}"), n);
        }
        let snapshot = map.clone();
        assert!(Arc::ptr_eq(array(&map), array(&snapshot)));
        map.insert("k0".to_owned(), 7);
        assert!(!Arc::ptr_eq(array(&map), array(&snapshot)));
        let shared = array(&map)
            .iter()
            .zip(array(&snapshot).iter())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert_eq!(shared, SHARDS - 1);
        assert_eq!(map.get("k0"), Some(&7));
        assert_eq!(snapshot.get("k0"), Some(&0));
        // A second write to the same map copies nothing more: the array is its own now.
        let before = Arc::as_ptr(array(&map));
        map.insert("k1".to_owned(), 8);
        assert_eq!(Arc::as_ptr(array(&map)), before);
        assert_eq!(snapshot.get("k1"), Some(&1));
    }

    #[test]
    fn a_map_is_one_table_until_it_holds_as_many_entries_as_shards() {
        let one = |map: &CowMap<String, usize>| matches!(map.table.shards, Shards::One(_));
        let mut map: CowMap<String, usize> = CowMap::default();
        let mut keyed: CowSet<Tagged> = CowSet::default();
        let mut defaulted: CowMap<String, usize> = CowMap::default();
        for n in 0..SHARDS {
            map.insert(format!("k{n}"), n);
            keyed.insert(Tagged(format!("k{n}"), 0));
            *defaulted.entry_or_default(format!("k{n}")) += n;
        }
        assert!(one(&map) && one(&defaulted));
        assert!(matches!(keyed.table.shards, Shards::One(_)));
        // A snapshot taken before the split keeps the one table, and every value.
        let snapshot = map.clone();
        map.insert("k-last".to_owned(), SHARDS);
        keyed.insert(Tagged("k-last".to_owned(), 0));
        *defaulted.entry_or_default("k-last".to_owned()) += 1;
        assert!(!one(&map) && !one(&defaulted));
        assert!(matches!(keyed.table.shards, Shards::Split(_)));
        for n in 0..SHARDS {
            let key = format!("k{n}");
            assert_eq!(map.get(&key), Some(&n));
            assert_eq!(snapshot.get(&key), Some(&n));
            assert_eq!(defaulted.get(&key), Some(&n));
            assert!(keyed.contains_key(&key));
        }
        assert_eq!((map.len(), snapshot.len(), keyed.len()), (257, 256, 257));
        assert_eq!(snapshot.get("k-last"), None);
        assert!(one(&snapshot));
        // Split for good: emptied, it stays split.
        for n in 0..SHARDS {
            map.remove(&format!("k{n}"));
        }
        map.remove("k-last");
        assert!(map.is_empty() && !one(&map));
        assert_eq!(map.iter().count(), 0);
    }

    /// Two ids of one length (0 to 40) made of `a` and `b`.
    fn same_length_ids() -> impl Strategy<Value = (String, String)> {
        (0..=40usize).prop_flat_map(|n| {
            let id = proptest::collection::vec(prop_oneof![Just('a'), Just('b')], n)
                .prop_map(|letters| letters.into_iter().collect::<String>());
            (id.clone(), id)
        })
    }

    proptest! {
        /// The inline comparison of ids is `==`, at every length: ids of one length, of two
        /// letters, so that equal ids and ids differing anywhere are both common.
        #[test]
        fn same_id_is_equality((a, b) in same_length_ids()) {
            prop_assert_eq!(same_id(&a, &b), a == b);
            prop_assert!(same_id(&a, &a.clone()));
        }

        /// Two ids of one length that differ in any one byte are not the same.
        #[test]
        fn same_id_reads_every_byte(id in "[a-z]{1,40}", at in any::<prop::sample::Index>()) {
            let at = at.index(id.len());
            let other: String = id
                .chars()
                .enumerate()
                .map(|(i, c)| if i != at { c } else if c == 'z' { 'y' } else { 'z' })
                .collect();
            prop_assert!(!same_id(&id, &other));
            prop_assert!(!same_id(&other, &id));
        }

        /// The map behaves as a plain map, and an older clone never sees later writes; mostly
        /// inserts of 400 keys, so that a map often outgrows one table (256 entries).
        #[test]
        fn behaves_as_a_map_and_snapshots_stay_put(ops in proptest::collection::vec((proptest::bool::weighted(0.75), 0..400u32, any::<u8>()), 0..1000)) {
            let mut map: CowMap<String, u8> = CowMap::default();
            let mut model: std::collections::HashMap<String, u8> = Default::default();
            let mut snapshots = Vec::new();
            for (n, (insert, key, value)) in ops.iter().enumerate() {
                let key = format!("k{key}");
                if *insert {
                    prop_assert_eq!(map.insert(key.clone(), *value), model.insert(key, *value));
                } else {
                    prop_assert_eq!(map.remove(key.as_str()), model.remove(&key));
                }
                if n % 17 == 0 {
                    snapshots.push((map.clone(), model.clone()));
                }
            }
            prop_assert_eq!(map.len(), model.len());
            for (k, v) in &model {
                prop_assert_eq!(map.get(k.as_str()), Some(v));
            }
            for (snapshot, expected) in snapshots {
                prop_assert_eq!(snapshot.len(), expected.len());
                for (k, v) in &expected {
                    prop_assert_eq!(snapshot.get(k.as_str()), Some(v));
                }
            }
        }

        /// The set behaves as a plain map from each value's key, and snapshots stay put (and
        /// often outgrows one table, as above).
        #[test]
        fn set_behaves_as_a_map_of_keys(ops in proptest::collection::vec((proptest::bool::weighted(0.75), 0..400u32, any::<u8>()), 0..1000)) {
            let mut set: CowSet<Tagged> = CowSet::default();
            let mut model: std::collections::HashMap<String, u8> = Default::default();
            let mut snapshots = Vec::new();
            for (n, (insert, key, value)) in ops.iter().enumerate() {
                let key = format!("k{key}");
                if *insert {
                    let replaced = set.insert(Tagged(key.clone(), *value)).map(|t| t.1);
                    prop_assert_eq!(replaced, model.insert(key, *value));
                } else {
                    prop_assert_eq!(set.remove(&key).map(|t| t.1), model.remove(&key));
                }
                if n % 17 == 0 {
                    snapshots.push((set.clone(), model.clone()));
                }
            }
            snapshots.push((set, model));
            for (snapshot, expected) in snapshots {
                prop_assert_eq!(snapshot.len(), expected.len());
                prop_assert_eq!(snapshot.values().count(), expected.len());
                for (k, v) in &expected {
                    prop_assert_eq!(snapshot.get(k).map(|t| t.1), Some(*v));
                }
            }
        }
    }

    #[derive(Clone, Debug)]
    struct Tagged(String, u8);

    impl Keyed for Tagged {
        fn key(&self) -> &str {
            &self.0
        }
    }
}
