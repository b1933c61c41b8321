//! Deterministic readings of a simulated city: daily PM2.5 cycles and pollution episodes,
//! dust that follows traffic, rivers that swell and underpasses that flood in storms,
//! charging piles moving through OCPP states — and the faults real vendors produce
//! (broken bytes, unknown units, impossible values, duplicates, late and future stamps),
//! each tagged with the fault so tests know the ground truth.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::f64::consts::TAU;

use prost::Message;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::city::{City, SimSensor};
use crate::decode::{Reason, CONTENT_TYPE_JSON, CONTENT_TYPE_PROTOBUF};
use crate::model::{Kind, PileStatus};
use crate::proto;

const HOUR_MS: f64 = 3_600_000.0;
const DAY_MS: f64 = 24.0 * HOUR_MS;
/// The vendor whose level readings carry sequence numbers.
const SEQ_VENDOR: &str = "acme";
/// How far ahead a faulty sensor clock stamps its readings.
const FUTURE_SKEW_MS: i64 = 365 * 86_400_000;
/// Beijing local time offset, for the daily cycles.
const CST_MS: i64 = 8 * 3_600_000;

/// A fault injected into one record; each maps to the dead-letter reason it must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    Malformed,
    UnknownUnit,
    OutOfRange,
    NonFinite,
    Duplicate,
    Late,
    Future,
}

impl Fault {
    pub fn expected_reason(self) -> Reason {
        match self {
            Fault::Malformed => Reason::Undecodable,
            Fault::UnknownUnit => Reason::UnknownUnit,
            Fault::OutOfRange => Reason::OutOfRange,
            Fault::NonFinite => Reason::NonFinite,
            Fault::Duplicate => Reason::Duplicate,
            Fault::Late => Reason::Late,
            Fault::Future => Reason::Future,
        }
    }
}

/// Probability per record of each fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultRates {
    pub malformed: f64,
    pub unknown_unit: f64,
    pub out_of_range: f64,
    pub non_finite: f64,
    pub duplicate: f64,
    pub late: f64,
    pub future: f64,
}

impl FaultRates {
    pub const NONE: FaultRates =
        FaultRates { malformed: 0.0, unknown_unit: 0.0, out_of_range: 0.0, non_finite: 0.0, duplicate: 0.0, late: 0.0, future: 0.0 };

    /// What a city sees from its vendors on an ordinary day: about 1 % bad records.
    pub const REALISTIC: FaultRates = FaultRates {
        malformed: 0.002,
        unknown_unit: 0.001,
        out_of_range: 0.002,
        non_finite: 0.001,
        duplicate: 0.002,
        late: 0.001,
        future: 0.001,
    };

    fn pick(&self, rng: &mut SmallRng) -> Option<Fault> {
        let x: f64 = rng.gen();
        let table = [
            (self.malformed, Fault::Malformed),
            (self.unknown_unit, Fault::UnknownUnit),
            (self.out_of_range, Fault::OutOfRange),
            (self.non_finite, Fault::NonFinite),
            (self.duplicate, Fault::Duplicate),
            (self.late, Fault::Late),
            (self.future, Fault::Future),
        ];
        let mut acc = 0.0;
        for (p, fault) in table {
            acc += p;
            if x < acc {
                return Some(fault);
            }
        }
        None
    }
}

/// Wire format of simulated records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimFormat {
    Json,
    Protobuf,
    /// Vendors differ: some sensors JSON, some protobuf.
    Mixed,
}

/// One record ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct SimRecord {
    pub kind: Kind,
    pub key: String,
    pub payload: Vec<u8>,
    pub content_type: &'static str,
    /// Event time the record claims (after any fault).
    pub ts_ms: i64,
    /// Event time of the reading it was made from (before any fault).
    pub true_ts_ms: i64,
    pub fault: Option<Fault>,
    /// The value as sent, in `unit` (pile records: the reported power in kW).
    pub value: f64,
    pub unit: &'static str,
    pub seq: Option<u64>,
}

/// A fault scripted onto one sensor for a stretch of event time: the ground truth of the
/// alert scenario tests, and what makes the demo show alerts at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Episode {
    pub sensor: usize,
    pub fault: EpisodeKind,
    pub from_ms: i64,
    /// Exclusive; `i64::MAX` for "until the end".
    pub to_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EpisodeKind {
    /// A PM2.5 reading frozen at one value.
    Stuck,
    /// No readings at all.
    Silent,
    /// An underpass filling at 0.6 m/h from dry.
    Flooding,
    /// A pile reporting Faulted.
    Faulted,
    /// A PM2.5 station reading a quarter of the truth (faulty or falsified).
    FalselyLow,
}

