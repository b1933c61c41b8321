//! Where alert events go: the alerts topic (keyed by fingerprint) and the state changelog
//! (compacted, keyed by fingerprint) through one producer; InfluxDB (`alert` measurement);
//! the in-memory `AlertStore` behind the API and its server-sent events; and an
//! Alertmanager-compatible webhook.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use tokio::sync::broadcast;

use crate::alert::{AlertEvent, AlertState};
use crate::config::KafkaSettings;
use crate::model::rfc3339;
use crate::source::kafka::connection_config;

/// Runs once the broker has the record: releases the input offset it held.
pub struct Release(pub Box<dyn FnOnce() + Send + Sync>);

pub struct ReleaseOnDelivery {
    pub failed: AtomicU64,
    redelivery: super::Redelivery<Option<Release>>,
}

impl ClientContext for ReleaseOnDelivery {}

impl ProducerContext for ReleaseOnDelivery {
    type DeliveryOpaque = Box<Option<Release>>;

    fn delivery(&self, result: &DeliveryResult<'_>, release: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                if let Some(release) = *release {
                    (release.0)();
                }
            }
            Err((err, message)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.redelivery.failed(message, *release);
                tracing::error!(error = %err, "Alert event or state not delivered; will be sent again");
            }
        }
    }
}

/// Produces alert events and state snapshots.
pub struct AlertProducer {
    producer: ThreadedProducer<ReleaseOnDelivery>,
    topic: String,
    changelog: String,
    protobuf: bool,
}

/// The protobuf form of an alert event (`proto/citysense/v1/alert.proto`).
pub fn to_proto(event: &AlertEvent) -> crate::proto::AlertEvent {
    crate::proto::AlertEvent {
        event_id: event.event_id.clone(),
        fingerprint: event.fingerprint.clone(),
        rule: event.rule.clone(),
        status: event.status.clone(),
        severity: event.severity.clone(),
        starts_at_ms: event.starts_at_ms,
        ends_at_ms: event.ends_at_ms,
        scope: event.scope.clone(),
        scope_key: event.scope_key.clone(),
        grid: event.grid.clone(),
        street: event.street.clone(),
        district: event.district.clone(),
        value: event.value,
        threshold: event.threshold,
        window: event.window.clone(),
        summary: event.summary.clone(),
        labels: event.labels.clone().into_iter().collect(),
    }
}

impl AlertProducer {
    pub fn new(kafka: &KafkaSettings, topic: &str, changelog: &str, protobuf: bool) -> Result<Self, KafkaError> {
        let producer = connection_config(kafka)
            .set("linger.ms", "5")
            .create_with_context(ReleaseOnDelivery { failed: AtomicU64::new(0), redelivery: Default::default() })?;
        Ok(AlertProducer { producer, topic: topic.to_owned(), changelog: changelog.to_owned(), protobuf })
    }

    /// Sends the events and states whose delivery failed again.
    pub fn resend_failed(&self) -> usize {
        self.producer.context().redelivery.resend(&self.producer)
    }

    /// Sends the event to the alerts topic; its delivery runs `release`.
    pub fn send_event(&self, event: &AlertEvent, release: Option<Release>) {
        let payload = event_payload(event, self.protobuf);
        self.produce(&self.topic, &event.fingerprint, &payload, release);
    }

    /// Sends the alert's state to the changelog; its delivery runs `release`.
    pub fn send_state(&self, state: &AlertState, release: Option<Release>) {
        let payload = state_payload(state);
        self.produce(&self.changelog, &state.fingerprint, &payload, release);
    }

    fn produce(&self, topic: &str, key: &str, payload: &[u8], release: Option<Release>) {
        let record: BaseRecord<'_, str, [u8], Box<Option<Release>>> =
            BaseRecord::with_opaque_to(topic, Box::new(release)).key(key).payload(payload);
        if let Err(err) = super::send_waiting(&self.producer, record) {
            self.producer.context().failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %err, "Alert could not be queued; its input offset stays held");
        }
    }

    pub fn flush(&self, timeout: Duration) {
        if let Err(err) = self.producer.flush(timeout) {
            tracing::warn!(error = %err, "Alert producer flush did not finish");
        }
    }
}

