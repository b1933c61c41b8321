//! The validated configuration the pipeline runs on, built from `RawConfig` with every
//! problem reported by field path.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::duration::parse_ms;
use super::raw::{RawConfig, RawTopic};
use super::ConfigProblem;
use crate::decode::{Decoder, Format, Limits};
use crate::domain::aqi::Hj633;
use crate::domain::enrich::{DomainSettings, Hj633Choice};
use crate::model::Kind;
use crate::rollup::encoding::AggregateFormat;
use crate::window::{LatePolicy, WindowSpec, WindowTiming};

/// A secret (token) whose `Debug` and `Display` print nothing.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    pub group_id: String,
    pub properties: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct TopicInput {
    pub kind: Kind,
    pub name: String,
    pub format: Format,
}

#[derive(Debug, Clone)]
pub struct InfluxSettings {
    pub url: String,
    pub org: String,
    pub bucket: String,
    pub token: Secret,
    pub batch_size: usize,
    pub flush_interval_ms: i64,
    pub spool: Option<SpoolSettings>,
}

#[derive(Debug, Clone)]
pub struct SpoolSettings {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub fsync: crate::sink::spool::FsyncPolicy,
}

/// "512MiB", "1GiB", "100kB" or plain bytes.
fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a size like \"512MiB\""))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        other => return Err(format!("unknown unit {other:?}: use B, kB, KiB, MB, MiB, GB or GiB")),
    };
    number.checked_mul(scale).ok_or_else(|| format!("{text:?} is too large"))
}

#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub listen: SocketAddr,
    /// Required as `Authorization: Bearer …` by mutating routes, when set.
    pub token: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub kafka: KafkaSettings,
    /// Enabled input topics, one per kind.
    pub inputs: Vec<TopicInput>,
    pub deadletter_topic: String,
    pub checkpoint_topic: String,
    pub decoder: Decoder,
    /// Window specs per kind, indexed by `Kind::index()`.
    pub windows: [Vec<WindowSpec>; 4],
    pub timing: WindowTiming,
    pub idle_timeout_ms: i64,
    pub max_tracked_sensors: usize,
    pub registry_path: Option<PathBuf>,
    pub strict_registry: bool,
    pub influx: Option<InfluxSettings>,
    pub api: ApiSettings,
    pub commit_interval_ms: i64,
    pub shutdown_timeout_ms: i64,
    pub checkpoint_interval_ms: i64,
    pub domain: DomainSettings,
    /// The area stage, when enabled.
    pub rollup: Option<RollupSettings>,
    /// Alerting, when a rules file is configured.
    pub alerts: Option<AlertSettings>,
}

#[derive(Debug, Clone)]
pub struct AlertSettings {
    pub rules: Vec<crate::alert::Rule>,
    pub topic: String,
    /// Alert events as protobuf (`citysense.v1.AlertEvent`) instead of JSON.
    pub protobuf: bool,
    pub changelog_topic: String,
    pub flap: crate::alert::FlapPolicy,
    pub alertmanager_url: Option<String>,
    pub resend_interval_ms: i64,
}

#[derive(Debug, Clone)]
pub struct RollupSettings {
    pub topic: String,
    pub group_id: String,
    /// What stage 1 writes; stage 2 reads both.
    pub format: AggregateFormat,
}

/// Longest window accepted: a month. Longer windows belong in a query, not in stream state.
const MAX_WINDOW_MS: i64 = 31 * 86_400_000;

/// Collects problems while building settings.
struct Checker {
    problems: Vec<ConfigProblem>,
}

impl Checker {
    fn problem(&mut self, field: &str, reason: impl Into<String>) {
        self.problems.push(ConfigProblem { field: field.to_owned(), reason: reason.into() });
    }

    fn duration(&mut self, field: &str, text: &str, min_ms: i64) -> i64 {
        match parse_ms(text) {
            Ok(ms) if ms < min_ms => {
                self.problem(field, format!("must be at least {}", super::duration::format_ms(min_ms)));
                ms
            }
            Ok(ms) => ms,
            Err(reason) => {
                self.problem(field, reason);
                0
            }
        }
    }