/// How long before `at_ms` each of the demo's scripted faults starts.
const DEMO_STUCK_MS: i64 = 30 * 60_000;
const DEMO_SILENT_MS: i64 = 10 * 60_000;
const DEMO_FLOOD_MS: i64 = 40 * 60_000;
const DEMO_FAULTED_MS: i64 = 30 * 60_000;
const DEMO_LOW_MS: i64 = 150 * 60_000;
/// Scripted underpasses fill at 0.6 m/h (0.05 m per 5 min, the SPEC §8 rise-rate line).
const FLOOD_RATE_M_PER_H: f64 = 0.6;

pub struct Generator {
    episodes: Vec<Episode>,
    natural_pile_faults: bool,
    city: City,
    rng: SmallRng,
    faults: FaultRates,
    format: SimFormat,
    due: BinaryHeap<Reverse<(i64, usize)>>,
    piles: Vec<PileStatus>,
    seq: Vec<u64>,
}

impl Generator {
    /// Starts every sensor at a deterministic phase within its first interval after `start_ms`.
    pub fn new(city: City, seed: u64, start_ms: i64, format: SimFormat, faults: FaultRates) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let due = city.sensors.iter().enumerate().map(|(i, s)| Reverse((start_ms + rng.gen_range(0..s.interval_ms), i))).collect();
        let piles = vec![PileStatus::Available; city.sensors.len()];
        let seq = vec![0; city.sensors.len()];
        Generator { episodes: Vec::new(), natural_pile_faults: true, city, rng, faults, format, due, piles, seq }
    }

    /// Adds the demo's scripted faults ending at `at_ms`: one PM2.5 station stuck, one
    /// silent, one reading falsely low, one underpass flooding and one pile faulted, all
    /// still going at `at_ms`.
    pub fn script_faults(&mut self, at_ms: i64) {
        let find = |f: &dyn Fn(&SimSensor) -> bool, skip: usize| {
            self.city.sensors.iter().enumerate().filter(|(_, s)| f(s)).map(|(i, _)| i).nth(skip)
        };
        let plan = [
            (find(&|s| s.kind == Kind::Pm25, 0), EpisodeKind::Stuck, DEMO_STUCK_MS),
            (find(&|s| s.kind == Kind::Pm25, 1), EpisodeKind::Silent, DEMO_SILENT_MS),
            (find(&|s| s.kind == Kind::Water && s.warning_level.is_none(), 0), EpisodeKind::Flooding, DEMO_FLOOD_MS),
            (find(&|s| s.kind == Kind::Charging, 0), EpisodeKind::Faulted, DEMO_FAULTED_MS),
            (find(&|s| s.kind == Kind::Pm25, 2), EpisodeKind::FalselyLow, DEMO_LOW_MS),
        ];
        for (sensor, fault, lead_ms) in plan {
            if let Some(sensor) = sensor {
                self.episodes.push(Episode { sensor, fault, from_ms: at_ms - lead_ms, to_ms: i64::MAX });
            }
        }
    }

    /// Adds one scripted fault (scenario tests).
    pub fn add_episode(&mut self, episode: Episode) {
        self.episodes.push(episode);
    }

    /// Turns off the piles' own random faults, so only scripted ones happen.
    pub fn without_natural_pile_faults(&mut self) {
        self.natural_pile_faults = false;
    }

    fn episode(&self, sensor: usize, ts_ms: i64) -> Option<Episode> {
        self.episodes.iter().find(|e| e.sensor == sensor && (e.from_ms..e.to_ms).contains(&ts_ms)).copied()
    }

    /// Sets every sensor's reporting interval (the load generator's `--rate`).
    pub fn set_interval(&mut self, interval_ms: i64) {
        for sensor in &mut self.city.sensors {
            sensor.interval_ms = interval_ms.max(1);
        }
    }

    pub fn city(&self) -> &City {
        &self.city
    }

    /// Event time of the next reading.
    pub fn next_due(&self) -> Option<i64> {
        self.due.peek().map(|Reverse((t, _))| *t)
    }

    /// Appends every reading due before `until_ms`, in event-time order.
    pub fn emit_until(&mut self, until_ms: i64, out: &mut Vec<SimRecord>) {
        while let Some(&Reverse((ts, index))) = self.due.peek() {
            if ts >= until_ms {
                break;
            }
            self.due.pop();
            let interval = self.city.sensors[index].interval_ms;
            self.due.push(Reverse((ts + interval, index)));
            self.emit(index, ts, out);
        }
    }

    /// Appends at least the next `n` readings: whole time steps until `n` are out (one
    /// step holds every sensor due at that instant).
    pub fn emit_count(&mut self, n: usize, out: &mut Vec<SimRecord>) {
        let target = out.len() + n;
        while out.len() < target {
            let Some(ts) = self.next_due() else { return };
            self.emit_until(ts + 1, out);
        }
    }

    fn emit(&mut self, index: usize, ts_ms: i64, out: &mut Vec<SimRecord>) {
        let episode = self.episode(index, ts_ms);
        if episode.is_some_and(|e| e.fault == EpisodeKind::Silent) {
            return;
        }
        self.seq[index] += 1;
        let seq = self.seq[index];
        let fault = self.faults.pick(&mut self.rng);
        let sensor = &self.city.sensors[index];
        let protobuf = match self.format {
            SimFormat::Json => false,
            SimFormat::Protobuf => true,
            SimFormat::Mixed => index % 4 == 3,
        };
        let claimed_ts = match fault {
            Some(Fault::Late) => ts_ms - 20 * 60_000,
            // A real-time clock that lost its setting: a year ahead, future by any wall clock.
            Some(Fault::Future) => ts_ms + FUTURE_SKEW_MS,
            _ => ts_ms,
        };
        let noise: f64 = self.rng.gen_range(-1.0..1.0);
        let (payload, value, unit, seq) = if sensor.kind == Kind::Charging {
            let mut status = self.next_pile_status(index);
            if episode.is_some_and(|e| e.fault == EpisodeKind::Faulted) {
                status = PileStatus::Faulted;
            }
            let sensor = &self.city.sensors[index];
            let (payload, power) = pile_payload(sensor, claimed_ts, status, seq, protobuf, fault, noise);
            (payload, power, "kW", Some(seq))
        } else {
            let (mut value, unit) = level_value(sensor, ts_ms, noise);
            match episode {
                // A frozen reading (42 µg/m³, in the vendor's unit): zero variance.
                Some(Episode { fault: EpisodeKind::Stuck, .. }) => value = if unit == "mg/m3" { 0.042 } else { 42.0 },
                Some(Episode { fault: EpisodeKind::FalselyLow, .. }) => value /= 4.0,
                Some(Episode { fault: EpisodeKind::Flooding, from_ms, .. }) => {
                    let hours = (ts_ms - from_ms) as f64 / HOUR_MS;
                    value = (FLOOD_RATE_M_PER_H * hours * 1000.0).round() / 10.0;
                    // cm, as this vendor sends
                }
                _ => {}
            }
            let with_seq = sensor.vendor == SEQ_VENDOR;
            (level_payload(sensor, claimed_ts, value, unit, seq, protobuf, fault), value, unit, with_seq.then_some(seq))
        };
        let sensor = &self.city.sensors[index];
        let record = SimRecord {
            kind: sensor.kind,
            key: sensor.id.clone(),
            payload,
            content_type: if protobuf { CONTENT_TYPE_PROTOBUF } else { CONTENT_TYPE_JSON },
            ts_ms: claimed_ts,
            true_ts_ms: ts_ms,
            fault: fault.filter(|f| *f != Fault::Duplicate),
            value,
            unit,
            seq,
        };
        if fault == Some(Fault::Duplicate) {
            // The vendor re-sends: the first copy is good, the second is the duplicate.
            out.push(record.clone());
            out.push(SimRecord { fault: Some(Fault::Duplicate), ..record });
        } else {
            out.push(record);
        }
    }

    /// A pile's OCPP status walk: idle → preparing → charging → finishing → idle, with
    /// occasional faults that clear after a while.
    fn next_pile_status(&mut self, index: usize) -> PileStatus {
        use PileStatus::*;
        let x: f64 = self.rng.gen();
        let next = match self.piles[index] {
            Available if x < 0.04 => Preparing,
            Available if x < 0.041 && self.natural_pile_faults => Faulted,
            Preparing => Charging,
            Charging if x < 0.03 => Finishing,
            Finishing => Available,
            Faulted if x < 0.05 => Available,
            Unavailable if x < 0.1 => Available,
            s => s,
        };
        self.piles[index] = next;
        next
    }
}

