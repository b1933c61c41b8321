//! A time-series store that keeps nothing, for scripts/bench.sh's `BENCH_DISCARD=1` runs:
//! it answers every InfluxDB v2 write (`POST /api/v2/write`) with 204 once it has read the
//! body, so that citysense's end-to-end rate can be measured without the store's own
//! ingestion on the same two cores. `GET /stats` tells what it was sent.
//!
//! `cargo run --release --example discard_store -- PORT`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

#[derive(Default)]
struct Received {
    writes: AtomicU64,
    bytes: AtomicU64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        Some(Ok(port)) => port,
        _ => {
            eprintln!("usage: discard_store PORT");
            std::process::exit(2);
        }
    };
    let received = Arc::new(Received::default());
    let app = Router::new()
        .route("/api/v2/write", post(write))
        .route("/stats", get(stats))
        .layer(DefaultBodyLimit::disable())
        .with_state(received);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap_or_else(|e| {
        eprintln!("discard_store: cannot listen on 127.0.0.1:{port}: {e}");
        std::process::exit(1);
    });
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("discard_store: {e}");
        std::process::exit(1);
    }
}

async fn write(State(received): State<Arc<Received>>, body: Bytes) -> StatusCode {
    received.writes.fetch_add(1, Ordering::Relaxed);
    received.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

async fn stats(State(received): State<Arc<Received>>) -> String {
    format!("{{\"writes\":{},\"bytes\":{}}}", received.writes.load(Ordering::Relaxed), received.bytes.load(Ordering::Relaxed))
}
