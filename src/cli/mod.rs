//! Subcommands: `demo`, `run`, `simulate`, `replay`, `check-config`. Each one parses its
//! arguments, calls into the library and returns `anyhow::Result` for `main` to report.

mod check_config;
mod demo;
mod progress;
mod replay;
mod run;
mod simulate;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "citysense", version, about = "Streaming city-sensing pipeline: Kafka in, event-time windows, InfluxDB v2 out")]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything embedded: an in-process Kafka, a simulated city, the pipeline and the API.
    #[command(after_help = "Examples:\n  citysense demo\n  citysense demo --listen 127.0.0.1:9090 --for 60s")]
    Demo(demo::DemoArgs),
    /// Production: consume from Kafka and write to InfluxDB as the config says.
    #[command(
        after_help = "Examples:\n  citysense run --config deploy/citysense.toml\n  CITYSENSE_KAFKA__BROKERS=kafka:9092 citysense run --config citysense.toml"
    )]
    Run(run::RunArgs),
    /// Publish simulated sensor readings (a vendor load generator).
    #[command(
        after_help = "Examples:\n  citysense simulate --brokers 127.0.0.1:9092 --sensors 1000 --rate 500\n  citysense simulate --brokers 127.0.0.1:9092 --count 2000000 --rate 0 --format protobuf"
    )]
    Simulate(simulate::SimulateArgs),
    /// Publish an NDJSON file of readings to the input topics, in order.
    #[command(after_help = "Example:\n  citysense replay tests/data/readings.ndjson --brokers 127.0.0.1:9092")]
    Replay(replay::ReplayArgs),
    /// Validate a config file and its registry; prints every problem with its field.
    #[command(after_help = "Example:\n  citysense check-config deploy/citysense.toml")]
    CheckConfig(check_config::CheckConfigArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Run(args) => run::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Replay(args) => replay::run(args),
        Command::CheckConfig(args) => check_config::run(args),
    }
}

/// A multi-threaded runtime for the long-running subcommands.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Cancels `token` on Ctrl-C or SIGTERM.
fn cancel_on_signal(token: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(err) => {
                    tracing::warn!(error = %err, "Cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("Shutdown requested");
        token.cancel();
    });
}

/// Parses a human duration argument ("30s", "5m").
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::config::duration::parse_ms(text).map(|ms| std::time::Duration::from_millis(ms as u64))
}