/// The true level at `ts_ms`, and the unit this vendor sends it in.
fn level_value(sensor: &SimSensor, ts_ms: i64, noise: f64) -> (f64, &'static str) {
    let t = ts_ms as f64;
    let local_hour = ((ts_ms + CST_MS) as f64 / HOUR_MS).rem_euclid(24.0);
    match sensor.kind {
        Kind::Pm25 => {
            // Winter Beijing: night-time peak, and multi-day episodes.
            let diurnal = 1.0 + 0.3 * (TAU * (local_hour - 22.0) / 24.0).cos();
            let episode = 1.0 + 1.5 * (TAU * t / (3.0 * DAY_MS)).sin().max(0.0).powi(2);
            let value = (sensor.baseline * diurnal * episode * (1.0 + 0.08 * noise)).max(0.0);
            if sensor.vendor == "skyair" {
                (value / 1000.0, "mg/m3")
            } else {
                (value, "ug/m3")
            }
        }
        Kind::Dust => {
            let traffic = 1.0 + 0.25 * (TAU * (local_hour - 14.0) / 24.0).cos();
            ((sensor.baseline * traffic * (1.0 + 0.05 * noise)).max(0.0), "g/m2")
        }
        Kind::Water if sensor.warning_level.is_some() => {
            let swell = 0.4 * (TAU * t / (2.0 * DAY_MS)).sin();
            (sensor.baseline + swell + 0.01 * noise, "m")
        }
        Kind::Water => {
            // Underpass ponding: a storm every ~30 h; depth in cm from this vendor.
            let phase = (t / HOUR_MS).rem_euclid(30.0);
            let depth_m = if phase < 2.0 { 0.3 * (1.0 - (phase - 1.0).abs()) } else { 0.0 };
            (((depth_m + 0.002 * noise).max(0.0) * 100.0 * 10.0).round() / 10.0, "cm")
        }
        Kind::Charging => (0.0, "kW"),
    }
}

