//! Scale-out: two `citysense` instances in one consumer group (both stages) over 4-partition
//! topics give exactly the window and area results of a single instance — also when one
//! of them crashes mid-run (issue 8's fault 4).
//!
//! This runs on librdkafka's mock cluster over its TCP bootstrap address, not on tansu:
//! tansu 0.6.0 cannot hold a consumer group of two members yet (../shared/STACK.md). The
//! single-instance path against the real broker is tests/broker_to_influx.rs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use citysense::config;
use citysense::model::Kind;
use citysense::pipeline::{self, wall_ms, Shared};
use citysense::rollup::encoding::AggregateFormat;
use citysense::sim::publish::RecordPublisher;
use citysense::sim::{City, FaultRates, Generator, SimFormat, SimRecord};
use rdkafka::mocking::MockCluster;
use tokio_util::sync::CancellationToken;

const PARTITIONS: i32 = 4;
const MINUTE: i64 = 60_000;

/// Every point an instance wrote, by identity (measurement, tags, timestamp) → value as
/// JSON, asserting that a point written twice carries the same value (idempotence).
#[derive(Default)]
struct Points(BTreeMap<String, String>);

impl Points {
    fn add(&mut self, identity: String, value: String) {
        if let Some(previous) = self.0.insert(identity.clone(), value.clone()) {
            assert_eq!(previous, value, "{identity} written twice with different values");
        }
    }

    fn collect(instances: &[&Shared]) -> Points {
        let mut points = Points::default();
        for shared in instances {
            for r in shared.store.query(&citysense::sink::memory::SeriesQuery { limit: usize::MAX, ..Default::default() }) {
                points.add(format!("{} {} {} {}", r.kind, r.sensor_id, r.window, r.end_ms), serde_json::to_string(&*r).unwrap());
            }
            for a in shared.areas.history() {
                points.add(
                    format!("area {} {} {} {} {}", a.kind, a.window, a.level.as_str(), a.area, a.end_ms),
                    serde_json::to_string(&*a).unwrap(),
                );
            }
        }
        points
    }
}

fn settings(brokers: &str, group: &str) -> config::Settings {
    let text = format!(
        r#"
[kafka]
brokers = "{brokers}"
group_id = "{group}"
properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }}
[windows]
pm25 = ["1m", "10m"]
dust = ["10m"]
water = ["1m"]
charging = ["5m"]
[pipeline]
commit_interval = "200ms"
[rollup]
group_id = "{group}-areas"
topic = "{group}.aggregates"
"#
    );
    config::parse(&text, "scale-out test", Vec::new()).expect("valid config")
}

