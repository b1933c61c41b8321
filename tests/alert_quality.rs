//! Alert quality on a long simulated run: twelve hours of a 200-sensor city with fifty
//! scripted faults (stuck, silent and falsely low PM2.5 stations, flooding underpasses,
//! faulted piles) of known time and place, through both stages' cores (sensor windows, then
//! the area stage with its peer comparisons) and the default rules. Every
//! injected fault must be caught (recall ≥ 95 %) and almost nothing else may fire
//! (false alerts ≤ 1 % of alerts). The figures are printed for BENCHMARKS.md and notes.

use std::sync::Arc;

use citysense::alert::rules::parse_rules;
use citysense::alert::{AlertEngine, AlertInput, FlapPolicy};
use citysense::config;
use citysense::decode::Format;
use citysense::model::{AlertEvent, Kind};
use citysense::pipeline::core::{CoreSettings, InputRecord, Processor, SourcePartition};
use citysense::rollup::{AggregateMessage, AreaCatalog, AreaPartition, AreaSettings, SensorWindow};
use citysense::sim::{City, Episode, EpisodeKind, FaultRates, Generator, SimFormat};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const RULES: [&str; 5] = ["pm25-stuck", "pm25-no-data/no_data", "underpass-ponding", "pile-faulted", "pm25-outlier"];

fn rule_for(fault: EpisodeKind) -> &'static str {
    match fault {
        EpisodeKind::Stuck => "pm25-stuck",
        EpisodeKind::Silent => "pm25-no-data/no_data",
        EpisodeKind::Flooding => "underpass-ponding",
        EpisodeKind::Faulted => "pile-faulted",
        EpisodeKind::FalselyLow => "pm25-outlier",
    }
}

