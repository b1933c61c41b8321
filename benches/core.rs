//! criterion benches of the synchronous core, stage by stage: decoding (JSON, protobuf),
//! the sketch, the window update (validated readings into a sensor's panes, windows closed),
//! alert evaluation (closed hourly windows against deploy/rules.toml), the deadman timer's
//! periodic run, line-protocol encoding and the area roll-up (stage 2); then the whole
//! decode → validate → window → domain → alert → line-protocol path per reading on one
//! thread, at 1 k, 10 k and 100 k PM2.5 sensors, from nothing and (at 10 k) in a steady
//! state, with the rules the deployment ships.

use std::sync::Arc;

use citysense::aggregate::sketch::QuantileSketch;
use citysense::alert::rules::parse_rules;
use citysense::alert::{AlertEngine, AlertInput};
use citysense::config::Settings;
use citysense::decode::{Decoder, Format, Limits};
use citysense::model::{AreaRef, DomainValues, Kind, Reading, WindowResult};
use citysense::pipeline::core::{CoreSettings, InputRecord, Processor, SourcePartition};
use citysense::registry::Registry;
use citysense::rollup::{AggregateMessage, AreaCatalog, AreaPartition, AreaSettings, SensorWindow};
use citysense::sim::{City, FaultRates, Generator, SimFormat, SimRecord};
use citysense::sink::line_protocol::encode_window;
use citysense::window::{PartitionWindows, SensorBudget};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};

// The allocator the citysense binary uses (src/main.rs), so that this measures the same.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const START: i64 = 1_795_593_600_000;

/// `count` readings of exactly `sensors` PM2.5 sensors, each reporting every 10 s.
fn records(sensors: usize, count: usize, format: SimFormat) -> Vec<SimRecord> {
    let mut city = City::generate(sensors * 3);
    city.sensors.retain(|s| s.kind == Kind::Pm25);
    assert!(city.sensors.len() >= sensors, "the generated city has enough PM2.5 sensors");
    city.sensors.truncate(sensors);
    let mut generator = Generator::new(city, 1, START, format, FaultRates::NONE);
    generator.set_interval(10_000);
    let mut out = Vec::with_capacity(count);
    generator.emit_count(count, &mut out);
    out.truncate(count);
    out
}

/// The default settings with the rule set the deployment ships (deploy/rules.toml: the
/// hourly IAQI threshold, low coverage and the deadman timer run in the core), and no age
/// limit, since the simulated readings are stamped in the past.
fn core_settings() -> CoreSettings {
    let mut settings = CoreSettings::from(&Settings::defaults());
    settings.decoder.limits.max_age_ms = None;
    settings.alert_rules = parse_rules(include_str!("../deploy/rules.toml"), "deploy/rules.toml").expect("the shipped rules parse");
    settings
}

fn decode(c: &mut Criterion) {
    let decoder = Decoder { limits: Limits { max_age_ms: None, ..Limits::default() }, max_record_bytes: 65_536 };
    let registry = Registry::empty();
    let mut group = c.benchmark_group("decode");
    for (name, format) in [("json", SimFormat::Json), ("protobuf", SimFormat::Protobuf)] {
        let input = records(1_000, 20_000, format);
        group.throughput(Throughput::Elements(input.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                for r in &input {
                    black_box(
                        decoder
                            .decode(Kind::Pm25, Format::Auto, Some(&r.payload), Some(r.content_type), &registry, START + 86_400_000)
                            .is_ok(),
                    );
                }
            })
        });
    }
    group.finish();
}

fn sketch(c: &mut Criterion) {
    let values: Vec<f64> = (0..10_000).map(|i| 20.0 + ((i * 7_919) % 1_000) as f64 / 10.0).collect();
    let mut group = c.benchmark_group("sketch");
    group.throughput(Throughput::Elements(values.len() as u64));
    group.bench_function("add", |b| {
        b.iter(|| {
            let mut sketch = QuantileSketch::default();
            for v in &values {
                sketch.add(*v);
            }
            black_box(sketch.quantile(0.95))
        })
    });
    group.finish();
}

/// Readings per second through `Processor::process`, every closed window encoded as
/// InfluxDB line protocol; the processor is built fresh per iteration (outside the timing).
fn core(c: &mut Criterion) {
    let settings = core_settings();
    let mut group = c.benchmark_group("core_pm25_default_windows");
    group.sample_size(10);
    for (sensors, count) in [(1_000, 300_000), (10_000, 300_000), (100_000, 3_000_000)] {
        for (format_name, format) in [("json", SimFormat::Json), ("protobuf", SimFormat::Protobuf)] {
            let input = records(sensors, count, format);
            group.throughput(Throughput::Elements(input.len() as u64));
            group.bench_function(format!("{format_name}/{sensors}_sensors"), |b| {
                b.iter_batched(
                    || Processor::new(settings.clone(), Arc::new(Registry::empty())),
                    |mut processor| {
                        feed(&mut processor, &input, 0);
                        processor
                    },
                    BatchSize::PerIteration,
                )
            });
        }
    }
    group.finish();
}

