//! The HTTP API (axum): `/healthz`, `/readyz`, `/metrics`, `/api/v1/series`, `/api/v1/areas`, `/api/v1/alerts`
//! (+ `/stream` server-sent events, + `/{fingerprint}/ack`). `app(state)` builds the router,
//! so tests call it without a socket; `serve` binds it with a shutdown future passed in.

pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::model::Kind;
use crate::pipeline::Shared;
use crate::rollup::AreaLevel;
use crate::sink::memory::SeriesQuery;

/// Results returned when the query names no limit, and the most it may ask for.
const DEFAULT_LIMIT: usize = 500;
const MAX_LIMIT: usize = 20_000;

pub fn app(shared: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .route("/api/v1/series", get(series))
        .route("/api/v1/areas", get(areas))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/alerts/stream", get(alert_stream))
        .route("/api/v1/alerts/{fingerprint}/ack", axum::routing::post(acknowledge))
        .with_state(Arc::new(shared))
}

/// Serves the API on `listen` until `shutdown` is cancelled.
pub async fn serve(listener: tokio::net::TcpListener, shared: Shared, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, app(shared)).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}

pub async fn bind(listen: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen).await
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready once the pipeline has its consumer and producers and until it starts shutting down.
async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.stats.ready.load(std::sync::atomic::Ordering::Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn prometheus(State(shared): State<Arc<Shared>>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics::render(&shared)).into_response()
}

#[derive(Debug, Deserialize)]
struct SeriesParams {
    kind: Option<String>,
    window: Option<String>,
    sensor_id: Option<String>,
    district: Option<String>,
    since_ms: Option<i64>,
    limit: Option<usize>,
}

/// An optional `kind` query parameter; `Err` is the message for a bad request.
fn parse_kind(kind: Option<&str>) -> Result<Option<Kind>, String> {
    match kind {
        None => Ok(None),
        Some(k) => Kind::parse(k).map(Some).ok_or_else(|| format!("unknown kind {k:?}: use pm25, dust, water or charging")),
    }
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn series(
    State(shared): State<Arc<Shared>>,
    params: Result<Query<SeriesParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(params) = match params {
        Ok(p) => p,
        Err(err) => return bad_request(err.body_text()),
    };
    let kind = match parse_kind(params.kind.as_deref()) {
        Ok(kind) => kind,
        Err(message) => return bad_request(message),
    };
    let query = SeriesQuery {
        kind,
        window: params.window,
        sensor_id: params.sensor_id,
        district: params.district,
        since_ms: params.since_ms,
        limit: params.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT),
    };
    let results = shared.store.query(&query);
    Json(results.iter().map(|r| r.as_ref()).collect::<Vec<_>>()).into_response()
}

#[derive(Debug, Deserialize)]
struct AreaParams {
    kind: Option<String>,
    window: Option<String>,
    level: Option<String>,
}

/// The latest roll-up per area, each with its `level` (grid, street, district) and key.
async fn areas(State(shared): State<Arc<Shared>>, params: Result<Query<AreaParams>, axum::extract::rejection::QueryRejection>) -> Response {
    let Query(params) = match params {
        Ok(p) => p,
        Err(err) => return bad_request(err.body_text()),
    };
    let kind = match parse_kind(params.kind.as_deref()) {
        Ok(kind) => kind,
        Err(message) => return bad_request(message),
    };
    let level = match params.level.as_deref() {
        None => None,
        Some(l) => match AreaLevel::ALL.into_iter().find(|x| x.as_str() == l) {
            Some(level) => Some(level),
            None => return bad_request(format!("unknown level {l:?}: use grid, street or district")),
        },
    };
    let results = shared.areas.query(kind, params.window.as_deref(), level);
    Json(results.iter().map(|r| r.as_ref()).collect::<Vec<_>>()).into_response()
}

#[derive(Debug, Deserialize)]
struct AlertParams {
    status: Option<String>,
}