    fn positive(&mut self, field: &str, value: i64) -> usize {
        if value <= 0 {
            self.problem(field, format!("must be greater than zero, got {value}"));
            return 1;
        }
        value as usize
    }

    fn window_specs(&mut self, kind: Kind, labels: &[String]) -> Vec<WindowSpec> {
        let mut specs = Vec::new();
        for (i, label) in labels.iter().enumerate() {
            let field = format!("windows.{kind}[{i}]");
            let (size, slide) = match label.split_once('/') {
                Some((size, slide)) => (size, slide),
                None => (label.as_str(), label.as_str()),
            };
            let (Ok(size_ms), Ok(slide_ms)) = (parse_ms(size), parse_ms(slide)) else {
                self.problem(&field, format!("{label:?} is not a window: use a duration like \"1h\" or size/slide like \"24h/1h\""));
                continue;
            };
            if size_ms <= 0 || slide_ms <= 0 {
                self.problem(&field, format!("{label:?}: window size and slide must be greater than zero"));
            } else if size_ms > MAX_WINDOW_MS {
                self.problem(&field, format!("{label:?}: windows longer than 31 days are not supported"));
            } else if size_ms % slide_ms != 0 {
                self.problem(&field, format!("{label:?}: the size must be a whole multiple of the slide"));
            } else if specs.iter().any(|s: &WindowSpec| s.label == *label) {
                self.problem(&field, format!("{label:?} is listed twice"));
            } else {
                specs.push(WindowSpec { label: label.as_str().into(), size_ms, slide_ms });
            }
        }
        specs
    }
}

/// Fixed-offset time zones accepted by name (China has had no daylight saving since 1991).
const ZONES: [(&str, i64); 8] = [
    ("UTC", 0),
    ("Etc/UTC", 0),
    ("Asia/Shanghai", 8),
    ("Asia/Chongqing", 8),
    ("Asia/Harbin", 8),
    ("Asia/Hong_Kong", 8),
    ("Asia/Taipei", 8),
    ("Asia/Tokyo", 9),
];

/// "Asia/Shanghai", "UTC" or "+08:00" → offset from UTC in milliseconds.
pub fn parse_timezone(text: &str) -> Result<i64, String> {
    if let Some((_, hours)) = ZONES.iter().find(|(name, _)| *name == text) {
        return Ok(hours * 3_600_000);
    }
    let bad = || format!("{text:?} is not supported: use one of {} or a fixed offset like \"+08:00\"", ZONES.map(|z| z.0).join(", "));
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 14 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 3_600_000 + m * 60_000))
}

