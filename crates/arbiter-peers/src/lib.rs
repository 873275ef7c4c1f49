//! The benchmark workload of [`arbiter_core::workload`] loaded into Arbiter and into the two peers
//! a platform team would most likely pick instead, `cedar-policy` and `casbin`, each the way its
//! own documentation models role-based access with scopes. `benches/peers.rs` times the three
//! side by side and `tests/agreement.rs` holds them to the same decisions.
//!
//! Each engine is handed its requests already built in its own form, so that only the decision
//! is timed:
//! - Arbiter: the subject and resource as strings, as `POST /v1/check` receives them; Arbiter
//!   finds the model's project and space itself.
//! - Cedar: one group entity per role and project (`Role::"r3@p7"`), each project naming its
//!   groups in attributes (`r0` to `r9`), a role's group on the organization inside all its
//!   project groups, users inside the groups of their bindings, models inside their project; and
//!   one policy per role: `permit(principal, action in [...], resource) when { principal in
//!   resource.project.r3 };`, 10 policies in all. (One policy per role and scope, 1,010 of
//!   them, made every check about 1.4 ms: Cedar evaluates every policy.)
//! - Casbin: RBAC with domains; `p, r3, model:read` for each role's permissions, `g, u1, r3, p7`
//!   for each binding (`g, u1, r3, org` for one on the organization), and the matcher
//!   `r.act == p.act && (g(r.sub, p.sub, r.dom) || g(r.sub, p.sub, "org"))`. Casbin has no
//!   resource hierarchy here, so it is handed the model's project as the request's domain: a
//!   lookup Arbiter and Cedar make themselves.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use arbiter_core::catalog::Catalog;
use arbiter_core::engine::{check, CheckRequest, ResourceQuery, SubjectQuery};
use arbiter_core::index::Index;
use arbiter_core::model::{Node, Object, SubjectRef};
use arbiter_core::permission::Permission;
use arbiter_core::workload::{Workload, ORG};
use casbin::{CoreApi, DefaultModel, Enforcer, StringAdapter};
use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression,
};
use chrono::{DateTime, Utc};

/// Why a peer could not be loaded.
#[derive(Debug)]
pub struct LoadError(pub String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

fn load_error(what: &str, error: impl std::fmt::Display) -> LoadError {
    LoadError(format!("{what}: {error}"))
}

/// A role binding of the workload: (user, role, project or `None` for the organization).
struct Binding<'a> {
    user: &'a str,
    role: &'a str,
    project: Option<&'a str>,
}

fn bindings(workload: &Workload) -> impl Iterator<Item = Binding<'_>> {
    workload.objects.iter().filter_map(|object| match object {
        Object::RoleBinding(binding) => {
            let SubjectRef::User(user) = &binding.subject else {
                return None;
            };
            let project = match &binding.node {
                Node::Project(project) => Some(project.as_str()),
                _ => None,
            };
            Some(Binding {
                user,
                role: &binding.role_id,
                project,
            })
        }
        _ => None,
    })
}

fn project_of(model_id: &str) -> String {
    // The workload registers model `m{p}` in project `p{p}`.
    format!("p{}", model_id.trim_start_matches('m'))
}

/// Arbiter's engine over the workload.
pub struct ArbiterPeer {
    index: Index,
    now: DateTime<Utc>,
}

/// A check as Arbiter receives it.
pub struct ArbiterRequest {
    subject: SubjectQuery,
    resource: ResourceQuery,
    permission: Permission,
}

impl ArbiterPeer {
    pub fn load(workload: &Workload) -> Result<Self, LoadError> {
        let catalog = Arc::new(Catalog::builtin().map_err(|e| load_error("catalog", e))?);
        let mut index = Index::new(catalog);
        index.apply(1, &workload.ops());
        Ok(Self {
            index,
            now: Utc::now(),
        })
    }

    /// The workload's stream of checks, as requests.
    pub fn requests(workload: &Workload) -> Vec<ArbiterRequest> {
        workload
            .checks
            .iter()
            .map(|c| {
                let (subject, resource) = c.queries();
                ArbiterRequest {
                    subject,
                    resource,
                    permission: c.permission.clone(),
                }
            })
            .collect()
    }

    pub fn check(&self, request: &ArbiterRequest) -> bool {
        check(
            &self.index,
            &CheckRequest {
                organization_id: Some(ORG),
                subject: &request.subject,
                subject_properties: None,
                permission: &request.permission,
                resource: &request.resource,
                action_properties: None,
                context: None,
                now: self.now,
                explain: false,
            },
        )
        .allowed
    }
}

/// `cedar-policy` over the workload.
pub struct CedarPeer {
    authorizer: Authorizer,
    policies: PolicySet,
    entities: Entities,
}

fn uid(type_name: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name.clone(), EntityId::new(id))
}

fn type_name(name: &str) -> Result<EntityTypeName, LoadError> {
    EntityTypeName::from_str(name).map_err(|e| load_error("type name", e))
}

