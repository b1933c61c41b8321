//! The InfluxDB v2 sink: window results are encoded into one line-protocol buffer per
//! batch and written with `influxdb2` (as the transport only). Nothing is dropped:
//!
//! - a write that fails for a reason retrying can fix (connection, 5xx, 429) goes to the
//!   on-disk spool (`sink::spool`) when one is configured, and the batch counts as written
//!   (it survives restarts); while the spool holds anything, new batches queue behind it so
//!   InfluxDB receives them in order, and `drain_spool` delivers it oldest first with
//!   backoff. Without a spool, or when it is full, the write is retried with exponential
//!   backoff and jitter, holding the input offsets (backpressure);
//! - a batch InfluxDB refuses as malformed (4xx) is split into single lines, and the lines
//!   it still refuses are handed to `on_rejected` (the dead-letter topic) with the reason.

use std::path::Path;
use std::time::Duration;

use influxdb2::api::write::TimestampPrecision;
use influxdb2::RequestError;
use rand::Rng;

use super::spool::{Spool, SpoolError};
use crate::config::InfluxSettings;

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The longest pause between attempts to drain the spool: InfluxDB being back should
/// show within seconds.
const DRAIN_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Spooled batches delivered per `drain_spool` call at most (the caller's loop stays live).
const DRAIN_PER_CALL: usize = 16;

/// Receives a line InfluxDB refused and its answer.
pub type RejectedLine = Box<dyn Fn(&str, &str) + Send + Sync>;

pub struct InfluxWriter {
    client: influxdb2::Client,
    org: String,
    bucket: String,
    body: String,
    lines: usize,
    spool: Option<Spool>,
    drain_backoff: Duration,
    next_drain: tokio::time::Instant,
    on_rejected: Option<RejectedLine>,
    /// Mirrors the spool's size (for `/metrics`).
    spool_gauge: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    /// Write latency and retried attempts (for `/metrics`).
    latency: Option<(std::sync::Arc<crate::pipeline::stats::LatencyHistogram>, std::sync::Arc<std::sync::atomic::AtomicU64>)>,
}

/// What one write attempt came to.
enum Written {
    Ok,
    /// Retrying may help (InfluxDB down, overloaded, 5xx).
    Retry(String),
    /// InfluxDB refused the content (4xx other than 408/429).
    Refused(String),
}

impl InfluxWriter {
    /// A writer whose spool (when configured) is the `stream` subdirectory of the spool dir.
    pub fn new(settings: &InfluxSettings, stream: &str) -> Result<Self, SpoolError> {
        let spool = match &settings.spool {
            Some(s) => {
                let spool = Spool::open(&Path::new(&s.dir).join(stream), s.max_bytes, s.fsync)?;
                if !spool.is_empty() {
                    tracing::info!(
                        stream,
                        records = spool.records(),
                        bytes = spool.bytes(),
                        "Spooled batches from an earlier run will be delivered first"
                    );
                }
                Some(spool)
            }
            None => None,
        };
        Ok(InfluxWriter {
            client: influxdb2::Client::new(&settings.url, &settings.org, settings.token.expose()),
            org: settings.org.clone(),
            bucket: settings.bucket.clone(),
            body: String::with_capacity(1 << 20),
            lines: 0,
            spool,
            drain_backoff: BACKOFF_START,
            next_drain: tokio::time::Instant::now(),
            on_rejected: None,
            spool_gauge: None,
            latency: None,
        })
    }

    /// Where lines InfluxDB refuses go (default: the error log only).
    pub fn on_rejected(mut self, handler: RejectedLine) -> Self {
        self.on_rejected = Some(handler);
        self
    }

    /// Keeps `gauge` equal to the bytes waiting in the spool.
    pub fn with_spool_gauge(mut self, gauge: std::sync::Arc<std::sync::atomic::AtomicU64>) -> Self {
        gauge.store(self.spooled().0, std::sync::atomic::Ordering::Relaxed);
        self.spool_gauge = Some(gauge);
        self
    }

    /// Records every write's latency in `histogram` and counts retried attempts in `retries`.
    pub fn with_latency(
        mut self,
        histogram: std::sync::Arc<crate::pipeline::stats::LatencyHistogram>,
        retries: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> Self {
        self.latency = Some((histogram, retries));
        self
    }

    fn update_gauge(&self) {
        if let Some(gauge) = &self.spool_gauge {
            gauge.store(self.spooled().0, std::sync::atomic::Ordering::Relaxed);
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

    /// (bytes, batches) waiting in the spool.
    pub fn spooled(&self) -> (u64, u64) {
        self.spool.as_ref().map_or((0, 0), |s| (s.bytes(), s.records()))
    }

    async fn write(&self, body: String) -> Written {
        let started = std::time::Instant::now();
        let result = self.client.write_line_protocol_with_precision(&self.org, &self.bucket, body, TimestampPrecision::Milliseconds).await;
        if let Some((histogram, _)) = &self.latency {
            histogram.observe(started.elapsed().as_secs_f64());
        }
        match result {
            Ok(()) => Written::Ok,
            Err(RequestError::Http { status, text }) if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 => {
                Written::Refused(format!("{status}: {text}"))
            }
            Err(err) => Written::Retry(err.to_string()),
        }
    }

    /// Writes the buffered lines: delivered, spooled, or (no spool / spool full) retried
    /// until acknowledged or `give_up` resolves. Returns whether the batch is safe.
    pub async fn flush(&mut self, give_up: impl std::future::Future<Output = ()>) -> bool {
        if self.lines == 0 {
            return true;
        }
        tokio::pin!(give_up);
        // Behind a non-empty spool: keep InfluxDB's order.
        if self.spool.as_ref().is_some_and(|s| !s.is_empty()) && self.spool_body() {
            return true;
        }
        let mut backoff = BACKOFF_START;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.write(self.body.clone()).await {
                Written::Ok => {
                    if attempt > 1 {
                        tracing::info!(attempt, lines = self.lines, "InfluxDB write succeeded after retries");
                    }
                    self.clear();
                    return true;
                }
                Written::Refused(reason) => {
                    let body = std::mem::take(&mut self.body);
                    self.write_line_by_line(&body, &reason).await;
                    self.clear();
                    return true;
                }
                Written::Retry(err) => {
                    if attempt == 1 && self.spool_body() {
                        tracing::warn!(error = %err, lines = self.lines, "InfluxDB write failed; batch spooled to disk");
                        return true;
                    }
                    if let Some((_, retries)) = &self.latency {
                        retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
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

    fn clear(&mut self) {
        self.body.clear();
        self.lines = 0;
    }

    /// Moves the buffered batch to the spool; `false` when there is none or it is full.
    fn spool_body(&mut self) -> bool {
        let Some(spool) = self.spool.as_mut() else { return false };
        match spool.append(self.body.as_bytes()) {
            Ok(()) => {
                self.clear();
                self.update_gauge();
                true
            }
            Err(err) => {
                tracing::warn!(error = %err, "Cannot spool; holding the batch and retrying (backpressure)");
                false
            }
        }
    }

    /// A refused batch, line by line: the lines refused again go to `on_rejected`; a line
    /// that fails for another reason is retried with backoff until it is written. Leaves
    /// the batch being built (`self.body`) alone.
    async fn write_line_by_line(&self, body: &str, batch_reason: &str) {
        tracing::error!(reason = batch_reason, lines = body.lines().count(), "InfluxDB refused a batch; writing its lines one by one");
        for line in body.lines().filter(|l| !l.is_empty()) {
            let mut backoff = BACKOFF_START;
            loop {
                match self.write(format!("{line}\n")).await {
                    Written::Ok => break,
                    Written::Refused(reason) => {
                        tracing::error!(line, reason = %reason, "InfluxDB refused a point; dead-lettered");
                        if let Some(handler) = &self.on_rejected {
                            handler(line, &reason);
                        }
                        break;
                    }
                    Written::Retry(_) => {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
            }
        }
    }

    /// Delivers spooled batches, oldest first, until the spool is empty, a write fails
    /// (then waits a growing backoff before the next try) or a few were sent.
    pub async fn drain_spool(&mut self) {
        if self.spool.as_ref().is_none_or(Spool::is_empty) || tokio::time::Instant::now() < self.next_drain {
            return;
        }
        for _ in 0..DRAIN_PER_CALL {
            let Some(spool) = self.spool.as_mut() else { return };
            let record = match spool.peek() {
                Ok(Some(record)) => record,
                Ok(None) => return,
                Err(err) => {
                    tracing::error!(error = %err, "Cannot read the spool");
                    self.next_drain = tokio::time::Instant::now() + DRAIN_BACKOFF_MAX;
                    return;
                }
            };
            let body = String::from_utf8_lossy(&record).into_owned();
            match self.write(body.clone()).await {
                Written::Ok => {}
                // The live batch may already hold lines: only the spooled record is split.
                Written::Refused(reason) => self.write_line_by_line(&body, &reason).await,
                Written::Retry(err) => {
                    tracing::debug!(error = %err, "Spool not drained yet; InfluxDB still failing");
                    self.next_drain = tokio::time::Instant::now() + self.drain_backoff;
                    self.drain_backoff = (self.drain_backoff * 2).min(DRAIN_BACKOFF_MAX);
                    return;
                }
            }
            self.drain_backoff = BACKOFF_START;
            if let Some(spool) = self.spool.as_mut() {
                if let Err(err) = spool.pop() {
                    tracing::error!(error = %err, "Cannot advance the spool");
                    return;
                }
                if spool.is_empty() {
                    tracing::info!("Spool drained; InfluxDB is receiving live data again");
                }
            }
            self.update_gauge();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::config::{Secret, SpoolSettings};
    use crate::sink::spool::FsyncPolicy;

    /// An InfluxDB stand-in: refuses (400) any body with a line containing `bad`, takes the
    /// rest and remembers each accepted line.
    async fn fake_influx(accepted: Arc<Mutex<Vec<String>>>) -> String {
        let app = axum::Router::new().route(
            "/api/v2/write",
            axum::routing::post(move |body: String| {
                let accepted = accepted.clone();
                async move {
                    if body.lines().any(|l| l.contains("bad")) {
                        return (axum::http::StatusCode::BAD_REQUEST, "{\"message\":\"bad point\"}".to_owned());
                    }
                    accepted.lock().unwrap().extend(body.lines().map(str::to_owned));
                    (axum::http::StatusCode::NO_CONTENT, String::new())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn a_refused_spooled_batch_is_split_without_touching_the_batch_being_built() {
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let url = fake_influx(accepted.clone()).await;
        let dir = std::env::temp_dir().join(format!("citysense-influx-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let settings = InfluxSettings {
            url,
            org: "o".into(),
            bucket: "b".into(),
            token: Secret::new("t".into()),
            batch_size: 10,
            flush_interval_ms: 100,
            spool: Some(SpoolSettings { dir: dir.clone(), max_bytes: 1 << 20, fsync: FsyncPolicy::Never }),
        };
        // A batch spooled while InfluxDB was down, one of whose points it now refuses.
        Spool::open(&dir.join("windows"), 1 << 20, FsyncPolicy::Never).unwrap().append(b"m good=1i 1\nm bad=1i 2\n").unwrap();
        let rejected = Arc::new(Mutex::new(Vec::new()));
        let sink = rejected.clone();
        let mut writer = InfluxWriter::new(&settings, "windows")
            .unwrap()
            .on_rejected(Box::new(move |line, _reason| sink.lock().unwrap().push(line.to_owned())));
        writer.push(&"m live=1i 3", |line: &&str, out: &mut String| {
            out.push_str(line);
            out.push('\n');
        });
        writer.drain_spool().await;
        assert_eq!(writer.spooled(), (0, 0), "the spool is drained");
        assert_eq!(*rejected.lock().unwrap(), vec!["m bad=1i 2".to_owned()]);
        assert_eq!(*accepted.lock().unwrap(), vec!["m good=1i 1".to_owned()]);
        assert_eq!(writer.pending_lines(), 1, "the live batch is still there");
        assert!(writer.flush(std::future::pending()).await);
        assert_eq!(accepted.lock().unwrap().last().map(String::as_str), Some("m live=1i 3"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
