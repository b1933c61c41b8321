//! End to end against the real services started by scripts/test.sh: thousands of JSON and
//! protobuf readings (with malformed, unknown-unit, out-of-range, non-finite, duplicate,
//! future-stamped and late records) go through the tansu broker and the pipeline into
//! VictoriaMetrics over the InfluxDB v2 write API. Every window read back must equal a
//! naive reference computed here from the same input, the dead-letter topic must hold
//! exactly the bad records with the right reasons, and the committed offsets must stop at
//! the first record whose window is still open.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use citysense::config;
use citysense::model::Kind;
use citysense::pipeline::{self, wall_ms, Shared};
use citysense::registry::Registry;
use citysense::sim::generator::expected_reason;
use citysense::sim::{City, Fault, FaultRates, Generator, SimFormat, SimRecord};
use tokio_util::sync::CancellationToken;

const PARTITIONS: i32 = 4;
const MINUTE: i64 = 60_000;
const OUT_OF_ORDERNESS: i64 = 30_000;
const LATENESS: i64 = 2 * MINUTE;

/// The windows this test configures, per kind: (label, size).
fn windows(kind: Kind) -> &'static [(&'static str, i64)] {
    match kind {
        Kind::Pm25 => &[("1m", MINUTE), ("10m", 10 * MINUTE)],
        Kind::Dust => &[("10m", 10 * MINUTE)],
        Kind::Water => &[("1m", MINUTE)],
        Kind::Charging => &[("5m", 5 * MINUTE)],
    }
}

/// The test's own partitioner (FNV-1a), so the reference knows each record's partition.
fn partition_of(key: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in key.bytes() {
        hash = (hash ^ b as u32).wrapping_mul(0x0100_0193);
    }
    (hash % PARTITIONS as u32) as i32
}

/// The reference unit table, written independently of `decode::units`.
fn canonical(value: f64, unit: &str) -> f64 {
    match unit {
        "mg/m3" => value * 1000.0,
        "cm" => value / 100.0,
        "mm" => value / 1000.0,
        _ => value,
    }
}

struct Produced {
    record: SimRecord,
    partition: i32,
    offset: i64,
}

#[derive(Default, Debug)]
struct RefWindow {
    values: Vec<f64>,
}

/// What the pipeline must produce: windows by (kind, sensor, label, end) and dead letters
/// by "topic/partition/offset".
struct Expected {
    windows: BTreeMap<(Kind, String, String, i64), RefWindow>,
    dead_letters: BTreeMap<String, String>,
}

/// The naive reference: per partition in offset order, decide each record's fate from the
/// generator's ground truth and the watermark rule, and collect window values.
fn reference(produced: &[Produced], topics: &HashMap<Kind, String>) -> Expected {
    let mut expected = Expected { windows: BTreeMap::new(), dead_letters: BTreeMap::new() };
    let mut by_partition: BTreeMap<(Kind, i32), Vec<&Produced>> = BTreeMap::new();
    for p in produced {
        by_partition.entry((p.record.kind, p.partition)).or_default().push(p);
    }
    for ((kind, partition), mut records) in by_partition {
        records.sort_by_key(|p| p.offset);
        let mut max_ts = i64::MIN;
        let mut seen_ts = HashSet::new();
        let mut seen_seq = HashSet::new();
        for p in records {
            let r = &p.record;
            let source = format!("{}/{partition}/{}", topics[&kind], p.offset);
            let decode_fault = r.fault.filter(|f| !matches!(f, Fault::Duplicate | Fault::Late));
            if let Some(fault) = decode_fault {
                expected.dead_letters.insert(source, expected_reason(kind, fault).as_str().to_owned());
                continue;
            }
            let watermark = max_ts.saturating_sub(OUT_OF_ORDERNESS);
            let late = windows(kind).iter().any(|(_, size)| r.ts_ms.div_euclid(*size) * size + size + LATENESS <= watermark);
            if late {
                expected.dead_letters.insert(source, "late".into());
                continue;
            }
            if seen_ts.contains(&(r.key.clone(), r.ts_ms)) || r.seq.is_some_and(|s| seen_seq.contains(&(r.key.clone(), s))) {
                expected.dead_letters.insert(source, "duplicate".into());
                continue;
            }
            seen_ts.insert((r.key.clone(), r.ts_ms));
            if let Some(s) = r.seq {
                seen_seq.insert((r.key.clone(), s));
            }
            max_ts = max_ts.max(r.ts_ms);
            for (label, size) in windows(kind) {
                let end = r.ts_ms.div_euclid(*size) * size + size;
                expected.windows.entry((kind, r.key.clone(), label.to_string(), end)).or_default().values.push(canonical(r.value, r.unit));
            }
        }
    }
    expected
}

