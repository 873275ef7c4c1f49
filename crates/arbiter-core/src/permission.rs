//! Permissions: `resource_type:action`, where `*` may stand for the type, the action or both.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::cowmap::{process_seed, same_id};
use crate::error::CoreError;

/// The wildcard that stands for any type or any action.
pub const WILDCARD: &str = "*";

/// The longest a half may be, in bytes: the colon's place is then kept in a byte.
const MAX_HALF: usize = 64;
const _: () = assert!(MAX_HALF <= u8::MAX as usize);

/// A permission or a permission pattern such as `model:*`.
///
/// Both halves are kept as `type:action` in one reference-counted allocation: parsing a
/// permission allocates once, cloning one costs a counter increment, and a check reads both
/// halves from one place. The hashes the roles' tables and filters find it by are computed when
/// it is parsed, not on every check: a permission parsed once and asked often (a gateway
/// route's) is hashed once.
#[derive(Clone)]
pub struct Permission {
    text: Arc<str>,
    /// Where the colon is in `text` (a half is at most [`MAX_HALF`] bytes).
    colon: u8,
    /// Neither half is `*`.
    concrete: bool,
    /// The [`name_hash`] of the type under the process's seed.
    type_hash: u64,
    /// The [`name_hash`] of the action chained from `type_hash`.
    hash: u64,
}

impl Permission {
    /// True when both are the same permission (as `==`, comparing inline: see [`same_id`]).
    #[inline]
    pub fn same(&self, other: &Permission) -> bool {
        self.hash == other.hash && same_id(&self.text, &other.text)
    }

    /// Parses `type:action`; `*` alone is shorthand for `*:*`.
    ///
    /// Both halves must be non-empty and made of lowercase ASCII letters, digits, `_` and `-`,
    /// or be exactly `*`.
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        let text = if text == WILDCARD { "*:*" } else { text };
        let malformed = || CoreError::MalformedPermission(text.to_owned());
        let (resource_type, action) = text.split_once(':').ok_or_else(malformed)?;
        if !valid_half(resource_type) || !valid_half(action) {
            return Err(malformed());
        }
        let type_hash = name_hash(resource_type, process_seed());
        Ok(Self {
            text: Arc::from(text),
            colon: resource_type.len() as u8,
            concrete: resource_type != WILDCARD && action != WILDCARD,
            type_hash,
            hash: name_hash(action, type_hash),
        })
    }

    /// The resource type half (`model` in `model:read`), possibly `*`.
    #[inline]
    pub fn resource_type(&self) -> &str {
        self.text.get(..usize::from(self.colon)).unwrap_or_default()
    }

    /// The action half (`read` in `model:read`), possibly `*`.
    #[inline]
    pub fn action(&self) -> &str {
        self.text
            .get(usize::from(self.colon) + 1..)
            .unwrap_or_default()
    }

    /// True when neither half is a wildcard.
    #[inline]
    pub fn is_concrete(&self) -> bool {
        self.concrete
    }

    /// The hash of the type the roles' filters take a pattern's bit from ([`name_hash`] with
    /// the process's seed).
    #[inline]
    pub(crate) fn type_hash(&self) -> u64 {
        self.type_hash
    }

    /// The hash a role's table of exact entries finds the permission by, and its filters take
    /// its bit from: the action's [`name_hash`] chained from [`Permission::type_hash`].
    #[inline]
    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    /// True when holding `self` means holding `other`: each half of `self` is `*` or equal to the
    /// same half of `other`. A pattern covers itself; `model:read` does not cover `model:*`.
    pub fn covers(&self, other: &Permission) -> bool {
        half_covers(self.resource_type(), other.resource_type())
            && half_covers(self.action(), other.action())
    }
}

/// Equal permissions have equal texts, and the reverse: a half holds no colon.
impl PartialEq for Permission {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Permission {}

impl Hash for Permission {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.text.hash(state)
    }
}

/// By type, then by action (not by the text: `model-x:read` sorts after `model:read`).
impl Ord for Permission {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.resource_type(), self.action()).cmp(&(other.resource_type(), other.action()))
    }
}

impl PartialOrd for Permission {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The hash of a permission's type or action for the roles' tables and filters, chained from
/// `seed`: foldhash's hasher given the name's bytes alone.
///
/// Not through the `Hash` trait, as the maps hash: that also writes a terminator byte and mixes
/// it in, and goes through a call and the maps' state. The length still counts (foldhash turns
/// its seed by it). A type's hash is seeded with the process's random seed, as the maps are: a
/// role's permissions are a tenant's to choose, and permissions chosen to fall together in a
/// role's table or on one bit of its filter cannot then be planned.
#[inline]
pub(crate) fn name_hash(name: &str, seed: u64) -> u64 {
    use std::hash::BuildHasher;
    let mut hasher = foldhash::fast::FixedState::with_seed(seed).build_hasher();
    hasher.write(name.as_bytes());
    hasher.finish()
}

fn half_covers(held: &str, wanted: &str) -> bool {
    held == WILDCARD || held == wanted
}

fn valid_half(half: &str) -> bool {
    half == WILDCARD
        || (!half.is_empty()
            && half.len() <= MAX_HALF
            && half
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'))
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permission({self})")
    }
}

impl std::str::FromStr for Permission {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Permission {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn p(text: &str) -> Permission {
        Permission::parse(text).unwrap()
    }