/// An alert event as the alerts topic carries it (JSON, or protobuf).
pub fn event_payload(event: &AlertEvent, protobuf: bool) -> Vec<u8> {
    if protobuf {
        prost::Message::encode_to_vec(&to_proto(event))
    } else {
        json_payload(event, 1024)
    }
}

/// An alert's state as the changelog carries it.
pub fn state_payload(state: &AlertState) -> Vec<u8> {
    json_payload(state, 512)
}

/// `value` as JSON, written into a buffer of about its usual size (`serde_json::to_vec`
/// starts at 128 bytes and grows three or four times on the way to an alert event's).
fn json_payload(value: &impl serde::Serialize, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    match serde_json::to_writer(&mut out, value) {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

/// One alert as the API lists it: its current state and the id of its latest event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlertView {
    pub fingerprint: String,
    pub event_id: String,
    pub rule: String,
    pub status: String,
    pub severity: String,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub scope: String,
    pub scope_key: String,
    pub grid: String,
    pub street: String,
    pub district: String,
    pub value: f64,
    pub threshold: f64,
    pub window: String,
    pub summary: String,
    pub acknowledged_by: Option<String>,
    pub flapping: bool,
}

#[derive(Debug)]
pub struct AlertStore {
    alerts: RwLock<BTreeMap<String, AlertView>>,
    events: broadcast::Sender<AlertEvent>,
}

impl Default for AlertStore {
    fn default() -> Self {
        AlertStore { alerts: RwLock::new(BTreeMap::new()), events: broadcast::channel(1024).0 }
    }
}

impl AlertStore {
    /// Records an event as its alert's current view; returns the view it replaces.
    pub fn record(&self, event: &AlertEvent, state: &AlertState) -> Option<AlertView> {
        let view = AlertView {
            fingerprint: event.fingerprint.clone(),
            event_id: event.event_id.clone(),
            rule: event.rule.clone(),
            status: event.status.clone(),
            severity: event.severity.clone(),
            starts_at: Some(event.starts_at.clone()),
            ends_at: event.ends_at.clone(),
            scope: event.scope.clone(),
            scope_key: event.scope_key.clone(),
            grid: event.grid.clone(),
            street: event.street.clone(),
            district: event.district.clone(),
            value: event.value,
            threshold: event.threshold,
            window: event.window.clone(),
            summary: event.summary.clone(),
            acknowledged_by: event.acknowledged_by.clone(),
            flapping: state.flapping,
        };
        let previous = self.alerts.write().unwrap_or_else(|e| e.into_inner()).insert(event.fingerprint.clone(), view);
        // Copied for the server-sent event streams only while someone listens.
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(event.clone());
        }
        previous
    }

    /// Seeds the store from a restored state (no new event).
    pub fn restore(&self, state: &AlertState) {
        let severity = state.firing.map_or("info", |s| s.as_str()).to_owned();
        let view = AlertView {
            fingerprint: state.fingerprint.clone(),
            event_id: String::new(),
            rule: state.rule.clone(),
            status: state.status().as_str().to_owned(),
            severity,
            starts_at: state.starts_at_ms.map(rfc3339),
            ends_at: state.ends_at_ms.filter(|_| state.firing.is_none()).map(rfc3339),
            scope: state.scope.clone(),
            scope_key: state.scope_key.clone(),
            grid: state.area.grid.to_string(),
            street: state.area.street.to_string(),
            district: state.area.district.to_string(),
            value: state.value,
            threshold: state.threshold,
            window: state.window.clone(),
            summary: String::new(),
            acknowledged_by: state.acknowledged.as_ref().map(|a| a.by.clone()),
            flapping: state.flapping,
        };
        self.alerts.write().unwrap_or_else(|e| e.into_inner()).insert(state.fingerprint.clone(), view);
    }

    /// Alerts by status: "firing" (any not resolved), "resolved", or "all".
    pub fn list(&self, status: &str) -> Vec<AlertView> {
        self.alerts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|a| match status {
                "firing" => a.status != "resolved",
                "resolved" => a.status == "resolved",
                _ => true,
            })
            .cloned()
            .collect()
    }

    pub fn get(&self, fingerprint: &str) -> Option<AlertView> {
        self.alerts.read().unwrap_or_else(|e| e.into_inner()).get(fingerprint).cloned()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<AlertEvent> {
        self.events.subscribe()
    }
}

