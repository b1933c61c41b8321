//! `citysense check-config FILE`: validate a config (and the registry it names).

use std::path::PathBuf;

use anyhow::bail;

use crate::config;
use crate::registry::Registry;

#[derive(Debug, clap::Args)]
pub struct CheckConfigArgs {
    /// The TOML config file.
    pub file: PathBuf,
}

pub fn run(args: CheckConfigArgs) -> anyhow::Result<()> {
    let settings = match config::load(&args.file) {
        Ok(settings) => settings,
        Err(err) => {
            for problem in &err.problems {
                eprintln!("{}: {problem}", args.file.display());
            }
            bail!("{} problem(s) in {}", err.problems.len(), args.file.display());
        }
    };
    if let Some(path) = &settings.registry_path {
        let registry = Registry::load_csv(path)?;
        println!("registry {}: {} sensors", path.display(), registry.len());
    }
    let windows: Vec<String> = settings
        .inputs
        .iter()
        .map(|t| {
            format!(
                "{} ({}): {}",
                t.name,
                t.kind,
                settings.windows[t.kind.index()].iter().map(|w| w.label.as_str()).collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    println!("{}: ok", args.file.display());
    for line in windows {
        println!("  {line}");
    }
    Ok(())
}
