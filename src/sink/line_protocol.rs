//! InfluxDB line protocol for window results (SPEC §5): one measurement per kind; tags
//! `window`, `sensor_id`, `district`, `street`, `grid`; the aggregates as fields; the
//! timestamp is the window end in milliseconds. The same window always encodes to the
//! same series and timestamp, so a rewrite replaces the point instead of adding one.

use std::fmt::Write;

use crate::model::{WindowResult, WindowValues};

/// Appends one line (with trailing newline) for `result` to `out`.
pub fn encode_window(result: &WindowResult, out: &mut String) {
    out.push_str(result.kind.as_str());
    // Tags in key order, as InfluxDB recommends; empty values are not allowed, so skipped.
    for (key, value) in [
        ("district", result.area.district.as_str()),
        ("grid", result.area.grid.as_str()),
        ("sensor_id", result.sensor_id.as_str()),
        ("street", result.area.street.as_str()),
        ("window", result.window.as_str()),
    ] {
        if !value.is_empty() {
            out.push(',');
            out.push_str(key);
            out.push('=');
            escape_tag(value, out);
        }
    }
    out.push(' ');
    match &result.values {
        WindowValues::Level { count, sum, mean, min, max, first, last, stddev } => {
            let _ = write!(out, "count={count}i");
            for (name, value) in
                [("sum", sum), ("mean", mean), ("min", min), ("max", max), ("first", first), ("last", last), ("stddev", stddev)]
            {
                if value.is_finite() {
                    let _ = write!(out, ",{name}={value}");
                }
            }
        }
        WindowValues::Pile { count, status_counts, last_status, power_kw_mean } => {
            let _ = write!(out, "count={count}i");
            for (status, n) in status_counts {
                let _ = write!(out, ",status_{}={n}i", status.to_ascii_lowercase());
            }
            if let Some(power) = power_kw_mean.filter(|p| p.is_finite()) {
                let _ = write!(out, ",power_kw_mean={power}");
            }
            out.push_str(",last_status=\"");
            escape_string_field(last_status, out);
            out.push('"');
        }
    }
    let _ = writeln!(out, " {}", result.end_ms);
}

fn escape_tag(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            ',' | '=' | ' ' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
}

fn escape_string_field(value: &str, out: &mut String) {
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Area, Kind};

    fn result(values: WindowValues) -> WindowResult {
        WindowResult {
            kind: Kind::Pm25,
            sensor_id: "hd-pm-0042".into(),
            window: "1m".into(),
            start_ms: 1_764_057_540_000,
            end_ms: 1_764_057_600_000,
            area: Area { grid: "hd-0178".into(), street: "hd zhong,guan=cun".into(), district: "haidian".into() },
            values,
        }
    }

    #[test]
    fn a_level_window_encodes_with_tags_fields_and_end_timestamp() {
        let mut out = String::new();
        let values = WindowValues::Level { count: 3, sum: 6.0, mean: 2.0, min: 1.0, max: 3.0, first: 1.0, last: 3.0, stddev: 0.5 };
        encode_window(&result(values), &mut out);
        assert_eq!(
            out,
            "pm25,district=haidian,grid=hd-0178,sensor_id=hd-pm-0042,street=hd\\ zhong\\,guan\\=cun,window=1m \
             count=3i,sum=6,mean=2,min=1,max=3,first=1,last=3,stddev=0.5 1764057600000\n"
        );
    }

    #[test]
    fn a_pile_window_encodes_status_counts() {
        let mut out = String::new();
        let values = WindowValues::Pile {
            count: 4,
            status_counts: vec![("Charging".into(), 3), ("Heartbeat".into(), 1)],
            last_status: "Charging".into(),
            power_kw_mean: Some(50.5),
        };
        let mut r = result(values);
        r.kind = Kind::Charging;
        r.area = Area::default();
        encode_window(&r, &mut out);
        assert_eq!(
            out,
            "charging,sensor_id=hd-pm-0042,window=1m count=4i,status_charging=3i,status_heartbeat=1i,power_kw_mean=50.5,last_status=\"Charging\" 1764057600000\n"
        );
    }
}
