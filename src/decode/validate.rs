//! `RawRecord` → `Reading`: kind, unit, finiteness, physical range and time checks (SPEC §2).
//! Checks that need state (duplicates, lateness, cardinality) live in the window stage.

use super::raw::{RawBody, RawRecord};
use super::rejection::{Reason, Rejection};
use super::units::to_canonical;
use crate::model::{AreaRef, Kind, Observation, PileStatus, Reading};
use crate::registry::Registry;

/// PM2.5 outside 0..2000 µg/m³ is physically impossible for an ambient monitor (SPEC §2).
pub const PM25_RANGE_UG_M3: (f64, f64) = (0.0, 2000.0);
/// Road dust load outside 0..100 g/m² is impossible (SPEC §2).
pub const DUST_RANGE_G_M2: (f64, f64) = (0.0, 100.0);
/// Reported charging power outside 0..1000 kW is impossible for a public pile.
pub const PILE_POWER_RANGE_KW: (f64, f64) = (0.0, 1000.0);

/// The knobs of validation, from `[validation]` in the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Records stamped more than this ahead of the wall clock are `future` (default 5 min).
    pub max_future_ms: i64,
    /// Records older than this are `too_old`; `None` (replays) switches the check off.
    pub max_age_ms: Option<i64>,
    /// Water level range for gauges the registry gives no range for, metres.
    pub default_water_range_m: (f64, f64),
    /// Refuse sensors the registry does not know (`unknown_sensor`).
    pub strict_registry: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_future_ms: 5 * 60_000,
            max_age_ms: Some(7 * 24 * 3_600_000),
            default_water_range_m: (-20.0, 200.0),
            strict_registry: false,
        }
    }
}

/// Validates and normalises one decoded record read from a topic of `topic_kind`.
pub fn validate<'a>(
    raw: RawRecord<'a>,
    topic_kind: Kind,
    registry: &'a Registry,
    limits: &Limits,
    now_ms: i64,
) -> Result<Reading<'a>, Rejection> {
    match check(&raw, topic_kind, registry, limits, now_ms) {
        Ok((observation, registry_area)) => Ok(Reading {
            sensor_id: raw.id,
            kind: topic_kind,
            ts_ms: raw.ts_ms,
            observation,
            // The registry's location wins; the record's only fills in what the registry lacks.
            area: registry_area.unwrap_or(raw.area),
            vendor: raw.vendor,
            seq: raw.seq,
        }),
        Err(rejection) => Err(rejection.with_vendor(&raw.vendor)),
    }
}

/// The record's observation in canonical units and the registry's location for it, or why
/// it is refused.
fn check<'r>(
    raw: &RawRecord<'_>,
    topic_kind: Kind,
    registry: &'r Registry,
    limits: &Limits,
    now_ms: i64,
) -> Result<(Observation, Option<AreaRef<'r>>), Rejection> {
    if let Some(kind) = raw.kind.as_deref() {
        if Kind::parse(kind) != Some(topic_kind) {
            return Err(Rejection::new(Reason::UnknownKind, format!("kind {kind:?} on the {topic_kind} topic")));
        }
    }
    let info = registry.get(&raw.id);
    if info.is_none() && limits.strict_registry {
        return Err(Rejection::new(Reason::UnknownSensor, format!("sensor {:?} is not in the registry", raw.id)));
    }
    let observation = match raw.body {
        RawBody::Level { value, ref unit } => {
            let value = to_canonical(topic_kind, unit, value)
                .ok_or_else(|| Rejection::new(Reason::UnknownUnit, format!("unit {unit:?} is not accepted for {topic_kind}")))?;
            if !value.is_finite() {
                return Err(Rejection::new(Reason::NonFinite, format!("value is {value}")));
            }
            let registry_range = info.and_then(|i| Some((i.min_value?, i.max_value?)));
            let (lo, hi) = registry_range.unwrap_or(match topic_kind {
                Kind::Pm25 => PM25_RANGE_UG_M3,
                Kind::Dust => DUST_RANGE_G_M2,
                Kind::Water | Kind::Charging => limits.default_water_range_m,
            });
            if !(lo..=hi).contains(&value) {
                return Err(Rejection::new(Reason::OutOfRange, format!("{value} {} is outside {lo}..{hi}", topic_kind.canonical_unit())));
            }
            Observation::Level(value)
        }
        RawBody::Pile { ref status, power_kw, .. } => {
            if topic_kind != Kind::Charging {
                return Err(Rejection::new(Reason::UnknownKind, format!("pile status on the {topic_kind} topic")));
            }
            let status = PileStatus::parse(status)
                .ok_or_else(|| Rejection::new(Reason::UnknownStatus, format!("status {status:?} is not an OCPP 1.6 or 2.0.1 value")))?;
            if let Some(power) = power_kw {
                if !power.is_finite() {
                    return Err(Rejection::new(Reason::NonFinite, format!("power_kw is {power}")));
                }
                let (lo, hi) = PILE_POWER_RANGE_KW;
                if !(lo..=hi).contains(&power) {
                    return Err(Rejection::new(Reason::OutOfRange, format!("power_kw {power} is outside {lo}..{hi}")));
                }
            }
            Observation::Pile { status, power_kw }
        }
    };
    if raw.ts_ms > now_ms.saturating_add(limits.max_future_ms) {
        return Err(Rejection::new(
            Reason::Future,
            format!("ts {} is {} s ahead of the wall clock", format_ms(raw.ts_ms), (raw.ts_ms - now_ms) / 1000),
        ));
    }
    if let Some(max_age) = limits.max_age_ms {
        if raw.ts_ms < now_ms.saturating_sub(max_age) {
            return Err(Rejection::new(
                Reason::TooOld,
                format!("ts {} is older than the {} s horizon", format_ms(raw.ts_ms), max_age / 1000),
            ));
        }
    }
    Ok((observation, info.map(|i| AreaRef::new(&i.grid, &i.street, &i.district)).filter(|area| !area.is_empty())))
}

