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
        shared.stats.record_accepted(Kind::Pm25);
        shared.stats.record_rejected(Kind::Water, &Rejection::new(Reason::UnknownUnit, "ft").with_vendor("hydro"));
        let text = render(&shared);
        assert!(text.contains("citysense_records_in_total{kind=\"pm25\"} 1\n"), "{text}");
        assert!(text.contains("citysense_records_in_total{kind=\"water\"} 1\n"));
        assert!(text.contains("citysense_dead_letters_total{reason=\"unknown_unit\"} 1\n"));
        assert!(text.contains("citysense_dead_letters_by_vendor_total{reason=\"unknown_unit\",vendor=\"hydro\"} 1\n"));
        assert!(text.contains("# TYPE citysense_open_windows gauge\n"));
        assert!(text.contains("citysense_alerts_firing{severity=\"critical\"} 0\n"));
        assert!(!text.contains("sensor_id"));
    }
}