/// The core at 10 k sensors in its steady state: the processor has already read the 5
/// minutes before (sensors tracked, their hour and day panes open), as a running pipeline
/// has, where `core` starts every iteration from nothing (each sensor's first reading
/// creates its state, 1 reading in 30).
fn core_warm(c: &mut Criterion) {
    let settings = core_settings();
    let mut group = c.benchmark_group("core_pm25_default_windows_warm");
    group.sample_size(10);
    let (sensors, count) = (10_000, 300_000);
    for (format_name, format) in [("json", SimFormat::Json), ("protobuf", SimFormat::Protobuf)] {
        let mut input = records(sensors, 2 * count, format);
        let measured = input.split_off(count);
        group.throughput(Throughput::Elements(measured.len() as u64));
        group.bench_function(format!("{format_name}/{sensors}_sensors"), |b| {
            b.iter_batched(
                || {
                    let mut processor = Processor::new(settings.clone(), Arc::new(Registry::empty()));
                    feed(&mut processor, &input, 0);
                    processor
                },
                |mut processor| {
                    feed(&mut processor, &measured, input.len());
                    processor
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

/// Feeds `input` (offsets from `first_offset`) and encodes every closed window as line
/// protocol, as the sink would.
fn feed(processor: &mut Processor, input: &[SimRecord], first_offset: usize) {
    let (mut emitted, mut lines) = (Vec::new(), String::with_capacity(1 << 16));
    for (offset, r) in input.iter().enumerate() {
        let _ = processor.process(input_record(first_offset + offset, r), START + 86_400_000, &mut emitted);
        for e in emitted.drain(..) {
            encode_window(&e.window, &mut lines);
        }
        lines.clear();
    }
}

/// Validated readings per second into one partition's windows (the four default PM2.5
/// specs, 10 k sensors), in the steady state: the 5 minutes before are read untimed. The
/// closes the readings trigger are included; decoding and the domain are not.
fn window_update(c: &mut Criterion) {
    let settings = core_settings();
    let registry = Registry::empty();
    let (sensors, count) = (10_000, 300_000);
    let records = records(sensors, 2 * count, SimFormat::Protobuf);
    let readings: Vec<Reading<'_>> = records
        .iter()
        .map(|r| settings.decoder.decode(Kind::Pm25, Format::Auto, Some(&r.payload), Some(r.content_type), &registry, START + 86_400_000))
        .collect::<Result<_, _>>()
        .expect("the simulated readings are valid");
    let (before, measured) = readings.split_at(count);
    let specs: Arc<[_]> = settings.windows[Kind::Pm25.index()].clone().into();
    let add_all = |windows: &mut PartitionWindows, budget: &mut SensorBudget, readings: &[Reading<'_>]| {
        let mut closed = Vec::new();
        for reading in readings {
            let _ = windows.add(reading, budget, START + 86_400_000, &mut closed);
            closed.clear();
        }
    };
    let mut group = c.benchmark_group("window_update");
    group.sample_size(10);
    group.throughput(Throughput::Elements(measured.len() as u64));
    group.bench_function(format!("pm25_default_windows/{sensors}_sensors"), |b| {
        b.iter_batched(
            || {
                let mut windows = PartitionWindows::new(Kind::Pm25, specs.clone(), settings.timing, START);
                let mut budget = SensorBudget { tracked: 0, cap: settings.max_tracked_sensors };
                add_all(&mut windows, &mut budget, before);
                (windows, budget)
            },
            |(mut windows, mut budget)| {
                add_all(&mut windows, &mut budget, measured);
                windows
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// Closed hourly windows per second through the alert engine with deploy/rules.toml, for
/// 10 k sensors over 8 hours: `quiet`, every IAQI below the warning (the usual case: rules
/// match, nothing changes); `changing`, each sensor's IAQI over the warning for hours 2–3
/// and 6–7, so that every sensor's alert fires, resolves and fires again (events, lifecycle).
fn alert_evaluation(c: &mut Criterion) {
    let settings = core_settings();
    let minute_windows: Vec<WindowResult> = closed_windows(10_000).into_iter().filter(|w| w.window == "1m").take(10_000).collect();
    let mut group = c.benchmark_group("alert_evaluation");
    for (name, high_hours) in [("quiet", [false; 8]), ("changing", [false, false, true, true, false, false, true, true])] {
        let hourly: Vec<WindowResult> = (0..8)
            .flat_map(|hour| minute_windows.iter().map(move |w| hourly_window(w, hour, if high_hours[hour] { 150 } else { 60 })))
            .collect();
        group.throughput(Throughput::Elements(hourly.len() as u64));
        group.bench_function(format!("{name}/10000_sensors"), |b| {
            b.iter_batched(
                || AlertEngine::new(settings.alert_rules.clone(), settings.flap, settings.max_tracked_sensors),
                |mut engine| {
                    let mut events = Vec::new();
                    for window in &hourly {
                        engine.evaluate(AlertInput::Window(window), &mut events);
                        events.clear();
                    }
                    engine
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

/// One run of the deadman timer (every 200 ms in stage 1) over 100 k sensors that all
/// reported a minute ago: nothing is due, as in a healthy city.
fn deadman_tick(c: &mut Criterion) {
    let settings = core_settings();
    let mut engine = AlertEngine::new(settings.alert_rules.clone(), settings.flap, 200_000);
    for i in 0..100_000 {
        let (sensor, grid) = (format!("pm-{i:06}"), format!("grid-{:04}", i / 50));
        engine.seen(&sensor, Kind::Pm25, &AreaRef::new(&grid, "street", "district"), START, 0);
    }
    let mut group = c.benchmark_group("deadman_tick");
    group.bench_function("100000_sensors", |b| {
        let mut events = Vec::new();
        b.iter(|| {
            engine.tick(START + 60_000, &|_| None, &mut events);
            black_box(events.len())
        })
    });
    group.finish();
}

/// `minute` as the hourly window of hour `hour` with IAQI `iaqi`.
fn hourly_window(minute: &WindowResult, hour: usize, iaqi: u32) -> WindowResult {
    let end_ms = START + (hour as i64 + 1) * 3_600_000;
    WindowResult {
        window: "1h".into(),
        start_ms: end_ms - 3_600_000,
        end_ms,
        coverage: Some(0.9),
        domain: Some(DomainValues::Pm25 {
            iaqi,
            category: "bench",
            above_scale: false,
            standard: "HJ633-2026",
            epa_aqi: None,
            nowcast: None,
        }),
        ..minute.clone()
    }
}

/// Closed windows per second encoded as line protocol: the minute and five-minute windows
/// (with their domain values) that 10 k sensors close in a steady 5 minutes.
fn line_protocol(c: &mut Criterion) {
    let windows = closed_windows(10_000);
    let mut group = c.benchmark_group("line_protocol");
    group.throughput(Throughput::Elements(windows.len() as u64));
    group.bench_function("pm25_windows", |b| {
        let mut out = String::with_capacity(1 << 16);
        b.iter(|| {
            for window in &windows {
                encode_window(window, &mut out);
                if out.len() > 1 << 15 {
                    out.clear();
                }
            }
            black_box(out.len())
        })
    });
    group.finish();
}

/// Sensor windows per second through the area stage (stage 2): the windows 10 k PM2.5
/// sensors close in a steady 5 minutes, read in batches of 512 as stage 1 writes them, then
/// rolled up to grids, streets and districts (with peer deviations) when a watermark closes
/// their area windows.
fn area_rollup(c: &mut Criterion) {
    let windows: Vec<SensorWindow> = closed_windows(10_000).iter().map(SensorWindow::from).collect();
    let settings = AreaSettings { allowed_lateness_ms: 0, update_horizon_ms: 0, sources_per_kind: [1; 4] };
    let catalog = AreaCatalog::from_registry(&Registry::empty());
    let source = "city.pm25/0";
    let mut group = c.benchmark_group("area_rollup");
    group.throughput(Throughput::Elements(windows.len() as u64));
    group.bench_function("pm25_windows", |b| {
        b.iter_batched(
            || windows.chunks(512).map(<[SensorWindow]>::to_vec).collect::<Vec<_>>(),
            |batches| {
                let (mut area, mut out) = (AreaPartition::default(), Vec::new());
                let last = batches.len() as i64;
                for (offset, windows) in batches.into_iter().enumerate() {
                    area.on_message(
                        AggregateMessage::Windows { source: source.into(), windows },
                        offset as i64,
                        &settings,
                        &catalog,
                        &mut out,
                    );
                }
                let closing = AggregateMessage::Watermark { source: source.into(), kind: Kind::Pm25, watermark_ms: i64::MAX / 2 };
                area.on_message(closing, last, &settings, &catalog, &mut out);
                black_box(out.len())
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// The windows `sensors` PM2.5 sensors close over their second 5 minutes, as the core emits
/// them (domain values added).
fn closed_windows(sensors: usize) -> Vec<WindowResult> {
    let input = records(sensors, 60 * sensors, SimFormat::Protobuf);
    let mut processor = Processor::new(core_settings(), Arc::new(Registry::empty()));
    let mut emitted = Vec::new();
    let mut windows = Vec::new();
    for (offset, r) in input.iter().enumerate() {
        let _ = processor.process(input_record(offset, r), START + 86_400_000, &mut emitted);
        windows.extend(emitted.drain(..).filter(|_| offset >= 30 * sensors).map(|e| e.window));
    }
    windows
}

/// `r` as the record at `offset` of PM2.5 partition 0.
fn input_record(offset: usize, r: &SimRecord) -> InputRecord<'_> {
    InputRecord {
        source: SourcePartition { kind: Kind::Pm25, partition: 0 },
        offset: offset as i64,
        format: Format::Auto,
        payload: Some(&r.payload),
        content_type: Some(r.content_type),
    }
}

criterion_group!(benches, decode, sketch, window_update, alert_evaluation, deadman_tick, line_protocol, area_rollup, core, core_warm);
criterion_main!(benches);
