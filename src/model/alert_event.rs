//! An alert event: one change of one alert's state (SPEC §4), as written to the alerts
//! topic, InfluxDB, the webhook and the API.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlertEvent {
    /// Deterministic: the same change always has the same id, so receivers drop duplicates.
    pub event_id: String,
    pub fingerprint: String,
    pub rule: String,
    /// firing, acknowledged, flapping or resolved.
    pub status: String,
    pub severity: String,
    /// What changed: fired, escalated, deescalated, flapping, resolved, acknowledged.
    pub change: String,
    pub starts_at: String,
    pub starts_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at_ms: Option<i64>,
    /// Event time of the change.
    pub at_ms: i64,
    pub scope: String,
    pub scope_key: String,
    pub grid: String,
    pub street: String,
    pub district: String,
    pub value: f64,
    pub threshold: f64,
    pub window: String,
    pub summary: String,
    pub summary_zh: String,
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
}

/// RFC 3339 (UTC, milliseconds) of epoch milliseconds.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)).unwrap_or_default()
}