impl Settings {
    /// Validates a raw config. `read_env` resolves the InfluxDB token variable.
    pub fn from_raw(raw: RawConfig, read_env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, Vec<ConfigProblem>> {
        let mut c = Checker { problems: Vec::new() };

        if raw.kafka.brokers.trim().is_empty() {
            c.problem("kafka.brokers", "must name at least one broker");
        }
        if raw.kafka.group_id.trim().is_empty() {
            c.problem("kafka.group_id", "must not be empty");
        }
        for key in raw.kafka.properties.keys() {
            if matches!(key.as_str(), "bootstrap.servers" | "group.id" | "enable.auto.commit") {
                c.problem(&format!("kafka.properties.{key}"), "is set by citysense itself; use kafka.brokers / kafka.group_id");
            }
        }

        let topics: [(Kind, &RawTopic); 4] = [
            (Kind::Pm25, &raw.topics.pm25),
            (Kind::Dust, &raw.topics.dust),
            (Kind::Water, &raw.topics.water),
            (Kind::Charging, &raw.topics.charging),
        ];
        let mut inputs = Vec::new();
        for (kind, topic) in topics {
            if topic.name.trim().is_empty() {
                c.problem(&format!("topics.{kind}.name"), "must not be empty");
            } else if topic.enabled {
                if inputs.iter().any(|t: &TopicInput| t.name == topic.name) {
                    c.problem(&format!("topics.{kind}.name"), format!("{:?} is already the topic of another kind", topic.name));
                }
                inputs.push(TopicInput { kind, name: topic.name.clone(), format: topic.format });
            }
        }
        if inputs.is_empty() {
            c.problem("topics", "every input topic is disabled");
        }
        if raw.topics.deadletter.trim().is_empty() || inputs.iter().any(|t| t.name == raw.topics.deadletter) {
            c.problem("topics.deadletter", "must be a topic of its own");
        }

        let v = &raw.validation;
        let max_future_ms = c.duration("validation.max_future", &v.max_future, 0);
        let max_age_ms = if v.max_age == "off" { None } else { Some(c.duration("validation.max_age", &v.max_age, 60_000)) };
        let max_record_bytes = c.positive("validation.max_record_bytes", v.max_record_bytes);
        let [lo, hi] = v.default_water_range_m;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            c.problem("validation.default_water_range_m", "must be [low, high] with low < high");
        }

        let w = &raw.windows;
        let tz_offset_ms = parse_timezone(&w.timezone).unwrap_or_else(|reason| {
            c.problem("windows.timezone", reason);
            0
        });
        let late_policy = match w.late_policy.as_str() {
            "deadletter" => LatePolicy::DeadLetter,
            "update" => LatePolicy::Update { horizon_ms: c.duration("windows.update_horizon", &w.update_horizon, 0) },
            other => {
                c.problem("windows.late_policy", format!("{other:?} is not a policy: use \"deadletter\" or \"update\""));
                LatePolicy::DeadLetter
            }
        };
        let timing = WindowTiming {
            out_of_orderness_ms: c.duration("windows.out_of_orderness", &w.out_of_orderness, 0),
            allowed_lateness_ms: c.duration("windows.allowed_lateness", &w.allowed_lateness, 0),
            tz_offset_ms,
            late_policy,
        };
        let idle_timeout_ms = c.duration("windows.idle_timeout", &w.idle_timeout, 1_000);
        let max_tracked_sensors = c.positive("windows.max_tracked_sensors", w.max_tracked_sensors);
        let windows = [
            c.window_specs(Kind::Pm25, &w.pm25),
            c.window_specs(Kind::Dust, &w.dust),
            c.window_specs(Kind::Water, &w.water),
            c.window_specs(Kind::Charging, &w.charging),
        ];
        let labels = [&w.pm25, &w.dust, &w.water, &w.charging];
        for input in &inputs {
            if labels[input.kind.index()].is_empty() {
                c.problem(&format!("windows.{}", input.kind), "an enabled feed needs at least one window");
            }
        }

        let influx = raw.influx.as_ref().map(|i| {
            if !(i.url.starts_with("http://") || i.url.starts_with("https://")) {
                c.problem("influx.url", format!("{:?} must start with http:// or https://", i.url));
            }
            if i.bucket.trim().is_empty() {
                c.problem("influx.bucket", "must not be empty");
            }
            let token = match &i.token_file {
                Some(path) => match std::fs::read_to_string(path) {
                    Ok(text) => text.trim().to_owned(),
                    Err(err) => {
                        c.problem("influx.token_file", format!("cannot read {path}: {err}"));
                        String::new()
                    }
                },
                None => read_env(&i.token_env).unwrap_or_default(),
            };
            InfluxSettings {
                url: i.url.trim_end_matches('/').to_owned(),
                org: i.org.clone(),
                bucket: i.bucket.clone(),
                token: Secret(token),
                batch_size: c.positive("influx.batch_size", i.batch_size),
                flush_interval_ms: c.duration("influx.flush_interval", &i.flush_interval, 1),
                spool: i.spool_dir.as_ref().map(|dir| SpoolSettings {
                    dir: PathBuf::from(dir),
                    max_bytes: match parse_bytes(&i.spool_max) {
                        Ok(bytes) if bytes >= 1 << 20 => bytes,
                        Ok(_) => {
                            c.problem("influx.spool_max", "must be at least 1MiB");
                            0
                        }
                        Err(reason) => {
                            c.problem("influx.spool_max", reason);
                            0
                        }
                    },
                    fsync: match i.spool_fsync.as_str() {
                        "always" => crate::sink::spool::FsyncPolicy::Always,
                        "never" => crate::sink::spool::FsyncPolicy::Never,
                        other => {
                            c.problem("influx.spool_fsync", format!("{other:?}: use \"always\" or \"never\""));
                            crate::sink::spool::FsyncPolicy::Always
                        }
                    },
                }),
            }
        });

        let listen = raw.api.listen.parse::<SocketAddr>().unwrap_or_else(|err| {
            c.problem("api.listen", format!("{:?} is not an address like 127.0.0.1:8080: {err}", raw.api.listen));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        let api_token = match (&raw.api.token_file, &raw.api.token_env) {
            (Some(path), _) => match std::fs::read_to_string(path) {
                Ok(text) if !text.trim().is_empty() => Some(Secret(text.trim().to_owned())),
                Ok(_) => {
                    c.problem("api.token_file", format!("{path} is empty"));
                    None
                }
                Err(err) => {
                    c.problem("api.token_file", format!("cannot read {path}: {err}"));
                    None
                }
            },
            (None, Some(var)) => read_env(var).filter(|t| !t.trim().is_empty()).map(|t| Secret(t.trim().to_owned())),
            (None, None) => None,
        };
        let d = &raw.domain;
        let hj633 = match d.hj633.as_str() {
            "auto" => Hj633Choice::ByDate,
            "2012" => Hj633Choice::Pinned(Hj633::Y2012),
            "2026" => Hj633Choice::Pinned(Hj633::Y2026),
            other => {
                c.problem("domain.hj633", format!("{other:?}: use \"auto\", \"2012\" or \"2026\""));
                Hj633Choice::ByDate
            }
        };
        if !(d.approach_margin_m.is_finite() && d.approach_margin_m >= 0.0) {
            c.problem("domain.approach_margin_m", "must be a distance of zero or more metres");
        }
        if !(d.dust_watch_g_m2 > 0.0 && d.dust_watch_g_m2 < d.dust_alert_g_m2) {
            c.problem("domain.dust_watch_g_m2", "must be above zero and below domain.dust_alert_g_m2");
        }
        let domain = DomainSettings {
            hj633,
            epa: d.epa_aqi,
            approach_margin_m: d.approach_margin_m,
            dust_watch_g_m2: d.dust_watch_g_m2,
            dust_alert_g_m2: d.dust_alert_g_m2,
        };
        let r = &raw.rollup;
        if r.enabled && (r.topic.trim().is_empty() || inputs.iter().any(|t| t.name == r.topic) || r.topic == raw.topics.deadletter) {
            c.problem("rollup.topic", "must be a topic of its own");
        }
        if r.enabled && (r.group_id.trim().is_empty() || r.group_id == raw.kafka.group_id) {
            c.problem("rollup.group_id", "must be set and differ from kafka.group_id");
        }
        let format = match r.format.as_str() {
            "protobuf" => AggregateFormat::Protobuf,
            "json" => AggregateFormat::Json,
            other => {
                c.problem("rollup.format", format!("{other:?}: use protobuf, or json while instances of an earlier version still run"));
                AggregateFormat::Protobuf
            }
        };
        let rollup = r.enabled.then(|| RollupSettings { topic: r.topic.clone(), group_id: r.group_id.clone(), format });
        let a = &raw.alerts;
        let alerts = a.rules.as_ref().map(|path| {
            let rules = match std::fs::read_to_string(path) {
                Ok(text) => crate::alert::rules::parse_rules(&text, path).unwrap_or_else(|problems| {
                    for p in problems {
                        c.problem(&format!("alerts.rules ({path}) {}", p.field), p.reason);
                    }
                    Vec::new()
                }),
                Err(err) => {
                    c.problem("alerts.rules", format!("cannot read {path}: {err}"));
                    Vec::new()
                }
            };
            for rule in &rules {
                if let Some(w) = &rule.window {
                    if !labels[rule.kind.index()].contains(w) {
                        c.problem(
                            "alerts.rules",
                            format!("rule {:?} reads window {w:?}, which windows.{} does not define", rule.id, rule.kind),
                        );
                    }
                }
            }
            if a.topic.trim().is_empty() || a.changelog_topic.trim().is_empty() || a.topic == a.changelog_topic {
                c.problem("alerts.changelog_topic", "alerts.topic and alerts.changelog_topic must be two topics");
            }
            if let Some(url) = &a.alertmanager_url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    c.problem("alerts.alertmanager_url", format!("{url:?} must start with http:// or https://"));
                }
            }
            let protobuf = match a.format.as_str() {
                "json" => false,
                "protobuf" => true,
                other => {
                    c.problem("alerts.format", format!("{other:?}: use json or protobuf"));
                    false
                }
            };
            AlertSettings {
                rules,
                topic: a.topic.clone(),
                protobuf,
                changelog_topic: a.changelog_topic.clone(),
                flap: crate::alert::FlapPolicy {
                    max_transitions: c.positive("alerts.flap_max_transitions", a.flap_max_transitions),
                    period_ms: c.duration("alerts.flap_period", &a.flap_period, 1_000),
                },
                alertmanager_url: a.alertmanager_url.as_ref().map(|u| u.trim_end_matches('/').to_owned()),
                resend_interval_ms: c.duration("alerts.resend_interval", &a.resend_interval, 1_000),
            }
        });
        let commit_interval_ms = c.duration("pipeline.commit_interval", &raw.pipeline.commit_interval, 10);
        let shutdown_timeout_ms = c.duration("pipeline.shutdown_timeout", &raw.pipeline.shutdown_timeout, 100);
        let checkpoint_interval_ms = c.duration("pipeline.checkpoint_interval", &raw.pipeline.checkpoint_interval, 100);
        let checkpoint_topic = raw.topics.checkpoints.trim().to_owned();
        if checkpoint_topic.is_empty() || inputs.iter().any(|t| t.name == checkpoint_topic) || checkpoint_topic == raw.topics.deadletter {
            c.problem("topics.checkpoints", "must be a topic of its own");
        }

        if !c.problems.is_empty() {
            return Err(c.problems);
        }
        Ok(Settings {
            kafka: KafkaSettings {
                brokers: raw.kafka.brokers,
                group_id: raw.kafka.group_id,
                properties: raw.kafka.properties.into_iter().collect(),
            },
            inputs,
            deadletter_topic: raw.topics.deadletter,
            checkpoint_topic,
            decoder: Decoder {
                limits: Limits { max_future_ms, max_age_ms, default_water_range_m: (lo, hi), strict_registry: raw.registry.strict },
                max_record_bytes,
            },
            windows,
            timing,
            idle_timeout_ms,
            max_tracked_sensors,
            registry_path: raw.registry.path.map(PathBuf::from),
            strict_registry: raw.registry.strict,
            influx,
            api: ApiSettings { listen, token: api_token },
            commit_interval_ms,
            shutdown_timeout_ms,
            checkpoint_interval_ms,
            domain,
            rollup,
            alerts,
        })
    }