fn level_payload(sensor: &SimSensor, ts_ms: i64, value: f64, unit: &str, seq: u64, protobuf: bool, fault: Option<Fault>) -> Vec<u8> {
    let unit = if fault == Some(Fault::UnknownUnit) { "ppm" } else { unit };
    let value = match fault {
        Some(Fault::OutOfRange) => 99_999.0,
        Some(Fault::NonFinite) => f64::NAN,
        _ => value,
    };
    let with_seq = sensor.vendor == SEQ_VENDOR;
    let mut bytes = if protobuf {
        proto::Reading {
            sensor_id: sensor.id.clone(),
            kind: sensor.kind.as_str().to_owned(),
            ts_ms,
            value,
            unit: unit.to_owned(),
            grid: sensor.area.grid.to_string(),
            street: sensor.area.street.to_string(),
            district: sensor.area.district.to_string(),
            lat: Some(sensor.lat),
            lon: Some(sensor.lon),
            vendor: sensor.vendor.to_owned(),
            seq: with_seq.then_some(seq),
        }
        .encode_to_vec()
    } else {
        let value_json = if value.is_finite() { format!("{value}") } else { "\"NaN\"".to_owned() };
        // Vendors disagree on time formats: RFC 3339 from some, epoch ms from others.
        let ts_json = if sensor.vendor == "acme" {
            format!(
                "\"{}\"",
                chrono::DateTime::from_timestamp_millis(ts_ms)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                    .unwrap_or_default()
            )
        } else {
            ts_ms.to_string()
        };
        let seq_json = if with_seq { format!(",\"seq\":{seq}") } else { String::new() };
        format!(
            "{{\"sensor_id\":\"{}\",\"kind\":\"{}\",\"ts\":{ts_json},\"value\":{value_json},\"unit\":\"{unit}\",\"grid\":\"{}\",\"street\":\"{}\",\"district\":\"{}\",\"lat\":{},\"lon\":{},\"vendor\":\"{}\"{seq_json}}}",
            sensor.id, sensor.kind, sensor.area.grid, sensor.area.street, sensor.area.district, sensor.lat, sensor.lon, sensor.vendor
        )
        .into_bytes()
    };
    if fault == Some(Fault::Malformed) {
        corrupt(&mut bytes, protobuf);
    }
    bytes
}

