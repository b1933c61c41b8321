//! `citysense run --config FILE`: the production pipeline against real Kafka and InfluxDB.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::pipeline::{self, Shared};
use crate::registry::Registry;
use crate::{api, config};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The TOML config file; CITYSENSE_<SECTION>__<FIELD> environment variables override it.
    #[arg(long, short)]
    pub config: PathBuf,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let settings = config::load(&args.config)?;
    let registry = match &settings.registry_path {
        Some(path) => Registry::load_csv(path)?,
        None => Registry::empty(),
    };
    super::runtime()?.block_on(async move {
        let shutdown = CancellationToken::new();
        super::cancel_on_signal(shutdown.clone());
        let registry = Arc::new(registry);
        let shared = Shared::with_registry(registry.clone());
        let listener = api::bind(settings.api.listen).await.with_context(|| format!("cannot listen on {}", settings.api.listen))?;
        tracing::info!(listen = %settings.api.listen, sensors = registry.len(), "HTTP API listening");
        let server = tokio::spawn(api::serve(listener, shared.clone(), settings.api.token.clone(), shutdown.clone()));
        let result = pipeline::run(settings, registry, shared, shutdown.clone()).await;
        shutdown.cancel();
        let _ = server.await;
        result.map_err(anyhow::Error::from)
    })
}
