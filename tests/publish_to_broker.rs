//! The vendor-side subcommands against the real tansu broker: `replay` publishes an NDJSON
//! file line for line to the right topics with the right keys, and `simulate` publishes
//! exactly `--count` readings.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

fn topics(run: &str) -> Vec<String> {
    ["pm25", "dust", "water", "charging"].iter().map(|k| format!("{run}.{k}")).collect()
}

/// A record read back: (topic, key, payload).
type Record = (String, String, Vec<u8>);

/// Every record of the given topics.
fn read_all(brokers: &str, topics: &[String], expected: usize) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", common::unique("reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names).unwrap();
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    while out.len() < expected && started.elapsed() < Duration::from_secs(60) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(300)) {
            out.push((
                m.topic().to_owned(),
                String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                m.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
    // Nothing more than expected arrives.
    if let Some(Ok(m)) = consumer.poll(Duration::from_secs(2)) {
        panic!("unexpected extra record on {}", m.topic());
    }
    out
}

#[tokio::test]
async fn replay_publishes_each_line_to_its_kinds_topic_keyed_by_sensor() {
    let brokers = common::kafka();
    let run = common::unique("replay");
    let topics = topics(&run);
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    common::create_topics(&brokers, &names, 2).await;
    let out = Command::new(env!("CARGO_BIN_EXE_citysense"))
        .args(["replay", "tests/data/readings.ndjson", "--brokers", &brokers, "--topics", &topics.join(",")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("replayed 5 lines (1 skipped)"), "{stderr}");
    let records = read_all(&brokers, &topics, 5);
    let by_key: HashMap<&str, Vec<&Record>> = records.iter().fold(HashMap::new(), |mut m, r| {
        m.entry(r.1.as_str()).or_default().push(r);
        m
    });
    assert_eq!(by_key["hd-pm-0042"].len(), 2);
    assert!(by_key["hd-pm-0042"].iter().all(|r| r.0 == topics[0]));
    assert_eq!(by_key["hd-dust-001"][0].0, topics[1]);
    assert_eq!(by_key["hd-wl-up-001"][0].0, topics[2]);
    assert_eq!(by_key["cy-cp-10442"][0].0, topics[3]);
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/readings.ndjson")).unwrap();
    let first_line = file.lines().next().unwrap().as_bytes();
    assert!(records.iter().any(|r| r.2 == first_line), "lines are published byte for byte");
}

#[tokio::test]
async fn simulate_publishes_exactly_count_readings_in_protobuf() {
    let brokers = common::kafka();
    let run = common::unique("simulate");
    let topics = topics(&run);
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    common::create_topics(&brokers, &names, 2).await;
    let out = Command::new(env!("CARGO_BIN_EXE_citysense"))
        .args([
            "simulate",
            "--brokers",
            &brokers,
            "--topics",
            &topics.join(","),
            "--sensors",
            "50",
            "--rate",
            "0",
            "--count",
            "777",
            "--format",
            "protobuf",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let records = read_all(&brokers, &topics, 777);
    assert_eq!(records.len(), 777);
    assert!(records.iter().all(|r| r.2.first() != Some(&b'{')), "protobuf, not JSON");
    assert!(records.iter().any(|r| r.0 == topics[3]), "charging piles are simulated too");
}
