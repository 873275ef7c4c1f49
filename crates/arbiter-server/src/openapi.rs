//! The OpenAPI description, generated from the route table below. `tests` check that every route
//! of the table is served and that the committed `openapi.json` matches what this generates.

use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathsBuilder};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApiBuilder, ResponseBuilder};

/// One route of the API: method, path, tag, summary, and what it needs.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    /// The permission the route needs, or `none` (no key) / `any caller` / `any member`.
    pub needs: &'static str,
}

macro_rules! routes {
    ($(($method:literal, $path:literal, $tag:literal, $summary:literal, $needs:literal)),* $(,)?) => {
        /// Every route Arbiter serves.
        pub const ROUTES: &[Route] = &[$(Route { method: $method, path: $path, tag: $tag, summary: $summary, needs: $needs }),*];
    };
}

routes![
    ("GET", "/healthz", "operations", "The process is up", "none"),
    (
        "GET",
        "/readyz",
        "operations",
        "The store answers and the index is loaded",
        "none"
    ),
    (
        "GET",
        "/metrics",
        "operations",
        "Prometheus metrics",
        "none"
    ),
    (
        "GET",
        "/openapi.json",
        "operations",
        "This description",
        "none"
    ),
    (
        "GET",
        "/v1/organizations",
        "organizations",
        "List organizations",
        "organization_global:read for all; otherwise the caller's own"
    ),
    (
        "POST",
        "/v1/organizations",
        "organizations",
        "Create an organization",
        "organization_global:write"
    ),
    (
        "GET",
        "/v1/organizations/current",
        "organizations",
        "The key's current organization",
        "any caller"
    ),
    (
        "PUT",
        "/v1/organizations/current",
        "organizations",
        "Choose the key's current organization",
        "any member"
    ),
    (
        "GET",
        "/v1/organizations/{id}",
        "organizations",
        "Get an organization",
        "organization:read"
    ),
    (
        "DELETE",
        "/v1/organizations/{id}",
        "organizations",
        "Delete an organization and everything in it",
        "organization:delete"
    ),
    (
        "PATCH",
        "/v1/organizations/{id}/users",
        "organizations",
        "Add existing users as members",
        "user:write"
    ),
    (
        "GET",
        "/v1/spaces",
        "spaces",
        "List the spaces the caller may read",
        "space:read"
    ),
    (
        "POST",
        "/v1/spaces",
        "spaces",
        "Create a space",
        "space:write"
    ),
    (
        "GET",
        "/v1/spaces/{id}",
        "spaces",
        "Get a space",
        "space:read"
    ),
    (
        "PATCH",
        "/v1/spaces/{id}",
        "spaces",
        "Update a space",
        "space:write"
    ),
    (
        "DELETE",
        "/v1/spaces/{id}",
        "spaces",
        "Delete an empty space",
        "space:delete"
    ),
    (
        "GET",
        "/v1/spaces/{id}/members",
        "spaces",
        "List a space's members",
        "space:read"
    ),
    (
        "PUT",
        "/v1/spaces/{id}/members/{user_id}",
        "spaces",
        "Add a member to a space",
        "space:write"
    ),
    (
        "DELETE",
        "/v1/spaces/{id}/members/{user_id}",
        "spaces",
        "Remove a member from a space",
        "space:write"
    ),
    (
        "GET",
        "/v1/projects",
        "projects",
        "List the projects the caller may read",
        "project:read"
    ),
    (
        "POST",
        "/v1/projects",
        "projects",
        "Create a project in a space",
        "project:create on the space"
    ),
    (
        "GET",
        "/v1/projects/{id}",
        "projects",
        "Get a project",
        "project:read"
    ),
    (
        "PATCH",
        "/v1/projects/{id}",
        "projects",
        "Update a project",
        "project:write"
    ),
    (
        "DELETE",
        "/v1/projects/{id}",
        "projects",
        "Delete an empty project",
        "project:delete"
    ),
    (
        "GET",
        "/v1/users",
        "users",
        "List the organization's members",
        "user:read"
    ),
    (
        "POST",
        "/v1/users",
        "users",
        "Create a user in the organization",
        "user:write"
    ),
    ("GET", "/v1/users/me", "users", "The caller", "any caller"),
    (
        "PATCH",
        "/v1/users/me",
        "users",
        "Update the caller",
        "any caller"
    ),
    (
        "GET",
        "/v1/users/me/auth_info",
        "users",
        "The caller's organization, keys, roles and effective permissions",
        "any caller"
    ),
    (
        "POST",
        "/v1/users/invite_users",
        "users",
        "Invite users as pending members",
        "invite_user:write"
    ),
    ("GET", "/v1/users/{id}", "users", "Get a user", "user:read"),
    (
        "PATCH",
        "/v1/users/{id}",
        "users",
        "Update a user",
        "user:write"
    ),
    (
        "DELETE",
        "/v1/users/{id}",
        "users",
        "Remove a user from the organization",
        "user:delete"
    ),
    (
        "GET",
        "/v1/groups",
        "groups",
        "List user groups",
        "group:read"
    ),
    (
        "POST",
        "/v1/groups",
        "groups",
        "Create a user group",
        "group:write"
    ),
    (
        "GET",
        "/v1/groups/{id}",
        "groups",
        "Get a user group",
        "group:read"
    ),
    (
        "PATCH",
        "/v1/groups/{id}",
        "groups",
        "Update a user group",
        "group:write"
    ),
    (
        "DELETE",
        "/v1/groups/{id}",
        "groups",
        "Delete a user group",
        "group:delete"
    ),
    (
        "PUT",
        "/v1/groups/{id}/members/{user_id}",
        "groups",
        "Add a user to a group",
        "group:write"
    ),
    (
        "DELETE",
        "/v1/groups/{id}/members/{user_id}",
        "groups",
        "Remove a user from a group",
        "group:write"
    ),
    (
        "GET",
        "/v1/permission-profiles",
        "groups",
        "List permission profiles",
        "group:read"
    ),
    (
        "POST",
        "/v1/permission-profiles",
        "groups",
        "Create a permission profile",
        "group:write"
    ),
    (
        "GET",
        "/v1/permission-profiles/{id}",
        "groups",
        "Get a permission profile",
        "group:read"
    ),
    (
        "PATCH",
        "/v1/permission-profiles/{id}",
        "groups",
        "Update a permission profile",
        "group:write"
    ),
    (
        "DELETE",
        "/v1/permission-profiles/{id}",
        "groups",
        "Delete a permission profile",
        "group:delete"
    ),
    (
        "PUT",
        "/v1/permission-profiles/{id}/members/{user_id}",
        "groups",
        "Attach a user to a profile",
        "group:write"
    ),
    (
        "DELETE",
        "/v1/permission-profiles/{id}/members/{user_id}",
        "groups",
        "Detach a user from a profile",
        "group:write"
    ),
    (
        "GET",
        "/v1/api-keys",
        "api keys",
        "List the caller's keys (another user's with ?user_id=)",
        "own keys always; others' api_key:read"
    ),
    (
        "POST",
        "/v1/api-keys",
        "api keys",
        "Create a user or project key; the secret is answered once",
        "own keys always; others' api_key:write"
    ),
    (
        "DELETE",
        "/v1/api-keys/{id}",
        "api keys",
        "Revoke a key at once",
        "own keys always; others' api_key:delete"
    ),
    (
        "POST",
        "/v1/api-keys/{id}/rotate",
        "api keys",
        "Give a key a new secret",
        "own keys always; others' api_key:write"
    ),
    (
        "GET",
        "/v1/permissions/catalog",
        "catalog",
        "Resource types, actions and predefined roles",
        "any member"
    ),
    (
        "PUT",
        "/v1/resources/{type}/{id}",
        "resources",
        "Register or replace a resource",
        "resource:write"
    ),
    (
        "GET",
        "/v1/resources",
        "resources",
        "List registered resources",
        "resource:read"
    ),
    (
        "GET",
        "/v1/resources/{type}/{id}",
        "resources",
        "Get a registered resource",
        "resource:read"
    ),
    (
        "DELETE",
        "/v1/resources/{type}/{id}",
        "resources",
        "Unregister a resource",
        "resource:delete"
    ),
    (
        "GET",
        "/v1/roles",
        "roles",
        "List roles (?is_predefined=)",
        "custom_roles:read"
    ),
    (
        "POST",
        "/v1/roles",
        "roles",
        "Create a custom role",
        "custom_roles:write and every permission it holds"
    ),
    (
        "GET",
        "/v1/roles/{id}",
        "roles",
        "Get a role",
        "custom_roles:read"
    ),
    (
        "PATCH",
        "/v1/roles/{id}",
        "roles",
        "Update a custom role; permissions are replaced whole",
        "custom_roles:write and every permission it holds"
    ),
    (
        "DELETE",
        "/v1/roles/{id}",
        "roles",
        "Delete an unbound custom role",
        "custom_roles:delete"
    ),
    (
        "POST",
        "/v1/role-bindings",
        "role bindings",
        "Bind a role to a user, group or key on a resource",
        "role_binding:write and every permission of the role there"
    ),
    (
        "GET",
        "/v1/role-bindings",
        "role bindings",
        "List role bindings",
        "role_binding:read"
    ),
    (
        "GET",
        "/v1/role-bindings/{id}",
        "role bindings",
        "Get a role binding",
        "role_binding:read"
    ),
    (
        "DELETE",
        "/v1/role-bindings/{id}",
        "role bindings",
        "Delete a role binding",
        "role_binding:delete"
    ),
    (
        "GET",
        "/v1/authorization/permissions",
        "authorization",
        "The permissions of a role",
        "any member"
    ),
    (
        "POST",
        "/v1/authorization/authorize",
        "authorization",
        "Does a role hold a permission",
        "any member"
    ),
    (
        "POST",
        "/v1/check",
        "decisions",
        "May a subject exercise a permission on a resource",
        "check:execute unless the subject is the caller"
    ),
    (
        "POST",
        "/v1/check/batch",
        "decisions",
        "Many checks, answered in order",
        "check:execute unless every subject is the caller"
    ),
    (
        "GET",
        "/v1/gateway/authorize",
        "gateway",
        "Gateway mode (nginx auth_request, Traefik ForwardAuth; any method): may the caller make the request of X-Original-Method/X-Original-URI or X-Forwarded-Method/X-Forwarded-Uri? 200 with X-Arbiter-User and X-Arbiter-Organization, 401, or 403 (a route not in the policy, a malformed path); 404 gateway_disabled without --gateway-policy",
        "the requirement of the matching route of the gateway policy"
    ),
    (
        "GET",
        "/v1/gateway/envoy/{path}",
        "gateway",
        "Gateway mode for Envoy ext_authz (any method; the path may hold slashes): may the caller make this request, with this method, on /{path}? Answers as /v1/gateway/authorize",
        "the requirement of the matching route of the gateway policy"
    ),
    (
        "GET",
        "/v1/audit-events",
        "audit",
        "Admin writes: who, what, when, before and after",
        "audit:read"
    ),
    (
        "POST",
        "/v1/resource-types",
        "catalog",
        "Declare a resource type, or add actions to one, in the organization",
        "custom_roles:write"
    ),
    (
        "PUT",
        "/v1/permissions",
        "resource grants",
        "Create or replace resource grants (aisvc wire format), answered per item",
        "permission:write, or SHARE on the IRN; and every action given"
    ),
    (
        "GET",
        "/v1/permissions",
        "resource grants",
        "List resource grants of a namespace",
        "permission:read"
    ),
    (
        "DELETE",
        "/v1/permissions/{id}",
        "resource grants",
        "Delete a resource grant",
        "permission:delete, or SHARE on its IRN"
    ),
    (
        "GET",
        "/.well-known/authzen-configuration",
        "authzen",
        "AuthZEN PDP metadata",
        "none"
    ),
    (
        "POST",
        "/access/v1/evaluation",
        "authzen",
        "AuthZEN access evaluation",
        "check:execute unless the subject is the caller"
    ),
    (
        "POST",
        "/access/v1/evaluations",
        "authzen",
        "AuthZEN access evaluations (defaults merged, evaluations_semantic)",
        "check:execute unless every subject is the caller"
    ),
    (
        "POST",
        "/access/v1/search/subject",
        "authzen",
        "AuthZEN subject search",
        "check:execute"
    ),
    (
        "POST",
        "/access/v1/search/resource",
        "authzen",
        "AuthZEN resource search",
        "check:execute unless the subject is the caller"
    ),
    (
        "POST",
        "/access/v1/search/action",
        "authzen",
        "AuthZEN action search",
        "check:execute unless the subject is the caller"
    ),
    (
        "GET",
        "/v1/usage/{rollup}",
        "usage",
        "Decisions allowed and denied per hour, day or month",
        "organization_metrics:read"
    ),
];