/// Alertmanager's v2 alert (POST /api/v2/alerts takes a list of these).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// Alertmanager's view of an alert: firing ones without an end (Alertmanager resolves them
/// itself after its resolve timeout unless re-posted), resolved ones with their end.
pub fn to_alertmanager(view: &AlertView) -> AlertmanagerAlert {
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_owned(), view.rule.clone());
    labels.insert("severity".to_owned(), view.severity.clone());
    labels.insert("fingerprint".to_owned(), view.fingerprint.clone());
    for (k, v) in [("district", &view.district), ("street", &view.street), ("grid", &view.grid)] {
        if !v.is_empty() {
            labels.insert(k.to_owned(), v.clone());
        }
    }
    labels.insert(if view.scope == "sensor" { "sensor_id".to_owned() } else { view.scope.clone() }, view.scope_key.clone());
    let mut annotations = BTreeMap::new();
    annotations.insert("summary".to_owned(), view.summary.clone());
    annotations.insert("value".to_owned(), format!("{:.3}", view.value));
    annotations.insert("threshold".to_owned(), format!("{:.3}", view.threshold));
    AlertmanagerAlert {
        labels,
        annotations,
        starts_at: view.starts_at.clone().unwrap_or_default(),
        ends_at: if view.status == "resolved" { view.ends_at.clone() } else { None },
        generator_url: format!("citysense://alerts/{}", view.fingerprint),
    }
}

/// Encodes an `alert` point: one per event, at the event time (Grafana annotations).
pub fn encode_alert(event: &AlertEvent, out: &mut String) {
    super::line_protocol::encode_alert_line(event, out);
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn event() -> AlertEvent {
        AlertEvent {
            event_id: "e1".into(),
            fingerprint: "f1".into(),
            rule: "underpass-ponding".into(),
            status: "resolved".into(),
            severity: "critical".into(),
            change: "resolved".into(),
            starts_at: rfc3339(1_000),
            starts_at_ms: 1_000,
            ends_at: Some(rfc3339(2_000)),
            ends_at_ms: Some(2_000),
            at_ms: 2_000,
            scope: "sensor".into(),
            scope_key: "up-1".into(),
            grid: "g".into(),
            street: "s".into(),
            district: "d".into(),
            value: 0.27,
            threshold: 0.25,
            window: "1m".into(),
            summary: "s".into(),
            summary_zh: "z".into(),
            labels: [("alertname".to_owned(), "underpass-ponding".to_owned())].into(),
            acknowledged_by: None,
        }
    }

    #[test]
    fn the_protobuf_form_round_trips() {
        let bytes = to_proto(&event()).encode_to_vec();
        let back = crate::proto::AlertEvent::decode(bytes.as_slice()).unwrap();
        assert_eq!((back.fingerprint.as_str(), back.ends_at_ms, back.value), ("f1", Some(2_000), 0.27));
        assert_eq!(back.labels["alertname"], "underpass-ponding");
    }

    #[test]
    fn alertmanager_gets_labels_and_an_end_only_when_resolved() {
        let store = AlertStore::default();
        let state = AlertState::new("f1".into(), "underpass-ponding", "sensor", "up-1", crate::model::Area::default(), "1m");
        store.record(&event(), &state);
        let am = to_alertmanager(&store.get("f1").unwrap());
        assert_eq!(am.labels["alertname"], "underpass-ponding");
        assert_eq!(am.labels["sensor_id"], "up-1");
        assert_eq!(am.labels["severity"], "critical");
        assert_eq!(am.ends_at.as_deref(), Some("1970-01-01T00:00:02.000Z"));
        assert_eq!(store.list("firing").len(), 0);
        assert_eq!(store.list("resolved").len(), 1);
    }
}
