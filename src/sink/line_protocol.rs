//! InfluxDB line protocol for window results (SPEC §5): one measurement per kind; tags
//! `window`, `sensor_id`, `district`, `street`, `grid`; the aggregates and domain metrics
//! as fields; the timestamp is the window end in milliseconds. The same window always
//! encodes to the same series and timestamp, so a rewrite replaces the point instead of
//! adding one.

use crate::model::{DomainValues, WindowResult, WindowValues};
use crate::rollup::AreaResult;

/// Appends one `area` point: tags `area`, `district`, `kind`, `level`, `window`; the
/// roll-up as fields; the window end as timestamp.
pub fn encode_area(result: &AreaResult, out: &mut String) {
    let tags = [
        ("area", result.area.as_str()),
        ("district", result.district.as_str()),
        ("kind", result.kind.as_str()),
        ("level", result.level.as_str()),
        ("window", result.window.as_str()),
    ];
    measurement_and_tags("area", &tags, out);
    let mut fields = Fields { out, first: true };
    fields.int("sensors_reporting", result.sensors_reporting as i64);
    if let Some(silent) = result.sensors_silent {
        fields.int("sensors_silent", silent as i64);
    }
    for (name, value) in [
        ("mean", result.mean),
        ("max", result.max),
        ("availability", result.availability),
        ("fault_ratio", result.fault_ratio),
        ("utilisation", result.utilisation),
    ] {
        if let Some(v) = value {
            fields.float(name, v);
        }
    }
    if let Some(offline) = result.piles_offline {
        fields.int("piles_offline", offline as i64);
    }
    if let Some(hotspots) = result.hotspots {
        fields.int("hotspots", hotspots as i64);
    }
    end_line(result.end_ms, out);
}

/// Writes the measurement and its tags (given in key order, as InfluxDB recommends);
/// empty tag values are not allowed in line protocol, so they are skipped.
#[inline(always)]
fn measurement_and_tags(measurement: &str, tags: &[(&str, &str)], out: &mut String) {
    out.push_str(measurement);
    for (key, value) in tags {
        if !value.is_empty() {
            out.push(',');
            out.push_str(key);
            out.push('=');
            escape_tag(value, out);
        }
    }
}

/// Appends one line (with trailing newline) for `result` to `out`.
pub fn encode_window(result: &WindowResult, out: &mut String) {
    let tags = [
        ("district", result.area.district.as_str()),
        ("grid", result.area.grid.as_str()),
        ("sensor_id", result.sensor_id.as_str()),
        ("street", result.area.street.as_str()),
        ("window", result.window.as_str()),
    ];
    measurement_and_tags(result.kind.as_str(), &tags, out);
    let mut fields = Fields { out, first: true };
    match &result.values {
        WindowValues::Level(v) => {
            // Written out, not looped over: each name is then a constant the copy is sized for.
            fields.int("count", v.count as i64);
            fields.float("sum", v.sum);
            fields.float("mean", v.mean);
            fields.float("min", v.min);
            fields.float("max", v.max);
            fields.float("first", v.first);
            fields.float("last", v.last);
            fields.float("stddev", v.stddev);
            fields.float("p50", v.p50);
            fields.float("p95", v.p95);
            fields.float("rate_per_h", v.rate_per_h);
            if let Some(slope) = v.slope_per_h {
                fields.float("slope_per_h", slope);
            }
        }
        WindowValues::Pile(v) => {
            fields.int("count", v.count as i64);
            for (status, n) in &v.status_counts {
                fields.int(&format!("status_{}", status.to_ascii_lowercase()), *n as i64);
            }
            for (status, ms) in &v.time_in_status_ms {
                fields.int(&format!("time_{}_ms", status.to_ascii_lowercase()), *ms);
            }
            if let Some(power) = v.power_kw_mean {
                fields.float("power_kw_mean", power);
            }
            fields.string("last_status", &v.last_status);
        }
    }
    if let Some(coverage) = result.coverage {
        fields.float("coverage", coverage);
    }
    match &result.domain {
        Some(DomainValues::Pm25 { iaqi, category, above_scale, standard, epa_aqi, nowcast }) => {
            fields.int("iaqi", *iaqi as i64);
            fields.string("category", category);
            fields.bool("above_scale", *above_scale);
            fields.string("standard", standard);
            if let Some(aqi) = epa_aqi {
                fields.int("epa_aqi", *aqi as i64);
            }
            if let Some(c) = nowcast {
                fields.float("nowcast", *c);
            }
        }
        Some(DomainValues::Water { flood_signal, underpass_grade, minutes_to_next_threshold }) => {
            if let Some(signal) = flood_signal {
                fields.string("flood_signal", signal);
            }
            if let Some(grade) = underpass_grade {
                fields.string("underpass_grade", grade);
            }
            if let Some(minutes) = minutes_to_next_threshold {
                fields.float("minutes_to_next_threshold", *minutes);
            }
        }
        Some(DomainValues::Dust { dust_grade }) => fields.string("dust_grade", dust_grade),
        Some(DomainValues::Charging { utilisation: Some(u) }) => fields.float("utilisation", *u),
        Some(DomainValues::Charging { utilisation: None }) | None => {}
    }
    end_line(result.end_ms, out);
}

