//! Hostile input (issue 8) and the memory each open window costs (issue 7), in-process.
//!
//! cargo-fuzz needs a nightly toolchain, which these machines do not ship; these are the
//! stable stand-in: proptest drives random and mutated inputs through the whole core
//! (decode → validate → windows) and the config parser, many thousands of cases each, and
//! none may panic. A counting allocator measures live heap bytes, so the memory claims
//! are measured, not estimated.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use citysense::config::Settings;
use citysense::decode::{Format, Reason};
use citysense::model::Kind;
use citysense::pipeline::core::{CoreSettings, Emitted, InputRecord, Processor, SourcePartition};
use citysense::registry::Registry;
use citysense::sim::{City, FaultRates, Generator, SimFormat};
use citysense::window::WindowSpec;
use proptest::prelude::*;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Held by every test here: the live-byte counter is process-wide, so the memory tests
/// must not share the process with others running at the same time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

const NOW: i64 = 1_764_057_600_000;
const MINUTE: i64 = 60_000;

fn processor(cap: usize, pm25_windows: Vec<WindowSpec>) -> Processor {
    let mut settings = CoreSettings::from(&Settings::defaults());
    settings.max_tracked_sensors = cap;
    settings.windows[Kind::Pm25.index()] = pm25_windows;
    Processor::new(settings, Arc::new(Registry::empty()))
}

fn feed(p: &mut Processor, kind: Kind, format: Format, offset: i64, payload: &[u8], out: &mut Vec<Emitted>) -> Result<(), Reason> {
    let record = InputRecord { source: SourcePartition { kind, partition: 0 }, offset, format, payload: Some(payload), content_type: None };
    p.process(record, NOW, out).map_err(|r| {
        assert!(!r.detail.is_empty(), "a rejection without a detail: {:?}", r.reason);
        r.reason
    })
}

/// Valid records of every kind and format, to mutate.
fn seeds() -> Vec<(Kind, Vec<u8>)> {
    let mut generator = Generator::new(City::generate(40), 9, NOW - 2 * 3_600_000, SimFormat::Mixed, FaultRates::NONE);
    let mut records = Vec::new();
    generator.emit_count(400, &mut records);
    records.into_iter().map(|r| (r.kind, r.payload)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn random_bytes_are_rejected_with_a_reason_never_a_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        kind in 0usize..4,
        format in 0usize..3,
    ) {
        let _one = exclusive();
        let mut p = processor(1_000, vec![WindowSpec::tumbling("1m", MINUTE)]);
        let format = [Format::Json, Format::Protobuf, Format::Auto][format];
        let _ = feed(&mut p, Kind::ALL[kind], format, 0, &bytes, &mut Vec::new());
    }

    #[test]
    fn mutated_valid_records_never_panic(
        seed in 0usize..400,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let _one = exclusive();
        let seeds = SEEDS.with(|s| s.clone());
        let (kind, mut bytes) = seeds[seed % seeds.len()].clone();
        for (at, byte, op) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => bytes.truncate(i),
                _ => bytes.insert(i, byte),
            }
        }
        let mut p = processor(1_000, vec![WindowSpec::tumbling("1m", MINUTE)]);
        let _ = feed(&mut p, kind, Format::Auto, 0, &bytes, &mut Vec::new());
    }

    #[test]
    fn the_config_parser_refuses_mangled_files_with_a_message(
        cut in any::<prop::sample::Index>(),
        junk in "[ -~\n]{0,40}",
    ) {
        let _one = exclusive();
        let shipped = include_str!("../deploy/citysense.toml");
        let at = cut.index(shipped.len());
        let at = (0..=at).rev().find(|i| shipped.is_char_boundary(*i)).unwrap_or(0);
        let text = format!("{}{junk}{}", &shipped[..at], &shipped[at..]);
        if let Err(err) = citysense::config::parse(&text, "fuzz.toml", std::iter::empty()) {
            prop_assert!(!err.to_string().is_empty());
        }
    }
}

thread_local! {
    static SEEDS: Vec<(Kind, Vec<u8>)> = seeds();
}

#[test]
fn a_million_random_sensor_ids_stay_within_the_cap() {
    let _one = exclusive();
    const CAP: usize = 10_000;
    let mut p = processor(CAP, vec![WindowSpec::tumbling("1m", MINUTE)]);
    let mut out = Vec::new();
    let before = LIVE.load(Ordering::Relaxed);
    let mut rng_state: u64 = 0x9e37_79b9_7f4a_7c15;
    let (mut accepted, mut over_cap) = (0usize, 0usize);
    let ts = NOW - 30 * MINUTE;
    for offset in 0..1_000_000i64 {
        // xorshift: a fresh random id almost every time.
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        let payload = format!(r#"{{"sensor_id":"x{rng_state:016x}","ts":{ts},"value":12.5,"unit":"ug/m3"}}"#);
        match feed(&mut p, Kind::Pm25, Format::Json, offset, payload.as_bytes(), &mut out) {
            Ok(()) => accepted += 1,
            Err(Reason::Cardinality) => over_cap += 1,
            Err(other) => panic!("unexpected rejection {other:?}"),
        }
    }
    let grown = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    eprintln!("1 M random sensor ids: {accepted} tracked, {over_cap} dead-lettered as cardinality, heap grew {} KiB", grown / 1024);
    assert_eq!(accepted, CAP);
    assert_eq!(over_cap, 1_000_000 - CAP);
    assert_eq!(p.tracked_sensors(), CAP);
    assert!(grown < 64 << 20, "heap grew {} MiB for {CAP} sensors", grown >> 20);
}

/// Live heap bytes per open (sensor, window) for the default PM2.5 windows at 10 k sensors,
/// one reading per sensor per minute for 10 minutes (BENCHMARKS.md's memory figure).
#[test]
fn memory_per_open_window_is_measured() {
    let _one = exclusive();
    let specs = Settings::defaults().windows[Kind::Pm25.index()].clone();
    let mut p = processor(20_000, specs);
    let mut out = Vec::new();
    let before = LIVE.load(Ordering::Relaxed);
    let start = NOW - 60 * MINUTE;
    let mut offset = 0;
    for minute in 0..10 {
        for sensor in 0..10_000 {
            let payload = format!(
                r#"{{"sensor_id":"s{sensor:05}","ts":{},"value":{}.5,"unit":"ug/m3"}}"#,
                start + minute * MINUTE + 7_000,
                sensor % 90
            );
            feed(&mut p, Kind::Pm25, Format::Json, offset, payload.as_bytes(), &mut out).unwrap();
            offset += 1;
        }
        out.clear();
    }
    out.shrink_to_fit();
    let live = LIVE.load(Ordering::Relaxed).saturating_sub(before);
    let open = p.open_windows();
    let per_window = live / open.max(1);
    let sensors = p.tracked_sensors();
    eprintln!(
        "{open} open (sensor, window) states of {sensors} sensors, {} KiB live: {per_window} bytes per open window, {} per sensor",
        live / 1024,
        live / sensors.max(1)
    );
    assert_eq!(sensors, 10_000);
    assert!(open >= 10_000, "{open} open windows");
    // Issue 7's budget.
    assert!(per_window <= 300, "{per_window} bytes per open window");
}
