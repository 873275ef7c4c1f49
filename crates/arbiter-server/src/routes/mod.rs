//! The HTTP routes. Handlers parse, call one domain function (usually [`AppState::write`] with a
//! preparation over the index), and map the result.

pub mod api_keys;
pub mod authorization;
pub mod authzen;
pub mod bindings;
pub mod catalog;
pub mod check;
pub mod gateway;
pub mod grants;
pub mod groups;
pub mod health;
pub mod organizations;
pub mod projects;
pub mod resources;
pub mod roles;
pub mod spaces;
pub mod usage;
pub mod users;

use arbiter_core::index::Revision;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;

/// The header every write answers with.
pub const REVISION_HEADER: &str = "x-arbiter-revision";

/// A new opaque id with a readable prefix.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// The answer of a write: the object and the revision it committed.
pub fn written(status: StatusCode, revision: Revision, body: impl Serialize) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&revision.to_string()) {
        headers.insert(HeaderName::from_static(REVISION_HEADER), v);
    }
    if status == StatusCode::NO_CONTENT {
        return (status, headers).into_response();
    }
    (status, headers, Json(body)).into_response()
}

/// `?offset=&limit=` of every list.
#[derive(Debug, Default, Deserialize)]
pub struct Paging {
    #[serde(default, deserialize_with = "count")]
    pub offset: Option<u64>,
    #[serde(default, deserialize_with = "count")]
    pub limit: Option<u64>,
}

/// A count given as a number or as text: a query string flattened into a filter reaches serde
/// as text only.
fn count<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Count {
        Number(u64),
        Text(String),
    }
    match Option::<Count>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Count::Number(n)) => Ok(Some(n)),
        Some(Count::Text(t)) => t
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("`{t}` is not a non-negative integer"))),
    }
}

/// The default and largest page sizes.
pub const DEFAULT_LIMIT: u64 = 100;
pub const MAX_LIMIT: u64 = 1000;

/// A page of a list: `{"items", "offset", "limit", "total"}`.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub offset: u64,
    pub limit: u64,
    pub total: u64,
}

impl Paging {
    /// Cuts a page out of a whole, sorted list.
    pub fn page<T>(&self, all: Vec<T>) -> Result<Page<T>, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::field(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let offset = self.offset.unwrap_or(0);
        let total = all.len() as u64;
        let items = all
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect();
        Ok(Page {
            items,
            offset,
            limit,
            total,
        })
    }
}

/// A JSON value of any object.
pub fn json_of(value: &impl Serialize) -> Option<Value> {
    serde_json::to_value(value).ok()
}

/// Trims and checks a required name.
pub fn valid_name(field: &str, name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::field(field, "must not be empty"));
    }
    if name.chars().count() > 200 {
        return Err(ApiError::field(field, "must hold at most 200 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::field(field, "must not hold control characters"));
    }
    Ok(name.to_owned())
}

/// A `PATCH` field that distinguishes absent from `null`.
pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
