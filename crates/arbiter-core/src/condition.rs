//! Conditions: CEL expressions compiled once when written and evaluated at check time.
//!
//! A condition sees four variables shaped as in AuthZEN: `subject` (`type`, `id`, `properties`),
//! `resource` (`type`, `id`, `properties`), `action` (`name`, `properties`) and `context`.
//! A condition that does not evaluate to a boolean, or fails (a missing property, a type error),
//! counts as false; the reason is kept for the explanation.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::error::CoreError;

/// A compiled condition.
pub struct Condition {
    source: String,
    program: cel::Program,
}

/// The values a condition is evaluated against.
pub struct ConditionInput<'a> {
    pub subject: &'a Value,
    pub resource: &'a Value,
    pub action: &'a Value,
    pub context: &'a Value,
}

const MAX_CONDITION_LEN: usize = 4096;

/// A stored condition, compiled once when the index takes it in. One pointer, as every binding
/// carries one.
pub type CompiledCondition = Arc<StoredCondition>;

/// A stored condition and what compiling it gave.
#[derive(Debug)]
pub enum StoredCondition {
    Compiled(Condition),
    /// A stored condition that no longer compiles (a limit tightened since it was written): it
    /// never holds, and `reason` says why.
    Broken {
        source: String,
        reason: String,
    },
}

impl StoredCondition {
    /// The condition as written.
    pub fn source(&self) -> &str {
        match self {
            StoredCondition::Compiled(c) => c.source(),
            StoredCondition::Broken { source, .. } => source,
        }
    }

    /// The compiled condition, or why it does not compile.
    pub fn compiled(&self) -> Result<&Condition, &str> {
        match self {
            StoredCondition::Compiled(c) => Ok(c),
            StoredCondition::Broken { reason, .. } => Err(reason),
        }
    }
}

/// Compiles a stored condition, if there is one.
pub fn compile_stored(source: Option<&str>) -> Option<CompiledCondition> {
    source.map(|s| {
        Arc::new(match Condition::compile(s) {
            Ok(c) => StoredCondition::Compiled(c),
            Err(e) => StoredCondition::Broken {
                source: s.to_owned(),
                reason: e.to_string(),
            },
        })
    })
}

impl Condition {
    /// Compiles `source`; a syntax error names its line and column.
    pub fn compile(source: &str) -> Result<Self, CoreError> {
        if source.len() > MAX_CONDITION_LEN {
            return Err(CoreError::InvalidCondition {
                line: 1,
                column: 1,
                message: format!("a condition holds at most {MAX_CONDITION_LEN} bytes"),
            });
        }
        if source.trim().is_empty() {
            return Err(CoreError::InvalidCondition {
                line: 1,
                column: 1,
                message: "the condition is empty".to_owned(),
            });
        }
        // The CEL parser is a third-party recursive-descent parser: a panic inside it must refuse
        // the condition, not take the server down.
        let compiled = std::panic::catch_unwind(|| cel::Program::compile(source));
        match compiled {
            Ok(Ok(program)) => Ok(Self {
                source: source.to_owned(),
                program,
            }),
            Ok(Err(errors)) => {
                let first = errors.errors.first();
                Err(CoreError::InvalidCondition {
                    line: first.map_or(1, |e| e.pos.0 + 1),
                    column: first.map_or(1, |e| e.pos.1 + 1),
                    message: first.map_or_else(|| errors.to_string(), |e| e.msg.clone()),
                })
            }
            Err(_) => Err(CoreError::InvalidCondition {
                line: 1,
                column: 1,
                message: "the expression could not be parsed".to_owned(),
            }),
        }
    }

    /// The condition as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the condition: `Ok(bool)` when it yields a boolean, `Err(reason)` otherwise.
    pub fn evaluate(&self, input: &ConditionInput<'_>) -> Result<bool, String> {
        let mut context = cel::Context::default();
        for (name, value) in [
            ("subject", input.subject),
            ("resource", input.resource),
            ("action", input.action),
            ("context", input.context),
        ] {
            let value = cel::to_value(value).map_err(|e| format!("`{name}` is not usable: {e}"))?;
            context.add_variable_from_value(name, value);
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.program.execute(&context)
        }));
        match outcome {
            Ok(Ok(cel::Value::Bool(b))) => Ok(b),
            Ok(Ok(other)) => Err(format!("it yielded {other:?}, not a boolean")),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("its evaluation failed".to_owned()),
        }
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Condition({})", self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(source: &str, resource: Value) -> Result<bool, String> {
        let c = Condition::compile(source).unwrap();
        let null = json!({});
        c.evaluate(&ConditionInput {
            subject: &json!({"type": "user", "id": "u1", "properties": {"email": "a@x"}}),
            resource: &resource,
            action: &json!({"name": "read", "properties": {}}),
            context: &null,
        })
    }

    #[test]
    fn evaluates_against_properties() {
        let r = json!({"type": "model", "id": "m1", "properties": {"status": "live"}});
        assert_eq!(
            eval("resource.properties.status != 'archived'", r.clone()),
            Ok(true)
        );
        assert_eq!(
            eval("resource.properties.status == 'archived'", r.clone()),
            Ok(false)
        );
        assert_eq!(
            eval("subject.properties.email == 'a@x'", r.clone()),
            Ok(true)
        );
        assert!(eval("resource.properties.missing == 1", r.clone()).is_err());
        assert!(eval("resource.id", r).is_err());
    }

    #[test]
    fn syntax_errors_name_a_position() {
        let err = Condition::compile("resource.properties.status ==").unwrap_err();
        assert!(matches!(err, CoreError::InvalidCondition { .. }), "{err}");
        assert!(Condition::compile("").is_err());
    }
}
