//! `citysense demo` as a newcomer runs it: the binary starts with nothing installed (an
//! embedded Kafka), serves `/healthz` and a non-empty `/api/v1/series`, shows current
//! windows, and exits by itself on `--for`.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::free_port;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_live_windows_and_exits_on_its_own() {
    let port = free_port();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_citysense"))
        .args(["demo", "--for", "25s", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo starts");
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");

    let mut healthy = false;
    let mut series: Vec<serde_json::Value> = Vec::new();
    while started.elapsed() < Duration::from_secs(22) {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            healthy |= r.status().is_success();
        }
        if let Ok(r) = client.get(format!("{base}/api/v1/series?kind=pm25&window=1m&limit=5000")).send().await {
            series = r.json().await.unwrap_or_default();
            // The backfill replays three hours at full speed; wait until it reaches the present.
            let now = chrono::Utc::now().timestamp_millis();
            if healthy && series.iter().filter_map(|r| r["end_ms"].as_i64()).any(|end| now - end < 10 * 60_000) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(healthy, "/healthz never answered");
    assert!(!series.is_empty(), "/api/v1/series stayed empty");
    let now = chrono::Utc::now().timestamp_millis();
    let newest = series.iter().filter_map(|r| r["end_ms"].as_i64()).max().unwrap();
    assert!(now - newest < 10 * 60_000, "the newest window ended {} s ago: the backfill should reach the present", (now - newest) / 1000);
    let first = &series[0];
    for field in ["sensor_id", "district", "street", "grid", "count", "mean", "min", "max", "first", "last"] {
        assert!(!first[field].is_null(), "{field} missing in {first}");
    }
    let sensors: std::collections::HashSet<&str> = series.iter().filter_map(|r| r["sensor_id"].as_str()).collect();
    assert!(sensors.len() > 50, "only {} sensors have windows", sensors.len());

    // Ready while running, and the counters are exported for Prometheus.
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    let pm25_in: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("citysense_records_in_total{kind=\"pm25\"} "))
        .and_then(|v| v.parse().ok())
        .expect("pm25 records counter");
    assert!(pm25_in > 1_000, "{pm25_in} pm25 records counted");
    assert!(metrics.contains("citysense_dead_letters_total{reason=\"undecodable\"}"));

    // Filtering by sensor returns only that sensor.
    let one = series[0]["sensor_id"].as_str().unwrap().to_owned();
    let only: Vec<serde_json::Value> =
        client.get(format!("{base}/api/v1/series?kind=pm25&window=1m&sensor_id={one}")).send().await.unwrap().json().await.unwrap();
    assert!(!only.is_empty() && only.iter().all(|r| r["sensor_id"] == one.as_str()));

    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "demo did not exit after --for");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(status.success(), "demo exited with {status}");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(24), "demo exited early, after {elapsed:?}");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(out.contains("records in") && out.contains("dead-lettered"), "no live summary printed:\n{out}");
}
