//! The conformance case format: a bundle, then stages that write and check. Every case under
//! `tests/conformance/` is played against the engine over the compiled index, and against the
//! HTTP API of the real binary on each store; they must all agree with what the case expects.

use serde::Deserialize;
use serde_json::Value;

use crate::bundle::Bundle;
use crate::engine::{ResourceQuery, SubjectQuery};
use crate::error::CoreError;
use crate::model::Properties;

/// One case file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub bundle: Bundle,
    pub stages: Vec<Stage>,
}

/// A write (optional) and the checks expected after it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    #[serde(default)]
    pub name: String,
    /// More objects to put before the checks.
    #[serde(default)]
    pub apply: Option<Bundle>,
    /// Bindings (by id) to delete before the checks.
    #[serde(default)]
    pub delete_bindings: Vec<String>,
    pub checks: Vec<ExpectedCheck>,
}

/// A check and its expected decision.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedCheck {
    pub organization: String,
    /// `user:<id, email or external id>` or `api_key:<key id>`.
    pub subject: String,
    #[serde(default)]
    pub subject_properties: Properties,
    pub permission: String,
    /// `type:id` (the id may hold `:`).
    pub resource: String,
    #[serde(default)]
    pub resource_properties: Properties,
    #[serde(default)]
    pub context: Option<Value>,
    pub allowed: bool,
    /// A text the explanation must contain.
    #[serde(default)]
    pub reason_contains: Option<String>,
}

impl Case {
    /// Parses a case file.
    pub fn from_yaml(text: &str) -> Result<Self, CoreError> {
        serde_yaml::from_str(text).map_err(|e| CoreError::InvalidBundle(e.to_string()))
    }
}

impl ExpectedCheck {
    /// The subject as the engine takes it.
    pub fn subject_query(&self) -> Result<SubjectQuery, CoreError> {
        match self.subject.split_once(':') {
            Some(("user", id)) => Ok(SubjectQuery::User(id.to_owned())),
            Some(("api_key", id)) => Ok(SubjectQuery::ApiKey(id.to_owned())),
            _ => Err(CoreError::InvalidBundle(format!(
                "subject `{}` is not `user:..` or `api_key:..`",
                self.subject
            ))),
        }
    }

    /// The resource as the engine takes it.
    pub fn resource_query(&self) -> Result<ResourceQuery, CoreError> {
        let (resource_type, id) = self.resource.split_once(':').ok_or_else(|| {
            CoreError::InvalidBundle(format!("resource `{}` is not `type:id`", self.resource))
        })?;
        Ok(ResourceQuery {
            resource_type: resource_type.to_owned(),
            id: id.to_owned(),
            properties: self.resource_properties.clone(),
        })
    }

    /// A one-line description for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "{} {} on {} in {} (expected allowed={})",
            self.subject, self.permission, self.resource, self.organization, self.allowed
        )
    }
}
