//! IRNs (`service:type:id`) and IRN patterns.
//!
//! The rules, pinned by the tests below:
//! - An IRN has three parts. `service` and `type` are non-empty lowercase ASCII letters, digits,
//!   `_` or `-`. The `id` is everything after the second `:`, may itself hold `:`, and is non-empty
//!   with no whitespace or control characters. Matching is case-sensitive.
//! - In a pattern, a part that is exactly `*` matches any whole part (for the id: any id, colons
//!   included); a part `abc*` matches any part starting with `abc`. Nothing else is special: `a*b`
//!   is the three characters `a`, `*`, `b`.
//! - In an IRN (not a pattern) `*` is a plain character.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::CoreError;

const MAX_ID_LEN: usize = 512;

/// A concrete resource name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Irn {
    service: String,
    resource_type: String,
    id: String,
}

impl Irn {
    /// Parses `service:type:id`.
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        let (service, resource_type, id) = split(text)?;
        Ok(Self {
            service: service.to_owned(),
            resource_type: resource_type.to_owned(),
            id: id.to_owned(),
        })
    }

    /// Builds an IRN from its parts, validating them as [`Irn::parse`] does.
    pub fn from_parts(service: &str, resource_type: &str, id: &str) -> Result<Self, CoreError> {
        Self::parse(&format!("{service}:{resource_type}:{id}"))
    }

    /// The service part.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The resource type part.
    pub fn resource_type(&self) -> &str {
        &self.resource_type
    }

    /// The id part (may hold `:`).
    pub fn id(&self) -> &str {
        &self.id
    }
}

fn split(text: &str) -> Result<(&str, &str, &str), CoreError> {
    let bad = |reason| CoreError::MalformedIrn {
        irn: text.to_owned(),
        reason,
    };
    let mut parts = text.splitn(3, ':');
    let service = parts.next().unwrap_or_default();
    let resource_type = parts
        .next()
        .ok_or_else(|| bad("expected `service:type:id`"))?;
    let id = parts
        .next()
        .ok_or_else(|| bad("expected `service:type:id`"))?;
    if !valid_name(service) {
        return Err(bad(
            "the service must be lowercase letters, digits, `_` or `-`",
        ));
    }
    if !valid_name(resource_type) {
        return Err(bad(
            "the type must be lowercase letters, digits, `_` or `-`",
        ));
    }
    id_problem(id).map_or(Ok((service, resource_type, id)), |reason| Err(bad(reason)))
}

/// What is wrong with an IRN's id part, if anything.
fn id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        Some("the id must hold 1 to 512 characters")
    } else if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("the id must not hold whitespace or control characters")
    } else {
        None
    }
}

fn valid_name(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 64
        && part
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl fmt::Display for Irn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.service, self.resource_type, self.id)
    }
}

impl fmt::Debug for Irn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Irn({self})")
    }
}

/// One part of a pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    /// `*`: any whole part.
    Any,
    /// `abc*`: any part starting with `abc`.
    Prefix(String),
    /// Anything else, matched exactly.
    Exact(String),
}

impl Segment {
    fn parse(part: &str) -> Self {
        if part == "*" {
            Segment::Any
        } else if let Some(prefix) = part.strip_suffix('*') {
            Segment::Prefix(prefix.to_owned())
        } else {
            Segment::Exact(part.to_owned())
        }
    }

    /// True when `part` is matched by this segment.
    pub fn matches(&self, part: &str) -> bool {
        match self {
            Segment::Any => true,
            Segment::Prefix(prefix) => part.starts_with(prefix.as_str()),
            Segment::Exact(exact) => part == exact,
        }
    }
}

fn segment_covers(outer: &Segment, inner: &Segment) -> bool {
    match (outer, inner) {
        (Segment::Any, _) => true,
        (Segment::Prefix(p), Segment::Prefix(q)) => q.starts_with(p.as_str()),
        (Segment::Prefix(p), Segment::Exact(e)) => e.starts_with(p.as_str()),
        (Segment::Exact(a), Segment::Exact(b)) => a == b,
        _ => false,
    }
}

/// An IRN pattern such as `aisvc:agent:*` or `aisvc:*:team-*`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IrnPattern {
    text: String,
    service: Segment,
    resource_type: Segment,
    id: Segment,
}

