//! Resource grants indexed for matching: per subject, patterns with an exact service and type go
//! to a per-type index where exact ids are a hash lookup, `*` ids a list, and `abc*` ids a byte
//! trie walked along the id; only patterns with a wildcard service or type are scanned. A check
//! therefore costs O(length of the id) per subject, whatever the number of grants.

use std::collections::BTreeMap;

use crate::index::HashMap;
use std::sync::Arc;

use crate::condition::{compile_stored, CompiledCondition};
use crate::irn::{IrnPattern, Segment};
use crate::model::ResourceGrant;

/// A grant with its pattern parsed and its condition compiled.
#[derive(Debug)]
pub struct CompiledGrant {
    pub grant: ResourceGrant,
    /// `None` when the stored pattern no longer parses: such a grant never matches.
    pub pattern: Option<IrnPattern>,
    pub condition: Option<CompiledCondition>,
}

impl CompiledGrant {
    /// Parses and compiles a stored grant.
    pub fn new(grant: ResourceGrant) -> Self {
        let pattern = IrnPattern::parse(&grant.irn).ok();
        let condition = compile_stored(grant.condition.as_deref());
        Self {
            grant,
            pattern,
            condition,
        }
    }

    /// True when the grant gives `action` (or every action, with `*`).
    pub fn gives(&self, action: &str) -> bool {
        self.grant
            .actions
            .iter()
            .any(|a| a == "*" || (a == action && action != "*"))
    }
}

/// The wire actions of a grant (`READ`, `CREATE`, `EDIT`, `DELETE`, `SHARE`, `*`, or an action
/// of the type in any case) mapped to the catalog actions of the IRN's type. `type_actions` is
/// `None` when the pattern's type is not one exact, known type: then the five standard actions and
/// `*` are accepted as they are. `CREATE` and `EDIT` fall back to `write` for a type that has
/// `write` but not them.
pub fn map_actions(
    type_actions: Option<&std::collections::BTreeSet<String>>,
    actions: &[String],
) -> Result<Vec<String>, String> {
    if actions.is_empty() {
        return Err("`_actions` must name at least one action".to_owned());
    }
    let mut out: Vec<String> = Vec::new();
    for wire in actions {
        let lower = wire.to_ascii_lowercase();
        let mapped = if lower == "*" {
            Some(lower)
        } else {
            match type_actions {
                Some(known) if known.contains(&lower) => Some(lower),
                Some(known)
                    if (lower == "create" || lower == "edit") && known.contains("write") =>
                {
                    Some("write".to_owned())
                }
                Some(_) => None,
                None => ["read", "create", "edit", "delete", "share"]
                    .contains(&lower.as_str())
                    .then_some(lower),
            }
        };
        match mapped {
            Some(a) if !out.contains(&a) => out.push(a),
            Some(_) => {}
            None => return Err(format!("`{wire}` is not an action of this resource type")),
        }
    }
    Ok(out)
}

#[derive(Clone, Debug, Default)]
struct PrefixTrie {
    here: Vec<Arc<CompiledGrant>>,
    children: BTreeMap<u8, PrefixTrie>,
}

impl PrefixTrie {
    fn node(&mut self, prefix: &[u8]) -> &mut PrefixTrie {
        let mut node = self;
        for b in prefix {
            node = node.children.entry(*b).or_default();
        }
        node
    }

    fn visit(&self, id: &[u8], f: &mut dyn FnMut(&Arc<CompiledGrant>)) {
        let mut node = self;
        node.here.iter().for_each(&mut *f);
        for b in id {
            match node.children.get(b) {
                Some(child) => {
                    node = child;
                    node.here.iter().for_each(&mut *f);
                }
                None => return,
            }
        }
    }
}

#[derive(Clone, Debug, Default)]
struct IdIndex {
    exact: HashMap<String, Vec<Arc<CompiledGrant>>>,
    any: Vec<Arc<CompiledGrant>>,
    prefixes: PrefixTrie,
}

/// One subject's grants.
#[derive(Clone, Debug, Default)]
pub struct PatternIndex {
    by_type: HashMap<(String, String), IdIndex>,
    /// Patterns with a wildcard or prefix service or type.
    other: Vec<Arc<CompiledGrant>>,
    len: usize,
}

fn retain(list: &mut Vec<Arc<CompiledGrant>>, id: &str) {
    list.retain(|g| g.grant.id != id);
}

impl PatternIndex {
    /// Adds a grant (one whose pattern does not parse is kept out: it could never match).
    pub fn insert(&mut self, grant: Arc<CompiledGrant>) {
        let Some(pattern) = grant.pattern.clone() else {
            return;
        };
        self.len += 1;
        match (pattern.service(), pattern.resource_type()) {
            (Segment::Exact(service), Segment::Exact(resource_type)) => {
                let ids = self
                    .by_type
                    .entry((service.clone(), resource_type.clone()))
                    .or_default();
                match pattern.id() {
                    Segment::Exact(id) => ids.exact.entry(id.clone()).or_default().push(grant),
                    Segment::Any => ids.any.push(grant),
                    Segment::Prefix(prefix) => {
                        ids.prefixes.node(prefix.as_bytes()).here.push(grant)
                    }
                }
            }
            _ => self.other.push(grant),
        }
    }

