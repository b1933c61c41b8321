//! The operations page in a real browser (Debian's chromium, driven over the W3C WebDriver
//! protocol by chromedriver — plain JSON over HTTP, no driver crate): it loads from a
//! running demo, draws the PM2.5 chart, the AQI-coloured area table and the alert list
//! from live data, and its acknowledge button changes the alert's state in the page and
//! in the API. A screenshot is saved as target/dashboard.png.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Killed};
use serde_json::{json, Value};

struct Browser {
    client: reqwest::Client,
    base: String,
}

impl Browser {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response: Value = request.send().await.expect("chromedriver answers").json().await.expect("JSON");
        response["value"].clone()
    }

    /// Evaluates `script` in the page and returns its value.
    async fn eval(&self, session: &str, script: &str) -> Value {
        self.call(reqwest::Method::POST, &format!("/session/{session}/execute/sync"), Some(json!({ "script": script, "args": [] }))).await
    }

    /// Polls `script` until it returns true.
    async fn wait_for(&self, session: &str, what: &str, script: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.eval(session, script).await != Value::Bool(true) {
            assert!(Instant::now() < deadline, "the page never showed {what}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operations_page_shows_live_data_and_acknowledges_an_alert() {
    let driver_path = std::env::var("CITYSENSE_TEST_CHROMEDRIVER")
        .expect("CITYSENSE_TEST_CHROMEDRIVER is not set: run the tests with scripts/test.sh, which installs chromium-driver");
    let (api_port, driver_port) = (free_port(), free_port());
    let _demo = Killed(
        Command::new(env!("CARGO_BIN_EXE_citysense"))
            .args(["demo", "--for", "120s", "--listen", &format!("127.0.0.1:{api_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("demo starts"),
    );
    let api = format!("http://127.0.0.1:{api_port}");
    let client = reqwest::Client::new();
    // The demo's scripted faults fire alerts within seconds of its backfill.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let firing: Vec<Value> = match client.get(format!("{api}/api/v1/alerts")).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        if firing.iter().any(|a| a["status"] == "firing") {
            break;
        }
        assert!(Instant::now() < deadline, "the demo fired no alert within a minute");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let _driver = Killed(
        Command::new(&driver_path)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver"),
    );
    let browser = Browser { client: client.clone(), base: format!("http://127.0.0.1:{driver_port}") };
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("{}/status", browser.base)).send().await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let capabilities = json!({ "capabilities": { "alwaysMatch": { "browserName": "chrome", "goog:chromeOptions": {
        "binary": "/usr/bin/chromium",
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]
    } } } });
    let session = browser.call(reqwest::Method::POST, "/session", Some(capabilities)).await;
    let session = session["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {session}")).to_owned();

    browser.call(reqwest::Method::POST, &format!("/session/{session}/url"), Some(json!({ "url": format!("{api}/") }))).await;
    let limit = Duration::from_secs(40);
    browser.wait_for(&session, "the PM2.5 chart", "return !!document.querySelector('#pm25-line')", limit).await;
    browser.wait_for(&session, "AQI-coloured areas", "return document.querySelectorAll('tr.area-row .aqi').length > 0", limit).await;
    browser.wait_for(&session, "water gauges", "return document.querySelectorAll('tr.water-row').length > 0", limit).await;
    let ack_button = "document.querySelector('tr.alert-row[data-status=firing] button.ack:not([disabled])')";
    let firing = format!("return !!{ack_button}");
    browser.wait_for(&session, "a firing alert", &firing, limit).await;
    let records = browser.eval(&session, "return document.getElementById('stat-records').textContent").await;
    assert_ne!(records, json!("–"), "the record counter was never filled");

    // Acknowledge the first firing alert with its button. The demo's data moves on: an
    // alert can resolve between the page showing it and the click reaching the engine (the
    // click then acknowledges nothing). That alert is left and the next one clicked, a few
    // times at most; every click that lands must acknowledge its alert.
    let mut acknowledged = None;
    for _ in 0..3 {
        let click = format!("const b = {ack_button}; if (!b) return null; b.click(); return b.dataset.fingerprint;");
        let fingerprint = browser.eval(&session, &click).await;
        let Some(fingerprint) = fingerprint.as_str().map(str::to_owned) else {
            browser.wait_for(&session, "a firing alert", &firing, limit).await;
            continue;
        };
        // The page lists open alerts only: the row shows "acknowledged", or it is gone
        // because the alert resolved.
        let in_page = format!("const r = document.querySelector('tr.alert-row[data-fingerprint=\"{fingerprint}\"]'); return !r || r.dataset.status === 'acknowledged';");
        browser.wait_for(&session, "the alert acknowledged (or resolved)", &in_page, limit).await;
        let all: Vec<Value> = client.get(format!("{api}/api/v1/alerts?status=all")).send().await.unwrap().json().await.unwrap();
        let alert = all.iter().find(|a| a["fingerprint"] == fingerprint.as_str()).expect("the alert in the API").clone();
        if alert["status"] == "resolved" && alert["acknowledged_by"].is_null() {
            eprintln!("alert {fingerprint} resolved before the click reached it; clicking another");
            continue;
        }
        acknowledged = Some(alert);
        break;
    }
    let alert = acknowledged.expect("three firing alerts all resolved before their click landed");
    // A resolved alert still says who acknowledged it.
    assert!(alert["status"] == "acknowledged" || alert["status"] == "resolved", "{alert}");
    assert_eq!(alert["acknowledged_by"], "dashboard", "{alert}");

    let screenshot = browser.call(reqwest::Method::GET, &format!("/session/{session}/screenshot"), None).await;
    let png = base64_decode(screenshot.as_str().expect("a base64 screenshot"));
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "screenshot of {} bytes", png.len());
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/dashboard.png");
    std::fs::write(path, &png).unwrap();
    eprintln!("screenshot: {path} ({} KiB)", png.len() / 1024);
    browser.call(reqwest::Method::DELETE, &format!("/session/{session}"), None).await;
}

/// Standard base64 (the WebDriver screenshot encoding), without a dependency for it.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => 0,
    };
    let bytes: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, c)| acc | (u32::from(value(*c)) << (18 - 6 * i)));
        let take = chunk.len().saturating_sub(1);
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    out
}