impl IrnPattern {
    /// Parses a pattern. Each part must be valid as in an IRN once a trailing `*` is removed
    /// (so `*` and `abc*` are accepted where a name is expected).
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        let bad = |reason| CoreError::MalformedIrn {
            irn: text.to_owned(),
            reason,
        };
        let mut parts = text.splitn(3, ':');
        let service = parts.next().unwrap_or_default();
        let resource_type = parts
            .next()
            .ok_or_else(|| bad("expected `service:type:id`"))?;
        let id = parts
            .next()
            .ok_or_else(|| bad("expected `service:type:id`"))?;
        for part in [service, resource_type] {
            let stem = part.strip_suffix('*').unwrap_or(part);
            if !(part == "*" || valid_name(stem)) {
                return Err(bad(
                    "the service and type must be lowercase letters, digits, `_` or `-`, optionally ending in `*`",
                ));
            }
        }
        if let Some(reason) = id_problem(id) {
            return Err(bad(reason));
        }
        Ok(Self {
            text: text.to_owned(),
            service: Segment::parse(service),
            resource_type: Segment::parse(resource_type),
            id: Segment::parse(id),
        })
    }

    /// True when the pattern matches `irn`.
    pub fn matches(&self, irn: &Irn) -> bool {
        self.service.matches(&irn.service)
            && self.resource_type.matches(&irn.resource_type)
            && self.id.matches(&irn.id)
    }

    /// The service segment.
    pub fn service(&self) -> &Segment {
        &self.service
    }

    /// The type segment.
    pub fn resource_type(&self) -> &Segment {
        &self.resource_type
    }

    /// The id segment.
    pub fn id(&self) -> &Segment {
        &self.id
    }

    /// True when every IRN `other` matches is matched by `self` too (so holding something on
    /// `self` means holding it on `other`).
    pub fn covers(&self, other: &IrnPattern) -> bool {
        segment_covers(&self.service, &other.service)
            && segment_covers(&self.resource_type, &other.resource_type)
            && segment_covers(&self.id, &other.id)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for IrnPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for IrnPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IrnPattern({})", self.text)
    }
}