/// Epoch milliseconds as RFC 3339 for messages.
pub fn format_ms(ts_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ts_ms).map_or_else(|| format!("{ts_ms} ms"), |t| t.to_rfc3339())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::SensorInfo;

    const NOW: i64 = 1_764_057_600_000;

    fn level<'a>(kind: Option<&'a str>, value: f64, unit: &'a str) -> RawRecord<'a> {
        RawRecord {
            id: "s1".into(),
            kind: kind.map(Into::into),
            ts_ms: NOW - 1000,
            body: RawBody::Level { value, unit: unit.into() },
            area: AreaRef::new("g", "s", "d"),
            vendor: "acme".into(),
            seq: None,
        }
    }

    /// The observation a record validates to.
    fn check(raw: RawRecord<'_>, kind: Kind) -> Result<Observation, Rejection> {
        validate(raw, kind, &Registry::empty(), &Limits::default(), NOW).map(|reading| reading.observation)
    }

    #[test]
    fn units_are_normalised() {
        let observation = check(level(Some("pm25"), 0.0415, "mg/m3"), Kind::Pm25).unwrap();
        assert!(matches!(observation, Observation::Level(v) if (v - 41.5).abs() < 1e-9));
        assert_eq!(check(level(None, 35.0, "cm"), Kind::Water).unwrap(), Observation::Level(0.35));
    }

    #[test]
    fn each_rejection_reason_is_named() {
        let far_future = RawRecord { ts_ms: NOW + 3_600_000, ..level(None, 1.0, "ug/m3") };
        let ancient = RawRecord { ts_ms: NOW - 30 * 86_400_000, ..level(None, 1.0, "ug/m3") };
        let cases = [
            (level(Some("pm10"), 1.0, "ug/m3"), Kind::Pm25, Reason::UnknownKind),
            (level(Some("water"), 1.0, "m"), Kind::Pm25, Reason::UnknownKind),
            (level(None, 1.0, "ppm"), Kind::Pm25, Reason::UnknownUnit),
            (level(None, f64::NAN, "ug/m3"), Kind::Pm25, Reason::NonFinite),
            (level(None, f64::INFINITY, "m"), Kind::Water, Reason::NonFinite),
            (level(None, 2500.0, "ug/m3"), Kind::Pm25, Reason::OutOfRange),
            (level(None, -1.0, "ug/m3"), Kind::Pm25, Reason::OutOfRange),
            (level(None, 101.0, "g/m2"), Kind::Dust, Reason::OutOfRange),
            (far_future, Kind::Pm25, Reason::Future),
            (ancient, Kind::Pm25, Reason::TooOld),
        ];
        for (raw, kind, reason) in cases {
            let err = check(raw.clone(), kind).expect_err("rejected");
            assert_eq!(err.reason, reason, "{raw:?}: {}", err.detail);
            assert_eq!(err.vendor.as_deref(), Some("acme"));
        }
    }

    #[test]
    fn the_horizon_can_be_switched_off_for_replays() {
        let ancient = RawRecord { ts_ms: NOW - 365 * 86_400_000, ..level(None, 1.0, "ug/m3") };
        let limits = Limits { max_age_ms: None, ..Limits::default() };
        assert!(validate(ancient, Kind::Pm25, &Registry::empty(), &limits, NOW).is_ok());
    }

    #[test]
    fn the_registry_decides_location_and_gauge_range() {
        let registry = Registry::from_entries([SensorInfo {
            id: "s1".into(),
            grid: "reg-grid".into(),
            street: "reg-street".into(),
            district: "reg-district".into(),
            min_value: Some(0.0),
            max_value: Some(5.0),
            ..Default::default()
        }]);
        let ok = validate(level(None, 4.0, "m"), Kind::Water, &registry, &Limits::default(), NOW).unwrap();
        assert_eq!(ok.area.grid, "reg-grid");
        let err = validate(level(None, 6.0, "m"), Kind::Water, &registry, &Limits::default(), NOW).unwrap_err();
        assert_eq!(err.reason, Reason::OutOfRange);
    }

    #[test]
    fn a_strict_registry_refuses_strangers() {
        let limits = Limits { strict_registry: true, ..Limits::default() };
        let err = validate(level(None, 1.0, "m"), Kind::Water, &Registry::empty(), &limits, NOW).unwrap_err();
        assert_eq!(err.reason, Reason::UnknownSensor);
    }

    #[test]
    fn unknown_pile_statuses_are_refused() {
        let raw = RawRecord {
            body: RawBody::Pile { connector: 1, status: "Exploded".into(), error_code: "".into(), power_kw: None },
            ..level(Some("charging"), 0.0, "")
        };
        assert_eq!(check(raw, Kind::Charging).unwrap_err().reason, Reason::UnknownStatus);
    }
}
