//! Configuration in two stages: `raw` mirrors the TOML file (serde, unknown fields refused),
//! `settings` is the validated, typed form the pipeline runs on. `load` reads a file,
//! applies `CITYSENSE_…` environment overrides (`env`), and reports every problem with its
//! field path and reason.

pub mod duration;
pub mod env;
pub mod raw;
pub mod settings;

use std::fmt;
use std::path::Path;

pub use settings::{ApiSettings, InfluxSettings, KafkaSettings, Secret, Settings, SpoolSettings, TopicInput};

/// One thing wrong with a config: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted field path, e.g. `windows.pm25[1]`; empty for whole-file problems.
    pub field: String,
    pub reason: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.field, self.reason)
        }
    }
}

/// A config that cannot be used, with every problem found.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub source_name: String,
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid config {}:", self.source_name)?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

/// Reads, overrides from the environment, and validates a config file.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let source_name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
        source_name: source_name.clone(),
        problems: vec![ConfigProblem { field: String::new(), reason: format!("cannot read: {err}") }],
    })?;
    parse(&text, &source_name, std::env::vars())
}

/// Parses config text with the given environment (tests pass their own).
pub fn parse(text: &str, source_name: &str, environment: impl IntoIterator<Item = (String, String)>) -> Result<Settings, ConfigError> {
    let fail = |problems| ConfigError { source_name: source_name.to_owned(), problems };
    let mut value: toml::Value = toml::from_str(text)
        .map_err(|err| fail(vec![ConfigProblem { field: String::new(), reason: format!("not valid TOML: {}", err.message()) }]))?;
    env::apply_overrides(&mut value, environment).map_err(|p| fail(vec![p]))?;
    let raw: raw::RawConfig = serde_path_to_error::deserialize(value).map_err(|err| {
        let field = err.path().to_string();
        let field = if field == "." { String::new() } else { field };
        fail(vec![ConfigProblem { field, reason: err.into_inner().message().to_owned() }])
    })?;
    settings::Settings::from_raw(raw, &|name| std::env::var(name).ok()).map_err(fail)
}