impl CedarPeer {
    pub fn load(workload: &Workload) -> Result<Self, LoadError> {
        let user_type = type_name("User")?;
        let role_type = type_name("Role")?;
        let project_type = type_name("Project")?;
        let org_type = type_name("Org")?;
        let model_type = type_name("Model")?;

        // One policy per role: the caller is in the project's group for that role.
        let mut source = String::new();
        for (r, permissions) in workload.role_permissions.iter().enumerate() {
            let actions = permissions
                .iter()
                .map(|p| format!("Action::\"{p}\""))
                .collect::<Vec<_>>()
                .join(", ");
            source.push_str(&format!(
                "permit(principal, action in [{actions}], resource) when {{ principal in resource.project.r{r} }};\n"
            ));
        }
        let policies = PolicySet::from_str(&source).map_err(|e| load_error("policies", e))?;

        let roles = workload.role_permissions.len();
        let projects: Vec<String> = (0..100).map(|p| format!("p{p}")).collect();
        let org = uid(&org_type, ORG);
        let mut entities = vec![Entity::new_no_attrs(org.clone(), HashSet::new())];
        // A role's group on the organization is inside its group on every project, so that a
        // binding on the organization reaches every project.
        for r in 0..roles {
            let on_projects = projects
                .iter()
                .map(|p| uid(&role_type, &format!("r{r}@{p}")))
                .collect::<HashSet<_>>();
            entities.push(Entity::new_no_attrs(
                uid(&role_type, &format!("r{r}@org")),
                on_projects.clone(),
            ));
            for group in on_projects {
                entities.push(Entity::new_no_attrs(group, HashSet::new()));
            }
        }
        for project in &projects {
            let attributes = (0..roles)
                .map(|r| {
                    (
                        format!("r{r}"),
                        RestrictedExpression::new_entity_uid(uid(
                            &role_type,
                            &format!("r{r}@{project}"),
                        )),
                    )
                })
                .collect::<HashMap<_, _>>();
            entities.push(
                Entity::new(
                    uid(&project_type, project),
                    attributes,
                    HashSet::from([org.clone()]),
                )
                .map_err(|e| load_error("project", e))?,
            );
            let model = format!("m{}", project.trim_start_matches('p'));
            entities.push(
                Entity::new(
                    uid(&model_type, &model),
                    HashMap::from([(
                        "project".to_owned(),
                        RestrictedExpression::new_entity_uid(uid(&project_type, project)),
                    )]),
                    HashSet::from([uid(&project_type, project)]),
                )
                .map_err(|e| load_error("model", e))?,
            );
        }
        // Users inside the groups of their bindings.
        let mut parents: BTreeMap<&str, HashSet<EntityUid>> = BTreeMap::new();
        for binding in bindings(workload) {
            let group = format!("{}@{}", binding.role, binding.project.unwrap_or("org"));
            parents
                .entry(binding.user)
                .or_default()
                .insert(uid(&role_type, &group));
        }
        for (user, parents) in parents {
            entities.push(Entity::new_no_attrs(uid(&user_type, user), parents));
        }
        let entities =
            Entities::from_entities(entities, None).map_err(|e| load_error("entities", e))?;
        Ok(Self {
            authorizer: Authorizer::new(),
            policies,
            entities,
        })
    }

    /// The workload's stream of checks, as Cedar requests.
    pub fn requests(workload: &Workload) -> Result<Vec<Request>, LoadError> {
        let user_type = type_name("User")?;
        let model_type = type_name("Model")?;
        let action_type = type_name("Action")?;
        workload
            .checks
            .iter()
            .map(|c| {
                Request::new(
                    uid(&user_type, &c.user_id),
                    uid(&action_type, &c.permission.to_string()),
                    uid(&model_type, &c.model_id),
                    Context::empty(),
                    None,
                )
                .map_err(|e| load_error("request", e))
            })
            .collect()
    }

    pub fn check(&self, request: &Request) -> bool {
        self.authorizer
            .is_authorized(request, &self.policies, &self.entities)
            .decision()
            == Decision::Allow
    }
}

/// The casbin model: RBAC with domains, roles independent of the domain. The action is compared
/// first so that the role manager is asked only about policy lines of the requested action.
pub const CASBIN_MODEL: &str = r#"
[request_definition]
r = sub, dom, act

[policy_definition]
p = sub, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.act == p.act && (g(r.sub, p.sub, r.dom) || g(r.sub, p.sub, "org"))
"#;

/// `casbin` over the workload.
pub struct CasbinPeer {
    enforcer: Enforcer,
}

/// A check as casbin receives it: (user, the model's project, permission).
pub type CasbinRequest = (String, String, String);

impl CasbinPeer {
    pub fn load(workload: &Workload) -> Result<Self, LoadError> {
        let mut lines = String::new();
        for (r, permissions) in workload.role_permissions.iter().enumerate() {
            for permission in permissions {
                lines.push_str(&format!("p, r{r}, {permission}\n"));
            }
        }
        for binding in bindings(workload) {
            lines.push_str(&format!(
                "g, {}, {}, {}\n",
                binding.user,
                binding.role,
                binding.project.unwrap_or("org")
            ));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| load_error("runtime", e))?;
        let enforcer = runtime.block_on(async {
            let model = DefaultModel::from_str(CASBIN_MODEL)
                .await
                .map_err(|e| load_error("casbin model", e))?;
            Enforcer::new(model, StringAdapter::new(lines))
                .await
                .map_err(|e| load_error("casbin enforcer", e))
        })?;
        Ok(Self { enforcer })
    }

    /// The workload's stream of checks, as casbin requests.
    pub fn requests(workload: &Workload) -> Vec<CasbinRequest> {
        workload
            .checks
            .iter()
            .map(|c| {
                (
                    c.user_id.clone(),
                    project_of(&c.model_id),
                    c.permission.to_string(),
                )
            })
            .collect()
    }

    /// An error is a denial.
    pub fn check(&self, (user, project, permission): &CasbinRequest) -> bool {
        self.enforcer
            .enforce((user.as_str(), project.as_str(), permission.as_str()))
            .unwrap_or(false)
    }
}
