//! The InfluxDB v2 sink: window results are encoded into one line-protocol buffer per
//! batch and written with `influxdb2` (as the transport only). A failed write is retried
//! with exponential backoff and jitter, never dropped; only an acknowledged write releases
//! the input offsets of its windows.

use std::time::Duration;

use influxdb2::api::write::TimestampPrecision;
use rand::Rng;

use crate::config::InfluxSettings;

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

pub struct InfluxWriter {
    client: influxdb2::Client,
    org: String,
    bucket: String,
    body: String,
    lines: usize,
}

impl InfluxWriter {
    pub fn new(settings: &InfluxSettings) -> Self {
        InfluxWriter {
            client: influxdb2::Client::new(&settings.url, &settings.org, settings.token.expose()),
            org: settings.org.clone(),
            bucket: settings.bucket.clone(),
            body: String::with_capacity(1 << 20),
            lines: 0,
        }
    }

    /// Appends one point; `encode` writes its line (with the newline).
    pub fn push<T>(&mut self, item: &T, encode: fn(&T, &mut String)) {
        encode(item, &mut self.body);
        self.lines += 1;
    }

    pub fn pending_lines(&self) -> usize {
        self.lines
    }

    /// Writes the buffered lines, retrying until acknowledged or `give_up` resolves.
    /// Returns whether the batch was acknowledged.
    pub async fn flush(&mut self, give_up: impl std::future::Future<Output = ()>) -> bool {
        if self.lines == 0 {
            return true;
        }
        tokio::pin!(give_up);
        let mut backoff = BACKOFF_START;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let body = self.body.clone();
            match self.client.write_line_protocol_with_precision(&self.org, &self.bucket, body, TimestampPrecision::Milliseconds).await {
                Ok(()) => {
                    if attempt > 1 {
                        tracing::info!(attempt, lines = self.lines, "InfluxDB write succeeded after retries");
                    }
                    self.body.clear();
                    self.lines = 0;
                    return true;
                }
                Err(err) => {
                    let jitter = rand::thread_rng().gen_range(0..=backoff.as_millis() as u64 / 2);
                    let wait = backoff + Duration::from_millis(jitter);
                    tracing::warn!(error = %err, attempt, lines = self.lines, retry_in_ms = wait.as_millis() as u64, "InfluxDB write failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = &mut give_up => return false,
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}