    /// The defaults, as if from an empty config file.
    pub fn defaults() -> Settings {
        Settings::from_raw(RawConfig::default(), &|_| None).unwrap_or_else(|problems| unreachable!("defaults are valid: {problems:?}"))
    }

    pub fn input(&self, kind: Kind) -> Option<&TopicInput> {
        self.inputs.iter().find(|t| t.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse(text, "test.toml", Vec::new()) {
            Ok(_) => Vec::new(),
            Err(err) => err.problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn an_empty_file_gives_the_spec_defaults() {
        let settings = parse("", "empty.toml", Vec::new()).unwrap();
        assert_eq!(settings.inputs.len(), 4);
        assert_eq!(settings.timing.tz_offset_ms, 8 * 3_600_000);
        assert_eq!(settings.timing.out_of_orderness_ms, 30_000);
        assert_eq!(settings.timing.allowed_lateness_ms, 120_000);
        let pm25: Vec<&str> = settings.windows[Kind::Pm25.index()].iter().map(|s| s.label.as_str()).collect();
        assert_eq!(pm25, ["1m", "1h", "24h", "24h/1h"]);
        assert_eq!(settings.windows[Kind::Water.index()][1].slide_ms, 300_000);
        assert!(settings.influx.is_none());
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let text = include_str!("../../deploy/citysense.toml");
        let settings = parse(text, "deploy/citysense.toml", Vec::new()).unwrap();
        assert!(settings.influx.is_some());
    }

    #[test]
    fn wrong_types_and_unknown_fields_name_the_field() {
        let p = problems("[windows]\nmax_tracked_sensors = \"many\"\n");
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("windows.max_tracked_sensors:"), "{p:?}");
        let p = problems("[kafka]\nbrokerz = \"x\"\n");
        assert!(p[0].contains("unknown field `brokerz`"), "{p:?}");
        let p = problems("[kafka\n");
        assert!(p[0].contains("not valid TOML"), "{p:?}");
    }

    #[test]
    fn impossible_values_are_all_reported_with_their_field() {
        let p = problems(
            "[windows]\nout_of_orderness = \"-5s\"\npm25 = [\"0m\", \"1h/7m\", \"soon\"]\ntimezone = \"Mars/Olympus\"\nmax_tracked_sensors = 0\n[api]\nlisten = \"everywhere\"\n[rollup]\nformat = \"avro\"\n",
        );
        let fields: Vec<&str> = p.iter().map(|s| s.split(':').next().unwrap()).collect();
        for field in [
            "windows.out_of_orderness",
            "windows.pm25[0]",
            "windows.pm25[1]",
            "windows.pm25[2]",
            "windows.timezone",
            "windows.max_tracked_sensors",
            "api.listen",
            "rollup.format",
        ] {
            assert!(fields.contains(&field), "{field} missing from {p:?}");
        }
    }

    #[test]
    fn environment_overrides_win_and_the_token_never_prints() {
        let env = vec![
            ("CITYSENSE_KAFKA__BROKERS".to_owned(), "10.0.0.1:9092".to_owned()),
            ("CITYSENSE_INFLUX__BUCKET".to_owned(), "b2".to_owned()),
        ];
        let text = "[influx]\nurl = \"http://127.0.0.1:8086\"\norg = \"o\"\nbucket = \"b\"\ntoken_file = \"/nonexistent/token\"\n";
        let err = parse(text, "t.toml", env.clone()).unwrap_err();
        assert_eq!(err.problems[0].field, "influx.token_file");
        let dir = std::env::temp_dir().join(format!("citysense-token-{}", std::process::id()));
        std::fs::write(&dir, "s3cret-token\n").unwrap();
        let text = text.replace("/nonexistent/token", dir.to_str().unwrap());
        let settings = parse(&text, "t.toml", env).unwrap();
        std::fs::remove_file(&dir).ok();
        assert_eq!(settings.kafka.brokers, "10.0.0.1:9092");
        let influx = settings.influx.unwrap();
        assert_eq!(influx.bucket, "b2");
        assert_eq!(influx.token.expose(), "s3cret-token");
        assert!(!format!("{influx:?}").contains("s3cret"));
    }

    #[test]
    fn time_zones() {
        assert_eq!(parse_timezone("+08:00"), Ok(8 * 3_600_000));
        assert_eq!(parse_timezone("-05:30"), Ok(-(5 * 3_600_000 + 30 * 60_000)));
        assert!(parse_timezone("Europe/Berlin").is_err());
    }
}
