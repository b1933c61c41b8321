//! The alert task: every alert event of both stages goes to the alerts topic and the state
//! changelog (whose deliveries release the input offsets the event held), to InfluxDB, to
//! the in-memory store (API and server-sent events) and to Alertmanager, which also gets
//! every firing alert again at the resend interval, as it expects.

use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::alert::{AckError, AlertEvent, AlertState};
use crate::sink::alerts::{encode_alert, to_alertmanager, AlertProducer, AlertStore, AlertView, Release};
use crate::sink::influx::InfluxWriter;

use super::offsets::OffsetTracker;

/// One event on its way to the sinks; each release runs on one Kafka delivery.
pub struct AlertOut {
    pub event: AlertEvent,
    pub state: AlertState,
    pub releases: [Option<Release>; 2],
}

/// The releases of an alert that holds `offset` of `partition` twice (the caller took both
/// holds): one for its event, one for its changelog state, each given back on delivery.
pub fn alert_releases<P>(offsets: &Arc<Mutex<OffsetTracker<P>>>, partition: P, offset: i64) -> [Option<Release>; 2]
where
    P: Copy + Eq + Hash + Ord + Send + Sync + 'static,
{
    let release = || {
        let offsets = offsets.clone();
        Some(Release(Box::new(move || offsets.lock().unwrap_or_else(|e| e.into_inner()).release(partition, offset))))
    };
    [release(), release()]
}

/// An operator's acknowledgement, routed to the engine that owns the fingerprint.
pub struct AckRequest {
    pub fingerprint: String,
    pub by: String,
    pub comment: String,
    pub reply: oneshot::Sender<Result<AlertEvent, AckError>>,
}

/// Alert events handled together when they queue up (one sink write per batch).
const ALERT_BATCH: usize = 1_024;
/// Batches of alert events (each what one stage turn produced) waiting for the alert task.
pub const ALERT_QUEUE: usize = 256;
/// Alert events waiting for InfluxDB before the alert task waits too (backpressure).
const ALERT_INFLUX_QUEUE: usize = 65_536;

pub struct Alertmanager {
    pub url: String,
    pub resend: Duration,
}

