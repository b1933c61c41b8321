//! `/metrics` in the Prometheus text format, rendered from the pipeline's counters (no
//! sensor id as a label: label values are kinds, reasons, vendors and severities).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::decode::Reason;
use crate::model::Kind;
use crate::pipeline::Shared;

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', " ")
}

pub fn render(shared: &Shared) -> String {
    let stats = &shared.stats;
    let mut out = String::new();
    header(&mut out, "citysense_records_in_total", "counter", "Records consumed, by feed.");
    for kind in Kind::ALL {
        let _ = writeln!(out, "citysense_records_in_total{{kind=\"{kind}\"}} {}", stats.records_in_for(kind));
    }
    header(&mut out, "citysense_dead_letters_total", "counter", "Records dead-lettered, by reason.");
    let by_reason = stats.rejected_by_reason();
    for reason in Reason::ALL {
        let n = by_reason.iter().find(|(r, _)| *r == reason).map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "citysense_dead_letters_total{{reason=\"{reason}\"}} {n}");
    }
    header(&mut out, "citysense_dead_letters_by_vendor_total", "counter", "Records dead-lettered, by reason and vendor.");
    for ((reason, vendor), n) in stats.rejected_by_vendor() {
        let _ = writeln!(out, "citysense_dead_letters_by_vendor_total{{reason=\"{reason}\",vendor=\"{}\"}} {n}", escape(&vendor));
    }
    for (name, help, value) in [
        (
            "citysense_windows_closed_total",
            "Sensor windows closed and acknowledged by the sinks.",
            stats.windows_closed.load(Ordering::Relaxed),
        ),
        ("citysense_points_written_total", "Window points acknowledged by InfluxDB.", stats.points_written.load(Ordering::Relaxed)),
        ("citysense_sink_batches_total", "Sink batches acknowledged.", stats.sink_batches.load(Ordering::Relaxed)),
        ("citysense_commits_total", "Offset commits accepted.", stats.commits.load(Ordering::Relaxed)),
        ("citysense_checkpoints_written_total", "Partition checkpoints written.", stats.checkpoints_written.load(Ordering::Relaxed)),
        ("citysense_checkpoint_bytes_total", "Bytes of checkpoints written.", stats.checkpoint_bytes.load(Ordering::Relaxed)),
        (
            "citysense_checkpoints_restored_total",
            "Partitions restored from a checkpoint.",
            stats.checkpoints_restored.load(Ordering::Relaxed),
        ),
        (
            "citysense_records_skipped_total",
            "Records delivered again from an older commit but already in a restored checkpoint.",
            stats.records_skipped.load(Ordering::Relaxed),
        ),
    ] {
        header(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    let firing = shared.alerts.list("firing");
    for (name, help, value) in [
        ("citysense_tracked_sensors", "Sensors with open window state.", stats.tracked_sensors.load(Ordering::Relaxed)),
        ("citysense_open_windows", "Sensor windows open.", stats.open_windows.load(Ordering::Relaxed)),
        ("citysense_area_results", "Areas with a latest roll-up in memory.", shared.areas.len() as u64),
    ] {
        header(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    header(&mut out, "citysense_sink_write_seconds", "histogram", "InfluxDB write latency of window batches (every attempt).");
    let (buckets, sum, count) = stats.sink_write_seconds.snapshot();
    for (bound, n) in buckets {
        let le = if bound.is_infinite() { "+Inf".to_owned() } else { bound.to_string() };
        let _ = writeln!(out, "citysense_sink_write_seconds_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "citysense_sink_write_seconds_sum {sum}\ncitysense_sink_write_seconds_count {count}");
    header(&mut out, "citysense_sink_retries_total", "counter", "InfluxDB write attempts that failed and were retried.");
    let _ = writeln!(out, "citysense_sink_retries_total {}", stats.sink_retries.load(Ordering::Relaxed));
    header(&mut out, "citysense_spool_bytes", "gauge", "Bytes waiting in the on-disk InfluxDB spool, by stream.");
    for (i, stream) in ["windows", "areas", "alerts"].iter().enumerate() {
        let _ = writeln!(out, "citysense_spool_bytes{{stream=\"{stream}\"}} {}", stats.spool_bytes[i].load(Ordering::Relaxed));
    }
    header(
        &mut out,
        "citysense_consumer_lag",
        "gauge",
        "Records behind the end of each input partition (librdkafka statistics, every 5 s).",
    );
    for ((topic, partition), lag) in stats.consumer_lag.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let _ = writeln!(out, "citysense_consumer_lag{{topic=\"{}\",partition=\"{partition}\"}} {lag}", escape(topic));
    }
    header(&mut out, "citysense_alerts_firing", "gauge", "Alerts firing (acknowledged and flapping included), by severity.");
    for severity in crate::alert::Severity::ALL {
        let n = firing.iter().filter(|a| a.severity == severity.as_str()).count();
        let _ = writeln!(out, "citysense_alerts_firing{{severity=\"{}\"}} {n}", severity.as_str());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Rejection;

    #[test]
    fn counters_render_with_bounded_labels() {
        let shared = Shared::default();
        let mut accepted = [0; Kind::ALL.len()];
        accepted[Kind::Pm25.index()] = 2;
        shared.stats.records_accepted(&accepted);
        shared.stats.record_rejected(Kind::Water, &Rejection::new(Reason::UnknownUnit, "ft").with_vendor("hydro"));
        let text = render(&shared);
        assert!(text.contains("citysense_records_in_total{kind=\"pm25\"} 2\n"), "{text}");
        assert!(text.contains("citysense_records_in_total{kind=\"water\"} 1\n"));
        assert!(text.contains("citysense_dead_letters_total{reason=\"unknown_unit\"} 1\n"));
        assert!(text.contains("citysense_dead_letters_by_vendor_total{reason=\"unknown_unit\",vendor=\"hydro\"} 1\n"));
        shared.stats.spool_bytes[1].store(4096, Ordering::Relaxed);
        *shared.stats.consumer_lag.lock().unwrap() = vec![(("city.pm25".into(), 3), 120)];
        let text = render(&shared);
        assert!(text.contains("citysense_spool_bytes{stream=\"areas\"} 4096\n"), "{text}");
        assert!(text.contains("citysense_consumer_lag{topic=\"city.pm25\",partition=\"3\"} 120\n"));
        assert!(text.contains("citysense_checkpoints_written_total 0\n"));
        shared.stats.sink_write_seconds.observe(0.02);
        shared.stats.sink_write_seconds.observe(3.0);
        let text = render(&shared);
        assert!(text.contains("citysense_sink_write_seconds_bucket{le=\"0.01\"} 0\n"), "{text}");
        assert!(text.contains("citysense_sink_write_seconds_bucket{le=\"0.025\"} 1\n"));
        assert!(text.contains("citysense_sink_write_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("citysense_sink_write_seconds_count 2\n"));
        assert!(text.contains("# TYPE citysense_open_windows gauge\n"));
        assert!(text.contains("citysense_alerts_firing{severity=\"critical\"} 0\n"));
        assert!(!text.contains("sensor_id"));
    }
}
