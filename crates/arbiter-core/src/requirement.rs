//! Requirements: expressions of permissions with `&` (all of), `|` (any of) and parentheses, such
//! as `query:execute & (raw_data:read | reference_data:read)`.
//!
//! `&` binds tighter than `|`, so `a | b & c` is `a | (b & c)`. An expression is evaluated over
//! the decisions of its leaves (one per distinct permission), which the caller makes; this module
//! only parses, prints and combines.

use std::fmt;

use serde::Serialize;

use crate::error::CoreError;
use crate::permission::Permission;

/// The longest requirement accepted, in characters.
pub const MAX_LENGTH: usize = 1024;

/// The deepest nesting of parentheses accepted.
pub const MAX_DEPTH: usize = 16;

/// An expression of permissions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// One permission.
    Leaf(Permission),
    /// Every operand must hold (`&`); at least two operands.
    All(Vec<Expr>),
    /// At least one operand must hold (`|`); at least two operands.
    Any(Vec<Expr>),
}

/// The decision of one leaf of an expression.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeafDecision {
    pub permission: Permission,
    pub allowed: bool,
}

/// An expression evaluated: the result and the decision of every distinct leaf, in the order
/// the leaves first appear.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    pub allowed: bool,
    pub leaves: Vec<LeafDecision>,
}

impl Expr {
    /// Parses an expression. Permissions must be well formed (`type:action`); whether the
    /// catalog knows them is for the caller to check (see [`Expr::permissions`]).
    ///
    /// Errors: [`CoreError::InvalidRequirement`] naming the character where the text stops making
    /// sense and what was expected there; [`CoreError::MalformedPermission`] for a leaf that is
    /// not `type:action`.
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        if text.chars().count() > MAX_LENGTH {
            return Err(CoreError::InvalidRequirement {
                requirement: text.chars().take(64).collect::<String>() + "...",
                position: MAX_LENGTH + 1,
                expected: "at most 1024 characters",
                found: "more".to_owned(),
            });
        }
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            text,
            tokens: &tokens,
            next: 0,
        };
        let expr = parser.any(0)?;
        match parser.peek() {
            None => Ok(expr),
            Some(t) => Err(parser.unexpected(t, "`&`, `|` or the end")),
        }
    }

    /// The distinct permissions of the expression, in the order they first appear.
    pub fn permissions(&self) -> Vec<&Permission> {
        let mut out: Vec<&Permission> = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Permission>) {
        match self {
            Expr::Leaf(p) => {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
            Expr::All(items) | Expr::Any(items) => {
                for item in items {
                    item.collect(out);
                }
            }
        }
    }

    /// The value of the expression when each leaf's value is `held(permission)`.
    pub fn holds(&self, held: &dyn Fn(&Permission) -> bool) -> bool {
        match self {
            Expr::Leaf(p) => held(p),
            Expr::All(items) => items.iter().all(|i| i.holds(held)),
            Expr::Any(items) => items.iter().any(|i| i.holds(held)),
        }
    }

    /// Decides every distinct leaf once with `decide` (none is skipped, so that the answer tells
    /// which permissions are missing) and combines the results.
    pub fn evaluate(&self, mut decide: impl FnMut(&Permission) -> bool) -> Evaluation {
        let leaves: Vec<LeafDecision> = self
            .permissions()
            .into_iter()
            .map(|p| LeafDecision {
                permission: p.clone(),
                allowed: decide(p),
            })
            .collect();
        let allowed = self.holds(&|p| leaves.iter().any(|l| l.allowed && &l.permission == p));
        Evaluation { allowed, leaves }
    }
}

impl fmt::Display for Expr {
    /// The canonical form: operators surrounded by one space, parentheses only where needed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Leaf(p) => write!(f, "{p}"),
            Expr::Any(items) => {
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        f.write_str(" | ")?;
                    }
                    write!(f, "{item}")?;
                }
                Ok(())
            }
            Expr::All(items) => {
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        f.write_str(" & ")?;
                    }
                    match item {
                        Expr::Any(_) => write!(f, "({item})")?,
                        _ => write!(f, "{item}")?,
                    }
                }
                Ok(())
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    And,
    Or,
    Open,
    Close,
    Permission(Permission),
}