#[test]
fn injected_faults_are_caught_and_little_else_fires() {
    // Start where the simulator's natural 30-hourly underpass storm stays out of the run.
    let mut start = 1_795_564_800_000; // 2026-11-25T00:00:00Z
    while !(2..18).contains(&((start / HOUR) % 30)) {
        start += HOUR;
    }
    let end = start + 12 * HOUR;
    let city = City::generate(200);
    let registry = Arc::new(city.registry());
    let of_kind = |pred: &dyn Fn(&citysense::sim::SimSensor) -> bool| {
        city.sensors.iter().enumerate().filter(|(_, s)| pred(s)).map(|(i, _)| i).collect::<Vec<_>>()
    };
    let pm25 = of_kind(&|s| s.kind == Kind::Pm25);
    let underpasses = of_kind(&|s| s.kind == Kind::Water && s.warning_level.is_none());
    let piles = of_kind(&|s| s.kind == Kind::Charging);
    let mut episodes = Vec::new();
    for i in 0..10 {
        let at = start + HOUR + i as i64 * HOUR;
        episodes.push(Episode { sensor: pm25[i], fault: EpisodeKind::Stuck, from_ms: at, to_ms: at + 30 * MINUTE });
        episodes.push(Episode { sensor: pm25[10 + i], fault: EpisodeKind::Silent, from_ms: at + 10 * MINUTE, to_ms: at + 30 * MINUTE });
        episodes.push(Episode { sensor: piles[i], fault: EpisodeKind::Faulted, from_ms: at + 5 * MINUTE, to_ms: at + 35 * MINUTE });
        episodes.push(Episode {
            sensor: underpasses[i % underpasses.len()],
            fault: EpisodeKind::Flooding,
            from_ms: at,
            to_ms: at + 45 * MINUTE,
        });
        // Falsely low for two whole hours, so at least one hourly window is entirely low.
        episodes.push(Episode { sensor: pm25[20 + i], fault: EpisodeKind::FalselyLow, from_ms: at, to_ms: at + 2 * HOUR });
    }
    let ids: Vec<String> = city.sensors.iter().map(|s| s.id.clone()).collect();
    let mut generator = Generator::new(city, 99, start, SimFormat::Json, FaultRates::NONE);
    generator.without_natural_pile_faults();
    for e in &episodes {
        generator.add_episode(*e);
    }

    let text =
        "[windows]\npm25 = [\"1m\", \"1h\"]\ndust = [\"1h\"]\nwater = [\"1m\"]\ncharging = [\"5m\"]\n[validation]\nmax_age = \"off\"\n";
    let mut settings = CoreSettings::from(&config::parse(text, "quality", Vec::new()).unwrap());
    let rules: Vec<_> = parse_rules(include_str!("../deploy/rules.toml"), "rules")
        .unwrap()
        .into_iter()
        .filter(|r| RULES.iter().any(|id| id.starts_with(&r.id)))
        .collect();
    settings.alert_rules = rules.clone();
    // Stage 2: one aggregates partition, four input partitions per kind.
    let mut areas = AreaPartition::default();
    let area_settings = AreaSettings { allowed_lateness_ms: 2 * MINUTE, update_horizon_ms: 0, sources_per_kind: [4; 4] };
    let catalog = AreaCatalog::from_registry(&registry);
    let mut area_alerts = AlertEngine::new(rules.into_iter().filter(|r| r.needs_area_stage()).collect(), FlapPolicy::default(), 10_000);
    let mut area_offset = 0i64;
    let mut processor = Processor::new(settings, registry);

    let mut fired: Vec<AlertEvent> = Vec::new();
    let mut emitted = Vec::new();
    let mut records = Vec::new();
    let mut count = 0u64;
    let mut now = start;
    while now < end {
        records.clear();
        now += MINUTE;
        generator.emit_until(now, &mut records);
        for r in &records {
            let partition = (r.key.bytes().map(u32::from).sum::<u32>() % 4) as i32;
            let record = InputRecord {
                source: SourcePartition { kind: r.kind, partition },
                offset: count as i64,
                format: Format::Auto,
                payload: Some(&r.payload),
                content_type: Some(r.content_type),
            };
            count += 1;
            // Records arrive a second after they were measured.
            processor.process(record, r.ts_ms + 1_000, &mut emitted).expect("clean input");
        }
        processor.tick(now + 1_000, &mut emitted);
        fired.extend(processor.take_alerts().into_iter().map(|p| p.event).filter(|e| e.change == "fired"));
        // Stage 2: the closed windows, then each input partition's watermark marker.
        let mut messages: Vec<AggregateMessage> = emitted
            .drain(..)
            .map(|e| AggregateMessage::Window {
                source: format!("{}/{}", e.source.kind, e.source.partition),
                window: Box::new(SensorWindow::from(&e.window)),
            })
            .collect();
        for (source, watermark_ms) in processor.watermarks() {
            messages.push(AggregateMessage::Watermark {
                source: format!("{}/{}", source.kind, source.partition),
                kind: source.kind,
                watermark_ms,
            });
        }
        let mut emits = Vec::new();
        for message in messages {
            areas.on_message(message, area_offset, &area_settings, &catalog, &mut emits);
            area_offset += 1;
        }
        let mut area_events = Vec::new();
        for emit in &emits {
            for d in &emit.deviations {
                area_alerts.evaluate(AlertInput::Peer(d), &mut area_events);
            }
        }
        fired.extend(area_events.into_iter().map(|(e, _)| e).filter(|e| e.change == "fired"));
    }

    // Hourly outlier windows close up to an hour and a few minutes after the fault began.
    let grace = 70 * MINUTE;
    // A stuck station frozen away from its peers' level is also, rightly, an outlier.
    let explains = |e: &Episode, alert: &AlertEvent| {
        let rule_fits = alert.rule == rule_for(e.fault) || (e.fault == EpisodeKind::Stuck && alert.rule == "pm25-outlier");
        rule_fits && alert.scope_key == ids[e.sensor] && (e.from_ms..e.to_ms + grace).contains(&alert.at_ms)
    };
    let caught = episodes.iter().filter(|e| fired.iter().any(|a| explains(e, a))).count();
    let false_alerts: Vec<&AlertEvent> = fired.iter().filter(|a| !episodes.iter().any(|e| explains(e, a))).collect();
    let recall = caught as f64 / episodes.len() as f64;
    let false_rate = false_alerts.len() as f64 / fired.len().max(1) as f64;
    eprintln!(
        "alert quality: {count} readings, {} injected faults, {caught} caught (recall {:.1} %), {} alerts fired, {} false ({:.2} %)",
        episodes.len(),
        recall * 100.0,
        fired.len(),
        false_alerts.len(),
        false_rate * 100.0
    );
    let missed: Vec<String> =
        episodes.iter().filter(|e| !fired.iter().any(|a| explains(e, a))).map(|e| format!("{:?} {}", e.fault, ids[e.sensor])).collect();
    eprintln!("missed: {missed:?}");
    assert!(recall >= 0.95, "recall {recall}: missed {missed:?}");
    assert!(false_rate <= 0.01, "false alerts: {:?}", false_alerts.iter().map(|a| (&a.rule, &a.scope_key, a.at_ms)).collect::<Vec<_>>());
    assert!(count > 200_000, "{count} readings");
}