impl Serialize for IrnPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for IrnPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn matches(pattern: &str, irn: &str) -> bool {
        IrnPattern::parse(pattern)
            .unwrap()
            .matches(&Irn::parse(irn).unwrap())
    }

    #[test]
    fn edge_cases() {
        let table = [
            ("aisvc:agent:*", "aisvc:agent:7", true),
            ("aisvc:agent:*", "aisvc:agent:a:b:c", true),
            ("aisvc:agent:*", "aisvc:agentx:1", false),
            ("aisvc:agent:*", "other:agent:1", false),
            ("aisvc:agent:7", "aisvc:agent:7", true),
            ("aisvc:agent:7", "aisvc:agent:70", false),
            ("aisvc:agent:x", "aisvc:agent:X", false),
            ("aisvc:agent:team-*", "aisvc:agent:team-1", true),
            ("aisvc:agent:team-*", "aisvc:agent:team-", true),
            ("aisvc:agent:team-*", "aisvc:agent:tea", false),
            ("aisvc:*:x", "aisvc:tool:x", true),
            ("aisvc:*:x", "aisvc:tool:y", false),
            ("*:*:*", "a:b:c", true),
            ("ai*:agent:1", "aisvc:agent:1", true),
            ("ai*:agent:1", "bisvc:agent:1", false),
            ("aisvc:agent:a*b", "aisvc:agent:a*b", true),
            ("aisvc:agent:a*b", "aisvc:agent:axb", false),
            ("aisvc:agent:a:*", "aisvc:agent:a:b", true),
            ("aisvc:agent:a:*", "aisvc:agent:ab", false),
            ("aisvc:agent:AbC", "aisvc:agent:abc", false),
        ];
        for (pattern, irn, expected) in table {
            assert_eq!(matches(pattern, irn), expected, "{pattern} ~ {irn}");
        }
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "aisvc",
            "aisvc:agent",
            "aisvc:agent:",
            "AISVC:agent:1",
            ":agent:1",
            "a:b:c d",
        ] {
            assert!(Irn::parse(bad).is_err(), "irn {bad}");
            assert!(IrnPattern::parse(bad).is_err(), "pattern {bad}");
        }
        assert!(IrnPattern::parse("a*b:agent:1").is_err());
    }

    #[test]
    fn covering() {
        let p = |t: &str| IrnPattern::parse(t).unwrap();
        assert!(p("aisvc:agent:*").covers(&p("aisvc:agent:7")));
        assert!(p("aisvc:agent:*").covers(&p("aisvc:agent:team-*")));
        assert!(p("aisvc:agent:team-*").covers(&p("aisvc:agent:team-a*")));
        assert!(!p("aisvc:agent:team-*").covers(&p("aisvc:agent:*")));
        assert!(!p("aisvc:agent:7").covers(&p("aisvc:agent:*")));
        assert!(!p("aisvc:agent:*").covers(&p("aisvc:*:*")));
        assert!(p("*:*:*").covers(&p("aisvc:*:x")));
    }

    #[test]
    fn star_in_an_irn_is_plain() {
        let irn = Irn::parse("aisvc:agent:*").unwrap();
        assert_eq!(irn.id(), "*");
        assert!(!matches("aisvc:agent:x", "aisvc:agent:*"));
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9_-]{0,6}"
    }

    fn id() -> impl Strategy<Value = String> {
        "[A-Za-z0-9:._*-]{1,12}"
    }

    proptest! {
        #[test]
        fn an_irn_read_as_a_pattern_without_stars_matches_only_itself(
            s in name(), t in name(), i in "[A-Za-z0-9:._-]{1,12}", other in id()
        ) {
            let text = format!("{s}:{t}:{i}");
            let pattern = IrnPattern::parse(&text).unwrap();
            prop_assert!(pattern.matches(&Irn::parse(&text).unwrap()));
            let other_irn = Irn::parse(&format!("{s}:{t}:{other}")).unwrap();
            prop_assert_eq!(pattern.matches(&other_irn), other == i);
        }

        #[test]
        fn a_whole_star_id_matches_every_id_of_its_type_only(
            s in name(), t in name(), t2 in name(), i in id()
        ) {
            let pattern = IrnPattern::parse(&format!("{s}:{t}:*")).unwrap();
            let irn = Irn::parse(&format!("{s}:{t}:{i}")).unwrap();
            prop_assert!(pattern.matches(&irn));
            prop_assert_eq!(pattern.matches(&Irn::parse(&format!("{s}:{t2}:{i}")).unwrap()), t == t2);
        }

        #[test]
        fn a_prefix_matches_exactly_the_ids_that_start_with_it(
            s in name(), t in name(), prefix in "[a-z0-9]{0,4}", i in id()
        ) {
            let pattern = IrnPattern::parse(&format!("{s}:{t}:{prefix}*")).unwrap();
            let irn = Irn::parse(&format!("{s}:{t}:{i}")).unwrap();
            prop_assert_eq!(pattern.matches(&irn), i.starts_with(&prefix));
        }

        /// If `a` covers `b`, every IRN that `b` matches, `a` matches.
        #[test]
        fn covering_is_sound(
            a in ("(x|\\*|x\\*)", "(t|\\*)", "(1|12|1\\*|\\*)"),
            b in ("(x|xy|\\*|x\\*)", "(t|u|\\*)", "(1|12|1\\*|12\\*|\\*)"),
            irn in ("(x|xy)", "(t|u)", "(1|12|123|2)"),
        ) {
            let pa = IrnPattern::parse(&format!("{}:{}:{}", a.0, a.1, a.2)).unwrap();
            let pb = IrnPattern::parse(&format!("{}:{}:{}", b.0, b.1, b.2)).unwrap();
            let irn = Irn::parse(&format!("{}:{}:{}", irn.0, irn.1, irn.2)).unwrap();
            if pa.covers(&pb) && pb.matches(&irn) {
                prop_assert!(pa.matches(&irn));
            }
        }

        #[test]
        fn parsing_never_panics(text in ".{0,40}") {
            let _ = Irn::parse(&text);
            let _ = IrnPattern::parse(&text);
        }
    }
}
