//! A small ordered set of ids: what the index keeps for the few organizations, spaces, groups
//! and keys of one user. An empty `BTreeSet` is free but one holding a single id allocates a
//! node of eleven slots (about 280 bytes); this holds exactly its ids, sorted, in one boxed
//! slice (two words, where a `Vec` is three: a user's links hold four sets).
//! Inserting is linear in the set's size, so the sets that grow large (an organization's users)
//! are [`crate::index::MemberSet`]s, persistent sorted sets a write changes without copying.

use crate::model::Id;

/// A sorted set of ids in one boxed slice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdSet(Box<[Id]>);

impl IdSet {
    /// True when the id is in the set.
    pub fn contains(&self, id: &str) -> bool {
        self.position(id).is_ok()
    }

    /// Adds an id; false when it was already there.
    pub fn insert(&mut self, id: Id) -> bool {
        match self.position(&id) {
            Ok(_) => false,
            Err(at) => {
                let mut ids = std::mem::take(&mut self.0).into_vec();
                // Exactly the room needed, so that the slice takes the allocation as it is:
                // most sets hold one or two ids, and a `Vec` would make room for four.
                ids.reserve_exact(1);
                ids.insert(at, id);
                self.0 = ids.into_boxed_slice();
                true
            }
        }
    }

    /// Removes an id; false when it was not there.
    pub fn remove(&mut self, id: &str) -> bool {
        match self.position(id) {
            Ok(at) => {
                let mut ids = std::mem::take(&mut self.0).into_vec();
                ids.remove(at);
                self.0 = ids.into_boxed_slice();
                true
            }
            Err(_) => false,
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ids in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Id> {
        self.0.iter()
    }

    fn position(&self, id: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|x| x.as_str().cmp(id))
    }
}

impl<'a> IntoIterator for &'a IdSet {
    type Item = &'a Id;
    type IntoIter = std::slice::Iter<'a, Id>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// What the index's one-to-many maps of ids hold: an [`IdSet`] or a [`crate::index::MemberSet`].
pub trait SetOfIds: Default + Clone {
    fn add(&mut self, id: &str);
    fn take_out(&mut self, id: &str);
    fn is_empty(&self) -> bool;
}

/// Both sets answer to the same inherent methods.
macro_rules! set_of_ids {
    ($set:ty) => {
        impl SetOfIds for $set {
            fn add(&mut self, id: &str) {
                if !self.contains(id) {
                    self.insert(id.to_owned());
                }
            }
            fn take_out(&mut self, id: &str) {
                self.remove(id);
            }
            fn is_empty(&self) -> bool {
                <$set>::is_empty(self)
            }
        }
    };
}

set_of_ids!(IdSet);
set_of_ids!(imbl::OrdSet<Id>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_ids_sorted_and_unique() {
        let mut set = IdSet::default();
        assert!(set.insert("b".into()));
        assert!(set.insert("a".into()));
        assert!(set.insert("c".into()));
        assert!(!set.insert("b".into()));
        assert_eq!(
            set.iter().map(String::as_str).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert!(set.contains("a") && !set.contains("d"));
        assert!(set.remove("a"));
        assert!(!set.remove("a"));
        assert_eq!(set.len(), 2);
    }
}
