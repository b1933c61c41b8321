//! Alerts against the real services started by scripts/test.sh (tansu, VictoriaMetrics,
//! Alertmanager): an underpass floods and drains and a PM2.5 station freezes and recovers.
//! The alerts topic must carry exactly the expected lifecycle (fired, each escalation and
//! de-escalation, resolved), with a restart of citysense in the middle of the firing alert
//! producing no duplicate firing and a resolution that is still emitted once. Alertmanager
//! must show the alert while it fires, with its labels.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use citysense::config;
use citysense::model::AlertEvent;
use citysense::pipeline::{self, wall_ms, Shared};
use citysense::registry::Registry;
use tokio_util::sync::CancellationToken;

const MINUTE: i64 = 60_000;

const RULES: &str = r#"
[[rule]]
id = "underpass-ponding"
kind = "water"
type = "threshold"
window = "1m"
field = "underpass_level"
levels = [
  { severity = "info", trigger = 1, clear = 1 },
  { severity = "warning", trigger = 2, clear = 2 },
  { severity = "critical", trigger = 3, clear = 3 },
  { severity = "emergency", trigger = 4, clear = 4 },
]

[[rule]]
id = "pm25-stuck"
kind = "pm25"
type = "stuck"
window = "1m"
stuck_windows = 3
"#;

/// Ponding depth (cm) at minute `m`: up 1.5 cm/min to 45 cm at minute 30, then back down.
fn depth_cm(m: f64) -> f64 {
    if m <= 30.0 {
        1.5 * m
    } else {
        (45.0 - 1.5 * (m - 30.0)).max(0.0)
    }
}

