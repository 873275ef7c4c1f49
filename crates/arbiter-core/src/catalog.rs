//! The permission catalog: the resource types, their services and actions, and the predefined
//! roles. The built-in catalog is one readable file, `catalog/catalog.yaml`, compiled in.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::model::{Role, RoleEntry, RoleKind};
use crate::permission::{Permission, WILDCARD};

/// The shipped catalog file.
pub const BUILTIN_CATALOG_YAML: &str = include_str!("../../../catalog/catalog.yaml");

/// Prefix of the ids of predefined roles: `role_` + name.
pub const PREDEFINED_ROLE_PREFIX: &str = "role_";

/// The name of the role every member holds implicitly in its organizations.
pub const BASE_ROLE: &str = "base";

/// The name of the role a project key is bound to on its project when created.
pub const PROJECT_KEY_ROLE: &str = "project_key";

/// The name of the platform administrator's role.
pub const PLATFORM_ADMIN_ROLE: &str = "platform_admin";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    services: Vec<ServiceFile>,
    roles: Vec<RoleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceFile {
    name: String,
    #[serde(default)]
    description: String,
    types: Vec<TypeFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TypeFile {
    name: String,
    #[serde(default)]
    description: String,
    actions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleFile {
    name: String,
    kind: RoleKind,
    description: String,
    permissions: Vec<EntryFile>,
}

/// A role entry as written in files and request bodies: `"model:read"` or
/// `{"permission": "model:read", "scope": "OWN", "condition": "..."}`.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum EntryFile {
    Short(Permission),
    Long(RoleEntry),
}

impl<'de> Deserialize<'de> for EntryFile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        match value {
            serde_json::Value::String(text) => Permission::parse(&text).map(EntryFile::Short).map_err(D::Error::custom),
            serde_json::Value::Object(_) => serde_json::from_value::<RoleEntry>(value)
                .map(EntryFile::Long)
                .map_err(|e| D::Error::custom(format!("invalid role entry: {e}"))),
            _ => Err(D::Error::custom(
                "a role entry is a permission such as `model:read`, or {\"permission\", \"scope\", \"condition\"}",
            )),
        }
    }
}

impl From<EntryFile> for RoleEntry {
    fn from(entry: EntryFile) -> Self {
        match entry {
            EntryFile::Short(permission) => RoleEntry::all(permission),
            EntryFile::Long(entry) => entry,
        }
    }
}

/// One resource type of the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceType {
    pub name: String,
    pub service: String,
    pub description: String,
    pub actions: BTreeSet<String>,
    /// `None` for built-in types; the declaring organization otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
}

/// The catalog of types and predefined roles.
#[derive(Clone, Debug)]
pub struct Catalog {
    types: BTreeMap<String, ResourceType>,
    roles: Vec<Role>,
}

impl Catalog {
    /// The catalog shipped with Arbiter.
    pub fn builtin() -> Result<Self, CoreError> {
        Self::from_yaml(BUILTIN_CATALOG_YAML)
    }

    /// Parses and validates a catalog file: every role entry must name a known permission.
    pub fn from_yaml(text: &str) -> Result<Self, CoreError> {
        let file: CatalogFile =
            serde_yaml::from_str(text).map_err(|e| CoreError::InvalidCatalog(e.to_string()))?;
        let mut types = BTreeMap::new();
        for service in file.services {
            for t in service.types {
                let resource_type = ResourceType {
                    name: t.name.clone(),
                    service: service.name.clone(),
                    description: t.description,
                    actions: t.actions.into_iter().collect(),
                    organization_id: None,
                };
                if types.insert(t.name.clone(), resource_type).is_some() {
                    return Err(CoreError::InvalidCatalog(format!(
                        "type `{}` is listed twice",
                        t.name
                    )));
                }
            }
            let _ = service.description;
        }
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        let mut catalog = Self {
            types,
            roles: Vec::new(),
        };
        for role in file.roles {
            let entries: Vec<RoleEntry> =
                role.permissions.into_iter().map(RoleEntry::from).collect();
            for entry in &entries {
                catalog.validate(&entry.permission)?;
            }
            catalog.roles.push(Role {
                id: format!("{PREDEFINED_ROLE_PREFIX}{}", role.name),
                organization_id: None,
                name: role.name,
                description: role.description,
                kind: role.kind,
                permissions: entries,
                is_predefined: true,
                created_at: epoch,
                updated_at: epoch,
            });
        }
        for required in [BASE_ROLE, PROJECT_KEY_ROLE, PLATFORM_ADMIN_ROLE] {
            if catalog.predefined_role_by_name(required).is_none() {
                return Err(CoreError::InvalidCatalog(format!(
                    "role `{required}` is missing"
                )));
            }
        }
        Ok(catalog)
    }

