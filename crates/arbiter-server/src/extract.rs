//! Request extractors: the JSON body (with Arbiter's error answers), the authenticated caller and
//! the organization context.

use std::sync::{Arc, LazyLock};

use arbiter_core::bundle::hash_secret_into;
use arbiter_core::engine::{
    self, CheckRequest, Decision, ResourceQuery, SubjectQuery, PLATFORM_TYPE,
};
use arbiter_core::index::Index;
use arbiter_core::model::{ApiKey, ApiKeyKind, Organization, User};
use arbiter_core::permission::Permission;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use chrono::Utc;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::keys;
use crate::state::AppState;

/// The header that selects the organization of a call.
pub const ORGANIZATION_HEADER: &str = "x-organization-id";

// The headers read on every request, as names made once: a lookup by `&str` parses and checks
// the name again on every call.
/// [`ORGANIZATION_HEADER`]'s name.
pub static ORGANIZATION_HEADER_NAME: HeaderName = HeaderName::from_static(ORGANIZATION_HEADER);
/// [`MIN_REVISION_HEADER`]'s name.
pub static MIN_REVISION_HEADER_NAME: HeaderName = HeaderName::from_static(MIN_REVISION_HEADER);
/// `X-Request-ID`'s name: the client's, or the one the server made for the request.
pub static REQUEST_ID_HEADER_NAME: HeaderName = HeaderName::from_static("x-request-id");

/// A JSON body, refused with Arbiter's error answers: 400 for a wrong content type, malformed
/// JSON, invalid UTF-8, nesting too deep, wrong types or missing fields; 413 past the limit.
pub struct JsonBody<T>(pub T);

/// The deepest nesting of arrays and objects in a JSON text, found without parsing it, so that a
/// body nested past serde_json's own recursion limit still answers `too_deep`. Strings are
/// skipped by jumping from quote to backslash to quote (`memchr`), not read byte by byte: most of
/// a check's bytes are in its strings, and a batch of a thousand checks is read whole.
fn raw_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut rest = bytes;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'"' => rest = after_string(rest),
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// What follows the string whose opening quote is just before `rest` (nothing, when the string
/// is not closed).
fn after_string(mut rest: &[u8]) -> &[u8] {
    while let Some(at) = memchr::memchr2(b'"', b'\\', rest) {
        let escaped = rest.get(at) == Some(&b'\\');
        // An escape is a backslash and the byte after it, whatever that byte is.
        rest = rest
            .get(at + if escaped { 2 } else { 1 }..)
            .unwrap_or_default();
        if !escaped {
            return rest;
        }
    }
    &[]
}

/// Parses a JSON body that has been read.
pub fn parse_json<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    max_depth: usize,
) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedJson("the body is empty".to_owned()));
    }
    // Nesting needs an opening bracket a level, so a body with few of them (a check has three)
    // is not walked string by string. Brackets inside strings count too: an upper bound.
    let brackets = bytes.iter().filter(|&&b| b == b'[' || b == b'{').count();
    if brackets > max_depth && raw_depth(bytes) > max_depth {
        return Err(ApiError::TooDeep(max_depth));
    }
    // The whole body, not only the values a route reads: serde skips an ignored value's bytes
    // without checking them, and a batch item or an unknown field could otherwise carry invalid
    // UTF-8 through.
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ApiError::MalformedJson(format!("the body is not UTF-8: {e}")))?;
    // One pass straight into the target type; only on failure is the body read again, to tell
    // malformed JSON from JSON of the wrong shape.
    serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Ok(_) => ApiError::InvalidBody(e.to_string()),
                Err(syntax) => ApiError::MalformedJson(syntax.to_string()),
            }
        }
        _ => ApiError::MalformedJson(e.to_string()),
    })
}

/// A JSON body's bytes, read and checked as [`JsonBody`]'s are (content type, size) but not yet
/// parsed: for a handler that parses it with [`parse_json`] into values that borrow from it.
pub struct JsonText(pub Bytes);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let JsonText(bytes) = JsonText::from_request(req, state).await?;
        parse_json(&bytes, state.settings.max_json_depth).map(JsonBody)
    }
}