/// The timestamp and the newline that end a point.
fn end_line(ts_ms: i64, out: &mut String) {
    out.push(' ');
    out.push_str(itoa::Buffer::new().format(ts_ms));
    out.push('\n');
}

/// Appends one `alert` point: tags `district`, `fingerprint`, `grid`, `rule`, `scope`,
/// `severity`, `status`, `street`; the value, threshold, event id and summary as fields; the
/// event time as timestamp.
pub fn encode_alert_line(event: &crate::model::AlertEvent, out: &mut String) {
    let tags = [
        ("district", event.district.as_str()),
        ("fingerprint", event.fingerprint.as_str()),
        ("grid", event.grid.as_str()),
        ("rule", event.rule.as_str()),
        ("scope", event.scope.as_str()),
        ("severity", event.severity.as_str()),
        ("status", event.status.as_str()),
        ("street", event.street.as_str()),
    ];
    measurement_and_tags("alert", &tags, out);
    let mut fields = Fields { out, first: true };
    fields.float("value", event.value);
    fields.float("threshold", event.threshold);
    fields.string("event_id", &event.event_id);
    fields.string("change", &event.change);
    fields.string("scope_key", &event.scope_key);
    fields.string("summary", &event.summary);
    end_line(event.at_ms, out);
}

/// Writes `name=value` pairs separated by commas, after the tag set.
struct Fields<'a> {
    out: &'a mut String,
    first: bool,
}

impl Fields<'_> {
    #[inline(always)]
    fn key(&mut self, name: &str) {
        self.out.push(if self.first { ' ' } else { ',' });
        self.first = false;
        self.out.push_str(name);
        self.out.push('=');
    }

    #[inline(always)]
    fn int(&mut self, name: &str, value: i64) {
        self.key(name);
        self.out.push_str(itoa::Buffer::new().format(value));
        self.out.push('i');
    }

    /// Non-finite floats have no line-protocol form; they are left out. Shortest
    /// round-trip form (zmij: half ryu's time here, and ryu was several times cheaper than
    /// `Display`), without a trailing `.0`; magnitudes from 1e16 and below 1e-5 come in
    /// exponent form (`1e+16`), which line protocol accepts.
    #[inline(always)]
    fn float(&mut self, name: &str, value: f64) {
        if value.is_finite() {
            self.key(name);
            let mut buffer = zmij::Buffer::new();
            let text = buffer.format_finite(value);
            self.out.push_str(text.strip_suffix(".0").unwrap_or(text));
        }
    }

    fn bool(&mut self, name: &str, value: bool) {
        self.key(name);
        self.out.push_str(if value { "true" } else { "false" });
    }

    fn string(&mut self, name: &str, value: &str) {
        self.key(name);
        self.out.push('"');
        escape(value, self.out, &STRING_ESCAPED, |b| if b == b'"' { "\\\"" } else { "\\\\" });
        self.out.push('"');
    }
}

/// The bytes a tag value escapes: comma, equals sign, space, backslash, and the line breaks
/// line protocol cannot carry (written as a space).
const TAG_ESCAPED: [bool; 256] = byte_set(b",= \\\n\r");
/// The bytes a string field escapes: double quote and backslash.
const STRING_ESCAPED: [bool; 256] = byte_set(b"\"\\");

const fn byte_set(bytes: &[u8]) -> [bool; 256] {
    let mut set = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        set[bytes[i] as usize] = true;
        i += 1;
    }
    set
}

/// A tag value with `TAG_ESCAPED` backslash-escaped, a line break written as a space.
fn escape_tag(value: &str, out: &mut String) {
    escape(value, out, &TAG_ESCAPED, |b| match b {
        b',' => "\\,",
        b'=' => "\\=",
        b' ' => "\\ ",
        b'\\' => "\\\\",
        _ => " ",
    });
}