/// Current and recent alerts: `status=firing` (default; acknowledged and flapping count as
/// firing), `resolved` or `all`.
async fn alerts(State(shared): State<Arc<Shared>>, Query(params): Query<AlertParams>) -> Response {
    let status = params.status.unwrap_or_else(|| "firing".to_owned());
    if !matches!(status.as_str(), "firing" | "resolved" | "all") {
        return bad_request(format!("unknown status {status:?}: use firing, resolved or all"));
    }
    Json(shared.alerts.list(&status)).into_response()
}

#[derive(Debug, Deserialize)]
struct AckBody {
    by: String,
    #[serde(default)]
    comment: String,
}

/// An operator acknowledges a firing alert: `{"by": "…", "comment": "…"}`.
async fn acknowledge(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(fingerprint): axum::extract::Path<String>,
    body: Result<Json<AckBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(err) => return bad_request(err.body_text()),
    };
    if body.by.trim().is_empty() {
        return bad_request("\"by\" must name who acknowledges".to_owned());
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    let request = crate::pipeline::alerts::AckRequest { fingerprint, by: body.by, comment: body.comment, reply };
    if shared.acks.send(request).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "error": "the pipeline is not running" }))).into_response();
    }
    match answer.await {
        Ok(Ok(event)) => Json(event).into_response(),
        Ok(Err(crate::alert::AckError::Unknown)) => {
            (StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": "no alert with this fingerprint is owned by this instance" })))
                .into_response()
        }
        Ok(Err(err)) => (StatusCode::CONFLICT, Json(serde_json::json!({ "error": err.to_string() }))).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "error": "the pipeline stopped" }))).into_response(),
    }
}

/// Server-sent events: every current alert on connect (`event: alert-state`), then each
/// alert event as it happens (`event: alert`).
async fn alert_stream(
    State(shared): State<Arc<Shared>>,
) -> axum::response::sse::Sse<impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures::StreamExt;
    let receiver = shared.alerts.subscribe();
    let current = shared.alerts.list("all");
    let initial =
        futures::stream::iter(current.into_iter().map(|a| Ok(Event::default().event("alert-state").json_data(a).unwrap_or_default())));
    let live = futures::stream::unfold(receiver, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(event) => return Some((Ok(Event::default().event("alert").json_data(event).unwrap_or_default()), rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(initial.chain(live)).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::model::{Area, LevelValues, WindowResult, WindowValues};

    async fn get_json(app: Router, uri: &str) -> (StatusCode, serde_json::Value) {
        let response = app.oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    #[tokio::test]
    async fn series_filters_by_kind_window_and_sensor() {
        let shared = Shared::default();
        let result = |sensor: &str, kind: Kind| {
            Arc::new(WindowResult {
                kind,
                sensor_id: sensor.into(),
                window: "1m".into(),
                start_ms: 0,
                end_ms: 60_000,
                area: Area { grid: "g".into(), street: "s".into(), district: "d".into() },
                values: WindowValues::Level(LevelValues { count: 2, sum: 3.0, mean: 1.5, min: 1.0, max: 2.0, ..LevelValues::single(1.5) }),
                coverage: Some(0.5),
                domain: None,
            })
        };
        shared.store.insert_batch([result("a", Kind::Pm25), result("b", Kind::Pm25), result("w", Kind::Water)]);
        let (status, body) = get_json(app(shared.clone()), "/api/v1/series?kind=pm25&window=1m").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.as_array().unwrap().len(), 2);
        let (_, body) = get_json(app(shared.clone()), "/api/v1/series?kind=pm25&sensor_id=b").await;
        assert_eq!(body[0]["sensor_id"], "b");
        assert_eq!(body[0]["mean"], 1.5);
        assert_eq!(body[0]["district"], "d");
        assert_eq!(body[0]["p95"], 1.5);
        assert_eq!(body[0]["coverage"], 0.5);
        let (status, body) = get_json(app(shared), "/api/v1/series?kind=pm10").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["error"].as_str().unwrap().contains("pm10"));
    }
}