/// The record bytes and the power they report.
fn pile_payload(
    sensor: &SimSensor,
    ts_ms: i64,
    status: PileStatus,
    seq: u64,
    protobuf: bool,
    fault: Option<Fault>,
    noise: f64,
) -> (Vec<u8>, f64) {
    // OCPP 2.0.1 vendors report Occupied where 1.6 vendors say Preparing/Charging/Finishing.
    let status = match (sensor.vendor, status) {
        ("evgo", PileStatus::Preparing | PileStatus::Charging | PileStatus::Finishing) => PileStatus::Occupied,
        _ => status,
    };
    let power = match status {
        PileStatus::Charging | PileStatus::Occupied => 40.0 + 20.0 * noise,
        _ => 0.0,
    };
    let power = match fault {
        Some(Fault::OutOfRange) => 50_000.0,
        Some(Fault::NonFinite) => f64::INFINITY,
        _ => power,
    };
    let status_name = if fault == Some(Fault::UnknownUnit) { "Exploded" } else { status.as_str() };
    let error_code = if status == PileStatus::Faulted { "GroundFailure" } else { "NoError" };
    let mut bytes = if protobuf {
        proto::ChargingStatus {
            pile_id: sensor.id.clone(),
            connector: 1,
            ts_ms,
            status: status_name.to_owned(),
            error_code: error_code.to_owned(),
            power_kw: Some(power),
            grid: sensor.area.grid.to_string(),
            street: sensor.area.street.to_string(),
            district: sensor.area.district.to_string(),
            vendor: sensor.vendor.to_owned(),
            seq: Some(seq),
        }
        .encode_to_vec()
    } else {
        let power_json = if power.is_finite() { format!("{power}") } else { "\"Infinity\"".to_owned() };
        format!(
            "{{\"pile_id\":\"{}\",\"connector\":1,\"ts\":{ts_ms},\"status\":\"{status_name}\",\"error_code\":\"{error_code}\",\"power_kw\":{power_json},\"grid\":\"{}\",\"street\":\"{}\",\"district\":\"{}\",\"vendor\":\"{}\",\"seq\":{seq}}}",
            sensor.id, sensor.area.grid, sensor.area.street, sensor.area.district, sensor.vendor
        )
        .into_bytes()
    };
    if fault == Some(Fault::Malformed) {
        corrupt(&mut bytes, protobuf);
    }
    (bytes, power)
}

/// Breaks a record the way a flaky vendor link does: JSON truncated mid-way, protobuf
/// with an invalid wire type.
fn corrupt(bytes: &mut Vec<u8>, protobuf: bool) {
    if protobuf {
        bytes.clear();
        bytes.extend_from_slice(&[0x0f, 0xff, 0xff, 0xff]);
    } else {
        bytes.truncate(bytes.len() / 2);
    }
}

/// Fault tag → the dead-letter reason, for pile records (whose "unknown unit" fault is an
/// unknown status).
pub fn expected_reason(kind: Kind, fault: Fault) -> Reason {
    match (kind, fault) {
        (Kind::Charging, Fault::UnknownUnit) => Reason::UnknownStatus,
        _ => fault.expected_reason(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Decoder, Format, Limits};
    use crate::registry::Registry;

    const START: i64 = 1_764_000_000_000;

    #[test]
    fn records_come_in_event_time_order_and_are_deterministic() {
        let make = || {
            let mut g = Generator::new(City::generate(100), 7, START, SimFormat::Mixed, FaultRates::REALISTIC);
            let mut out = Vec::new();
            g.emit_until(START + 3_600_000, &mut out);
            out
        };
        let a = make();
        assert_eq!(a, make());
        assert!(a.windows(2).all(|w| w[0].true_ts_ms <= w[1].true_ts_ms));
        assert!(a.len() > 10_000);
    }

    #[test]
    fn clean_records_decode_and_faulty_ones_get_their_reason() {
        let mut g = Generator::new(
            City::generate(200),
            11,
            START,
            SimFormat::Mixed,
            FaultRates { malformed: 0.01, unknown_unit: 0.01, out_of_range: 0.01, non_finite: 0.01, ..FaultRates::NONE },
        );
        let mut out = Vec::new();
        g.emit_until(START + 1_800_000, &mut out);
        let decoder = Decoder { limits: Limits { max_age_ms: None, ..Limits::default() }, max_record_bytes: 65_536 };
        let registry = Registry::empty();
        let mut faults = 0;
        for r in &out {
            let result = decoder.decode(r.kind, Format::Auto, Some(&r.payload), Some(r.content_type), &registry, START + 1_800_000);
            match r.fault {
                None => assert!(result.is_ok(), "{:?}: {:?}", String::from_utf8_lossy(&r.payload), result),
                Some(fault) => {
                    faults += 1;
                    assert_eq!(result.unwrap_err().reason, expected_reason(r.kind, fault), "{:?}", String::from_utf8_lossy(&r.payload));
                }
            }
        }
        assert!(faults > 100, "{faults}");
    }
}
