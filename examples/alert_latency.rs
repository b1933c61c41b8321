//! Alert latency for scripts/bench.sh: citysense runs (in process, InfluxDB sink on) while
//! a producer writes PM2.5 readings stamped with the wall clock at a steady rate; every
//! sensor alternates between 200 and 20 µg/m³ minute by minute, so each 1-minute window
//! that closes fires or resolves a threshold alert. The latency of an alert event is the
//! time it is read from the alerts topic minus the time its window's closing record was
//! produced: event time = production time here, so that is the window's end + allowed
//! lateness + out-of-orderness (the first record stamped at or after that instant closes
//! the window). Prints one JSON line with the achieved rate and p50/p99/max.
//!
//! `cargo run --release --example alert_latency -- BROKERS TOPIC_PREFIX RATE SECONDS SENSORS INFLUX_URL`

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use citysense::pipeline::{self, wall_ms, Shared};
use citysense::registry::Registry;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, TopicPartitionList};
use tokio_util::sync::CancellationToken;

mod common;

const OUT_OF_ORDERNESS_MS: i64 = 1_000;
const LATENESS_MS: i64 = 0;
const MINUTE_MS: i64 = 60_000;

// The allocator the citysense binary uses (src/main.rs), so that this measures the same.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    // As the binary does (src/main.rs), so that this measures the same.
    citysense::allocator::use_small_pages();
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, prefix, rate, seconds, sensors, influx] = &args[..] else {
        eprintln!("usage: alert_latency BROKERS TOPIC_PREFIX RATE SECONDS SENSORS INFLUX_URL");
        std::process::exit(2);
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let (rate, seconds, sensors): (u64, u64, usize) =
        (rate.parse().expect("a rate"), seconds.parse().expect("seconds"), sensors.parse().expect("a sensor count"));
    let rules = std::env::temp_dir().join(format!("alert-latency-rules-{}.toml", std::process::id()));
    std::fs::write(&rules, include_str!("common/minute_mean_rule.toml")).expect("rules file written");
    let sections = format!(
        r#"
[windows]
out_of_orderness = "{OUT_OF_ORDERNESS_MS}ms"
allowed_lateness = "{LATENESS_MS}ms"
pm25 = ["1m"]
{alerts}flap_max_transitions = 100000
"#,
        alerts = common::alerts_section(prefix, &rules)
    );
    let text = common::bench_config(brokers, prefix, "latency", influx, &sections);
    let settings = citysense::config::parse(&text, "alert-latency", std::env::vars()).expect("valid config");
    let shared = Shared::default();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(pipeline::run(settings, Arc::new(Registry::empty()), shared.clone(), shutdown.clone()));

    let stop = Arc::new(AtomicBool::new(false));
    let latencies = std::thread::spawn({
        let (brokers, topic, stop) = (brokers.clone(), format!("{prefix}.alerts"), stop.clone());
        move || read_alert_latencies(&brokers, &topic, &stop)
    });
    // Let the pipeline join its group before the clock starts.
    while !shared.stats.ready.load(Ordering::Relaxed) {
        if run.is_finished() {
            eprintln!("the pipeline stopped before it was ready: {:?}", run.await);
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let produced = Arc::new(AtomicU64::new(0));
    let producer = std::thread::spawn({
        let (brokers, topic, produced) = (brokers.clone(), format!("{prefix}.pm25"), produced.clone());
        move || produce_steadily(&brokers, &topic, rate, Duration::from_secs(seconds), sensors, &produced)
    });
    let started = Instant::now();
    let _ = tokio::task::spawn_blocking(move || producer.join()).await;
    let produce_secs = started.elapsed().as_secs_f64();
    // The last windows close with the last records; give the alerts time to arrive.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut samples, mut handed) =
        tokio::task::spawn_blocking(move || latencies.join()).await.ok().and_then(Result::ok).unwrap_or_default();
    samples.sort_unstable();
    handed.sort_unstable();
    let at = |samples: &[i64], q: f64| samples.get(((samples.len().max(1) - 1) as f64 * q).round() as usize).copied().unwrap_or(-1);
    let produced = produced.load(Ordering::Relaxed);
    println!(
        "{{\"target_per_second\":{rate},\"produced\":{produced},\"produced_per_second\":{:.0},\"consumed\":{},\"alert_events\":{},\"p50_ms\":{},\"p99_ms\":{},\"max_ms\":{},\"handed_p50_ms\":{},\"handed_p99_ms\":{}}}",
        produced as f64 / produce_secs,
        shared.stats.records_in(),
        samples.len(),
        at(&samples, 0.5),
        at(&samples, 0.99),
        samples.last().copied().unwrap_or(-1),
        at(&handed, 0.5),
        at(&handed, 0.99),
    );
    shutdown.cancel();
    let _ = run.await;
    let _ = std::fs::remove_file(rules);
}

/// Sends `rate` readings per second for `duration`, stamped with the wall clock, in 10 ms
/// slices; sensor i's value is 200 in even minutes and 20 in odd ones.
fn produce_steadily(brokers: &str, topic: &str, rate: u64, duration: Duration, sensors: usize, produced: &AtomicU64) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let ids: Vec<String> = (0..sensors).map(|i| format!("lat-pm-{i:06}")).collect();
    let started = Instant::now();
    let (mut sent, mut next_sensor) = (0u64, 0usize);
    let mut payload = String::with_capacity(128);
    while started.elapsed() < duration {
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            let now = wall_ms();
            let value = if (now / MINUTE_MS) % 2 == 0 { 200.0 } else { 20.0 };
            let id = &ids[next_sensor];
            next_sensor = (next_sensor + 1) % ids.len();
            payload.clear();
            // Written in place: this loop shares the machine with the pipeline it measures.
            let _ = write!(payload, r#"{{"sensor_id":"{id}","ts":{now},"value":{value},"unit":"ug/m3"}}"#);
            match producer.send(BaseRecord::to(topic).key(id.as_str()).payload(payload.as_str())) {
                Ok(()) => sent += 1,
                Err((_, _)) => {
                    producer.poll(Duration::from_millis(1));
                }
            }
        }
        producer.poll(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = producer.flush(Duration::from_secs(30));
    produced.store(sent, Ordering::Relaxed);
}

/// What the reader needs of an alert event (read without building a JSON tree: the reader
/// shares the machine with the pipeline, and a boundary brings thousands of events at once).
#[derive(serde::Deserialize)]
struct SeenEvent<'a> {
    at_ms: i64,
    #[serde(borrow)]
    rule: std::borrow::Cow<'a, str>,
}

/// Reads alert events until `stop`; each latency in ms from its window's closing record,
/// until read and until handed to the producer (the record's create time, which librdkafka
/// stamps when citysense produces it — the rest is the broker's and the reader's share).
fn read_alert_latencies(brokers: &str, topic: &str, stop: &AtomicBool) -> (Vec<i64>, Vec<i64>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("alert-latency-reader-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .create()
        .expect("consumer");
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition_offset(topic, 0, rdkafka::Offset::Beginning).expect("partition");
    consumer.assign(&partitions).expect("assign");
    let (mut out, mut handed) = (Vec::new(), Vec::new());
    while !stop.load(Ordering::Relaxed) {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else { continue };
        let received = wall_ms();
        let Some(event) = message.payload().and_then(|p| serde_json::from_slice::<SeenEvent>(p).ok()) else { continue };
        if event.rule == "pm25-minute-mean" {
            let closing = event.at_ms + LATENESS_MS + OUT_OF_ORDERNESS_MS;
            out.push(received - closing);
            if let Some(created) = message.timestamp().to_millis() {
                handed.push(created - closing);
            }
        }
    }
    (out, handed)
}