/// `application/json` or `application/…+json`, in any case: a content type's media type.
/// Compared without a lowercase copy, as this runs on every request with a body.
fn is_json_media_type(media_type: &str) -> bool {
    let m = media_type.trim();
    let (prefix, suffix) = ("application/", "+json");
    m.eq_ignore_ascii_case("application/json")
        || (m.len() >= prefix.len() + suffix.len()
            && m.get(..prefix.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
            && m.get(m.len() - suffix.len()..)
                .is_some_and(|s| s.eq_ignore_ascii_case(suffix)))
}

impl FromRequest<Arc<AppState>> for JsonText {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(is_json_media_type)
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedContentType);
        }
        let limit = state.settings.max_body_bytes;
        // Read under the limit here rather than through `Bytes`' extractor, which boxes the body
        // once more to apply the same limit.
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| ApiError::PayloadTooLarge(limit))?;
        Ok(JsonText(bytes))
    }
}

/// The query string, refused with Arbiter's error answer (400 `invalid_query`) rather than
/// axum's plain-text one.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|e| {
                let text = e.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                ApiError::InvalidQuery(detail.to_owned())
            })
    }
}

/// The path parameters, refused with Arbiter's error answer (400 `invalid_path`) rather than
/// axum's plain-text one.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|e| ApiError::InvalidPath(e.body_text()))
    }
}

/// The authenticated caller, with the index snapshot the request works on.
#[derive(Clone)]
pub struct Caller {
    pub index: Arc<Index>,
    pub key: Arc<ApiKey>,
    /// The user a user key acts as; `None` for a project key.
    pub user: Option<Arc<User>>,
    /// The request's `X-Request-ID`, kept as the header's value: a copy of its bytes is made only
    /// for what records it (an audit record, a decision logged).
    pub(crate) request_id: Option<HeaderValue>,
}

/// Finds the key a bearer secret belongs to, or `None` for every reason a key can be refused
/// (so that every refusal answers the same 401).
pub fn authenticate(index: &Index, secret: &str) -> Option<Arc<ApiKey>> {
    if !keys::plausible(secret) {
        return None;
    }
    let mut hex = [0; 64];
    let hash = hash_secret_into(secret, &mut hex);
    let key = index
        .key_by_hash
        .get(hash)
        .and_then(|id| index.api_keys.get(id))?;
    if !bool::from(key.secret_hash.as_bytes().ct_eq(hash.as_bytes())) {
        return None;
    }
    if !key.is_usable(Utc::now()) || !index.users.contains_key(&key.user_id) {
        return None;
    }
    Some(key.clone())
}

/// The bearer secret of a request, if it sent one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, secret) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| secret.trim())
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        // `X-Arbiter-Min-Revision` asks for everything to be decided on an index at least that
        // fresh. A caller unknown to the current index waits only for a revision the store has
        // committed (a key created on another replica), so a keyless caller cannot hold a
        // request open; every refusal stays the same 401.
        let secret = bearer(parts).ok_or(ApiError::Unauthenticated)?;
        let wanted = min_revision(&parts.headers)?;
        let mut index = state.index();
        let key = match (authenticate(&index, secret), wanted) {
            (Some(key), None) => key,
            (Some(_), Some(wanted)) => {
                index = state.wait_for(wanted).await?;
                authenticate(&index, secret).ok_or(ApiError::Unauthenticated)?
            }
            (None, Some(wanted)) if wanted > index.revision && keys::plausible(secret) => {
                let head = state.store.head().await.map_err(ApiError::from)?;
                if wanted > head {
                    return Err(ApiError::Unauthenticated);
                }
                index = state
                    .wait_for(wanted)
                    .await
                    .map_err(|_| ApiError::Unauthenticated)?;
                authenticate(&index, secret).ok_or(ApiError::Unauthenticated)?
            }
            (None, _) => return Err(ApiError::Unauthenticated),
        };
        state.key_used(&key.id);
        let user = match key.kind {
            ApiKeyKind::User => index.users.get(&key.user_id).cloned(),
            ApiKeyKind::Project => None,
        };
        let request_id = parts.headers.get(&REQUEST_ID_HEADER_NAME).cloned();
        Ok(Caller {
            index,
            key,
            user,
            request_id,
        })
    }
}

