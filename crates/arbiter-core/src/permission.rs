//! Permissions: `resource_type:action`, where `*` may stand for the type, the action or both.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::cowmap::same_id;
use crate::error::CoreError;

/// The wildcard that stands for any type or any action.
pub const WILDCARD: &str = "*";

/// A permission or a permission pattern such as `model:*`.
///
/// The two halves are reference-counted so that cloning a permission on the check path costs two
/// counter increments, not two allocations.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    resource_type: Arc<str>,
    action: Arc<str>,
}

impl Permission {
    /// True when both are the same permission (as `==`, comparing inline: see [`same_id`]).
    #[inline]
    pub fn same(&self, other: &Permission) -> bool {
        same_id(&self.action, &other.action) && same_id(&self.resource_type, &other.resource_type)
    }

    /// Parses `type:action`; `*` alone is shorthand for `*:*`.
    ///
    /// Both halves must be non-empty and made of lowercase ASCII letters, digits, `_` and `-`,
    /// or be exactly `*`.
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        let malformed = || CoreError::MalformedPermission(text.to_owned());
        if text == WILDCARD {
            return Ok(Self::new(WILDCARD, WILDCARD));
        }
        let (resource_type, action) = text.split_once(':').ok_or_else(malformed)?;
        if !valid_half(resource_type) || !valid_half(action) {
            return Err(malformed());
        }
        Ok(Self::new(resource_type, action))
    }

    fn new(resource_type: &str, action: &str) -> Self {
        Self {
            resource_type: Arc::from(resource_type),
            action: Arc::from(action),
        }
    }

    /// The resource type half (`model` in `model:read`), possibly `*`.
    pub fn resource_type(&self) -> &str {
        &self.resource_type
    }

    /// The action half (`read` in `model:read`), possibly `*`.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// True when neither half is a wildcard.
    pub fn is_concrete(&self) -> bool {
        &*self.resource_type != WILDCARD && &*self.action != WILDCARD
    }

    /// True when holding `self` means holding `other`: each half of `self` is `*` or equal to the
    /// same half of `other`. A pattern covers itself; `model:read` does not cover `model:*`.
    pub fn covers(&self, other: &Permission) -> bool {
        half_covers(&self.resource_type, &other.resource_type)
            && half_covers(&self.action, &other.action)
    }
}

fn half_covers(held: &str, wanted: &str) -> bool {
    held == WILDCARD || held == wanted
}

fn valid_half(half: &str) -> bool {
    half == WILDCARD
        || (!half.is_empty()
            && half.len() <= 64
            && half
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'))
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.resource_type, self.action)
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
