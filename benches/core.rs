//! criterion benches of the synchronous core: decoding (JSON, protobuf), the sketch, and
//! the whole decode → validate → window → domain → alert → line-protocol path per reading
//! on one thread, at 1 k, 10 k and 100 k PM2.5 sensors, from nothing and (at 10 k) in a
//! steady state.

use std::sync::Arc;

use citysense::aggregate::sketch::QuantileSketch;
use citysense::config::Settings;
use citysense::decode::{Decoder, Format, Limits};
use citysense::model::Kind;
use citysense::pipeline::core::{CoreSettings, InputRecord, Processor, SourcePartition};
use citysense::registry::Registry;
use citysense::sim::{City, FaultRates, Generator, SimFormat, SimRecord};
use citysense::sink::line_protocol::encode_window;
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
    let mut settings = CoreSettings::from(&Settings::defaults());
    settings.decoder.limits.max_age_ms = None;
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
    let mut settings = CoreSettings::from(&Settings::defaults());
    settings.decoder.limits.max_age_ms = None;
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
        let record = InputRecord {
            source: SourcePartition { kind: Kind::Pm25, partition: 0 },
            offset: (first_offset + offset) as i64,
            format: Format::Auto,
            payload: Some(&r.payload),
            content_type: Some(r.content_type),
        };
        let _ = processor.process(record, START + 86_400_000, &mut emitted);
        for e in emitted.drain(..) {
            encode_window(&e.window, &mut lines);
        }
        lines.clear();
    }
}

criterion_group!(benches, decode, sketch, core, core_warm);
criterion_main!(benches);
