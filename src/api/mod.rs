//! The HTTP API (axum): `/healthz`, `/readyz`, `/metrics`, `/api/v1/series`, `/api/v1/areas`, `/api/v1/alerts`
//! (+ `/stream` server-sent events, + `/{fingerprint}/ack`), `/api/v1/sensors/{id}`, and
//! `/api/v1/openapi.json` describing all of them, and the operations page at `/`
//! (`dashboard.html`) (`openapi.json` next to this file; a test
//! checks every documented route answers with the documented shape). `app(state)` builds the router,
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

use crate::config::Secret;
use crate::model::Kind;
use crate::pipeline::Shared;
use crate::rollup::AreaLevel;
use crate::sink::memory::SeriesQuery;

/// Results returned when the query names no limit, and the most it may ask for.
const DEFAULT_LIMIT: usize = 500;
const MAX_LIMIT: usize = 20_000;

/// The router; `token`, when set, is required by every mutating route.
pub fn app(shared: Shared, token: Option<Secret>) -> Router {
    let mutating = Router::new()
        .route("/api/v1/alerts/{fingerprint}/ack", axum::routing::post(acknowledge))
        .route_layer(axum::middleware::from_fn(move |request, next| require_token(token.clone(), request, next)));
    Router::new()
        .route("/", get(dashboard))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .route("/api/v1/series", get(series))
        .route("/api/v1/areas", get(areas))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/alerts/stream", get(alert_stream))
        .route("/api/v1/sensors/{id}", get(sensor))
        .route("/api/v1/openapi.json", get(openapi))
        .merge(mutating)
        .with_state(Arc::new(shared))
}

/// Lets the request through when no token is configured or it carries the token.
async fn require_token(token: Option<Secret>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let Some(token) = token else { return next.run(request).await };
    let presented =
        request.headers().get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    // Compare without an early exit, so timing does not reveal a matching prefix.
    let matches = presented.is_some_and(|p| {
        p.len() == token.expose().len() && p.bytes().zip(token.expose().bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    });
    if matches {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
            Json(serde_json::json!({ "error": "this route needs Authorization: Bearer <api token>" })),
        )
            .into_response()
    }
}

/// Serves the API on `listen` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Shared,
    token: Option<Secret>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app(shared, token)).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
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

/// The operations page: one self-contained HTML file (styles and script inline, no
/// network), drawing from the API below and alert events over SSE.
const DASHBOARD: &str = include_str!("dashboard.html");

