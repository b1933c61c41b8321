//! citysense: a streaming city-sensing pipeline. Sensor vendors publish PM2.5, road dust
//! load, water level and EV charging-pile status to Kafka; citysense decodes and validates
//! them (dead-lettering bad records with a reason), computes event-time window aggregates
//! per sensor, and writes them to InfluxDB v2.
//!
//! # Layout
//! The module tree follows the data flow, source → decode → window → aggregate → sink:
//! - [`config`] — the TOML file (`raw`) and its validated form (`settings`).
//! - [`model`] — domain types (`Kind`, `Reading`, `PileStatus`, `WindowResult`).
//! - [`registry`] — sensor registry (id → area, interval, thresholds).
//! - [`source`] — the Kafka consumer (the only one).
//! - [`decode`] — bytes → `Reading` or `Rejection` (JSON, protobuf, units, validation).
//! - [`window`] — event time: window specs, watermarks, per-partition open windows.
//! - [`domain`] — HJ 633 / EPA AQI, NowCast, flood signals, pile availability, dust grades.
//! - [`aggregate`] — per-window accumulators (level statistics, pile status counts).
//! - [`rollup`] — the area stage: grid → street → district roll-ups from the aggregates topic.
//! - [`pipeline`] — the synchronous core, the async shell, safe offset commits.
//! - [`sink`] — InfluxDB line protocol and writer, in-memory store, dead-letter producer.
//! - [`api`] — HTTP routes.
//! - [`sim`] — the simulated city (demo, `simulate`, tests, benches).
//! - [`cli`] — subcommands.
//! - [`allocator`] — how the process gets memory from the kernel (no transparent huge pages).
//!
//! `window`, `aggregate` and `pipeline::core` are synchronous and deterministic: no
//! tokio, no Kafka or InfluxDB types, no wall-clock reads.

pub mod aggregate;
pub mod alert;
pub mod allocator;
pub mod api;
pub mod cli;
pub mod config;
pub mod decode;
pub mod domain;
pub mod model;
pub mod pipeline;
pub mod registry;
pub mod rollup;
pub mod sim;
pub mod sink;
pub mod source;
pub mod window;

/// Types generated from `proto/citysense/v1/*.proto`.
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/citysense.v1.rs"));
}