/// A token and the character (1-based) it starts at.
type Spanned = (Token, usize);

fn is_operator(c: char) -> bool {
    matches!(c, '&' | '|' | '(' | ')')
}

fn tokenize(text: &str) -> Result<Vec<Spanned>, CoreError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let position = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let token = match c {
            '&' => Token::And,
            '|' => Token::Or,
            '(' => Token::Open,
            ')' => Token::Close,
            _ => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|c| !c.is_whitespace() && !is_operator(*c))
                {
                    i += 1;
                }
                let word: String = chars.get(start..i).unwrap_or_default().iter().collect();
                out.push((Token::Permission(Permission::parse(&word)?), position));
                continue;
            }
        };
        out.push((token, position));
        i += 1;
    }
    Ok(out)
}

struct Parser<'t> {
    text: &'t str,
    tokens: &'t [Spanned],
    next: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Spanned> {
        self.tokens.get(self.next)
    }

    fn end_position(&self) -> usize {
        self.text.chars().count() + 1
    }

    fn unexpected(&self, found: &Spanned, expected: &'static str) -> CoreError {
        let shown = match &found.0 {
            Token::And => "`&`".to_owned(),
            Token::Or => "`|`".to_owned(),
            Token::Open => "`(`".to_owned(),
            Token::Close => "`)`".to_owned(),
            Token::Permission(p) => format!("`{p}`"),
        };
        CoreError::InvalidRequirement {
            requirement: self.text.to_owned(),
            position: found.1,
            expected,
            found: shown,
        }
    }

    fn at_end(&self, expected: &'static str) -> CoreError {
        CoreError::InvalidRequirement {
            requirement: self.text.to_owned(),
            position: self.end_position(),
            expected,
            found: "the end".to_owned(),
        }
    }

    /// `any := all ('|' all)*`
    fn any(&mut self, depth: usize) -> Result<Expr, CoreError> {
        let mut items = vec![self.all(depth)?];
        while matches!(self.peek(), Some((Token::Or, _))) {
            self.next += 1;
            items.push(self.all(depth)?);
        }
        Ok(combine(items, false))
    }

    /// `all := operand ('&' operand)*`
    fn all(&mut self, depth: usize) -> Result<Expr, CoreError> {
        let mut items = vec![self.operand(depth)?];
        while matches!(self.peek(), Some((Token::And, _))) {
            self.next += 1;
            items.push(self.operand(depth)?);
        }
        Ok(combine(items, true))
    }

    /// `operand := permission | '(' any ')'`
    fn operand(&mut self, depth: usize) -> Result<Expr, CoreError> {
        const EXPECTED: &str = "a permission or `(`";
        let Some(token) = self.peek().cloned() else {
            return Err(self.at_end(EXPECTED));
        };
        match token.0 {
            Token::Permission(p) => {
                self.next += 1;
                Ok(Expr::Leaf(p))
            }
            Token::Open => {
                if depth >= MAX_DEPTH {
                    return Err(CoreError::InvalidRequirement {
                        requirement: self.text.to_owned(),
                        position: token.1,
                        expected: "at most 16 levels of parentheses",
                        found: "more".to_owned(),
                    });
                }
                self.next += 1;
                let inner = self.any(depth + 1)?;
                match self.peek() {
                    Some((Token::Close, _)) => {
                        self.next += 1;
                        Ok(inner)
                    }
                    Some(other) => Err(self.unexpected(other, "`&`, `|` or `)`")),
                    None => Err(self.at_end("`)`")),
                }
            }
            _ => Err(self.unexpected(&token, EXPECTED)),
        }
    }
}

