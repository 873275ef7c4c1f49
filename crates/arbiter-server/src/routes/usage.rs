//! `GET /v1/usage/{rollup}`: decisions allowed and denied per hour, day or month.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::{Ctx, Path, Query};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct UsageQuery {
    /// Periods from this time on; by default the last 48 hours, 31 days or 12 months.
    since: Option<DateTime<Utc>>,
}

/// `organization_metrics:read`. Pending in-memory counts are flushed first, so the answer
/// includes every decision made before the call.
pub async fn get(
    State(state): State<Arc<AppState>>,
    ctx: Ctx,
    Path(rollup): Path<String>,
    Query(q): Query<UsageQuery>,
) -> Result<Json<Value>, ApiError> {
    ctx.require_in_org("organization_metrics:read")?;
    let (period_len, default_back) = match rollup.as_str() {
        "hour" => (13, Duration::hours(48)),
        "day" => (10, Duration::days(31)),
        "month" => (7, Duration::days(366)),
        other => {
            return Err(ApiError::field(
                "rollup",
                format!("`{other}` is not hour, day or month"),
            ))
        }
    };
    let since = q.since.unwrap_or_else(|| Utc::now() - default_back);
    state.usage.flush(state.store.as_ref()).await;
    let since_hour =
        crate::usage::hour_text(since.timestamp() - since.timestamp().rem_euclid(3600));
    let hours = state.store.usage(ctx.org_id(), &since_hour).await?;
    let mut periods: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for h in hours {
        let key = h.hour.get(..period_len).unwrap_or(&h.hour).to_owned();
        let cell = periods.entry(key).or_insert((0, 0));
        cell.0 += h.allowed;
        cell.1 += h.denied;
    }
    let items: Vec<Value> = periods
        .into_iter()
        .map(|(period, (allowed, denied))| {
            let start = match rollup.as_str() {
                "hour" => format!("{period}:00:00Z"),
                "day" => format!("{period}T00:00:00Z"),
                _ => format!("{period}-01T00:00:00Z"),
            };
            json!({"period_start": start, "allowed": allowed, "denied": denied, "total": allowed + denied})
        })
        .collect();
    Ok(Json(
        json!({"organization_id": ctx.org_id(), "rollup": rollup, "since": since, "items": items}),
    ))
}