pub async fn run_alert_sink(
    mut events: mpsc::Receiver<Vec<AlertOut>>,
    producer: AlertProducer,
    influx: Option<InfluxWriter>,
    alertmanager: Option<Alertmanager>,
    store: Arc<AlertStore>,
    give_up: CancellationToken,
) {
    // InfluxDB gets its own task and a deep queue, so that a slow time-series write never
    // holds back the alerts topic: a 10,000-alert burst waited on ten writes in turn, and
    // VictoriaMetrics takes ~1 s to write 1,024 points of new series under load.
    let (to_influx, influx_task) = match influx {
        Some(writer) => {
            let (tx, rx) = mpsc::channel(ALERT_INFLUX_QUEUE);
            (Some(tx), Some(tokio::spawn(write_alert_points(rx, writer, give_up.clone()))))
        }
        None => (None, None),
    };
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
    let mut drain = tokio::time::interval(Duration::from_secs(1));
    let mut resend = tokio::time::interval(alertmanager.as_ref().map_or(Duration::from_secs(3600), |a| a.resend));
    loop {
        tokio::select! {
            out = events.recv() => {
                let Some(mut batch) = out else { break };
                // Everything already queued is handled together: one Alertmanager post per
                // burst (a minute boundary can close thousands of windows at once), not one
                // per event; the InfluxDB task batches its writes the same way.
                while batch.len() < ALERT_BATCH {
                    match events.try_recv() {
                        Ok(more) => batch.extend(more),
                        Err(_) => break,
                    }
                }
                // Events first: the alerts topic is what operations centres wait for; the
                // changelog states (same count again) follow them to the broker.
                let mut states = Vec::with_capacity(batch.len());
                for out in &mut batch {
                    let [event_release, state_release] = std::mem::take(&mut out.releases);
                    producer.send_event(&out.event, event_release);
                    states.push(state_release);
                }
                for (out, release) in batch.iter().zip(states) {
                    producer.send_state(&out.state, release);
                }
                let mut changes = ChangeCounts::default();
                // What Alertmanager is told about (kept only when it is configured).
                let mut changed: Vec<String> = Vec::new();
                let mut superseded: Vec<AlertView> = Vec::new();
                for out in batch {
                    let before = store.record(&out.event, &out.state);
                    tracing::debug!(rule = %out.event.rule, key = %out.event.scope_key, change = %out.event.change, severity = %out.event.severity, "Alert");
                    changes.count(&out.event.change);
                    if alertmanager.is_some() {
                        // Severity is a label, so Alertmanager holds one alert per severity:
                        // when the severity changes, the previous one is resolved explicitly.
                        if let Some(mut previous) = before.filter(|b| b.severity != out.event.severity && b.status != "resolved") {
                            previous.status = "resolved".to_owned();
                            previous.ends_at = Some(crate::model::rfc3339(out.event.at_ms));
                            superseded.push(previous);
                        }
                        changed.push(out.event.fingerprint.clone());
                    }
                    if let Some(tx) = &to_influx {
                        let _ = tx.send(out.event).await;
                    }
                }
                changes.log();
                changed.sort_unstable();
                changed.dedup();
                if let Some(am) = &alertmanager {
                    let mut views: Vec<AlertView> = changed.iter().filter_map(|fingerprint| store.get(fingerprint)).collect();
                    views.append(&mut superseded);
                    post(&client, &am.url, &views).await;
                }
            }
            _ = drain.tick() => {
                producer.resend_failed();
            }
            _ = resend.tick() => {
                if let Some(am) = &alertmanager {
                    post(&client, &am.url, &store.list("firing")).await;
                }
            }
        }
    }
    producer.flush(Duration::from_secs(5));
    drop(to_influx);
    if let Some(task) = influx_task {
        let _ = task.await;
    }
}

/// Writes alert events to InfluxDB: what is queued goes as one write; the spool of failed
/// writes is retried every second.
async fn write_alert_points(mut events: mpsc::Receiver<AlertEvent>, mut writer: InfluxWriter, give_up: CancellationToken) {
    let mut drain = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                writer.push(&event, encode_alert);
                for _ in 1..ALERT_BATCH {
                    match events.try_recv() {
                        Ok(event) => writer.push(&event, encode_alert),
                        Err(_) => break,
                    }
                }
                writer.flush(give_up.cancelled()).await;
            }
            _ = drain.tick() => writer.drain_spool().await,
        }
    }
    writer.flush(give_up.cancelled()).await;
}

/// How many events of each kind a batch held: one log line per batch, not per event (a
/// minute boundary can close 10,000 windows; each event is on the alerts topic anyway).
#[derive(Default)]
struct ChangeCounts {
    fired: usize,
    resolved: usize,
    other: usize,
}

impl ChangeCounts {
    fn count(&mut self, change: &str) {
        match change {
            "fired" => self.fired += 1,
            "resolved" => self.resolved += 1,
            _ => self.other += 1,
        }
    }

    fn log(&self) {
        tracing::info!(fired = self.fired, resolved = self.resolved, other = self.other, "Alert events sent");
    }
}

/// POSTs alerts to Alertmanager's v2 API; failures are logged (the alerts topic is the
/// record; the next resend repeats every firing alert).
async fn post(client: &reqwest::Client, url: &str, views: &[AlertView]) {
    if views.is_empty() {
        return;
    }
    let body: Vec<_> = views.iter().map(to_alertmanager).collect();
    match client.post(format!("{url}/api/v2/alerts")).json(&body).send().await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => tracing::warn!(status = %r.status(), "Alertmanager refused alerts"),
        Err(err) => tracing::warn!(error = %err, "Alertmanager unreachable"),
    }
}
