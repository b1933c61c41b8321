//! The deploy/ kit is checked, not just shipped: the Grafana dashboard parses and every
//! query names a measurement and field the pipeline really writes (collected by encoding
//! the golden city's windows, an area roll-up and an alert event with the sink's own
//! encoders); the compose file and the Kubernetes manifests parse and wire what they claim.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use citysense::config;
use citysense::decode::Format;
use citysense::model::{AlertEvent, Kind};
use citysense::pipeline::core::{CoreSettings, InputRecord, Processor, SourcePartition};
use citysense::rollup::{AreaLevel, AreaResult};
use citysense::sim::City;
use citysense::sink::alerts::encode_alert;
use citysense::sink::line_protocol::{encode_area, encode_window};

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");

/// measurement → fields, from line protocol (`measurement,tags fields timestamp`).
fn fields_of(lines: &str, into: &mut BTreeMap<String, BTreeSet<String>>) {
    for line in lines.lines().filter(|l| !l.is_empty()) {
        let (head, rest) = line.split_once(' ').expect("line protocol");
        let measurement = head.split(',').next().unwrap().to_owned();
        let fields = rest.rsplit_once(' ').map_or(rest, |(f, _)| f);
        // Field values here are numbers, booleans or quoted strings without commas.
        for pair in fields.split(',') {
            let name = pair.split('=').next().unwrap().to_owned();
            into.entry(measurement.clone()).or_default().insert(name);
        }
    }
}

/// Everything the pipeline writes, by measurement.
fn written() -> BTreeMap<String, BTreeSet<String>> {
    let settings = config::parse(
        "[windows]\npm25 = [\"1m\", \"1h\"]\ndust = [\"10m\"]\nwater = [\"1m\"]\ncharging = [\"5m\"]\n[validation]\nmax_age = \"off\"\n",
        "deploy kit",
        Vec::new(),
    )
    .unwrap();
    let mut processor = Processor::new(CoreSettings::from(&settings), Arc::new(City::generate(12).registry()));
    let input = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/golden_input.ndjson")).unwrap();
    let mut emitted = Vec::new();
    for (offset, line) in input.lines().enumerate() {
        let kind = if line.contains("\"pile_id\"") {
            Kind::Charging
        } else {
            line.split("\"kind\":\"").nth(1).and_then(|r| r.split('"').next()).and_then(Kind::parse).unwrap_or(Kind::Pm25)
        };
        let record = InputRecord {
            source: SourcePartition { kind, partition: 0 },
            offset: offset as i64,
            format: Format::Auto,
            payload: Some(line.as_bytes()),
            content_type: None,
        };
        let _ = processor.process(record, 1_795_593_600_000 + 30 * 60_000, &mut emitted);
    }
    processor.drain(&mut emitted);
    let mut text = String::new();
    for e in &emitted {
        encode_window(&e.window, &mut text);
    }
    let area = AreaResult {
        kind: Kind::Charging,
        window: "5m".into(),
        start_ms: 0,
        end_ms: 300_000,
        level: AreaLevel::District,
        area: "d".into(),
        district: "d".into(),
        mean: Some(1.0),
        max: Some(2.0),
        sensors_reporting: 3,
        sensors_silent: Some(1),
        availability: Some(0.5),
        fault_ratio: Some(0.1),
        utilisation: Some(0.3),
        piles_offline: Some(1),
        hotspots: Some(2),
    };
    encode_area(&area, &mut text);
    let alert = AlertEvent {
        event_id: "e".into(),
        fingerprint: "f".into(),
        rule: "r".into(),
        status: "firing".into(),
        severity: "warning".into(),
        change: "fired".into(),
        starts_at: String::new(),
        starts_at_ms: 0,
        ends_at: None,
        ends_at_ms: None,
        at_ms: 0,
        scope: "sensor".into(),
        scope_key: "s".into(),
        grid: "g".into(),
        street: "s".into(),
        district: "d".into(),
        value: 1.0,
        threshold: 1.0,
        window: "1m".into(),
        summary: "s".into(),
        summary_zh: "s".into(),
        labels: BTreeMap::new(),
        acknowledged_by: None,
    };
    encode_alert(&alert, &mut text);
    let mut out = BTreeMap::new();
    fields_of(&text, &mut out);
    out
}

/// Every Flux query of a Grafana dashboard (panel targets and annotations).
fn queries(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("query", serde_json::Value::String(q)) => out.push(q.clone()),
                    _ => queries(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

fn quoted_after<'a>(query: &'a str, marker: &str) -> Vec<&'a str> {
    query.split(marker).skip(1).filter_map(|rest| rest.trim_start().strip_prefix('"')?.split('"').next()).collect()
}

#[test]
fn every_grafana_query_names_a_measurement_and_field_the_pipeline_writes() {
    let written = written();
    for kind in ["pm25", "dust", "water", "charging", "area", "alert"] {
        assert!(written.contains_key(kind), "{kind} missing from what the encoders write: {:?}", written.keys());
    }
    let text = std::fs::read_to_string(format!("{DEPLOY}/grafana/citysense.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "citysense-city");
    let mut found = Vec::new();
    queries(&dashboard, &mut found);
    assert!(found.len() >= 9, "{} queries", found.len());
    let mut measurements = BTreeSet::new();
    for query in &found {
        let names = quoted_after(query, "r._measurement ==");
        let fields = quoted_after(query, "r._field ==");
        assert!(!names.is_empty() && !fields.is_empty(), "a query without a measurement or field: {query}");
        for name in &names {
            let known = written.get(*name).unwrap_or_else(|| panic!("the pipeline writes no measurement {name:?}: {query}"));
            for field in &fields {
                assert!(known.contains(*field), "{name} has no field {field:?} (it has {known:?})");
            }
            measurements.insert(name.to_string());
        }
    }
    for shown in ["pm25", "dust", "water", "charging", "area", "alert"] {
        assert!(measurements.contains(shown), "the dashboard shows nothing of {shown}");
    }
    let annotations = &dashboard["annotations"]["list"];
    assert!(annotations.as_array().is_some_and(|a| !a.is_empty()), "alert annotations");
}

#[test]
fn compose_and_manifests_parse_and_wire_what_they_claim() {
    let compose: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(format!("{DEPLOY}/compose.yaml")).unwrap()).unwrap();
    for service in ["kafka", "influxdb", "grafana", "alertmanager", "citysense"] {
        assert!(compose["services"][service].is_mapping(), "compose has no {service} service");
    }
    let manifests = std::fs::read_to_string(format!("{DEPLOY}/k8s/citysense.yaml")).unwrap();
    let docs: Vec<serde_yaml::Value> =
        serde_yaml::Deserializer::from_str(&manifests).map(|d| serde::Deserialize::deserialize(d).expect("a YAML document")).collect();
    let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, BTreeSet::from(["ConfigMap", "Deployment", "Secret", "Service"]));
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    // The config in the ConfigMap is one citysense accepts (tokens come from the Secret).
    let configmap = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let toml = configmap["data"]["citysense.toml"].as_str().unwrap();
    let toml = toml.replace("/etc/citysense/registry.csv", concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/registry.csv"));
    let toml = toml.replace("/etc/citysense/rules.toml", concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/rules.toml"));
    config::parse(&toml, "k8s configmap", Vec::new()).unwrap_or_else(|e| panic!("the ConfigMap's config is refused: {e}"));
    let unit = std::fs::read_to_string(format!("{DEPLOY}/systemd/citysense.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/citysense run") && unit.contains("KillSignal=SIGTERM"));
}