/// Readings from minute `from` to `to` (exclusive), every 10 s: the underpass, a PM2.5
/// station frozen at 42 between minutes 10 and 20, and a healthy neighbour.
fn readings(start: i64, from: i64, to: i64) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    for step in (from * 6)..(to * 6) {
        let ts = start + step * 10_000;
        let m = step as f64 / 6.0;
        out.push((
            "water",
            "up-1".to_owned(),
            format!(
                r#"{{"sensor_id":"up-1","ts":{ts},"value":{:.1},"unit":"cm","district":"haidian","street":"hd-s1","grid":"hd-g1"}}"#,
                depth_cm(m)
            ),
        ));
        let frozen = (10.0..20.0).contains(&m);
        let pm = if frozen { 42.0 } else { 30.0 + (step % 7) as f64 };
        out.push((
            "pm25",
            "pm-1".to_owned(),
            format!(r#"{{"sensor_id":"pm-1","ts":{ts},"value":{pm},"unit":"ug/m3","district":"haidian"}}"#),
        ));
        out.push((
            "pm25",
            "pm-2".to_owned(),
            format!(r#"{{"sensor_id":"pm-2","ts":{ts},"value":{},"unit":"ug/m3","district":"haidian"}}"#, 25 + step % 5),
        ));
    }
    out
}

async fn produce(brokers: &str, run: &str, records: &[(&str, String, String)]) {
    let producer = common::producer(brokers);
    for (kind, key, payload) in records {
        common::produce(&producer, &format!("{run}.{kind}"), 0, key.as_bytes(), payload.as_bytes(), "application/json").await;
    }
}

fn alert_events(brokers: &str, topic: &str, expected: usize) -> Vec<AlertEvent> {
    common::read_topic(brokers, topic, expected, Duration::from_secs(30))
        .iter()
        .map(|(_, v)| serde_json::from_slice(v).expect("an alert event"))
        .collect()
}

/// Distinct events (by event id) of one rule, as (change, severity), in topic order.
fn lifecycle(events: &[AlertEvent], rule: &str) -> Vec<(String, String)> {
    let mut seen = HashSet::new();
    events.iter().filter(|e| e.rule == rule && seen.insert(e.event_id.clone())).map(|e| (e.change.clone(), e.severity.clone())).collect()
}

async fn wait_for(brokers: &str, topic: &str, what: &str, done: impl Fn(&[AlertEvent]) -> bool) -> Vec<AlertEvent> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let events = alert_events(brokers, topic, 1);
        if done(&events) {
            return events;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; events so far: {:?}",
            lifecycle(&events, "underpass-ponding")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_lives_through_a_restart_without_duplicates_and_reaches_alertmanager() {
    let (brokers, influx, am) = (common::kafka(), common::influx(), common::alertmanager());
    let run = common::unique("alerts");
    let names: Vec<String> = ["pm25", "dust", "water", "charging", "deadletter", "checkpoints", "aggregates", "alerts", "changelog"]
        .iter()
        .map(|t| format!("{run}.{t}"))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    common::create_topics(&brokers, &refs, 1).await;
    let rules_path = std::env::temp_dir().join(format!("{run}-rules.toml"));
    std::fs::write(&rules_path, RULES).unwrap();
    let settings = || {
        let text = common::run_config(&brokers, &run)
            + &format!(
                r#"
[windows]
pm25 = ["1m"]
dust = ["1h"]
water = ["1m"]
charging = ["5m"]
[influx]
url = "{influx}"
org = "citysense"
bucket = "citysense"
flush_interval = "200ms"
[pipeline]
commit_interval = "200ms"
shutdown_timeout = "10s"
[alerts]
rules = "{}"
topic = "{run}.alerts"
changelog_topic = "{run}.changelog"
alertmanager_url = "{am}"
resend_interval = "2s"
"#,
                rules_path.display()
            );
        config::parse(&text, "alerts test", Vec::new()).expect("valid config")
    };
    let start = (wall_ms() - 3 * 3_600_000) / MINUTE * MINUTE;
    let alerts_topic = format!("{run}.alerts");

    // Phase 1: the water rises to 45 cm; the station freezes and recovers.
    produce(&brokers, &run, &readings(start, 0, 33)).await;
    let shutdown = CancellationToken::new();
    let first = tokio::spawn(pipeline::run(settings(), Arc::new(Registry::empty()), Shared::default(), shutdown.clone()));
    wait_for(&brokers, &alerts_topic, "the emergency escalation", |events| {
        lifecycle(events, "underpass-ponding").iter().any(|(_, s)| s == "emergency")
    })
    .await;

    // Alertmanager has it, with our labels.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut found = None;
    while found.is_none() && std::time::Instant::now() < deadline {
        let alerts: Vec<serde_json::Value> = reqwest::get(format!("{am}/api/v2/alerts?active=true")).await.unwrap().json().await.unwrap();
        found = alerts.into_iter().find(|a| a["labels"]["alertname"] == "underpass-ponding" && a["labels"]["sensor_id"] == "up-1");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let found = found.expect("Alertmanager shows the underpass alert");
    assert_eq!(found["labels"]["severity"], "emergency");
    assert_eq!(found["labels"]["district"], "haidian");
    assert!(found["annotations"]["summary"].as_str().unwrap().contains("up-1"));

    shutdown.cancel();
    first.await.unwrap().expect("first run");

    // Phase 2: a new process restores the alert from the changelog and sees the drain.
    let shutdown = CancellationToken::new();
    let shared = Shared::default();
    let second = tokio::spawn(pipeline::run(settings(), Arc::new(Registry::empty()), shared.clone(), shutdown.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let restored = shared.alerts.list("firing");
        if restored.iter().any(|a| a.rule == "underpass-ponding" && a.severity == "emergency") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not restored as firing from the changelog: {restored:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    produce(&brokers, &run, &readings(start, 33, 70)).await;
    let events = wait_for(&brokers, &alerts_topic, "the resolution", |events| {
        lifecycle(events, "underpass-ponding").iter().any(|(c, _)| c == "resolved")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    shutdown.cancel();
    second.await.unwrap().expect("second run");

    let expected: Vec<(String, String)> = [
        ("fired", "info"),
        ("escalated", "warning"),
        ("escalated", "critical"),
        ("escalated", "emergency"),
        ("deescalated", "critical"),
        ("deescalated", "warning"),
        ("deescalated", "info"),
        ("resolved", "info"),
    ]
    .map(|(c, s)| (c.to_owned(), s.to_owned()))
    .to_vec();
    let events = alert_events(&brokers, &alerts_topic, events.len());
    assert_eq!(lifecycle(&events, "underpass-ponding"), expected);
    assert_eq!(lifecycle(&events, "pm25-stuck"), vec![("fired".into(), "warning".into()), ("resolved".into(), "warning".into())]);
    // Any event seen twice (a replay) is the same event: same id, same content.
    let mut by_id: BTreeMap<&str, &AlertEvent> = BTreeMap::new();
    for e in &events {
        if let Some(previous) = by_id.insert(&e.event_id, e) {
            assert_eq!(previous, e, "event {} re-sent with different content", e.event_id);
        }
    }
    let fired: Vec<&AlertEvent> = events.iter().filter(|e| e.rule == "underpass-ponding" && e.change == "fired").collect();
    assert!(fired.iter().all(|e| e.event_id == fired[0].event_id), "one firing, however often delivered");
    let escalation = events.iter().find(|e| e.rule == "underpass-ponding" && e.severity == "emergency").unwrap();
    assert_eq!(escalation.starts_at_ms, fired[0].starts_at_ms, "the episode keeps its start across the restart");

    // Alertmanager no longer lists it as active once resolved.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let alerts: Vec<serde_json::Value> = reqwest::get(format!("{am}/api/v2/alerts?active=true")).await.unwrap().json().await.unwrap();
        let ours: Vec<&serde_json::Value> =
            alerts.iter().filter(|a| a["labels"]["alertname"] == "underpass-ponding" && a["labels"]["sensor_id"] == "up-1").collect();
        if ours.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "Alertmanager still shows the resolved alert as active: {ours:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // And InfluxDB has one point per alert event.
    let points = common::export(&influx, r#"{__name__="alert_value",rule="underpass-ponding",scope="sensor"}"#).await;
    let count: usize = points.iter().filter(|s| s.labels.get("district").is_some_and(|d| d == "haidian")).map(|s| s.points.len()).sum();
    assert!(count >= expected.len(), "{count} alert points");
    std::fs::remove_file(&rules_path).ok();
}