/// VictoriaMetrics keeps about 12 significant digits of a float, so values read back are
/// compared with a relative tolerance.
/// Area key → (sensors reporting, mean of sensor means, max of sensor means), computed
/// from the reference windows by grouping on each sensor's grid, street and district.
type AreaKey = (Kind, String, i64, &'static str, String);

fn area_reference(
    windows: &BTreeMap<(Kind, String, String, i64), RefWindow>,
    sensor_areas: &HashMap<String, (String, String, String)>,
) -> BTreeMap<AreaKey, (u32, Option<f64>, Option<f64>)> {
    let mut groups: BTreeMap<AreaKey, Vec<f64>> = BTreeMap::new();
    for ((kind, sensor, window, end), w) in windows {
        // The clock sensors have no area and take part in no roll-up.
        let Some(area) = sensor_areas.get(sensor) else { continue };
        let mean = w.values.iter().sum::<f64>() / w.values.len() as f64;
        for (level, key) in [("grid", area.0.clone()), ("street", area.1.clone()), ("district", area.2.clone())] {
            groups.entry((*kind, window.clone(), *end, level, key)).or_default().push(mean);
        }
    }
    groups
        .into_iter()
        .map(|(key, means)| {
            let level_kind = key.0 != Kind::Charging;
            let mean = level_kind.then(|| means.iter().sum::<f64>() / means.len() as f64);
            let max = level_kind.then(|| means.iter().copied().fold(f64::NEG_INFINITY, f64::max));
            (key, (means.len() as u32, mean, max))
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_in_influx_match_a_naive_reference_and_bad_records_are_dead_lettered() {
    let brokers = common::kafka();
    let influx = common::influx();
    let run = common::unique("it");
    let topics: HashMap<Kind, String> = Kind::ALL.iter().map(|k| (*k, format!("{run}.{k}"))).collect();
    let deadletter = format!("{run}.deadletter");
    let aggregates = format!("{run}.aggregates");
    let mut names: Vec<&str> = topics.values().map(String::as_str).collect();
    names.sort();
    common::create_topics(&brokers, &names, PARTITIONS).await;
    common::create_topics(&brokers, &[deadletter.as_str(), format!("{run}.checkpoints").as_str()], 1).await;
    common::create_topics(&brokers, &[aggregates.as_str()], PARTITIONS).await;

    // ~40 sensors of all four feeds, 10 s apart, 20 minutes of data two hours ago.
    let mut city = City::generate(40);
    for sensor in &mut city.sensors {
        sensor.id = format!("{run}-{}", sensor.id);
        sensor.area.grid = format!("{run}-{}", sensor.area.grid).into();
        sensor.area.street = format!("{run}-{}", sensor.area.street).into();
        sensor.area.district = format!("{run}-{}", sensor.area.district).into();
    }
    let start = (wall_ms() - 2 * 3_600_000) / MINUTE * MINUTE;
    let faults =
        FaultRates { malformed: 0.01, unknown_unit: 0.01, out_of_range: 0.01, non_finite: 0.01, duplicate: 0.01, late: 0.01, future: 0.01 };
    let sensor_areas: HashMap<String, (String, String, String)> = city
        .sensors
        .iter()
        .map(|s| (s.id.clone(), (s.area.grid.to_string(), s.area.street.to_string(), s.area.district.to_string())))
        .collect();
    let mut generator = Generator::new(city, 7, start, SimFormat::Mixed, faults);
    generator.set_interval(10_000);
    let mut records = Vec::new();
    generator.emit_until(start + 20 * MINUTE, &mut records);
    assert!(records.len() > 4_000, "{} records", records.len());
    let faults_by_kind: HashSet<(Kind, Fault)> = records.iter().filter_map(|r| r.fault.map(|f| (r.kind, f))).collect();
    for fault in [Fault::Malformed, Fault::UnknownUnit, Fault::OutOfRange, Fault::NonFinite, Fault::Duplicate, Fault::Late, Fault::Future] {
        assert!(faults_by_kind.iter().any(|(_, f)| *f == fault), "no {fault:?} in the input");
    }

    let producer = common::producer(&brokers);
    let mut pending = Vec::new();
    for record in records {
        let partition = partition_of(&record.key);
        let headers = rdkafka::message::OwnedHeaders::new()
            .insert(rdkafka::message::Header { key: "content-type", value: Some(record.content_type) });
        let future = producer
            .send_result(
                rdkafka::producer::FutureRecord::to(&topics[&record.kind])
                    .partition(partition)
                    .key(record.key.as_bytes())
                    .payload(&record.payload)
                    .headers(headers),
            )
            .map_err(|(e, _)| e)
            .expect("queued");
        pending.push((record, partition, future));
    }
    let mut produced = Vec::new();
    for (record, partition, future) in pending {
        let delivery = future.await.expect("delivery").map_err(|(e, _)| e).expect("delivered");
        produced.push(Produced { record, partition, offset: delivery.offset });
    }
    // One clock record per partition, 30 minutes after the data, closes every data window.
    let mut clock_offsets = HashMap::new();
    for kind in Kind::ALL {
        for p in 0..PARTITIONS {
            let sensor = format!("{run}-clock-{kind}-{p}");
            let ts = start + 50 * MINUTE;
            let payload = match kind {
                Kind::Charging => format!(r#"{{"pile_id":"{sensor}","ts":{ts},"status":"Available"}}"#),
                _ => format!(r#"{{"sensor_id":"{sensor}","ts":{ts},"value":0.1,"unit":"{}"}}"#, kind.canonical_unit()),
            };
            let offset = common::produce(&producer, &topics[&kind], p, sensor.as_bytes(), payload.as_bytes(), "application/json").await;
            clock_offsets.insert((kind, p), offset);
        }
    }
    let expected = reference(&produced, &topics);

    let group = format!("{run}-group");
    let config_text = common::run_config(&brokers, &run)
        + &format!(
            r#"
[windows]
pm25 = ["1m", "10m"]
dust = ["10m"]
water = ["1m"]
charging = ["5m"]
[influx]
url = "{influx}"
org = "citysense"
bucket = "citysense"
batch_size = 500
flush_interval = "200ms"
[pipeline]
commit_interval = "200ms"
"#
        );
    let settings = config::parse(&config_text, "integration test", Vec::new()).expect("valid config");
    let shared = Shared::default();
    let shutdown = CancellationToken::new();
    let pipeline = tokio::spawn(pipeline::run(settings, Arc::new(Registry::empty()), shared.clone(), shutdown.clone()));

    // Wait until every expected window is in VictoriaMetrics.
    let selector = format!(r#"{{__name__=~"(pm25|dust|water|charging)_count",sensor_id=~"{run}-.*"}}"#);
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let mut points = 0;
    while std::time::Instant::now() < deadline {
        points = common::export(&influx, &selector)
            .await
            .iter()
            .filter(|s| !s.labels["sensor_id"].contains("-clock-"))
            .map(|s| s.points.len())
            .sum::<usize>();
        if points >= expected.windows.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(points, expected.windows.len(), "window points in VictoriaMetrics");
    // And every area roll-up.
    let expected_areas = area_reference(&expected.windows, &sensor_areas);
    let area_selector = format!(r#"{{__name__="area_sensors_reporting",district=~"{run}-.*"}}"#);
    let mut area_points = 0;
    while std::time::Instant::now() < deadline {
        area_points = common::export(&influx, &area_selector).await.iter().map(|s| s.points.len()).sum::<usize>();
        if area_points >= expected_areas.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(area_points, expected_areas.len(), "area points in VictoriaMetrics");
    let dead_letters = common::read_dead_letters(&brokers, &deadletter, expected.dead_letters.len(), Duration::from_secs(60));

    // Let the last commits land, then stop.
    tokio::time::sleep(Duration::from_secs(1)).await;
    shutdown.cancel();
    pipeline.await.expect("pipeline task").expect("pipeline ran");

    // Every window matches the reference.
    let all = common::export(&influx, &format!(r#"{{sensor_id=~"{run}-.*"}}"#)).await;
    let mut actual: HashMap<(String, String, String, i64), f64> = HashMap::new();
    for series in &all {
        let name = &series.labels["__name__"];
        let (sensor, window) = (&series.labels["sensor_id"], &series.labels["window"]);
        for (ts, value) in &series.points {
            let key = (name.clone(), sensor.clone(), window.clone(), *ts);
            if let Some(previous) = actual.insert(key.clone(), *value) {
                assert_eq!(previous, *value, "the same point written twice with different values: {key:?}");
            }
        }
    }
    let mut checked = 0;
    for ((kind, sensor, window, end), w) in &expected.windows {
        let get = |field: &str| {
            actual
                .get(&(format!("{kind}_{field}"), sensor.clone(), window.clone(), *end))
                .copied()
                .unwrap_or_else(|| panic!("{kind}_{field} missing for {sensor} {window} ending {end}"))
        };
        assert_eq!(get("count"), w.values.len() as f64, "count of {sensor} {window} ending {end}");
        if *kind != Kind::Charging {
            let n = w.values.len() as f64;
            let mean = w.values.iter().sum::<f64>() / n;
            let min = w.values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = w.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            assert!(close(get("mean"), mean), "mean of {sensor} {window} ending {end}: {} vs {mean}", get("mean"));
            assert!(close(get("min"), min), "min of {sensor} {window} ending {end}: {} vs {min}", get("min"));
            assert!(close(get("max"), max), "max of {sensor} {window} ending {end}: {} vs {max}", get("max"));
        }
        checked += 1;
    }
    assert!(checked > 500, "{checked} windows checked");

    // Area roll-ups: mean and max of the sensor means, sensors reporting, per grid, street
    // and district, against the same reference windows.
    let areas = common::export(&influx, &format!(r#"{{__name__=~"area_.*",district=~"{run}-.*"}}"#)).await;
    let mut actual_areas: HashMap<(String, String, String, String, String, i64), f64> = HashMap::new();
    for series in &areas {
        let l = |k: &str| series.labels.get(k).cloned().unwrap_or_default();
        for (ts, value) in &series.points {
            let key = (l("__name__"), l("kind"), l("window"), l("level"), l("area"), *ts);
            if let Some(previous) = actual_areas.insert(key.clone(), *value) {
                assert_eq!(previous, *value, "an area point written twice with different values: {key:?}");
            }
        }
    }
    for ((kind, window, end, level, area), (reporting, mean, max)) in &expected_areas {
        let get = |field: &str| {
            actual_areas
                .get(&(format!("area_{field}"), kind.to_string(), window.clone(), level.to_string(), area.clone(), *end))
                .copied()
                .unwrap_or_else(|| panic!("area_{field} missing for {kind} {window} {level} {area} ending {end}"))
        };
        assert_eq!(get("sensors_reporting"), *reporting as f64, "{kind} {window} {level} {area} ending {end}");
        if let (Some(mean), Some(max)) = (mean, max) {
            assert!(close(get("mean"), *mean), "area mean {kind} {window} {level} {area} ending {end}: {} vs {mean}", get("mean"));
            assert!(close(get("max"), *max), "area max {kind} {window} {level} {area}");
        }
    }

    // The dead-letter topic holds exactly the bad records, byte for byte, with their reasons.
    let mut actual_dead: BTreeMap<String, String> = BTreeMap::new();
    for letter in &dead_letters {
        assert!(actual_dead.insert(letter.source.clone(), letter.reason.clone()).is_none(), "dead-lettered twice: {}", letter.source);
        let (topic, rest) = letter.source.split_once('/').unwrap();
        let (partition, offset) = rest.split_once('/').unwrap();
        let original = produced
            .iter()
            .find(|p| topics[&p.record.kind] == topic && p.partition.to_string() == partition && p.offset.to_string() == offset)
            .unwrap_or_else(|| panic!("dead letter {} is not a produced record", letter.source));
        assert_eq!(letter.payload, original.record.payload, "original bytes of {}", letter.source);
        assert_eq!(letter.key.as_deref(), Some(original.record.key.as_bytes()));
    }
    assert_eq!(actual_dead, expected.dead_letters);
    let reasons: HashSet<&str> = expected.dead_letters.values().map(String::as_str).collect();
    for reason in ["undecodable", "unknown_unit", "unknown_status", "out_of_range", "non_finite", "duplicate", "late", "future"] {
        assert!(reasons.contains(reason), "the input should exercise {reason}: {reasons:?}");
    }
    assert_eq!(shared.stats.rejected() as usize, expected.dead_letters.len());

    // Offsets: committed past each partition's last record, the clock record, whose window
    // is still open: the commit is covered by a checkpoint that holds that open window.
    let kafka = citysense::config::KafkaSettings { brokers: brokers.clone(), group_id: group.clone(), properties: Vec::new() };
    let checkpoints = citysense::source::changelog::read_latest(&kafka, &format!("{run}.checkpoints")).unwrap();
    for kind in Kind::ALL {
        let committed = common::committed(&brokers, &group, &topics[&kind], PARTITIONS);
        for p in 0..PARTITIONS {
            let end = clock_offsets[&(kind, p)] + 1;
            assert_eq!(committed[p as usize], Some(end), "{kind} partition {p}");
            let stream = format!("{group}/{}", topics[&kind]);
            let checkpoint = citysense::pipeline::checkpoint::decode(&checkpoints, &stream, p).unwrap().expect("a checkpoint");
            assert_eq!(checkpoint.position, end, "{kind} partition {p}: the checkpoint covers the commit");
        }
    }
}
