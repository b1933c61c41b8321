//! A serde mirror of the TOML config file. Every field is documented here and in
//! deploy/citysense.toml; unknown fields are refused so a typo is an error, not a default.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::decode::Format;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub kafka: RawKafka,
    pub topics: RawTopics,
    pub validation: RawValidation,
    pub windows: RawWindows,
    pub registry: RawRegistry,
    /// Absent: no InfluxDB sink (results only in memory, e.g. for the demo).
    pub influx: Option<RawInflux>,
    pub api: RawApi,
    pub pipeline: RawPipeline,
    pub domain: RawDomain,
    pub rollup: RawRollup,
    pub alerts: RawAlerts,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAlerts {
    /// Rules file (TOML, `[[rule]]` tables); absent: no alerts.
    pub rules: Option<String>,
    /// Alert events, keyed by fingerprint.
    pub topic: String,
    /// Encoding of alert events on the topic: "json" or "protobuf" (citysense.v1.AlertEvent).
    pub format: String,
    /// Compacted changelog of alert state, keyed by fingerprint (restored on start).
    pub changelog_topic: String,
    /// More than this many fire/resolve transitions within `flap_period` marks an alert
    /// flapping; it is held firing until it settles.
    pub flap_max_transitions: i64,
    pub flap_period: String,
    /// Alertmanager base URL (POSTs to /api/v2/alerts); absent: no webhook.
    pub alertmanager_url: Option<String>,
    /// How often firing alerts are re-posted to Alertmanager.
    pub resend_interval: String,
}

