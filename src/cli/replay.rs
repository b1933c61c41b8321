//! `citysense replay FILE`: publish an NDJSON file of readings (SPEC §1 format) to the
//! input topics in file order, keyed by sensor or pile id. Each line is sent byte for
//! byte, so the pipeline judges it exactly as the vendor wrote it.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;

use crate::decode::CONTENT_TYPE_JSON;
use crate::model::Kind;
use crate::sim::publish::RecordPublisher;

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// NDJSON file, one reading or pile status per line.
    pub file: PathBuf,
    #[arg(long)]
    pub brokers: String,
    /// Topics for pm25, dust, water and charging, comma-separated.
    #[arg(long, default_value = "city.pm25,city.dust,city.water,city.charging")]
    pub topics: String,
}

/// Which topic a line belongs on, and its key: piles by `pile_id`, readings by `kind`.
pub fn route(line: &str) -> Option<(Kind, Option<String>)> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    if let Some(pile) = value.get("pile_id") {
        return Some((Kind::Charging, pile.as_str().map(str::to_owned)));
    }
    let kind = Kind::parse(value.get("kind")?.as_str()?)?;
    Some((kind, value.get("sensor_id").and_then(|v| v.as_str()).map(str::to_owned)))
}

pub fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let topics: Vec<String> = args.topics.split(',').map(|t| t.trim().to_owned()).collect();
    let Ok(topics) = <[String; 4]>::try_from(topics) else { bail!("--topics needs four names: pm25,dust,water,charging") };
    let file = std::fs::File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).ok();
    let progress = super::progress::Progress::bytes(size);
    let (started, mut last_report, mut read) = (std::time::Instant::now(), std::time::Instant::now(), 0u64);
    let publisher = RecordPublisher::new(&args.brokers, topics)?;
    let (mut sent, mut skipped) = (0u64, 0u64);
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}: line {}", args.file.display(), number + 1))?;
        read += line.len() as u64 + 1;
        progress.set(read, &mut last_report, started);
        if line.trim().is_empty() {
            continue;
        }
        let Some((kind, key)) = route(&line) else {
            eprintln!("{}:{}: no kind or pile_id, cannot pick a topic; skipped", args.file.display(), number + 1);
            skipped += 1;
            continue;
        };
        let headers = OwnedHeaders::new().insert(Header { key: "content-type", value: Some(CONTENT_TYPE_JSON) });
        let payload = line.into_bytes();
        let mut record: BaseRecord<'_, [u8], Vec<u8>> = BaseRecord::to(publisher.topic(kind)).payload(&payload).headers(headers);
        if let Some(key) = &key {
            record = record.key(key.as_bytes());
        }
        publisher.send_raw(record)?;
        sent += 1;
    }
    progress.finish();
    publisher.flush(Duration::from_secs(60))?;
    eprintln!("replayed {sent} lines ({skipped} skipped); delivered {}, failed {}", publisher.delivered(), publisher.failed());
    if publisher.failed() > 0 {
        bail!("{} lines were not delivered", publisher.failed());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_route_by_kind_or_pile_id() {
        assert_eq!(route(r#"{"sensor_id":"a","kind":"water","ts":1,"value":1,"unit":"m"}"#), Some((Kind::Water, Some("a".into()))));
        assert_eq!(route(r#"{"pile_id":"p","ts":1,"status":"Charging"}"#), Some((Kind::Charging, Some("p".into()))));
        assert_eq!(route(r#"{"sensor_id":"a","ts":1}"#), None);
        assert_eq!(route("garbage"), None);
    }
}
