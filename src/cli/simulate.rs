//! `citysense simulate`: a vendor load generator publishing the simulated city.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::ValueEnum;

use crate::pipeline::wall_ms;
use crate::sim::publish::RecordPublisher;
use crate::sim::{City, FaultRates, Generator, SimFormat};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Json,
    Protobuf,
    Mixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FaultsArg {
    None,
    Realistic,
}

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Kafka bootstrap servers.
    #[arg(long)]
    pub brokers: String,
    /// Number of simulated sensors (all four feeds).
    #[arg(long, default_value_t = 1000)]
    pub sensors: usize,
    /// Readings per second in total, stamped with the wall clock; 0 publishes --count
    /// readings of recent simulated history as fast as possible.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Stop after this many readings (required with --rate 0).
    #[arg(long)]
    pub count: Option<u64>,
    /// With --rate 0: each sensor's reporting interval in simulated time.
    #[arg(long, default_value = "10s", value_parser = super::parse_duration)]
    pub interval: Duration,
    #[arg(long, value_enum, default_value_t = FormatArg::Json)]
    pub format: FormatArg,
    /// Inject vendor faults (malformed, unknown unit, out of range, duplicates, late, future).
    #[arg(long, value_enum, default_value_t = FaultsArg::None)]
    pub faults: FaultsArg,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Topics for pm25, dust, water and charging, comma-separated.
    #[arg(long, default_value = "city.pm25,city.dust,city.water,city.charging")]
    pub topics: String,
    /// Also write the simulated city's registry (CSV) to this file.
    #[arg(long)]
    pub write_registry: Option<PathBuf>,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let topics: Vec<String> = args.topics.split(',').map(|t| t.trim().to_owned()).collect();
    let Ok(topics) = <[String; 4]>::try_from(topics) else { bail!("--topics needs four names: pm25,dust,water,charging") };
    let city = City::generate(args.sensors);
    if let Some(path) = &args.write_registry {
        std::fs::write(path, city.registry().to_csv()).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let sensors = city.sensors.len();
    let format = match args.format {
        FormatArg::Json => SimFormat::Json,
        FormatArg::Protobuf => SimFormat::Protobuf,
        FormatArg::Mixed => SimFormat::Mixed,
    };
    let faults = match args.faults {
        FaultsArg::None => FaultRates::NONE,
        FaultsArg::Realistic => FaultRates::REALISTIC,
    };
    let publisher = RecordPublisher::new(&args.brokers, topics)?;
    let progress = super::progress::Progress::new(args.count, "readings");
    let started = Instant::now();
    let mut sent: u64 = 0;
    let mut batch = Vec::new();
    let mut last_report = Instant::now();
    if args.rate <= 0.0 {
        let Some(count) = args.count else { bail!("--rate 0 needs --count") };
        let interval_ms = args.interval.as_millis().max(1) as i64;
        let span_ms = (count as i64 / sensors.max(1) as i64 + 1) * interval_ms;
        let mut generator = Generator::new(city, args.seed, wall_ms() - span_ms - 60_000, format, faults);
        generator.set_interval(interval_ms);
        while sent < count {
            batch.clear();
            generator.emit_count(((count - sent) as usize).min(10_000), &mut batch);
            for record in batch.iter().take((count - sent) as usize) {
                publisher.send(record, None)?;
                sent += 1;
            }
            progress.set(sent, &mut last_report, started);
        }
    } else {
        let interval_ms = ((sensors as f64 / args.rate) * 1000.0).max(1.0) as i64;
        let mut generator = Generator::new(city, args.seed, wall_ms(), format, faults);
        generator.set_interval(interval_ms);
        let shutdown = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = shutdown.clone();
        ctrlc_flag(flag);
        while !shutdown.load(std::sync::atomic::Ordering::Relaxed) && args.count.is_none_or(|c| sent < c) {
            batch.clear();
            generator.emit_until(wall_ms(), &mut batch);
            for record in &batch {
                if args.count.is_some_and(|c| sent >= c) {
                    break;
                }
                publisher.send(record, None)?;
                sent += 1;
            }
            progress.set(sent, &mut last_report, started);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    progress.finish();
    publisher.flush(Duration::from_secs(60))?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "published {sent} readings from {sensors} sensors in {secs:.1} s ({:.0}/s); delivered {}, failed {}",
        sent as f64 / secs,
        publisher.delivered(),
        publisher.failed()
    );
    if publisher.failed() > 0 {
        bail!("{} readings were not delivered", publisher.failed());
    }
    Ok(())
}

/// Sets `flag` on Ctrl-C (this subcommand runs without an async runtime).
fn ctrlc_flag(flag: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
            rt.block_on(async {
                let _ = tokio::signal::ctrl_c().await;
            });
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
}