fn publish(brokers: &str, records: &[SimRecord], start: i64) {
    let publisher = RecordPublisher::new(brokers, RecordPublisher::default_topics()).unwrap();
    for r in records {
        publisher.send(r, None).unwrap();
    }
    // A clock record per partition, long after the data, closes every data window.
    for kind in Kind::ALL {
        for p in 0..PARTITIONS {
            let sensor = format!("clock-{kind}-{p}");
            let ts = start + 50 * MINUTE;
            let payload = match kind {
                Kind::Charging => format!(r#"{{"pile_id":"{sensor}","ts":{ts},"status":"Available"}}"#),
                _ => format!(r#"{{"sensor_id":"{sensor}","ts":{ts},"value":0.1,"unit":"{}"}}"#, kind.canonical_unit()),
            };
            let clock = SimRecord {
                kind,
                key: sensor,
                payload: payload.into_bytes(),
                content_type: "application/json",
                ts_ms: ts,
                true_ts_ms: ts,
                fault: None,
                value: 0.1,
                unit: kind.canonical_unit(),
                seq: None,
            };
            publisher.send(&clock, Some(p)).unwrap();
        }
    }
    publisher.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(publisher.failed(), 0);
}

/// Waits until the points of `instances` stop changing (and, with `target`, reach it).
async fn settle(instances: &[&Shared], target: Option<usize>) -> Points {
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut last, mut stable_since) = (0, Instant::now());
    loop {
        let n = Points::collect(instances).0.len();
        if n != last {
            (last, stable_since) = (n, Instant::now());
        }
        let reached = target.is_none_or(|t| n >= t);
        if n > 0 && reached && stable_since.elapsed() > Duration::from_secs(3) {
            return Points::collect(instances);
        }
        assert!(Instant::now() < deadline, "results did not settle: {n} points, target {target:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_in_one_group_write_exactly_what_one_instance_writes() {
    let cluster = MockCluster::new(1).unwrap();
    let defaults = config::Settings::defaults();
    for t in &defaults.inputs {
        cluster.create_topic(&t.name, PARTITIONS, 1).unwrap();
    }
    cluster.create_topic(&defaults.deadletter_topic, 1, 1).unwrap();
    cluster.create_topic(&defaults.checkpoint_topic, 1, 1).unwrap();
    // An aggregates topic per group, so a group's area stage reads only its own stage 1.
    for group in ["single", "pair", "crash"] {
        cluster.create_topic(&format!("{group}.aggregates"), PARTITIONS, 1).unwrap();
    }
    let brokers = cluster.bootstrap_servers();

    let start = (wall_ms() - 2 * 3_600_000) / MINUTE * MINUTE;
    let city = City::generate(60);
    let registry = Arc::new(city.registry());
    let mut generator = Generator::new(city, 3, start, SimFormat::Mixed, FaultRates::REALISTIC);
    generator.set_interval(10_000);
    let mut records = Vec::new();
    generator.emit_until(start + 20 * MINUTE, &mut records);
    publish(&brokers, &records, start);

    // One instance.
    let single = Shared::default();
    let shutdown = CancellationToken::new();
    let one = tokio::spawn(pipeline::run(settings(&brokers, "single"), registry.clone(), single.clone(), shutdown.clone()));
    let expected = settle(&[&single], None).await;
    shutdown.cancel();
    one.await.unwrap().unwrap();
    let windows = expected.0.keys().filter(|k| !k.starts_with("area ")).count();
    let areas = expected.0.len() - windows;
    assert!(windows > 500 && areas > 300, "{windows} windows, {areas} area results");

    // Two instances in another group; the second joins while the first is running, and
    // writes its windows to the aggregates topic in JSON, as during a rolling upgrade with
    // `rollup.format = "json"`: both stages 2 read both formats.
    let (a, b) = (Shared::default(), Shared::default());
    let shutdown = CancellationToken::new();
    let first = tokio::spawn(pipeline::run(settings(&brokers, "pair"), registry.clone(), a.clone(), shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut writes_json = settings(&brokers, "pair");
    writes_json.rollup.as_mut().expect("the area stage runs").format = AggregateFormat::Json;
    let second = tokio::spawn(pipeline::run(writes_json, registry.clone(), b.clone(), shutdown.clone()));
    let pair = settle(&[&a, &b], Some(expected.0.len())).await;
    shutdown.cancel();
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();

    let worked = |s: &Shared| s.stats.records_in() > 0;
    assert!(worked(&a) && worked(&b), "both instances consumed: {} and {} records", a.stats.records_in(), b.stats.records_in());
    let missing: Vec<&String> = expected.0.keys().filter(|k| !pair.0.contains_key(*k)).take(5).collect();
    let extra: Vec<&String> = pair.0.keys().filter(|k| !expected.0.contains_key(*k)).take(5).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}, extra {extra:?}");
    for (identity, value) in &expected.0 {
        assert_eq!(&pair.0[identity], value, "{identity}");
    }

    // Two instances again, and one crashes mid-run: its runtime is dropped with every task
    // (no drain, no final checkpoint, no commit), as a SIGKILL would. The survivor takes its
    // partitions over after the session timeout, restores their checkpoints and completes
    // them; what the crashed instance wrote before plus what the survivor writes is the
    // single instance's result, and points written by both carry the same values.
    let (survivor, crashed) = (Shared::default(), Shared::default());
    let shutdown = CancellationToken::new();
    let first = tokio::spawn(pipeline::run(settings(&brokers, "crash"), registry.clone(), survivor.clone(), shutdown.clone()));
    let doomed = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    doomed.spawn(pipeline::run(settings(&brokers, "crash"), registry.clone(), crashed.clone(), CancellationToken::new()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while crashed.stats.records_in() < 500 {
        assert!(Instant::now() < deadline, "the second instance never got partitions");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    doomed.shutdown_background();
    let crashed_after = crashed.stats.records_in();
    let after_crash = settle(&[&survivor, &crashed], Some(expected.0.len())).await;
    shutdown.cancel();
    first.await.unwrap().unwrap();
    eprintln!("crash: the second instance had consumed {crashed_after} records; the survivor {}", survivor.stats.records_in());
    let missing: Vec<&String> = expected.0.keys().filter(|k| !after_crash.0.contains_key(*k)).take(5).collect();
    let extra: Vec<&String> = after_crash.0.keys().filter(|k| !expected.0.contains_key(*k)).take(5).collect();
    assert!(missing.is_empty() && extra.is_empty(), "after a crash: missing {missing:?}, extra {extra:?}");
    for (identity, value) in &expected.0 {
        assert_eq!(&after_crash.0[identity], value, "after a crash: {identity}");
    }
    drop(cluster);
}
