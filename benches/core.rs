//! criterion benches of the synchronous core: decoding (JSON, protobuf) and the whole
//! decode → validate → window path per reading, at several sensor counts.

use std::sync::Arc;

use citysense::config::Settings;
use citysense::decode::{Decoder, Format, Limits};
use citysense::model::Kind;
use citysense::pipeline::core::{CoreSettings, InputRecord, Processor, SourcePartition};
use citysense::registry::Registry;
use citysense::sim::{City, FaultRates, Generator, SimFormat, SimRecord};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const START: i64 = 1_795_593_600_000;

fn records(sensors: usize, count: usize, format: SimFormat) -> Vec<SimRecord> {
    let mut generator = Generator::new(City::generate(sensors), 1, START, format, FaultRates::NONE);
    generator.set_interval(10_000);
    let mut out = Vec::with_capacity(count);
    generator.emit_count(count, &mut out);
    out.retain(|r| r.kind == Kind::Pm25);
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

fn core(c: &mut Criterion) {
    let mut settings = CoreSettings::from(&Settings::defaults());
    settings.decoder.limits.max_age_ms = None;
    let mut group = c.benchmark_group("core_pm25_default_windows");
    group.sample_size(10);
    for sensors in [1_000, 10_000] {
        let input = records(sensors, 100_000, SimFormat::Json);
        group.throughput(Throughput::Elements(input.len() as u64));
        group.bench_function(format!("{sensors}_sensors"), |b| {
            b.iter_batched(
                || Processor::new(settings.clone(), Arc::new(Registry::empty())),
                |mut processor| {
                    let mut emitted = Vec::new();
                    for (offset, r) in input.iter().enumerate() {
                        let record = InputRecord {
                            source: SourcePartition { kind: Kind::Pm25, partition: 0 },
                            offset: offset as i64,
                            format: Format::Auto,
                            payload: Some(&r.payload),
                            content_type: Some(r.content_type),
                        };
                        let _ = processor.process(record, START + 86_400_000, &mut emitted);
                        emitted.clear();
                    }
                    processor
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, decode, core);
criterion_main!(benches);
