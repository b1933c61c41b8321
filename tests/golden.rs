//! Golden file: tests/data/golden_input.ndjson (20 minutes of a small simulated city with
//! every kind of vendor fault, see examples/golden_input.rs) through the pipeline core must
//! give exactly tests/data/golden_expected.jsonl: each record's fate, then every window
//! with its aggregates, coverage and domain metrics. After an intended change, regenerate
//! with `CITYSENSE_UPDATE_GOLDEN=1 cargo test --test golden` and review the diff.

use std::sync::Arc;

use citysense::config;
use citysense::decode::Format;
use citysense::model::Kind;
use citysense::pipeline::core::{CoreSettings, InputRecord, Processor, SourcePartition};
use citysense::sim::City;

const INPUT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/golden_input.ndjson");
const EXPECTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/golden_expected.jsonl");
/// The wall clock the run pretends it is: 30 minutes after the first record.
const NOW: i64 = 1_795_593_600_000 + 30 * 60_000;

/// The topic a recorded line came from: piles by `pile_id`, readings by `kind` (found by
/// text, so that lines the vendor cut short still reach their topic).
fn topic_of(line: &str) -> Kind {
    if line.contains("\"pile_id\"") {
        return Kind::Charging;
    }
    let kind = line.split("\"kind\":\"").nth(1).and_then(|rest| rest.split('"').next()).and_then(Kind::parse);
    kind.unwrap_or_else(|| panic!("cannot route {line}"))
}

fn run() -> Vec<String> {
    let text =
        "[windows]\npm25 = [\"1m\", \"1h\"]\ndust = [\"10m\"]\nwater = [\"1m\"]\ncharging = [\"5m\"]\n[validation]\nmax_age = \"off\"\n";
    let settings = config::parse(text, "golden", Vec::new()).unwrap();
    let mut processor = Processor::new(CoreSettings::from(&settings), Arc::new(City::generate(12).registry()));
    let mut out = Vec::new();
    let mut emitted = Vec::new();
    let input = std::fs::read_to_string(INPUT).unwrap();
    for (offset, line) in input.lines().enumerate() {
        let source = SourcePartition { kind: topic_of(line), partition: 0 };
        let record =
            InputRecord { source, offset: offset as i64, format: Format::Auto, payload: Some(line.as_bytes()), content_type: None };
        let fate = match processor.process(record, NOW, &mut emitted) {
            Ok(()) => "accepted".to_owned(),
            Err(rejection) => format!("{}: {}", rejection.reason, rejection.detail),
        };
        out.push(serde_json::json!({ "line": offset + 1, "fate": fate }).to_string());
    }
    processor.drain(&mut emitted);
    for e in &emitted {
        out.push(serde_json::to_string(&e.window).unwrap());
    }
    out
}

#[test]
fn the_recorded_city_gives_the_checked_in_results() {
    let actual = run();
    if std::env::var("CITYSENSE_UPDATE_GOLDEN").is_ok() {
        std::fs::write(EXPECTED, actual.join("\n") + "\n").unwrap();
    }
    let expected = std::fs::read_to_string(EXPECTED).expect("golden file exists (CITYSENSE_UPDATE_GOLDEN=1 writes it)");
    let expected: Vec<&str> = expected.lines().collect();
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(a, e, "line {} of {EXPECTED} differs", i + 1);
    }
    assert_eq!(actual.len(), expected.len(), "number of lines");
    let rejected = actual.iter().filter(|l| l.contains("\"fate\"") && !l.contains("accepted")).count();
    let windows = actual.iter().filter(|l| l.contains("\"window\"")).count();
    assert!(rejected > 20 && windows > 200, "{rejected} rejected, {windows} windows: the golden input should exercise both");
}

#[test]
fn the_run_is_deterministic() {
    assert_eq!(run(), run());
}