async fn dashboard() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")], DASHBOARD).into_response()
}

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// One sensor: its registry entry (when registered), and its latest window per window
/// length from memory, with coverage.
async fn sensor(State(shared): State<Arc<Shared>>, axum::extract::Path(id): axum::extract::Path<String>) -> Response {
    let info = shared.registry.get(&id);
    let results = shared.store.query(&SeriesQuery { sensor_id: Some(id.clone()), limit: MAX_LIMIT, ..Default::default() });
    if info.is_none() && results.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("no sensor {id:?} in the registry or in recent windows") })),
        )
            .into_response();
    }
    let mut latest: std::collections::BTreeMap<&str, &crate::model::WindowResult> = std::collections::BTreeMap::new();
    for r in &results {
        let slot = latest.entry(r.window.as_str()).or_insert(r);
        if r.end_ms > slot.end_ms {
            *slot = r;
        }
    }
    let kind = info.and_then(|i| i.kind).or_else(|| results.first().map(|r| r.kind));
    let area = info.map(|i| i.area()).or_else(|| results.first().map(|r| r.area.clone())).unwrap_or_default();
    Json(serde_json::json!({
        "sensor_id": id,
        "registered": info.is_some(),
        "kind": kind.map(|k| k.as_str()),
        "district": area.district,
        "street": area.street,
        "grid": area.grid,
        "lat": info.and_then(|i| i.lat),
        "lon": info.and_then(|i| i.lon),
        "interval_s": info.and_then(|i| i.interval_s),
        "min_value": info.and_then(|i| i.min_value),
        "max_value": info.and_then(|i| i.max_value),
        "warning_level": info.and_then(|i| i.warning_level),
        "guaranteed_level": info.and_then(|i| i.guaranteed_level),
        "historical_max": info.and_then(|i| i.historical_max),
        "last_window_end_ms": latest.values().map(|r| r.end_ms).max(),
        "latest": latest.values().collect::<Vec<_>>(),
    }))
    .into_response()
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
    use crate::rollup::AreaLevel;

    async fn get_json(app: Router, uri: &str) -> (StatusCode, serde_json::Value) {
        let response = app.oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    /// Resolves `{"$ref": "#/components/schemas/X"}` in the OpenAPI document.
    fn resolve<'a>(doc: &'a serde_json::Value, schema: &'a serde_json::Value) -> &'a serde_json::Value {
        match schema["$ref"].as_str() {
            Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
            None => schema,
        }
    }

    /// Checks `value` against the subset of JSON Schema the document uses: type, required.
    fn conforms(doc: &serde_json::Value, schema: &serde_json::Value, value: &serde_json::Value, at: &str) {
        let schema = resolve(doc, schema);
        match schema["type"].as_str() {
            Some("array") => {
                let items = value.as_array().unwrap_or_else(|| panic!("{at}: expected an array, got {value}"));
                assert!(!items.is_empty(), "{at}: the test data should give a non-empty array");
                items.iter().for_each(|item| conforms(doc, &schema["items"], item, at));
            }
            Some("object") => {
                assert!(value.is_object(), "{at}: expected an object, got {value}");
                for field in schema["required"].as_array().into_iter().flatten().filter_map(|f| f.as_str()) {
                    assert!(value.get(field).is_some(), "{at}: required field {field:?} missing in {value}");
                }
            }
            _ => {}
        }
    }

    #[tokio::test]
    async fn every_documented_route_answers_with_the_documented_shape() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        let registry = crate::registry::Registry::from_entries([crate::registry::SensorInfo {
            id: "a".into(),
            kind: Some(Kind::Pm25),
            district: "d".into(),
            interval_s: Some(60),
            ..Default::default()
        }]);
        let shared = Shared::with_registry(Arc::new(registry));
        shared.stats.ready.store(true, std::sync::atomic::Ordering::Relaxed);
        shared.store.insert_batch([Arc::new(WindowResult {
            kind: Kind::Pm25,
            sensor_id: "a".into(),
            window: "1m".into(),
            start_ms: 0,
            end_ms: 60_000,
            area: Area { grid: "g".into(), street: "s".into(), district: "d".into() },
            values: WindowValues::Level(LevelValues::single(1.5)),
            coverage: Some(1.0),
            domain: None,
        })]);
        shared.areas.insert_batch([crate::rollup::AreaResult {
            kind: Kind::Pm25,
            window: "1m".into(),
            start_ms: 0,
            end_ms: 60_000,
            level: AreaLevel::District,
            area: "d".into(),
            district: "d".into(),
            mean: Some(1.5),
            max: Some(1.5),
            sensors_reporting: 1,
            sensors_silent: None,
            availability: None,
            fault_ratio: None,
            utilisation: None,
            piles_offline: None,
            hotspots: None,
        }]);
        let paths = doc["paths"].as_object().unwrap();
        let mut checked = 0;
        for (path, operations) in paths {
            let Some(get) = operations.get("get") else { continue };
            let uri = path.replace("{id}", "a");
            let uri = if uri == "/api/v1/alerts" { "/api/v1/alerts?status=all".to_owned() } else { uri };
            let response = app(shared.clone(), None).oneshot(Request::get(&uri).body(Body::empty()).unwrap()).await.unwrap();
            let status = response.status().as_u16().to_string();
            let documented = &get["responses"][&status];
            assert!(documented.is_object(), "{path} answered {status}, which is not documented");
            let (content_type, media) = documented["content"].as_object().and_then(|c| c.iter().next()).expect("documented content");
            let actual_type = response.headers()[axum::http::header::CONTENT_TYPE].to_str().unwrap().to_owned();
            assert!(actual_type.starts_with(content_type.as_str()), "{path}: {actual_type} instead of {content_type}");
            if content_type == "application/json" {
                let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
                let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                if path == "/api/v1/alerts" {
                    assert!(value.is_array(), "{path}: {value}");
                } else {
                    conforms(&doc, &media["schema"], &value, path);
                }
            }
            checked += 1;
        }
        assert!(checked >= 9, "{checked} routes checked");
        let (status, body) = get_json(app(shared.clone(), None), "/api/v1/sensors/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body["error"].is_string());
    }

    #[tokio::test]
    async fn with_a_token_mutating_routes_need_it_and_reading_routes_do_not() {
        let post = |token: Option<&str>| {
            let mut request = Request::post("/api/v1/alerts/abc/ack").header("content-type", "application/json");
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            // An empty "by" is refused by the handler itself: reaching it answers 400.
            request.body(Body::from(r#"{"by": ""}"#)).unwrap()
        };
        let app = app(Shared::default(), Some(Secret::new("s3cret".into())));
        for (token, status) in [
            (None, StatusCode::UNAUTHORIZED),
            (Some("wrong!"), StatusCode::UNAUTHORIZED),
            (Some("s3cre"), StatusCode::UNAUTHORIZED),
            (Some("s3cret"), StatusCode::BAD_REQUEST),
        ] {
            assert_eq!(app.clone().oneshot(post(token)).await.unwrap().status(), status, "token {token:?}");
        }
        assert_eq!(get_json(app.clone(), "/api/v1/alerts").await.0, StatusCode::OK, "reads need no token");
        let open = super::app(Shared::default(), None);
        assert_eq!(open.oneshot(post(None)).await.unwrap().status(), StatusCode::BAD_REQUEST, "no token configured: open");
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
        let (status, body) = get_json(app(shared.clone(), None), "/api/v1/series?kind=pm25&window=1m").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.as_array().unwrap().len(), 2);
        let (_, body) = get_json(app(shared.clone(), None), "/api/v1/series?kind=pm25&sensor_id=b").await;
        assert_eq!(body[0]["sensor_id"], "b");
        assert_eq!(body[0]["mean"], 1.5);
        assert_eq!(body[0]["district"], "d");
        assert_eq!(body[0]["p95"], 1.5);
        assert_eq!(body[0]["coverage"], 0.5);
        let (status, body) = get_json(app(shared, None), "/api/v1/series?kind=pm10").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["error"].as_str().unwrap().contains("pm10"));
    }
}