fn method(text: &str) -> HttpMethod {
    match text {
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

/// The OpenAPI document as pretty JSON.
pub fn document() -> String {
    let mut paths = PathsBuilder::new().build();
    for route in ROUTES {
        let mut op = OperationBuilder::new()
            .tag(route.tag)
            .summary(Some(route.summary))
            .description(Some(format!("Needs: {}.", route.needs)))
            .operation_id(Some(format!("{} {}", route.method.to_lowercase(), route.path)))
            .response("200", ResponseBuilder::new().description("Success (201 for a creation, 204 for a deletion); writes carry `X-Arbiter-Revision`"))
            .response("400", ResponseBuilder::new().description("Malformed or invalid input: `{\"error\": {\"code\", \"message\", \"details\"}}`"));
        if route.needs != "none" {
            op = op
                .response(
                    "401",
                    ResponseBuilder::new().description("Missing, unknown, revoked or expired key"),
                )
                .response(
                    "403",
                    ResponseBuilder::new().description("Authenticated but not permitted"),
                )
                .response(
                    "404",
                    ResponseBuilder::new().description("Not found, or another organization's"),
                )
                .security(SecurityRequirement::new("bearer", Vec::<String>::new()));
        }
        paths.add_path_operation(route.path, vec![method(route.method)], op.build());
    }
    let components = ComponentsBuilder::new()
        .security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        )
        .build();
    let doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Arbiter")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("Authorization for AI/ML platforms. Organization-scoped calls take `X-Organization-Id`.")),
        )
        .paths(paths)
        .components(Some(components))
        .build();
    doc.to_pretty_json().unwrap_or_else(|_| "{}".to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_committed_openapi_json_is_current() {
        let generated = super::document();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json");
        if std::env::var_os("ARBITER_BLESS").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "openapi.json is out of date: run `ARBITER_BLESS=1 cargo test -p arbiter-server`"
        );
    }
}