    /// Removes a grant by id.
    pub fn remove(&mut self, grant: &CompiledGrant) {
        let Some(pattern) = grant.pattern.as_ref() else {
            return;
        };
        let id = grant.grant.id.as_str();
        self.len = self.len.saturating_sub(1);
        match (pattern.service(), pattern.resource_type()) {
            (Segment::Exact(service), Segment::Exact(resource_type)) => {
                let key = (service.clone(), resource_type.clone());
                if let Some(ids) = self.by_type.get_mut(&key) {
                    match pattern.id() {
                        Segment::Exact(exact) => {
                            if let Some(list) = ids.exact.get_mut(exact) {
                                retain(list, id);
                                if list.is_empty() {
                                    ids.exact.remove(exact);
                                }
                            }
                        }
                        Segment::Any => retain(&mut ids.any, id),
                        Segment::Prefix(prefix) => {
                            retain(&mut ids.prefixes.node(prefix.as_bytes()).here, id)
                        }
                    }
                }
            }
            _ => retain(&mut self.other, id),
        }
    }

    /// True when the subject has no grant.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Calls `f` with every grant whose pattern matches `service:resource_type:id`.
    pub fn visit(
        &self,
        service: &str,
        resource_type: &str,
        id: &str,
        f: &mut dyn FnMut(&Arc<CompiledGrant>),
    ) {
        if let Some(ids) = self
            .by_type
            .get(&(service.to_owned(), resource_type.to_owned()))
        {
            if let Some(list) = ids.exact.get(id) {
                list.iter().for_each(&mut *f);
            }
            ids.any.iter().for_each(&mut *f);
            ids.prefixes.visit(id.as_bytes(), f);
        }
        for g in &self.other {
            if let Some(p) = &g.pattern {
                if p.service().matches(service)
                    && p.resource_type().matches(resource_type)
                    && p.id().matches(id)
                {
                    f(g);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irn::Irn;
    use crate::model::GrantSubject;
    use proptest::prelude::*;

    fn grant(id: &str, irn: &str) -> Arc<CompiledGrant> {
        let now = chrono::Utc::now();
        Arc::new(CompiledGrant::new(ResourceGrant {
            id: id.to_owned(),
            organization_id: "o".to_owned(),
            irn: irn.to_owned(),
            subject: GrantSubject::User("u".to_owned()),
            actions: vec!["read".to_owned()],
            criteria: Default::default(),
            condition: None,
            created_at: now,
            updated_at: now,
        }))
    }

    fn matched(index: &PatternIndex, irn: &str) -> Vec<String> {
        let irn = Irn::parse(irn).unwrap();
        let mut out = Vec::new();
        index.visit(irn.service(), irn.resource_type(), irn.id(), &mut |g| {
            out.push(g.grant.id.clone())
        });
        out.sort();
        out
    }

    #[test]
    fn finds_exactly_the_matching_patterns() {
        let mut index = PatternIndex::default();
        for (id, irn) in [
            ("a", "aisvc:agent:7"),
            ("b", "aisvc:agent:*"),
            ("c", "aisvc:agent:team-*"),
            ("d", "aisvc:*:7"),
            ("e", "other:agent:*"),
            ("f", "aisvc:agentx:*"),
        ] {
            index.insert(grant(id, irn));
        }
        assert_eq!(matched(&index, "aisvc:agent:7"), ["a", "b", "d"]);
        assert_eq!(matched(&index, "aisvc:agent:team-1"), ["b", "c"]);
        assert_eq!(matched(&index, "aisvc:agentx:1"), ["f"]);
        assert_eq!(matched(&index, "aisvc:tool:7"), ["d"]);
        index.remove(&grant("b", "aisvc:agent:*"));
        index.remove(&grant("c", "aisvc:agent:team-*"));
        assert_eq!(matched(&index, "aisvc:agent:team-1"), Vec::<String>::new());
    }

    proptest! {
        /// The index finds what a scan of every pattern finds.
        #[test]
        fn agrees_with_a_scan(
            patterns in proptest::collection::vec(("(a|b|\\*|a\\*)", "(x|y|\\*)", "(1|12|1\\*|\\*|2:3|2:\\*)"), 0..30),
            irns in proptest::collection::vec(("(a|b|ab)", "(x|y)", "(1|12|123|2|2:3|2:4)"), 1..10),
        ) {
            let mut index = PatternIndex::default();
            let mut all = Vec::new();
            for (n, (s, t, i)) in patterns.iter().enumerate() {
                let g = grant(&format!("g{n:02}"), &format!("{s}:{t}:{i}"));
                all.push(g.clone());
                index.insert(g);
            }
            for (s, t, i) in irns {
                let text = format!("{s}:{t}:{i}");
                let irn = Irn::parse(&text).unwrap();
                let mut scanned: Vec<String> = all.iter().filter(|g| g.pattern.as_ref().unwrap().matches(&irn)).map(|g| g.grant.id.clone()).collect();
                scanned.sort();
                prop_assert_eq!(matched(&index, &text), scanned);
            }
        }
    }
}