    #[test]
    fn parses_and_displays() {
        assert_eq!(p("model:read").to_string(), "model:read");
        assert_eq!(p("*").to_string(), "*:*");
        assert!(p("model:read").is_concrete());
        assert!(!p("model:*").is_concrete());
    }

    #[test]
    fn keeps_its_halves_in_one_text() {
        let read = p("model:read");
        assert_eq!((read.resource_type(), read.action()), ("model", "read"));
        let all = p("*");
        assert_eq!((all.resource_type(), all.action()), ("*", "*"));
        assert_eq!(all, p("*:*"));
        assert!(read.same(&p("model:read")) && !read.same(&p("model:write")));
        // Ordered by type, then action, as a pair of halves is: not by the text, where `-`
        // sorts before `:`.
        let mut sorted = [p("model-x:read"), p("model:write"), p("model:read")];
        sorted.sort();
        let sorted: Vec<String> = sorted.iter().map(ToString::to_string).collect();
        assert_eq!(sorted, ["model:read", "model:write", "model-x:read"]);
        let longest = format!("{}:{}", "t".repeat(64), "a".repeat(64));
        assert_eq!(p(&longest).action(), "a".repeat(64));
    }

    /// Every byte of a name moves its hash, at every length a half may have (to 64 bytes, past
    /// the 16 that foldhash reads as two words): a name changed in any one byte hashes
    /// differently, as does the name one byte shorter and the name under another seed.
    #[test]
    fn a_names_hash_reads_every_byte() {
        let name: String = ('a'..='z').cycle().take(MAX_HALF).collect();
        for n in 0..=name.len() {
            let base = &name[..n];
            let hash = name_hash(base, 7);
            if n > 0 {
                assert_ne!(
                    hash,
                    name_hash(&name[..n - 1], 7),
                    "{base} and one byte less"
                );
            }
            for at in 0..n {
                let mut changed = base.as_bytes().to_vec();
                changed[at] ^= 0x20;
                let changed = String::from_utf8(changed).unwrap();
                assert_ne!(hash, name_hash(&changed, 7), "{base}: byte {at}");
            }
            assert_ne!(hash, name_hash(base, 8), "{base}: the seed");
        }
    }

    fn half() -> impl Strategy<Value = String> {
        prop_oneof![Just(WILDCARD.to_owned()), "[a-z0-9_-]{1,8}"]
    }

    proptest! {
        /// Two permissions are equal exactly when their halves are, hash alike when equal,
        /// are ordered as the pairs of their halves, and come back the same through their text.
        #[test]
        fn order_equality_and_text_follow_the_halves(
            a in (half(), half()),
            b in (half(), half()),
        ) {
            let (pa, pb) = (p(&format!("{}:{}", a.0, a.1)), p(&format!("{}:{}", b.0, b.1)));
            prop_assert_eq!(pa.cmp(&pb), a.cmp(&b));
            prop_assert_eq!(pa == pb, a == b);
            prop_assert_eq!(pa.same(&pb), a == b);
            if a == b {
                let hash = |x: &Permission| crate::cowmap::hash_key(x);
                prop_assert_eq!(hash(&pa), hash(&pb));
                prop_assert_eq!((pa.type_hash(), pa.hash()), (pb.type_hash(), pb.hash()));
            }
            prop_assert_eq!((pa.resource_type(), pa.action()), (a.0.as_str(), a.1.as_str()));
            let json = serde_json::to_string(&pa).unwrap();
            prop_assert_eq!(serde_json::from_str::<Permission>(&json).unwrap(), pa);
        }
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "model",
            ":read",
            "model:",
            "Model:read",
            "a:b:c",
            "model:re ad",
            "**:read",
        ] {
            assert!(Permission::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn wildcards_cover() {
        assert!(p("*:*").covers(&p("model:read")));
        assert!(p("model:*").covers(&p("model:read")));
        assert!(p("*:read").covers(&p("model:read")));
        assert!(p("model:*").covers(&p("model:*")));
        assert!(!p("model:read").covers(&p("model:*")));
        assert!(!p("model:read").covers(&p("dataset:read")));
        assert!(!p("*:read").covers(&p("model:write")));
    }
}