/// Appends `value` with each byte in `escaped` written as `replacement` gives it. The bytes
/// escaped are ASCII, so the text between them is copied whole: for the usual value, with
/// none, one copy after one table lookup per byte.
fn escape(value: &str, out: &mut String, escaped: &[bool; 256], replacement: impl Fn(u8) -> &'static str) {
    let mut rest = value;
    while let Some(at) = rest.bytes().position(|b| escaped[usize::from(b)]) {
        out.push_str(&rest[..at]);
        out.push_str(replacement(rest.as_bytes()[at]));
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Area, Kind, LevelValues, PileValues};

    fn result(values: WindowValues) -> WindowResult {
        WindowResult {
            kind: Kind::Pm25,
            sensor_id: "hd-pm-0042".into(),
            window: "1h".into(),
            start_ms: 1_764_054_000_000,
            end_ms: 1_764_057_600_000,
            area: Area { grid: "hd-0178".into(), street: "hd zhong,guan=cun".into(), district: "haidian".into() },
            values,
            coverage: Some(0.75),
            domain: None,
        }
    }

    #[test]
    fn a_level_window_encodes_with_tags_fields_and_end_timestamp() {
        let mut out = String::new();
        let values = LevelValues {
            count: 3,
            sum: 6.0,
            mean: 2.0,
            min: 1.0,
            max: 3.0,
            first: 1.0,
            last: 3.0,
            stddev: 0.5,
            p50: 2.0,
            p95: 3.0,
            rate_per_h: 4.0,
            slope_per_h: None,
        };
        let mut r = result(WindowValues::Level(values));
        r.domain = Some(DomainValues::Pm25 {
            iaqi: 3,
            category: "excellent",
            above_scale: false,
            standard: "HJ633-2026",
            epa_aqi: None,
            nowcast: None,
        });
        encode_window(&r, &mut out);
        assert_eq!(
            out,
            "pm25,district=haidian,grid=hd-0178,sensor_id=hd-pm-0042,street=hd\\ zhong\\,guan\\=cun,window=1h \
             count=3i,sum=6,mean=2,min=1,max=3,first=1,last=3,stddev=0.5,p50=2,p95=3,rate_per_h=4,coverage=0.75,\
             iaqi=3i,category=\"excellent\",above_scale=false,standard=\"HJ633-2026\" 1764057600000\n"
        );
    }

    #[test]
    fn tag_values_and_strings_escape_what_line_protocol_needs_and_copy_the_rest() {
        let mut out = String::new();
        escape_tag("a,b=c d\\e\nf\rg 海淀", &mut out);
        assert_eq!(out, "a\\,b\\=c\\ d\\\\e f g\\ 海淀");
        let mut out = String::new();
        Fields { out: &mut out, first: true }.string("s", "say \"hi\" \\ 海淀");
        assert_eq!(out, " s=\"say \\\"hi\\\" \\\\ 海淀\"");
    }

    #[test]
    fn a_pile_window_encodes_status_counts_and_times() {
        let mut out = String::new();
        let values = PileValues {
            count: 4,
            status_counts: vec![("Charging".into(), 3), ("Heartbeat".into(), 1)],
            last_status: "Charging".into(),
            time_in_status_ms: vec![("Charging".into(), 240_000)],
            power_kw_mean: Some(50.5),
        };
        let mut r = result(WindowValues::Pile(values));
        r.kind = Kind::Charging;
        r.area = Area::default();
        r.coverage = None;
        encode_window(&r, &mut out);
        assert_eq!(
            out,
            "charging,sensor_id=hd-pm-0042,window=1h count=4i,status_charging=3i,status_heartbeat=1i,time_charging_ms=240000i,\
             power_kw_mean=50.5,last_status=\"Charging\" 1764057600000\n"
        );
    }

    proptest::proptest! {
        #[test]
        fn every_finite_float_is_written_so_that_it_reads_back_exactly(value in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO) {
            let mut out = String::new();
            Fields { out: &mut out, first: true }.float("v", value);
            let text = out.strip_prefix(" v=").expect("a field");
            proptest::prop_assert_eq!(text.parse::<f64>().ok(), Some(value), "{}", text);
            proptest::prop_assert!(!text.ends_with(".0"), "{}", text);
        }
    }

    #[test]
    fn whole_floats_are_written_without_a_fraction_and_huge_ones_in_exponent_form() {
        let mut out = String::new();
        let mut fields = Fields { out: &mut out, first: true };
        for value in [6.0, -2.5, 1e20, 1.5e-7, f64::NAN] {
            fields.float("v", value);
        }
        fields.int("n", -42);
        assert_eq!(out, " v=6,v=-2.5,v=1e+20,v=1.5e-7,n=-42i");
    }
}