/// Combines the operands of one operator; one operand stays itself, and operands of the same
/// operator are merged (`a & (b & c)` is `a & b & c`).
fn combine(items: Vec<Expr>, all: bool) -> Expr {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Expr::All(inner) if all => out.extend(inner),
            Expr::Any(inner) if !all => out.extend(inner),
            other => out.push(other),
        }
    }
    if out.len() == 1 {
        if let Some(only) = out.pop() {
            return only;
        }
    }
    if all {
        Expr::All(out)
    } else {
        Expr::Any(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Permission {
        Permission::parse(text).unwrap()
    }

    fn leaf(text: &str) -> Expr {
        Expr::Leaf(p(text))
    }

    fn parse(text: &str) -> Expr {
        Expr::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn one_permission_is_a_leaf() {
        assert_eq!(parse("model:read"), leaf("model:read"));
        assert_eq!(parse("  model:read\t"), leaf("model:read"));
        assert_eq!(parse("(model:read)"), leaf("model:read"));
        assert_eq!(parse("((model:read))"), leaf("model:read"));
    }

    #[test]
    fn and_binds_tighter_than_or() {
        assert_eq!(
            parse("a:r | b:r & c:r"),
            Expr::Any(vec![leaf("a:r"), Expr::All(vec![leaf("b:r"), leaf("c:r")])])
        );
        assert_eq!(
            parse("a:r & b:r | c:r"),
            Expr::Any(vec![Expr::All(vec![leaf("a:r"), leaf("b:r")]), leaf("c:r")])
        );
        assert_eq!(
            parse("a:r&b:r|c:r&d:r"),
            Expr::Any(vec![
                Expr::All(vec![leaf("a:r"), leaf("b:r")]),
                Expr::All(vec![leaf("c:r"), leaf("d:r")])
            ])
        );
    }

    #[test]
    fn parentheses_group() {
        assert_eq!(
            parse("query:execute & (raw_data:read | reference_data:read)"),
            Expr::All(vec![
                leaf("query:execute"),
                Expr::Any(vec![leaf("raw_data:read"), leaf("reference_data:read")])
            ])
        );
        assert_eq!(
            parse("(a:r | b:r) & c:r"),
            Expr::All(vec![Expr::Any(vec![leaf("a:r"), leaf("b:r")]), leaf("c:r")])
        );
        // Same operators are merged, whatever the parentheses.
        assert_eq!(
            parse("a:r & (b:r & c:r)"),
            Expr::All(vec![leaf("a:r"), leaf("b:r"), leaf("c:r")])
        );
        assert_eq!(
            parse("(a:r | b:r) | c:r"),
            Expr::Any(vec![leaf("a:r"), leaf("b:r"), leaf("c:r")])
        );
    }

    #[test]
    fn prints_canonically_and_round_trips() {
        for (text, canonical) in [
            ("a:r|b:r&c:r", "a:r | b:r & c:r"),
            ("(a:r|b:r)&c:r", "(a:r | b:r) & c:r"),
            ("((a:r))", "a:r"),
            (
                "query:execute&(raw_data:read|reference_data:read)",
                "query:execute & (raw_data:read | reference_data:read)",
            ),
            ("a:r & (b:r | (c:r & d:r))", "a:r & (b:r | c:r & d:r)"),
        ] {
            let e = parse(text);
            assert_eq!(e.to_string(), canonical, "{text}");
            assert_eq!(parse(canonical), e, "{canonical}");
        }
    }

    fn error(text: &str) -> CoreError {
        match Expr::parse(text) {
            Ok(e) => panic!("`{text}` should be refused, parsed as {e}"),
            Err(e) => e,
        }
    }

    fn position_of(text: &str) -> (usize, &'static str, String) {
        match error(text) {
            CoreError::InvalidRequirement {
                position,
                expected,
                found,
                ..
            } => (position, expected, found),
            other => panic!("`{text}`: unexpected error {other}"),
        }
    }

    #[test]
    fn malformed_input_names_where_and_what() {
        assert_eq!(
            position_of(""),
            (1, "a permission or `(`", "the end".to_owned())
        );
        assert_eq!(
            position_of("a:r &"),
            (6, "a permission or `(`", "the end".to_owned())
        );
        assert_eq!(
            position_of("a:r && b:r"),
            (6, "a permission or `(`", "`&`".to_owned())
        );
        assert_eq!(
            position_of("| a:r"),
            (1, "a permission or `(`", "`|`".to_owned())
        );
        assert_eq!(position_of("(a:r | b:r"), (11, "`)`", "the end".to_owned()));
        assert_eq!(
            position_of("a:r)"),
            (4, "`&`, `|` or the end", "`)`".to_owned())
        );
        assert_eq!(
            position_of("a:r b:r"),
            (5, "`&`, `|` or the end", "`b:r`".to_owned())
        );
        assert_eq!(
            position_of("()"),
            (2, "a permission or `(`", "`)`".to_owned())
        );
        assert_eq!(
            position_of("(a:r b:r)"),
            (6, "`&`, `|` or `)`", "`b:r`".to_owned())
        );
        let message = error("a:r &").to_string();
        assert!(message.contains("`a:r &`"), "{message}");
        assert!(message.contains("character 6"), "{message}");
    }

    #[test]
    fn malformed_permissions_and_limits_are_refused() {
        assert_eq!(
            error("model & a:r"),
            CoreError::MalformedPermission("model".to_owned())
        );
        assert_eq!(
            error("a:r & Model:read"),
            CoreError::MalformedPermission("Model:read".to_owned())
        );
        let deep = format!("{}a:r{}", "(".repeat(17), ")".repeat(17));
        assert!(matches!(
            error(&deep),
            CoreError::InvalidRequirement { position: 17, .. }
        ));
        let shallow = format!("{}a:r{}", "(".repeat(16), ")".repeat(16));
        assert_eq!(parse(&shallow), leaf("a:r"));
        let long = vec!["a:r"; 300].join(" | ");
        assert!(matches!(error(&long), CoreError::InvalidRequirement { .. }));
    }

    #[test]
    fn evaluates_every_distinct_leaf_once() {
        let e = parse("query:execute & (raw_data:read | reference_data:read) | query:execute");
        let mut asked = Vec::new();
        let r = e.evaluate(|p| {
            asked.push(p.to_string());
            p.to_string() != "raw_data:read"
        });
        assert_eq!(
            asked,
            ["query:execute", "raw_data:read", "reference_data:read"]
        );
        assert!(r.allowed);
        assert_eq!(
            r.leaves,
            vec![
                LeafDecision {
                    permission: p("query:execute"),
                    allowed: true
                },
                LeafDecision {
                    permission: p("raw_data:read"),
                    allowed: false
                },
                LeafDecision {
                    permission: p("reference_data:read"),
                    allowed: true
                },
            ]
        );
    }

    #[test]
    fn truth_tables() {
        let e = parse("q:x & (r:x | s:x)");
        let cases = [
            ((true, true, false), true),
            ((true, false, true), true),
            ((true, true, true), true),
            ((true, false, false), false),
            ((false, true, true), false),
            ((false, false, false), false),
        ];
        for ((q, r, s), expected) in cases {
            let got = e
                .evaluate(|p| match p.resource_type() {
                    "q" => q,
                    "r" => r,
                    _ => s,
                })
                .allowed;
            assert_eq!(got, expected, "q={q} r={r} s={s}");
        }
        let e = parse("a:x | b:x & c:x");
        assert!(e.holds(&|p| p.resource_type() == "a"));
        assert!(!e.holds(&|p| p.resource_type() == "b"));
        assert!(e.holds(&|p| p.resource_type() != "a"));
    }

    /// A random expression over the leaves `a:x`, `b:x`, `c:x` and `d:x`, nested at will.
    fn arbitrary_expr() -> impl proptest::strategy::Strategy<Value = Expr> {
        use proptest::prelude::*;
        let leaf = prop::sample::select(vec!["a:x", "b:x", "c:x", "d:x"]).prop_map(leaf);
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::All),
                prop::collection::vec(inner, 2..4).prop_map(Expr::Any),
            ]
        })
    }

    proptest::proptest! {
        /// Printing then parsing keeps the meaning (for every assignment of the leaves), and the
        /// canonical form is a fixed point.
        #[test]
        fn printing_and_parsing_keep_the_meaning(e in arbitrary_expr()) {
            let printed = e.to_string();
            let parsed = parse(&printed);
            proptest::prop_assert_eq!(parsed.to_string(), printed.clone());
            for bits in 0u8..16 {
                let held = |p: &Permission| {
                    let i = match p.resource_type() { "a" => 0, "b" => 1, "c" => 2, _ => 3 };
                    bits & (1 << i) != 0
                };
                proptest::prop_assert_eq!(parsed.holds(&held), e.holds(&held), "{} with {:04b}", printed, bits);
            }
        }

        /// Any text is parsed or refused, never a panic.
        #[test]
        fn any_text_is_parsed_or_refused(text in "[a-c:x&|() ]{0,40}") {
            let _ = Expr::parse(&text);
        }
    }
}
