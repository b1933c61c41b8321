//! Helpers shared by the integration tests: the addresses of the real services started by
//! scripts/test.sh, topic creation, producing with known offsets, and reading back from
//! VictoriaMetrics and the dead-letter topic.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// The tansu broker started by scripts/test.sh. Panics with instructions when absent:
/// these tests never skip.
pub fn kafka() -> String {
    std::env::var("CITYSENSE_TEST_KAFKA").expect("CITYSENSE_TEST_KAFKA is not set: run the tests with scripts/test.sh, which starts tansu")
}

/// The VictoriaMetrics server (InfluxDB v2 write API) started by scripts/test.sh.
pub fn influx() -> String {
    std::env::var("CITYSENSE_TEST_INFLUX")
        .expect("CITYSENSE_TEST_INFLUX is not set: run the tests with scripts/test.sh, which starts VictoriaMetrics")
}

/// The Alertmanager started by scripts/test.sh.
pub fn alertmanager() -> String {
    std::env::var("CITYSENSE_TEST_ALERTMANAGER")
        .expect("CITYSENSE_TEST_ALERTMANAGER is not set: run the tests with scripts/test.sh, which starts Alertmanager")
}

/// The `[kafka]`, `[topics]` and `[rollup]` sections for a test run whose topics are named
/// `RUN.pm25` … `RUN.deadletter`, `RUN.checkpoints`, `RUN.aggregates`, in group `RUN-group`; tests append
/// their own sections.
pub fn run_config(brokers: &str, run: &str) -> String {
    format!(
        r#"
[kafka]
brokers = "{brokers}"
group_id = "{run}-group"
[topics]
deadletter = "{run}.deadletter"
checkpoints = "{run}.checkpoints"
pm25 = {{ name = "{run}.pm25" }}
dust = {{ name = "{run}.dust" }}
water = {{ name = "{run}.water" }}
charging = {{ name = "{run}.charging" }}
[rollup]
topic = "{run}.aggregates"
group_id = "{run}-areas"
"#
    )
}

/// Every record of `topic` from the beginning, mapped by `read`, stopping once `expected`
/// arrived and nothing more came within one `quiet` poll, or at `deadline`.
fn read_from_beginning<T>(
    brokers: &str,
    topic: &str,
    expected: usize,
    deadline: Duration,
    quiet: Duration,
    mut read: impl FnMut(&rdkafka::message::BorrowedMessage<'_>) -> T,
) -> Vec<T> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    while started.elapsed() < deadline {
        match consumer.poll(quiet) {
            Some(Ok(m)) => out.push(read(&m)),
            Some(Err(e)) => panic!("consumer of {topic}: {e}"),
            None if out.len() >= expected => break,
            None => {}
        }
    }
    out
}

/// Every record of `topic` from the beginning as (key, payload), stopping once `expected`
/// arrived and nothing more came for a second, or at `deadline`.
pub fn read_topic(brokers: &str, topic: &str, expected: usize, deadline: Duration) -> Vec<(Vec<u8>, Vec<u8>)> {
    read_from_beginning(brokers, topic, expected, deadline, Duration::from_millis(1000), |m| {
        (m.key().unwrap_or_default().to_vec(), m.payload().unwrap_or_default().to_vec())
    })
}

/// A name unique to this test run.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

pub async fn create_topics(brokers: &str, names: &[&str], partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", brokers).create().expect("admin client");
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)).set("retention.ms", "-1").set("cleanup.policy", "delete"))
        .collect();
    let results =
        admin.create_topics(&topics, &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))).await.expect("create topics");
    for result in results {
        result.expect("topic created");
    }
}

pub fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new().set("bootstrap.servers", brokers).set("linger.ms", "5").create().expect("producer")
}

/// Produces one record to an explicit partition and returns its offset.
pub async fn produce(producer: &FutureProducer, topic: &str, partition: i32, key: &[u8], payload: &[u8], content_type: &str) -> i64 {
    let headers = OwnedHeaders::new().insert(Header { key: "content-type", value: Some(content_type) });
    let record = FutureRecord::to(topic).partition(partition).key(key).payload(payload).headers(headers);
    let delivery = producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e).expect("delivered");
    assert_eq!(delivery.partition, partition);
    delivery.offset
}

/// A dead letter as read back from the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeadLetter {
    pub reason: String,
    pub source: String,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
}

/// Every dead letter in `topic` (stops half a second after at least `expected` were read,
/// or at `deadline`).
pub fn read_dead_letters(brokers: &str, topic: &str, expected: usize, deadline: Duration) -> Vec<DeadLetter> {
    read_from_beginning(brokers, topic, expected, deadline, Duration::from_millis(500), |m| {
        let header = |name: &str| {
            m.headers()
                .and_then(|h| h.iter().find(|x| x.key == name).and_then(|x| x.value).map(|v| String::from_utf8_lossy(v).into_owned()))
                .unwrap_or_default()
        };
        DeadLetter {
            reason: header("citysense-reason"),
            source: header("citysense-source"),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().unwrap_or_default().to_vec(),
        }
    })
}

/// One exported series from VictoriaMetrics: labels, and value per timestamp (ms).
#[derive(Debug, Clone)]
pub struct Series {
    pub labels: HashMap<String, String>,
    pub points: Vec<(i64, f64)>,
}

/// `/api/v1/export` for a series selector.
pub async fn export(influx: &str, selector: &str) -> Vec<Series> {
    let client = reqwest::Client::new();
    let text = client
        .get(format!("{influx}/api/v1/export"))
        .query(&[("match[]", selector)])
        .send()
        .await
        .expect("export request")
        .text()
        .await
        .expect("export body");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("export line is JSON");
            let labels =
                v["metric"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect();
            let values = v["values"].as_array().unwrap();
            let timestamps = v["timestamps"].as_array().unwrap();
            let points = timestamps.iter().zip(values).map(|(t, v)| (t.as_i64().unwrap(), v.as_f64().unwrap())).collect();
            Series { labels, points }
        })
        .collect()
}

/// The committed offsets of `group` for `topic`'s partitions.
pub fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers).set("group.id", group).create().expect("consumer");
    let mut list = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10)).expect("committed offsets");
    (0..partitions)
        .map(|p| match committed.find_partition(topic, p).map(|e| e.offset()) {
            Some(rdkafka::Offset::Offset(o)) => Some(o),
            _ => None,
        })
        .collect()
}

/// A free loopback port (bound, then released for the service the test starts on it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed when the test ends, however it ends.
pub struct Killed(pub std::process::Child);

impl std::ops::Deref for Killed {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Killed {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