impl Caller {
    /// The request's `X-Request-ID`, when it is text.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_ref().and_then(|v| v.to_str().ok())
    }

    /// The caller as the subject of a check.
    pub fn subject(&self) -> SubjectQuery {
        match &self.user {
            Some(user) => SubjectQuery::User(user.id.clone()),
            None => SubjectQuery::ApiKey(self.key.id.clone()),
        }
    }

    /// The caller's user, or 400 for a project key.
    pub fn require_user(&self) -> Result<&Arc<User>, ApiError> {
        self.user.as_ref().ok_or(ApiError::NotAUser)
    }

    /// Decides whether the caller may exercise `permission` on a resource of an organization
    /// (`None`: the platform).
    pub fn decide(
        &self,
        organization_id: Option<&str>,
        permission: &Permission,
        resource: &ResourceQuery,
    ) -> Decision {
        let subject = self.subject();
        engine::check(
            &self.index,
            &CheckRequest {
                organization_id,
                subject: &subject,
                subject_properties: None,
                permission,
                resource,
                action_properties: None,
                context: None,
                now: Utc::now(),
                explain: false,
            },
        )
    }

    /// True when the caller holds `permission` on the platform itself.
    pub fn holds_on_platform(&self, permission: &str) -> bool {
        Permission::parse(permission).is_ok_and(|p| self.holds_parsed_on_platform(&p))
    }

    /// [`Caller::holds_on_platform`] for a permission already parsed.
    fn holds_parsed_on_platform(&self, permission: &Permission) -> bool {
        self.decide(None, permission, &PLATFORM).allowed
    }

    /// 403 unless the caller holds `permission` on the platform.
    pub fn require_on_platform(&self, permission: &str) -> Result<(), ApiError> {
        if self.holds_on_platform(permission) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                permission: permission.to_owned(),
                resource: "the platform".to_owned(),
            })
        }
    }

    /// True when the caller is a member of `org` (a project key: its key's organization). Asked
    /// on every call that names its organization, so it copies nothing.
    pub fn is_member_of(&self, org: &str) -> bool {
        match (&self.user, &self.key.organization_id) {
            (Some(user), _) => self
                .index
                .user_organizations(&user.id)
                .is_some_and(|s| s.contains(org)),
            (None, Some(own)) => own == org,
            (None, None) => false,
        }
    }

    /// The organizations the caller is a member of.
    pub fn member_organizations(&self) -> Vec<String> {
        match (&self.user, &self.key.organization_id) {
            (Some(user), _) => self
                .index
                .user_organizations(&user.id)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default(),
            (None, Some(org)) => vec![org.clone()],
            (None, None) => Vec::new(),
        }
    }
}

/// A resource query without properties.
pub fn resource(resource_type: &str, id: &str) -> ResourceQuery {
    ResourceQuery {
        resource_type: resource_type.to_owned(),
        id: id.to_owned(),
        properties: Default::default(),
    }
}

/// The caller in the organization the call is about.
#[derive(Clone)]
pub struct Ctx {
    pub caller: Caller,
    pub org: Arc<Organization>,
}

impl FromRequestParts<Arc<AppState>> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        Ctx::resolve(caller, &parts.headers)
    }
}

/// The header that asks for an index at least as fresh as a revision.
pub const MIN_REVISION_HEADER: &str = "x-arbiter-min-revision";

/// `X-Arbiter-Min-Revision`, when sent.
pub fn min_revision(headers: &axum::http::HeaderMap) -> Result<Option<u64>, ApiError> {
    headers
        .get(&MIN_REVISION_HEADER_NAME)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::field("X-Arbiter-Min-Revision", "must be a revision number")
                })
        })
        .transpose()
}

/// The platform as the resource of a check, made once.
static PLATFORM: LazyLock<ResourceQuery> = LazyLock::new(|| resource(PLATFORM_TYPE, "platform"));

/// `organization:read`, parsed once: a platform administrator who is not a member of the
/// organization a call names is asked for it on every call.
static ORGANIZATION_READ: LazyLock<Option<Permission>> =
    LazyLock::new(|| Permission::parse("organization:read").ok());