impl Default for RawAlerts {
    fn default() -> Self {
        RawAlerts {
            rules: None,
            topic: "city.alerts".into(),
            format: "json".into(),
            changelog_topic: "city.alerts.changelog".into(),
            flap_max_transitions: 4,
            flap_period: "1h".into(),
            alertmanager_url: None,
            resend_interval: "1m".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRollup {
    /// Publish sensor windows to the aggregates topic and run the area stage.
    pub enabled: bool,
    /// Sensor windows keyed by district, and watermark markers, travel here.
    pub topic: String,
    /// Consumer group of the area stage (every instance uses the same).
    pub group_id: String,
    /// What stage 1 writes: "protobuf" (citysense.v1.AggregateRecord), or "json", which
    /// older versions read, during a rolling upgrade. Both are read.
    pub format: String,
}

impl Default for RawRollup {
    fn default() -> Self {
        RawRollup { enabled: true, topic: "city.aggregates".into(), group_id: "citysense-areas".into(), format: "protobuf".into() }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDomain {
    /// HJ 633 table for PM2.5 IAQI: "auto" (by each window's date: 2012 before
    /// 2026-03-01, 2026 after), "2012" or "2026".
    pub hj633: String,
    /// Also compute the US EPA AQI (2024 breakpoints) and NowCast.
    pub epa_aqi: bool,
    /// A river gauge is "blue" (approaching) this far below its warning level, metres.
    pub approach_margin_m: f64,
    /// Dust load grades, g/m²: watch and alert thresholds.
    pub dust_watch_g_m2: f64,
    pub dust_alert_g_m2: f64,
}

impl Default for RawDomain {
    fn default() -> Self {
        RawDomain { hj633: "auto".into(), epa_aqi: false, approach_margin_m: 0.3, dust_watch_g_m2: 0.5, dust_alert_g_m2: 0.8 }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawKafka {
    /// Bootstrap servers, comma-separated.
    pub brokers: String,
    /// Consumer group; every instance of one deployment uses the same.
    pub group_id: String,
    /// Passed to librdkafka as is (security.protocol, sasl.*, ssl.*, fetch tuning).
    pub properties: BTreeMap<String, String>,
}

impl Default for RawKafka {
    fn default() -> Self {
        RawKafka { brokers: "127.0.0.1:9092".into(), group_id: "citysense".into(), properties: BTreeMap::new() }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTopics {
    pub pm25: RawTopic,
    pub dust: RawTopic,
    pub water: RawTopic,
    pub charging: RawTopic,
    /// Where rejected records go, with their reason headers.
    pub deadletter: String,
    /// Compacted changelog of open window state (SPEC §6 checkpoints).
    pub checkpoints: String,
}

impl Default for RawTopics {
    fn default() -> Self {
        RawTopics {
            pm25: RawTopic::named("city.pm25"),
            dust: RawTopic::named("city.dust"),
            water: RawTopic::named("city.water"),
            charging: RawTopic::named("city.charging"),
            deadletter: "city.deadletter".into(),
            checkpoints: "city.checkpoints".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTopic {
    pub name: String,
    /// json, protobuf or auto.
    #[serde(default = "auto")]
    pub format: Format,
    /// false: do not consume this feed.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn auto() -> Format {
    Format::Auto
}

fn yes() -> bool {
    true
}

impl RawTopic {
    fn named(name: &str) -> Self {
        RawTopic { name: name.into(), format: Format::Auto, enabled: true }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawValidation {
    /// Reject records stamped further ahead of the wall clock than this.
    pub max_future: String,
    /// Reject records older than this; "off" for replays of historical data.
    pub max_age: String,
    /// Records larger than this many bytes are dead-lettered as `oversize`.
    pub max_record_bytes: i64,
    /// Plausible water level range (m) for gauges the registry gives no range for.
    pub default_water_range_m: [f64; 2],
}

impl Default for RawValidation {
    fn default() -> Self {
        RawValidation { max_future: "5m".into(), max_age: "7d".into(), max_record_bytes: 65_536, default_water_range_m: [-20.0, 200.0] }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawWindows {
    /// "Asia/Shanghai", "UTC" or a fixed offset such as "+08:00"; windows align to it.
    pub timezone: String,
    pub out_of_orderness: String,
    pub allowed_lateness: String,
    /// A partition with no records for this long stops holding its windows back.
    pub idle_timeout: String,
    /// Cap on sensors with open state; records of new sensors past it are `cardinality`.
    pub max_tracked_sensors: i64,
    /// A record for a closed window: "deadletter" it as `late`, or "update" the window and
    /// re-emit it (same point, overwritten) while it closed less than `update_horizon` ago.
    pub late_policy: String,
    pub update_horizon: String,
    /// Window labels per kind: "1m" tumbling, "24h/1h" a 24 h window sliding every hour.
    pub pm25: Vec<String>,
    pub dust: Vec<String>,
    pub water: Vec<String>,
    pub charging: Vec<String>,
}

impl Default for RawWindows {
    fn default() -> Self {
        let labels = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        RawWindows {
            timezone: "Asia/Shanghai".into(),
            out_of_orderness: "30s".into(),
            allowed_lateness: "2m".into(),
            idle_timeout: "1m".into(),
            max_tracked_sensors: 1_000_000,
            late_policy: "deadletter".into(),
            update_horizon: "1h".into(),
            pm25: labels(&["1m", "1h", "24h", "24h/1h"]),
            dust: labels(&["1h", "24h"]),
            water: labels(&["1m", "1h/5m"]),
            charging: labels(&["5m", "1h"]),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRegistry {
    /// CSV file: id,kind,grid,street,district,lat,lon,interval_s,min_value,max_value,...
    pub path: Option<String>,
    /// Dead-letter records of sensors the registry does not list.
    pub strict: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInflux {
    pub url: String,
    pub org: String,
    pub bucket: String,
    /// Name of the environment variable holding the token.
    #[serde(default = "token_env")]
    pub token_env: String,
    /// A file holding the token (wins over token_env).
    pub token_file: Option<String>,
    #[serde(default = "batch_size")]
    pub batch_size: i64,
    #[serde(default = "flush_interval")]
    pub flush_interval: String,
    /// Directory of the on-disk spool for writes InfluxDB could not take (one per
    /// instance). Unset: no spool, a failing write is retried and holds the consumer.
    pub spool_dir: Option<String>,
    /// Spool size cap per stream (windows, areas, alerts), e.g. "1GiB"; past it,
    /// consumption pauses.
    #[serde(default = "spool_max")]
    pub spool_max: String,
    /// "always" (fsync every spooled batch) or "never" (survives a crash, not power loss).
    #[serde(default = "spool_fsync")]
    pub spool_fsync: String,
}

fn spool_max() -> String {
    "1GiB".into()
}

fn spool_fsync() -> String {
    "always".into()
}

fn token_env() -> String {
    "INFLUX_TOKEN".into()
}

fn batch_size() -> i64 {
    5_000
}

fn flush_interval() -> String {
    "1s".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawApi {
    /// HTTP listen address; loopback by default.
    pub listen: String,
    /// Environment variable holding a bearer token that every mutating route (alert
    /// acknowledgement) then requires. Unset or empty: no token.
    pub token_env: Option<String>,
    /// A file holding that token (wins over token_env).
    pub token_file: Option<String>,
}

impl Default for RawApi {
    fn default() -> Self {
        RawApi { listen: "127.0.0.1:8080".into(), token_env: None, token_file: None }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPipeline {
    /// How often safe offsets are committed.
    pub commit_interval: String,
    /// How long shutdown may take to flush sinks and commit.
    pub shutdown_timeout: String,
    /// How often open window state is checkpointed (bounds the replay after a restart).
    pub checkpoint_interval: String,
}

impl Default for RawPipeline {
    fn default() -> Self {
        RawPipeline { commit_interval: "1s".into(), shutdown_timeout: "30s".into(), checkpoint_interval: "5s".into() }
    }
}
