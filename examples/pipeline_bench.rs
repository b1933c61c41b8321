//! citysense's end-to-end rate for scripts/bench.sh: runs the pipeline (both stages, the
//! InfluxDB sink) on topics already loaded with `citysense simulate`, from the first record
//! consumed until every record is consumed and every closed window is acknowledged by the
//! time-series store. Prints one JSON line.
//!
//! `cargo run --release --example pipeline_bench -- BROKERS TOPIC_PREFIX RECORDS INFLUX_URL`
//! (`BENCH_RULES=1`: the default windows and deploy/rules.toml, as deployed.)

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use citysense::pipeline::{self, wall_ms, Shared};
use citysense::registry::Registry;
use tokio_util::sync::CancellationToken;

mod common;

// The allocator the citysense binary uses (src/main.rs), so that this measures the same.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    // As the binary does (src/main.rs), so that this measures the same.
    citysense::allocator::use_small_pages();
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, prefix, records, influx] = &args[..] else {
        eprintln!("usage: pipeline_bench BROKERS TOPIC_PREFIX RECORDS INFLUX_URL");
        std::process::exit(2);
    };
    let expected: u64 = records.parse().expect("a record count");
    let mut sections = "[validation]\nmax_age = \"off\"\n".to_owned();
    // BENCH_RULES=1: as deployed, the default windows and the rule set the deployment ships
    // (written for those windows; stage 1 then also runs the deadman timer per reading and
    // every 200 ms, the area stage its district rules). Otherwise fewer windows, no rules.
    if std::env::var("BENCH_RULES").is_ok_and(|v| v == "1") {
        let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/rules.toml");
        sections += &common::alerts_section(prefix, &rules);
    } else {
        sections += "[windows]\npm25 = [\"1m\", \"1h\"]\ndust = [\"1h\"]\nwater = [\"1m\"]\ncharging = [\"5m\"]\n";
    }
    let text = common::bench_config(brokers, prefix, "bench", influx, &sections);
    // CITYSENSE_SECTION__FIELD overrides apply, as for `citysense run` (e.g. to compare checkpoint intervals).
    let settings = citysense::config::parse(&text, "bench", std::env::vars()).expect("valid config");
    let shared = Shared::default();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(pipeline::run(settings, Arc::new(Registry::empty()), shared.clone(), shutdown.clone()));
    let stats = shared.stats.clone();
    let deadline = Instant::now() + Duration::from_secs(900);
    let (mut last_windows, mut last_change_ms) = (0, 0);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let windows = stats.windows_closed.load(Ordering::Relaxed);
        if windows != last_windows {
            (last_windows, last_change_ms) = (windows, stats.last_write_ms.load(Ordering::Relaxed));
        }
        let consumed = stats.records_in() >= expected;
        if consumed && wall_ms() - last_change_ms.max(1) > 1_000 && last_windows > 0 {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("gave up: {} of {expected} records", stats.records_in());
            break;
        }
    }
    let first = stats.first_record_ms.load(Ordering::Relaxed);
    let secs = (last_change_ms - first) as f64 / 1000.0;
    println!(
        "{{\"records\":{},\"windows\":{last_windows},\"dead_lettered\":{},\"seconds\":{secs:.3},\"per_second\":{:.0},\"cpu_seconds\":{:.2}}}",
        stats.records_in(),
        stats.rejected(),
        stats.records_in() as f64 / secs.max(1e-9),
        process_cpu_seconds()
    );
    shutdown.cancel();
    let _ = run.await;
}

/// User + system CPU of this process so far (all its threads, librdkafka's included), from
/// /proc/self/stat in clock ticks of 1/100 s; 0 where there is no /proc.
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