/// `check:execute`, parsed once: asked on every check whose subject is not the caller.
static CHECK_EXECUTE: LazyLock<Option<Permission>> =
    LazyLock::new(|| Permission::parse("check:execute").ok());

/// Picks the organization of a call: the header, else the key's current (or, for a project key,
/// fixed) organization, else the caller's only organization. An organization the caller may not
/// see answers 404.
pub fn organization_of(caller: &Caller, header: Option<&str>) -> Result<String, ApiError> {
    let reads_every_organization = || {
        caller.user.is_some()
            && ORGANIZATION_READ
                .as_ref()
                .is_some_and(|read| caller.holds_parsed_on_platform(read))
    };
    let visible = |org: &str| {
        caller.index.organizations.contains_key(org)
            && (caller.is_member_of(org) || reads_every_organization())
    };
    if caller.key.kind == ApiKeyKind::Project {
        let fixed = caller.key.organization_id.clone().unwrap_or_default();
        return match header {
            Some(h) if h != fixed => Err(ApiError::NotFound {
                what: "organization",
                id: h.to_owned(),
            }),
            _ => Ok(fixed),
        };
    }
    if let Some(org) = header {
        return if visible(org) {
            Ok(org.to_owned())
        } else {
            Err(ApiError::NotFound {
                what: "organization",
                id: org.to_owned(),
            })
        };
    }
    if let Some(current) = caller.key.organization_id.as_deref().filter(|o| visible(o)) {
        return Ok(current.to_owned());
    }
    match caller.member_organizations().as_slice() {
        [only] => Ok(only.clone()),
        _ => Err(ApiError::OrganizationRequired),
    }
}

/// The `X-Organization-Id` header alone, for a handler that resolves its [`Ctx`] itself (after
/// waiting for a revision): cheaper than a copy of every header.
pub struct OrganizationHeader(pub Option<axum::http::HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for OrganizationHeader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.headers.get(&ORGANIZATION_HEADER_NAME).cloned()))
    }
}

impl Ctx {
    /// The caller in the organization its request selects (see [`organization_of`]).
    pub fn resolve(caller: Caller, headers: &axum::http::HeaderMap) -> Result<Self, ApiError> {
        Ctx::resolve_header(caller, headers.get(&ORGANIZATION_HEADER_NAME))
    }

    /// As [`Ctx::resolve`], given the `X-Organization-Id` header.
    pub fn resolve_header(
        caller: Caller,
        header: Option<&axum::http::HeaderValue>,
    ) -> Result<Self, ApiError> {
        let header = header
            .map(|v| {
                v.to_str()
                    .map(str::to_owned)
                    .map_err(|_| ApiError::field(ORGANIZATION_HEADER, "is not text"))
            })
            .transpose()?;
        let org_id = organization_of(&caller, header.as_deref())?;
        let org = caller
            .index
            .organizations
            .get(&org_id)
            .cloned()
            .ok_or(ApiError::NotFound {
                what: "organization",
                id: org_id.clone(),
            })?;
        Ok(Ctx { caller, org })
    }

    /// The same caller and organization, on a fresher index (after waiting for a revision).
    pub fn on(self, index: Arc<Index>, headers: &axum::http::HeaderMap) -> Result<Self, ApiError> {
        Ctx::resolve(
            Caller {
                index,
                ..self.caller
            },
            headers,
        )
    }

    /// True when a check's subject is the caller itself (which needs no `check:execute`).
    pub fn is_caller(&self, subject: &SubjectQuery) -> bool {
        match (subject, &self.caller.user) {
            (SubjectQuery::User(r), Some(me)) => {
                self.index().find_user(r).is_some_and(|u| u.id == me.id)
            }
            (SubjectQuery::ApiKey(k), _) => *k == self.caller.key.id,
            _ => false,
        }
    }

    /// 403 unless the caller holds `check:execute`: in the organization, or for a project key
    /// (whose `project_key` role is bound on its project) in its project.
    pub fn require_check_execute(&self) -> Result<(), ApiError> {
        let (resource_type, id) = match (&self.caller.user, self.caller.key.project_id.as_deref()) {
            (None, Some(project)) => ("project", project),
            _ => ("organization", self.org.id.as_str()),
        };
        match CHECK_EXECUTE.as_ref() {
            Some(parsed) => self.require_parsed("check:execute", parsed, resource_type, id),
            None => self.require("check:execute", resource_type, id),
        }
    }

