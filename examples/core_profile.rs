//! Runs the in-process core (the `core` criterion bench's loop) on a fixed input for a
//! number of passes, for profilers: almost every sample lands in `Processor::process`. The
//! rules are deploy/rules.toml, as in the bench.
//! With `alerts`, the input is the alert-latency bench's instead: one 1-minute window and a
//! threshold rule that every window fires or resolves (every close makes an alert event),
//! and each event also gets the alert task's work short of the producer (payloads, store,
//! line protocol).
//! With `warm`, each pass reads 10 minutes of readings and times the second 5 (the steady
//! state of `benches/core.rs`' `core_warm`); callgrind counts both halves, so a warm run's
//! instructions less a cold run's are the second half's.
//! `cargo build --release --example core_profile && perf record -g target/release/examples/core_profile 10000 protobuf 5 [alerts|warm]`

use std::sync::Arc;
use std::time::Instant;

use citysense::alert::rules::parse_rules;
use citysense::config::Settings;
use citysense::decode::Format;
use citysense::model::Kind;
use citysense::pipeline::core::{CoreSettings, InputRecord, Processor, SourcePartition};
use citysense::registry::Registry;
use citysense::sim::{City, FaultRates, Generator, SimFormat};
use citysense::sink::alerts::{encode_alert, event_payload, state_payload, AlertStore};
use citysense::sink::line_protocol::encode_window;
use citysense::window::WindowSpec;

// The allocator the citysense binary uses (src/main.rs), so that this measures the same.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const START: i64 = 1_795_593_600_000;

fn main() {
    // As the binary does (src/main.rs).
    citysense::allocator::use_small_pages();
    let args: Vec<String> = std::env::args().collect();
    let sensors: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let format = if args.get(2).is_some_and(|f| f == "json") { SimFormat::Json } else { SimFormat::Protobuf };
    let passes: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(5);
    let alerts = args.get(4).is_some_and(|a| a == "alerts");
    let warm = args.get(4).is_some_and(|a| a == "warm");
    let count = if warm { 60 } else { 30 } * sensors;
    let measured_from = if warm { count / 2 } else { 0 };
    let mut settings = CoreSettings::from(&Settings::defaults());
    settings.decoder.limits.max_age_ms = None;
    // The rules the deployment ships, as the core bench runs them.
    settings.alert_rules = parse_rules(include_str!("../deploy/rules.toml"), "deploy/rules.toml").expect("the shipped rules parse");
    let input = if alerts {
        settings.windows[Kind::Pm25.index()] = vec![WindowSpec::tumbling("1m", 60_000)];
        settings.alert_rules = parse_rules(ALERT_RULE, "bench").expect("the bench rule parses");
        alternating(sensors, count)
    } else {
        let mut city = City::generate(sensors * 3);
        city.sensors.retain(|s| s.kind == Kind::Pm25);
        city.sensors.truncate(sensors);
        let mut generator = Generator::new(city, 1, START, format, FaultRates::NONE);
        generator.set_interval(10_000);
        let mut input = Vec::with_capacity(count);
        generator.emit_count(count, &mut input);
        input.truncate(count);
        input.into_iter().map(|r| (r.payload, r.content_type)).collect()
    };
    for pass in 0..passes {
        let mut processor = Processor::new(settings.clone(), Arc::new(Registry::empty()));
        let (mut emitted, mut lines, mut windows, mut events) = (Vec::new(), String::with_capacity(1 << 16), 0usize, 0usize);
        let store = AlertStore::default();
        let mut started = Instant::now();
        for (offset, r) in input.iter().enumerate() {
            if offset == measured_from {
                started = Instant::now();
            }
            let record = InputRecord {
                source: SourcePartition { kind: Kind::Pm25, partition: 0 },
                offset: offset as i64,
                format: Format::Auto,
                payload: Some(&r.0),
                content_type: Some(r.1),
            };
            let _ = processor.process(record, START + 86_400_000, &mut emitted);
            for alert in processor.take_alerts() {
                // The alert task's own work per event, short of the producer.
                std::hint::black_box((event_payload(&alert.event, false), state_payload(&alert.state)));
                store.record(&alert.event, &alert.state);
                encode_alert(&alert.event, &mut lines);
                events += 1;
            }
            for e in emitted.drain(..) {
                encode_window(&e.window, &mut lines);
                windows += 1;
            }
            lines.clear();
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "pass {pass}: {} readings ({} timed), {windows} windows closed, {events} alert events, {:.0} readings/s",
            input.len(),
            input.len() - measured_from,
            (input.len() - measured_from) as f64 / seconds
        );
    }
}

const ALERT_RULE: &str = include_str!("common/minute_mean_rule.toml");

/// `count` JSON readings of `sensors` sensors every 10 s: 200 µg/m³ in even minutes, 20 in
/// odd ones, so every 1-minute window fires or resolves the rule.
fn alternating(sensors: usize, count: usize) -> Vec<(Vec<u8>, &'static str)> {
    (0..count)
        .map(|i| {
            let ts = START + (i / sensors) as i64 * 10_000;
            let value = if (ts / 60_000) % 2 == 0 { 200 } else { 20 };
            let payload = format!(r#"{{"sensor_id":"lat-pm-{:06}","ts":{ts},"value":{value},"unit":"ug/m3"}}"#, i % sensors);
            (payload.into_bytes(), "application/json")
        })
        .collect()
}
