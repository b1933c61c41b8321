//! `citysense demo`: everything embedded. librdkafka's mock cluster stands in for Kafka,
//! the simulated city publishes all four feeds (first a few hours of history at full
//! speed, then live), the pipeline runs with the in-memory store as its time-series sink,
//! and the API serves the results. A compact summary prints every few seconds.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::mocking::MockCluster;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::model::Kind;
use crate::pipeline::{self, wall_ms, Shared};
use crate::sim::publish::RecordPublisher;
use crate::sim::{City, FaultRates, Generator, SimFormat};
use crate::{api, config};

/// Simulated history published at start, so windows exist from the first seconds.
const BACKFILL: Duration = Duration::from_secs(3 * 3600);
const SUMMARY_EVERY: Duration = Duration::from_secs(5);
const PARTITIONS: i32 = 4;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where the HTTP API listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Exit by itself after this long (e.g. "30s"); without it, run until Ctrl-C.
    #[arg(long = "for", value_parser = super::parse_duration)]
    pub run_for: Option<Duration>,
    /// Approximate number of simulated sensors.
    #[arg(long, default_value_t = 300)]
    pub sensors: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    super::runtime()?.block_on(demo(args))
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    // The mock cluster must outlive every client; it lives on this task's stack.
    let cluster = MockCluster::new(1).context("cannot start the embedded Kafka (librdkafka mock cluster)")?;
    let defaults = Settings::defaults();
    let rollup_topic = defaults.rollup.as_ref().map(|r| r.topic.as_str());
    let alert_topics = ["city.alerts", "city.alerts.changelog"];
    for topic in defaults
        .inputs
        .iter()
        .map(|t| t.name.as_str())
        .chain([defaults.deadletter_topic.as_str(), defaults.checkpoint_topic.as_str()])
        .chain(rollup_topic)
        .chain(alert_topics)
    {
        cluster.create_topic(topic, PARTITIONS, 1).with_context(|| format!("cannot create topic {topic}"))?;
    }
    let brokers = cluster.bootstrap_servers();
    let settings = demo_settings(&brokers, args.listen)?;

    let city = City::generate(args.sensors);
    let registry = Arc::new(city.registry());
    println!(
        "citysense demo: {} sensors ({} PM2.5, {} dust, {} water, {} piles) in an embedded Kafka at {brokers}",
        city.sensors.len(),
        city.count(Kind::Pm25),
        city.count(Kind::Dust),
        city.count(Kind::Water),
        city.count(Kind::Charging)
    );

    let shutdown = CancellationToken::new();
    super::cancel_on_signal(shutdown.clone());
    if let Some(run_for) = args.run_for {
        let token = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(run_for).await;
            token.cancel();
        });
    }
    let shared = Shared::with_registry(registry.clone());
    let listener = api::bind(args.listen).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    println!(
        "Operations page: http://{0}/   API: http://{0}/api/v1/openapi.json  http://{0}/api/v1/series?kind=pm25&window=1m  http://{0}/api/v1/alerts",
        args.listen
    );
    let server = tokio::spawn(api::serve(listener, shared.clone(), settings.api.token.clone(), shutdown.clone()));

    let publisher = RecordPublisher::new(&brokers, RecordPublisher::default_topics())?;
    let simulator = tokio::task::spawn_blocking({
        let shutdown = shutdown.clone();
        move || simulate_city(city, args.seed, publisher, shutdown)
    });
    let summary = tokio::spawn(print_summaries(shared.clone(), shutdown.clone()));

    let result = pipeline::run(settings, registry, shared.clone(), shutdown.clone()).await;
    shutdown.cancel();
    let _ = tokio::join!(server, simulator, summary);
    print_summary(&shared);
    drop(cluster);
    result.map_err(anyhow::Error::from)
}

fn demo_settings(brokers: &str, listen: SocketAddr) -> anyhow::Result<Settings> {
    let text = format!(
        "[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"citysense-demo\"\n[api]\nlisten = \"{listen}\"\n[pipeline]\nshutdown_timeout = \"5s\"\n[rollup]\ngroup_id = \"citysense-demo-areas\"\n"
    );
    let mut settings = config::parse(&text, "demo settings", Vec::new())?;
    let rules = crate::alert::rules::parse_rules(include_str!("../../deploy/rules.toml"), "deploy/rules.toml")
        .map_err(|problems| anyhow::anyhow!("built-in rules: {problems:?}"))?;
    settings.alerts = Some(config::settings::AlertSettings {
        rules,
        topic: "city.alerts".into(),
        protobuf: false,
        changelog_topic: "city.alerts.changelog".into(),
        flap: crate::alert::FlapPolicy::default(),
        alertmanager_url: None,
        resend_interval_ms: 60_000,
    });
    Ok(settings)
}

/// Publishes the backfill at full speed, then live readings each second until shutdown.
fn simulate_city(city: City, seed: u64, publisher: RecordPublisher, shutdown: CancellationToken) {
    let start = wall_ms() - BACKFILL.as_millis() as i64;
    let mut generator = Generator::new(city, seed, start, SimFormat::Mixed, FaultRates::REALISTIC);
    generator.script_faults(wall_ms());
    let mut batch = Vec::new();
    while !shutdown.is_cancelled() {
        batch.clear();
        generator.emit_until(wall_ms(), &mut batch);
        for record in &batch {
            if let Err(err) = publisher.send(record, None) {
                tracing::warn!(error = %err, "Simulator could not publish");
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = publisher.flush(Duration::from_secs(2));
}

async fn print_summaries(shared: Shared, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(SUMMARY_EVERY);
    every.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => print_summary(&shared),
        }
    }
}

fn print_summary(shared: &Shared) {
    let stats = &shared.stats;
    let rejected: Vec<String> = stats.rejected_by_reason().iter().map(|(r, n)| format!("{r} {n}")).collect();
    println!(
        "records in {} (pm25 {}, dust {}, water {}, charging {}) | dead-lettered {} [{}] | windows closed {} | open {} | sensors {}",
        stats.records_in(),
        stats.records_in_for(Kind::Pm25),
        stats.records_in_for(Kind::Dust),
        stats.records_in_for(Kind::Water),
        stats.records_in_for(Kind::Charging),
        stats.rejected(),
        rejected.join(", "),
        stats.windows_closed.load(Ordering::Relaxed),
        stats.open_windows.load(Ordering::Relaxed),
        stats.tracked_sensors.load(Ordering::Relaxed),
    );
    let firing = shared.alerts.list("firing");
    if !firing.is_empty() {
        let mut by_rule: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for a in &firing {
            *by_rule.entry(a.rule.as_str()).or_default() += 1;
        }
        let list: Vec<String> = by_rule.iter().map(|(r, n)| format!("{r} {n}")).collect();
        println!("  alerts firing {}: {}  (http://…/api/v1/alerts)", firing.len(), list.join(", "));
    }
    let latest = shared.store.latest_by_district(Kind::Pm25, "1m");
    if !latest.is_empty() {
        let line: Vec<String> = latest.iter().map(|(d, (mean, n, _))| format!("{d} {mean:.1} ({n})")).collect();
        let newest = latest.values().map(|v| v.2).max().unwrap_or(0);
        println!(
            "  PM2.5 1-min mean µg/m³ by district, window ending {}: {}",
            chrono::DateTime::from_timestamp_millis(newest)
                .map(|t| (t + chrono::Duration::hours(8)).format("%H:%M").to_string())
                .unwrap_or_default(),
            line.join(", ")
        );
    }
}