    /// The organization's id.
    pub fn org_id(&self) -> &str {
        &self.org.id
    }

    /// The index snapshot of the request.
    pub fn index(&self) -> &Index {
        &self.caller.index
    }

    /// True when the caller may exercise `permission` on a resource of this organization.
    pub fn allowed(&self, permission: &Permission, resource: &ResourceQuery) -> bool {
        self.caller
            .decide(Some(&self.org.id), permission, resource)
            .allowed
    }

    /// 403 unless the caller holds `permission` on the resource of type `resource_type` and id `id`.
    pub fn require(&self, permission: &str, resource_type: &str, id: &str) -> Result<(), ApiError> {
        let parsed = Permission::parse(permission)?;
        self.require_parsed(permission, &parsed, resource_type, id)
    }

    /// [`Ctx::require`] for a permission already parsed (`name` is its text, for the refusal).
    fn require_parsed(
        &self,
        name: &str,
        permission: &Permission,
        resource_type: &str,
        id: &str,
    ) -> Result<(), ApiError> {
        if self.allowed(permission, &resource(resource_type, id)) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                permission: name.to_owned(),
                resource: format!("{resource_type} {id}"),
            })
        }
    }

    /// 403 unless the caller holds `permission` on the organization.
    pub fn require_in_org(&self, permission: &str) -> Result<(), ApiError> {
        let org = self.org.id.clone();
        self.require(permission, "organization", &org)
    }

    /// The audit actor fields.
    pub fn audit(
        &self,
        action: &str,
        object_kind: &str,
        object_id: &str,
        before: Option<Value>,
        after: Option<Value>,
    ) -> arbiter_store::AuditRecord {
        arbiter_store::AuditRecord {
            organization_id: Some(self.org.id.clone()),
            actor_user_id: self.caller.user.as_ref().map(|u| u.id.clone()),
            actor_key_id: Some(self.caller.key.id.clone()),
            action: action.to_owned(),
            object_kind: object_kind.to_owned(),
            object_id: object_id.to_owned(),
            before,
            after,
            request_id: self.caller.request_id().map(str::to_owned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{is_json_media_type, raw_depth};
    use proptest::prelude::*;

    #[test]
    fn json_media_types() {
        for json in [
            "application/json",
            " Application/JSON ",
            "application/merge-patch+json",
            "APPLICATION/VND.ACME+JSON",
            "application/+json",
        ] {
            assert!(is_json_media_type(json), "{json}");
        }
        for other in [
            "text/json",
            "application/jsonx",
            "application/xml",
            "application+json",
            "json",
            "",
            "application/é+json\u{301}",
        ] {
            assert!(!is_json_media_type(other), "{other}");
        }
    }

    /// The plain byte-by-byte reading that `raw_depth` must agree with.
    fn depth_byte_by_byte(bytes: &[u8]) -> usize {
        let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
        for &b in bytes {
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    max = max.max(depth);
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        max
    }

    #[test]
    fn depth_of_known_texts() {
        assert_eq!(raw_depth(br#"{"a":[1,{"b":"[[[{"}]}"#), 3);
        assert_eq!(raw_depth(br#"{"a":"\"[[["}"#), 1);
        assert_eq!(raw_depth(br#"{"a":"x\\"}[[["#), 3);
        assert_eq!(raw_depth(br#"["unterminated [[["#), 1);
        assert_eq!(raw_depth(b"\"\\"), 0);
        assert_eq!(raw_depth(b""), 0);
    }

    proptest! {
        /// On any bytes, made mostly of JSON's structural characters, quotes and backslashes.
        #[test]
        fn agrees_with_reading_byte_by_byte(bytes in proptest::collection::vec(
            prop_oneof![
                Just(b'"'), Just(b'\\'), Just(b'['), Just(b']'), Just(b'{'), Just(b'}'),
                Just(b'a'), any::<u8>(),
            ],
            0..200,
        )) {
            prop_assert_eq!(raw_depth(&bytes), depth_byte_by_byte(&bytes));
        }
    }
}
