//! The physical limit for scripts/bench.sh: a bare rdkafka `BaseConsumer` that reads a
//! topic from the beginning and discards every record, with citysense's own consumer
//! settings (`source::kafka::consumer_config`, so the two cannot drift apart). Prints
//! records, bytes, seconds and records per second as one JSON line.
//!
//! `cargo run --release --example raw_consume -- BROKERS TOPIC[,TOPIC…] EXPECTED_RECORDS`

use std::time::{Duration, Instant};

use citysense::config::KafkaSettings;
use citysense::source::kafka::consumer_config;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, topic, expected] = &args[..] else {
        eprintln!("usage: raw_consume BROKERS TOPIC EXPECTED_RECORDS");
        std::process::exit(2);
    };
    let expected: u64 = expected.parse().expect("a record count");
    let group = format!("raw-consume-{}", std::process::id());
    let settings = KafkaSettings { brokers: brokers.clone(), group_id: group.clone(), properties: Vec::new() };
    let consumer: BaseConsumer = consumer_config(&settings, &group).create().expect("consumer");
    let topics: Vec<&str> = topic.split(',').collect();
    consumer.subscribe(&topics).expect("subscribe");
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut started: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while records < expected && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            started.get_or_insert_with(Instant::now);
            records += 1;
            bytes += m.payload().map_or(0, |p| p.len() as u64);
        }
    }
    let secs = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    println!("{{\"records\":{records},\"bytes\":{bytes},\"seconds\":{secs:.3},\"per_second\":{:.0}}}", records as f64 / secs.max(1e-9));
}