    /// Every built-in type, by name.
    pub fn types(&self) -> &BTreeMap<String, ResourceType> {
        &self.types
    }

    /// One built-in type.
    pub fn resource_type(&self, name: &str) -> Option<&ResourceType> {
        self.types.get(name)
    }

    /// The predefined roles, in the file's order.
    pub fn predefined_roles(&self) -> &[Role] {
        &self.roles
    }

    /// A predefined role by name.
    pub fn predefined_role_by_name(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// Checks that a permission names known types and actions, with `extra` types declared by an
    /// organization taking part. `type:*` needs a known type, `*:action` an action some type has.
    pub fn validate_with(
        &self,
        permission: &Permission,
        extra: &BTreeMap<String, ResourceType>,
    ) -> Result<(), CoreError> {
        let unknown = || CoreError::UnknownPermission(permission.to_string());
        let action = permission.action();
        match permission.resource_type() {
            WILDCARD => {
                if action == WILDCARD
                    || self
                        .types
                        .values()
                        .chain(extra.values())
                        .any(|t| t.actions.contains(action))
                {
                    Ok(())
                } else {
                    Err(unknown())
                }
            }
            name => {
                let builtin = self.types.get(name);
                let declared = extra.get(name);
                if builtin.is_none() && declared.is_none() {
                    return Err(unknown());
                }
                if action == WILDCARD
                    || builtin.is_some_and(|t| t.actions.contains(action))
                    || declared.is_some_and(|t| t.actions.contains(action))
                {
                    Ok(())
                } else {
                    Err(unknown())
                }
            }
        }
    }

    /// [`Catalog::validate_with`] against the built-in types only.
    pub fn validate(&self, permission: &Permission) -> Result<(), CoreError> {
        self.validate_with(permission, &BTreeMap::new())
    }

    /// Every concrete permission of the built-in catalog, sorted.
    pub fn all_permissions(&self) -> Vec<Permission> {
        let mut out = Vec::new();
        for t in self.types.values() {
            for action in &t.actions {
                if let Ok(p) = Permission::parse(&format!("{}:{}", t.name, action)) {
                    out.push(p);
                }
            }
        }
        out
    }
}

/// The catalog as a Markdown document: the types and their actions, then each predefined role
/// with its entries. `docs/catalog.md` is this, committed; a test fails when it drifts.
pub fn catalog_markdown(catalog: &Catalog) -> String {
    let mut out = String::from(
        "# The built-in catalog\n\nGenerated from `catalog/catalog.yaml` by `catalog_markdown` \
         (`ARBITER_BLESS=1 cargo test -p arbiter-core` rewrites it). Do not edit by hand.\n\n\
         ## Resource types\n\n| service | type | actions | description |\n|---|---|---|---|\n",
    );
    let mut types: Vec<&ResourceType> = catalog.types.values().collect();
    types.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
    for t in types {
        let actions: Vec<&str> = t.actions.iter().map(String::as_str).collect();
        out.push_str(&format!(
            "| {} | `{}` | {} | {} |\n",
            t.service,
            t.name,
            actions.join(", "),
            t.description
        ));
    }
    out.push_str("\n## Predefined roles\n\nScope ALL unless said; TEAM: only resources in a space the holder is a member of; OWN: only resources the holder owns.\n");
    for role in &catalog.roles {
        out.push_str(&format!(
            "\n### `{}` ({} role)\n\n{}\n\n",
            role.name,
            match role.kind {
                RoleKind::User => "user",
                RoleKind::System => "system",
            },
            role.description
        ));
        let entries: Vec<String> = role
            .permissions
            .iter()
            .map(|e| match e.scope {
                crate::model::Scope::All => format!("`{}`", e.permission),
                scope => format!("`{}` ({scope})", e.permission),
            })
            .collect();
        out.push_str(&entries.join(", "));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_loads_and_validates() {
        let catalog = Catalog::builtin().unwrap();
        assert!(catalog.resource_type("model").is_some());
        assert!(catalog
            .validate(&Permission::parse("model:read").unwrap())
            .is_ok());
        assert!(catalog
            .validate(&Permission::parse("model:*").unwrap())
            .is_ok());
        assert!(catalog
            .validate(&Permission::parse("*:read").unwrap())
            .is_ok());
        assert!(catalog
            .validate(&Permission::parse("model:fly").unwrap())
            .is_err());
        assert!(catalog
            .validate(&Permission::parse("spaceship:read").unwrap())
            .is_err());
        assert_eq!(catalog.predefined_roles().len(), 8);
    }

    #[test]
    fn the_committed_catalog_document_is_current() {
        let generated = catalog_markdown(&Catalog::builtin().unwrap());
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/catalog.md");
        if std::env::var_os("ARBITER_BLESS").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/catalog.md is out of date: run `ARBITER_BLESS=1 cargo test -p arbiter-core`"
        );
    }

    #[test]
    fn the_auditor_can_never_write_whatever_the_catalog_holds() {
        let catalog = Catalog::builtin().unwrap();
        let auditor = catalog.predefined_role_by_name("auditor").unwrap();
        for permission in catalog.all_permissions() {
            let held = auditor
                .permissions
                .iter()
                .any(|e| e.permission.covers(&permission));
            assert_eq!(
                held,
                permission.action() == "read",
                "auditor and {permission}"
            );
        }
        // A type declared later, with write actions, is still out of reach.
        let future = Permission::parse("spaceship:launch").unwrap();
        assert!(!auditor
            .permissions
            .iter()
            .any(|e| e.permission.covers(&future)));
    }

    #[test]
    fn every_type_of_the_seeds_is_in_the_catalog() {
        let catalog = Catalog::builtin().unwrap();
        let wanted = [
            "organization_global:read",
            "organization_global:write",
            "organization:read",
            "organization:delete",
            "user:read",
            "user:write",
            "user:delete",
            "invite_user:write",
            "custom_roles:read",
            "custom_roles:write",
            "custom_roles:delete",
            "organization_metrics:read",
            "model:read",
            "model:write",
            "model:delete",
            "tag:read",
            "tag:write",
            "tag:delete",
            "raw_data:read",
            "raw_data:write",
            "ground_truth:write",
            "reference_data:read",
            "reference_data:write",
            "query:execute",
            "metric_query:read",
            "metric_query:write",
            "metric_query:delete",
            "enrichment_config:read",
            "enrichment_config:write",
            "pinned_columns:read",
            "pinned_columns:write",
            "pinned_columns:delete",
            "alert_rule:read",
            "alert_rule:write",
            "alert_rule:delete",
            "alert:read",
            "alert:resolve",
            "alert:notify",
            "alert_notification_config:read",
            "alert_notification_config:write",
            "alert_notification_config:delete",
            "insight:read",
            "insight:write",
            "insight:resolve",
            "alert_summary_config:read",
            "alert_summary_config:write",
            "alert_summary_config:delete",
            "alert_summary_subscriber:read",
            "alert_summary_subscriber:write",
            "alert_summary_subscriber:delete",
            "alert_summary:notify",
            "agent:read",
            "agent:create",
            "agent:edit",
            "agent:delete",
            "agent:share",
            "tool:share",
            "team:share",
            "conversation:share",
            "knowledgebase:share",
            "project:read",
            "dataset:read",
            "dataset:create",
            "space:read",
            "group:write",
            "api_key:write",
            "role_binding:write",
            "permission:write",
            "resource:write",
            "check:execute",
            "audit:read",
        ];
        for p in wanted {
            catalog
                .validate(&Permission::parse(p).unwrap())
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
