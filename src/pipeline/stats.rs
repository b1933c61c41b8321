//! Counters of what the pipeline did, shared with the API, the demo's terminal summary and
//! the tests. Updated once per record on the consumer task (atomics, no locks) and per
//! batch by the sink.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::decode::{Reason, Rejection};
use crate::model::Kind;

/// A Prometheus-style cumulative histogram of durations (seconds), lock-free.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Counts per bucket of `LATENCY_BUCKETS` (non-cumulative; the last is +Inf).
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// Upper bounds of the sink write latency buckets, seconds.
pub const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

impl LatencyHistogram {
    pub fn observe(&self, seconds: f64) {
        let i = LATENCY_BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// (upper bound, cumulative count) per bucket, then the sum in seconds and the count.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let mut cumulative = 0;
        let mut out = Vec::with_capacity(LATENCY_BUCKETS.len() + 1);
        for (i, bound) in LATENCY_BUCKETS.iter().chain([f64::INFINITY].iter()).enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            out.push((*bound, cumulative));
        }
        (out, self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6, self.count.load(Ordering::Relaxed))
    }
}

#[derive(Debug, Default)]
pub struct PipelineStats {
    records_in: [AtomicU64; 4],
    accepted: [AtomicU64; 4],
    rejected: [AtomicU64; Reason::ALL.len()],
    by_vendor: Mutex<BTreeMap<(Reason, String), u64>>,
    pub windows_closed: AtomicU64,
    pub points_written: AtomicU64,
    pub sink_batches: AtomicU64,
    pub commits: AtomicU64,
    /// Records delivered again from an older commit but already in a restored checkpoint.
    pub records_skipped: AtomicU64,
    pub checkpoints_written: AtomicU64,
    pub checkpoint_bytes: AtomicU64,
    pub checkpoints_restored: AtomicU64,
    /// Bytes waiting in the on-disk spool, per stream (windows, areas, alerts).
    pub spool_bytes: [std::sync::Arc<AtomicU64>; 3],
    /// InfluxDB write latency (successful and failed attempts) and retried attempts.
    pub sink_write_seconds: std::sync::Arc<LatencyHistogram>,
    pub sink_retries: std::sync::Arc<AtomicU64>,
    /// Consumer lag per (input topic, partition), refreshed by the consumer loop.
    pub consumer_lag: Mutex<Vec<((String, i32), i64)>>,
    pub tracked_sensors: AtomicU64,
    pub open_windows: AtomicU64,
    /// Wall-clock ms of the last successful sink write (0: none yet).
    pub last_write_ms: AtomicI64,
    /// Wall-clock ms when the first record was consumed (0: none yet).
    pub first_record_ms: AtomicI64,
    /// The pipeline is consuming (its clients exist) and not shutting down (`/readyz`).
    pub ready: std::sync::atomic::AtomicBool,
}

impl PipelineStats {
    /// Notes the wall time of the first record (for end-to-end rates).
    pub fn mark_first_record(&self, wall_ms: i64) {
        let _ = self.first_record_ms.compare_exchange(0, wall_ms, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Counts records accepted per kind (indexed by `Kind::index`): stage 1 adds a batch's
    /// at once, not one atomic update per record.
    pub fn records_accepted(&self, per_kind: &[u64; Kind::ALL.len()]) {
        for (kind, &count) in per_kind.iter().enumerate().filter(|(_, c)| **c > 0) {
            self.records_in[kind].fetch_add(count, Ordering::Relaxed);
            self.accepted[kind].fetch_add(count, Ordering::Relaxed);
        }
    }

    pub fn record_rejected(&self, kind: Kind, rejection: &Rejection) {
        self.records_in[kind.index()].fetch_add(1, Ordering::Relaxed);
        self.rejected[rejection.reason.index()].fetch_add(1, Ordering::Relaxed);
        let vendor = rejection.vendor.clone().unwrap_or_else(|| "unknown".to_owned());
        *self.by_vendor.lock().unwrap_or_else(|e| e.into_inner()).entry((rejection.reason, vendor)).or_default() += 1;
    }

    pub fn records_in(&self) -> u64 {
        self.records_in.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    pub fn records_in_for(&self, kind: Kind) -> u64 {
        self.records_in[kind.index()].load(Ordering::Relaxed)
    }

    pub fn accepted(&self) -> u64 {
        self.accepted.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    pub fn rejected(&self) -> u64 {
        self.rejected.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Non-zero dead-letter counts by reason.
    pub fn rejected_by_reason(&self) -> Vec<(Reason, u64)> {
        Reason::ALL.into_iter().map(|r| (r, self.rejected[r.index()].load(Ordering::Relaxed))).filter(|(_, n)| *n > 0).collect()
    }

    /// Dead-letter counts by (reason, vendor): what to tell each vendor.
    pub fn rejected_by_vendor(&self) -> BTreeMap<(Reason, String), u64> {
        self.by_vendor.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
