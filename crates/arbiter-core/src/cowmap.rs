//! A hash map split into shards that are shared between snapshots and copied on write: cloning
//! the map copies 256 pointers, and a write copies only the one shard it touches. This is what
//! lets a write publish a new index snapshot in microseconds, whatever the size of the index.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use crate::index::HashMap;

const SHARDS: usize = 256;

/// Picks a key's shard; fixed so that every snapshot agrees.
fn shard_hasher() -> foldhash::fast::FixedState {
    foldhash::fast::FixedState::with_seed(0x5eed_a7b1_7e12)
}

/// The sharded copy-on-write map.
#[derive(Debug)]
pub struct CowMap<K, V> {
    shards: Vec<Arc<HashMap<K, V>>>,
    len: usize,
}

impl<K, V> Clone for CowMap<K, V> {
    fn clone(&self) -> Self {
        Self {
            shards: self.shards.clone(),
            len: self.len,
        }
    }
}

impl<K, V> Default for CowMap<K, V> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Arc::new(HashMap::default())).collect(),
            len: 0,
        }
    }
}

fn shard_of<Q: Hash + ?Sized>(key: &Q) -> usize {
    (shard_hasher().hash_one(key) as usize) % SHARDS
}

impl<K: Hash + Eq + Clone, V: Clone> CowMap<K, V> {
    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> &HashMap<K, V> {
        // `SHARDS` shards always exist.
        &self.shards[shard_of(key)]
    }

    fn shard_mut<Q: Hash + ?Sized>(&mut self, key: &Q) -> &mut HashMap<K, V> {
        Arc::make_mut(&mut self.shards[shard_of(key)])
    }

    /// The value of a key.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(key).get(key)
    }

    /// True when the key is present.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(key).contains_key(key)
    }

    /// The value of a key, to change; copies the key's shard if another snapshot shares it.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.contains_key(key) {
            return None;
        }
        self.shard_mut(key).get_mut(key)
    }

    /// Inserts, answering the value replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = self.shard_mut(&key).insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes, answering the value removed.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.contains_key(key) {
            return None;
        }
        let old = self.shard_mut(key).remove(key);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// The value of a key, inserted as the default when absent.
    pub fn entry_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        if !self.contains_key(&key) {
            self.len += 1;
        }
        self.shard_mut(&key).entry(key).or_default()
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there is no key.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every value, in no order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(|s| s.values())
    }

    /// Every key, in no order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.shards.iter().flat_map(|s| s.keys())
    }

    /// Every entry, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The map behaves as a plain map, and an older clone never sees later writes.
        #[test]
        fn behaves_as_a_map_and_snapshots_stay_put(ops in proptest::collection::vec((any::<bool>(), 0..50u32, any::<u8>()), 0..200)) {
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
    }
}
