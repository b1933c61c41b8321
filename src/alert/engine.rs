//! The alert engine: evaluates every rule against closed sensor windows, area roll-ups and
//! (for deadman rules) the processing-time clock, and turns state changes into events.
//! Exactly one engine writes a fingerprint: sensor alerts live with the sensor's input
//! partition (stage 1), area alerts with the district's aggregates partition (stage 2).

use std::collections::{BTreeMap, HashMap};

use smol_str::SmolStr;

use super::fingerprint::{event_id, fingerprint};
use super::lifecycle::{AlertState, Change, FlapPolicy, Severity};
use super::rules::{Field, Rule, RuleKind, Scope};
use crate::model::{rfc3339, AlertEvent, Area, AreaRef, DomainValues, Kind, WindowResult, WindowValues};
use crate::rollup::{AreaLevel, AreaResult, PeerDeviation};

/// What a rule is evaluated on.
#[derive(Debug, Clone, Copy)]
pub enum AlertInput<'a> {
    Window(&'a WindowResult),
    Area(&'a AreaResult),
    /// A sensor compared with its peers (outlier rules).
    Peer(&'a PeerDeviation),
}

impl AlertInput<'_> {
    fn kind(&self) -> Kind {
        match self {
            AlertInput::Window(w) => w.kind,
            AlertInput::Area(a) => a.kind,
            AlertInput::Peer(p) => p.kind,
        }
    }

    fn window(&self) -> &str {
        match self {
            AlertInput::Window(w) => &w.window,
            AlertInput::Area(a) => &a.window,
            AlertInput::Peer(p) => &p.window,
        }
    }

    fn end_ms(&self) -> i64 {
        match self {
            AlertInput::Window(w) => w.end_ms,
            AlertInput::Area(a) => a.end_ms,
            AlertInput::Peer(p) => p.end_ms,
        }
    }

    fn scope(&self) -> Scope {
        match self {
            AlertInput::Window(_) | AlertInput::Peer(_) => Scope::Sensor,
            AlertInput::Area(a) => match a.level {
                AreaLevel::Grid => Scope::Grid,
                AreaLevel::Street => Scope::Street,
                AreaLevel::District => Scope::District,
            },
        }
    }

    fn scope_key(&self) -> &str {
        match self {
            AlertInput::Window(w) => &w.sensor_id,
            AlertInput::Area(a) => &a.area,
            AlertInput::Peer(p) => &p.sensor_id,
        }
    }

    fn area(&self) -> Area {
        match self {
            AlertInput::Window(w) => w.area.clone(),
            AlertInput::Peer(p) => Area { grid: p.grid.clone(), street: p.street.clone(), district: p.district.clone() },
            AlertInput::Area(a) => {
                let mut area = Area { district: a.district.clone(), ..Area::default() };
                match a.level {
                    AreaLevel::Grid => area.grid = a.area.clone(),
                    AreaLevel::Street => area.street = a.area.clone(),
                    AreaLevel::District => {}
                }
                area
            }
        }
    }

    /// The value of `field`, when this input has it.
    fn field(&self, field: Field) -> Option<f64> {
        match self {
            AlertInput::Window(w) => {
                let level = w.values.level();
                match field {
                    Field::Mean => level.map(|v| v.mean),
                    Field::Max => level.map(|v| v.max),
                    Field::Min => level.map(|v| v.min),
                    Field::P95 => level.map(|v| v.p95),
                    Field::Last => level.map(|v| v.last),
                    Field::RatePerH => level.map(|v| v.rate_per_h),
                    Field::SlopePerH => level.and_then(|v| v.slope_per_h),
                    Field::Coverage => w.coverage,
                    Field::Iaqi => match w.domain {
                        Some(DomainValues::Pm25 { iaqi, .. }) => Some(iaqi as f64),
                        _ => None,
                    },
                    Field::FloodLevel => match w.domain {
                        Some(DomainValues::Water { flood_signal: Some(s), .. }) => {
                            ["none", "blue", "yellow", "orange", "red"].iter().position(|x| *x == s).map(|p| p as f64)
                        }
                        _ => None,
                    },
                    Field::UnderpassLevel => match w.domain {
                        Some(DomainValues::Water { underpass_grade: Some(g), .. }) => {
                            ["dry", "info", "warning", "road_closure", "critical"].iter().position(|x| *x == g).map(|p| p as f64)
                        }
                        _ => None,
                    },
                    Field::DustLevel => match w.domain {
                        Some(DomainValues::Dust { dust_grade }) => {
                            ["normal", "watch", "alert"].iter().position(|x| *x == dust_grade).map(|p| p as f64)
                        }
                        _ => None,
                    },
                    Field::Utilisation => match w.domain {
                        Some(DomainValues::Charging { utilisation }) => utilisation,
                        _ => None,
                    },
                    Field::Availability | Field::FaultRatio | Field::PilesOffline | Field::SensorsSilent => None,
                }
            }
            AlertInput::Peer(p) => match field {
                Field::Mean => Some(p.mean),
                _ => None,
            },
            AlertInput::Area(a) => match field {
                Field::Mean => a.mean,
                Field::Max => a.max,
                Field::Availability => a.availability,
                Field::FaultRatio => a.fault_ratio,
                Field::Utilisation => a.utilisation,
                Field::PilesOffline => a.piles_offline.map(f64::from),
                Field::SensorsSilent => a.sensors_silent.map(f64::from),
                _ => None,
            },
        }
    }
}

/// When a sensor last reported, for deadman rules: the reading's event time, and which
/// stream clock (input partition) to compare it with. Its id and area are in
/// `AlertEngine::seen_ids` and `seen_areas` (at the same `SeenEntry`), read only when the
/// timer runs out: the entry written per reading, and scanned per tick, stays small.
#[derive(Debug, Clone)]
struct LastSeen {
    ts_ms: i64,
    clock: u32,
    kind: Kind,
}

/// A sensor's deadman entry, as `AlertEngine::seen` returns it: a caller that keeps it
/// restarts the sensor's timer with `seen_again`, without a lookup by id. Entries are never
/// removed, so a kept one stays the sensor's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenEntry(u32);

/// The engine's maps, keyed by sensor ids and fingerprints: foldhash, seeded per map, as the
/// window stage's sensor map. With SipHash the deadman timer's per-reading lookup was ~290
/// instructions, 8 % of the core's.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug)]
pub struct AlertEngine {
    rules: Vec<Rule>,
    /// The indices in `rules` of each kind's rules (`Kind::index`): a closed window is
    /// checked against its own kind's only.
    rules_of_kind: [Vec<usize>; 4],
    flap: FlapPolicy,
    states: Map<String, AlertState>,
    /// Each sensor's entry in `last_seen`, for a reading of a kind with a deadman rule whose
    /// caller kept no `SeenEntry`. `SmolStr` keys: a sensor id (up to 23 bytes) is compared
    /// in the table, without a second cache miss to the heap.
    seen_index: Map<SmolStr, SeenEntry>,
    /// Per sensor, by `SeenEntry`: when it last reported.
    last_seen: Vec<LastSeen>,
    /// Per sensor, by `SeenEntry`: its id.
    seen_ids: Vec<SmolStr>,
    /// Per sensor, by `SeenEntry`: its area when first seen.
    seen_areas: Vec<Area>,
    /// Consecutive zero-variance windows per (rule, sensor).
    stuck_runs: Map<(usize, SmolStr), u32>,
    /// Start of the current Faulted stretch per (rule, pile).
    faulted_since: Map<(usize, SmolStr), i64>,
    /// Cap on remembered sensors (deadman), like the window stage's cap.
    max_sensors: usize,
}

impl AlertEngine {
    pub fn new(rules: Vec<Rule>, flap: FlapPolicy, max_sensors: usize) -> Self {
        let mut rules_of_kind: [Vec<usize>; 4] = Default::default();
        for (index, rule) in rules.iter().enumerate() {
            rules_of_kind[rule.kind.index()].push(index);
        }
        AlertEngine {
            rules,
            rules_of_kind,
            flap,
            states: Map::default(),
            seen_index: Map::default(),
            last_seen: Vec::new(),
            seen_ids: Vec::new(),
            seen_areas: Vec::new(),
            stuck_runs: Map::default(),
            faulted_since: Map::default(),
            max_sensors,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Restores a state read back from the changelog.
    pub fn restore(&mut self, state: AlertState) {
        self.states.insert(state.fingerprint.clone(), state);
    }

    pub fn state(&self, fingerprint: &str) -> Option<&AlertState> {
        self.states.get(fingerprint)
    }

    pub fn states(&self) -> impl Iterator<Item = &AlertState> {
        self.states.values()
    }

    /// A reading stamped `ts_ms` was accepted from stream `clock`: the deadman timer restarts.
    /// The sensor's entry, for `seen_again`; none once `max_sensors` are remembered.
    pub fn seen(&mut self, sensor: &str, kind: Kind, area: &AreaRef<'_>, ts_ms: i64, clock: u32) -> Option<SeenEntry> {
        if let Some(&entry) = self.seen_index.get(sensor) {
            self.seen_again(entry, ts_ms, clock);
            return Some(entry);
        }
        if self.last_seen.len() >= self.max_sensors {
            return None;
        }
        let entry = SeenEntry(self.last_seen.len() as u32);
        let id = SmolStr::new(sensor);
        self.seen_index.insert(id.clone(), entry);
        self.seen_ids.push(id);
        self.last_seen.push(LastSeen { ts_ms, clock, kind });
        self.seen_areas.push(area.to_area());
        Some(entry)
    }

    /// `seen`, for the sensor of `entry` (which `seen` returned for it).
    #[inline]
    pub fn seen_again(&mut self, entry: SeenEntry, ts_ms: i64, clock: u32) {
        if let Some(last) = self.last_seen.get_mut(entry.0 as usize) {
            last.ts_ms = last.ts_ms.max(ts_ms);
            last.clock = clock;
        }
    }

    /// Evaluates every matching rule on a closed sensor window or area roll-up.
    pub fn evaluate(&mut self, input: AlertInput<'_>, out: &mut Vec<(AlertEvent, AlertState)>) {
        let kind = input.kind().index();
        for at in 0..self.rules_of_kind[kind].len() {
            let index = self.rules_of_kind[kind][at];
            let rule = &self.rules[index];
            if rule.scope != input.scope() || rule.window.as_deref().is_some_and(|w| w != input.window()) {
                continue;
            }
            let (desired, value, threshold, key_suffix) = match &rule.condition {
                RuleKind::Threshold { field, below, levels } => {
                    if matches!(input, AlertInput::Peer(_)) {
                        continue;
                    }
                    let Some(value) = input.field(*field) else { continue };
                    let fp = fingerprint(&rule.id, input.scope_key());
                    let active = self.states.get(&fp).map_or(0, |s| s.active_levels);
                    let mut next_active = 0u8;
                    let mut desired = None;
                    let mut threshold = levels.first().map_or(f64::NAN, |l| l.trigger);
                    for (i, level) in levels.iter().enumerate() {
                        let was = active & (1 << i) != 0;
                        let line = if was { level.clear } else { level.trigger };
                        let on = if *below { value <= line } else { value >= line };
                        if on {
                            next_active |= 1 << i;
                            desired = Some(level.severity);
                            threshold = level.trigger;
                        }
                    }
                    if let Some(state) = self.states.get_mut(&fp) {
                        if input.end_ms() > state.last_eval_ms {
                            state.active_levels = next_active;
                        }
                    } else if next_active != 0 {
                        let mut state =
                            AlertState::new(fp.clone(), &rule.id, rule.scope.as_str(), input.scope_key(), input.area(), input.window());
                        state.active_levels = next_active;
                        self.states.insert(fp, state);
                    }
                    (desired, value, threshold, "")
                }
                RuleKind::Missing { coverage_below: Some(limit), severity, .. } if !matches!(input, AlertInput::Peer(_)) => {
                    let Some(coverage) = input.field(Field::Coverage) else { continue };
                    ((coverage < *limit).then_some(*severity), coverage, *limit, "/coverage")
                }
                RuleKind::Missing { .. } => continue,
                RuleKind::Outlier { k, min_peers, severity } => {
                    let AlertInput::Peer(p) = input else { continue };
                    ((p.peers >= *min_peers && p.robust_z > *k).then_some(*severity), p.mean, p.peer_median, "")
                }
                RuleKind::Stuck { windows, severity } => {
                    // A flat window counts only while some peer varies: a constant true value
                    // (everyone flat) is not a stuck sensor.
                    let AlertInput::Peer(p) = input else { continue };
                    let run = self.stuck_runs.entry((index, p.sensor_id.clone())).or_default();
                    *run = if p.flat && p.peers_varying > 0 { *run + 1 } else { 0 };
                    ((*run >= *windows).then_some(*severity), p.mean, p.peer_median, "")
                }
                RuleKind::PileFaulted { for_ms, severity } => {
                    let AlertInput::Window(w) = input else { continue };
                    let WindowValues::Pile(p) = &w.values else { continue };
                    let key = (index, w.sensor_id.clone());
                    if p.last_status == "Faulted" {
                        let since = *self.faulted_since.entry(key).or_insert(w.start_ms);
                        let faulted_ms = (w.end_ms - since) as f64;
                        ((faulted_ms >= *for_ms as f64).then_some(*severity), faulted_ms / 60_000.0, *for_ms as f64 / 60_000.0, "")
                    } else {
                        self.faulted_since.remove(&key);
                        (None, 0.0, *for_ms as f64 / 60_000.0, "")
                    }
                }
            };
            let rule_key = format!("{}{key_suffix}", rule.id);
            self.apply(
                index,
                &rule_key,
                input.scope(),
                input.scope_key(),
                input.area(),
                input.window(),
                desired,
                value,
                threshold,
                input.end_ms(),
                true,
                out,
            );
        }
    }

    /// Deadman rules (`no_data_for`). A sensor's silence is measured against its stream's
    /// clock: `now_of(clock)` is the stream's latest event time advanced by the wall time since
    /// its last record. So a pipeline catching up on a backlog does not see every sensor as
    /// silent, and a stream that stopped entirely still runs on the wall clock.
    pub fn tick(&mut self, now_wall_ms: i64, now_of: &dyn Fn(u32) -> Option<i64>, out: &mut Vec<(AlertEvent, AlertState)>) {
        for index in 0..self.rules.len() {
            let RuleKind::Missing { no_data_for_ms: Some(limit), severity, .. } = self.rules[index].condition else { continue };
            let (rule_id, kind) = (self.rules[index].id.clone(), self.rules[index].kind);
            let rule_key = format!("{rule_id}/no_data");
            // Only a silent sensor or one whose alert fires can change state: the rest (all
            // but a few, every 200 ms) are passed over in one scan of the small entries,
            // without a copy or a fingerprint.
            let firing: std::collections::HashSet<usize> = self
                .states
                .values()
                .filter(|s| s.firing.is_some() && s.rule == rule_key)
                .filter_map(|s| self.seen_index.get(s.scope_key.as_str()))
                .map(|entry| entry.0 as usize)
                .collect();
            let mut due: Vec<(SmolStr, Area, i64)> = self
                .last_seen
                .iter()
                .enumerate()
                .filter(|(_, last)| last.kind == kind)
                .filter_map(|(at, last)| {
                    let quiet_ms = now_of(last.clock).unwrap_or(now_wall_ms).min(now_wall_ms) - last.ts_ms;
                    let due = quiet_ms > limit || firing.contains(&at);
                    due.then(|| (self.seen_ids[at].clone(), self.seen_areas[at].clone(), quiet_ms))
                })
                .collect();
            due.sort_by(|a, b| a.0.cmp(&b.0));
            for (sensor, area, quiet_ms) in due {
                let desired = (quiet_ms > limit).then_some(severity);
                let fp = fingerprint(&rule_key, &sensor);
                if desired.is_none() && self.states.get(&fp).is_none_or(|s| s.firing.is_none()) {
                    continue;
                }
                let (value, threshold) = (quiet_ms as f64 / 1000.0, limit as f64 / 1000.0);
                self.apply(index, &rule_key, Scope::Sensor, &sensor, area, "", desired, value, threshold, now_wall_ms, false, out);
            }
        }
    }

    /// An operator acknowledges a firing alert.
    pub fn acknowledge(&mut self, fingerprint: &str, by: &str, comment: &str, now_ms: i64) -> Result<(AlertEvent, AlertState), AckError> {
        let state = self.states.get_mut(fingerprint).ok_or(AckError::Unknown)?;
        let Some(severity) = state.firing else { return Err(AckError::NotFiring) };
        state.acknowledged = Some(super::lifecycle::Acknowledgement { by: by.to_owned(), comment: comment.to_owned(), at_ms: now_ms });
        let rule_id = state.rule.clone();
        let state = state.clone();
        let description = self.rules.iter().find(|r| r.owns(&rule_id)).map(|r| r.description.clone()).unwrap_or_default();
        Ok((event(&state, "acknowledged", severity, now_ms, &description), state))
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        rule_index: usize,
        rule_key: &str,
        scope: Scope,
        scope_key: &str,
        area: Area,
        window: &str,
        desired: Option<Severity>,
        value: f64,
        threshold: f64,
        at_ms: i64,
        event_time: bool,
        out: &mut Vec<(AlertEvent, AlertState)>,
    ) {
        let fp = fingerprint(rule_key, scope_key);
        if desired.is_none() && !self.states.contains_key(&fp) {
            return;
        }
        let rule = &self.rules[rule_index];
        let state =
            self.states.entry(fp.clone()).or_insert_with(|| AlertState::new(fp, rule_key, scope.as_str(), scope_key, area.clone(), window));
        state.area = area;
        let before = state.firing;
        let Some(change) = state.evaluate(desired, at_ms, event_time, rule.for_windows, self.flap) else {
            if state.firing.is_some() {
                state.value = value;
            }
            return;
        };
        state.value = value;
        state.threshold = threshold;
        let (name, severity) = match change {
            Change::Fired => ("fired", state.firing),
            Change::Escalated => ("escalated", state.firing),
            Change::Deescalated => ("deescalated", state.firing),
            Change::StartedFlapping => ("flapping", state.firing),
            Change::Resolved => ("resolved", before),
        };
        let severity = severity.unwrap_or(Severity::Info);
        out.push((event(state, name, severity, at_ms, &rule.description), state.clone()));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("no alert has this fingerprint")]
    Unknown,
    #[error("the alert is not firing")]
    NotFiring,
}

fn event(state: &AlertState, change: &str, severity: Severity, at_ms: i64, description: &str) -> AlertEvent {
    let status = if change == "acknowledged" { super::AlertStatus::Acknowledged } else { state.status() };
    let place = [&state.area.district, &state.area.street, &state.area.grid]
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join("/");
    // Written piece by piece: a minute boundary builds thousands of these at once, and
    // `format!` with `{:.2}` cost twice as much (see `push_two_decimals`).
    let (mut summary, mut summary_zh) = (String::with_capacity(128), String::with_capacity(128));
    match status {
        super::AlertStatus::Resolved => {
            for part in ["Resolved: ", &state.rule, " on ", &state.scope, " ", &state.scope_key, " (", &place, "), now "] {
                summary.push_str(part);
            }
            push_two_decimals(&mut summary, state.value);
            for part in ["已解除：", &state.scope_key, " ", &state.rule, "（", &place, "）", severity.chinese(), "，当前值 "] {
                summary_zh.push_str(part);
            }
            push_two_decimals(&mut summary_zh, state.value);
        }
        _ => {
            for part in [severity.as_str(), ": ", &state.rule, " on ", &state.scope, " ", &state.scope_key, " (", &place, ") is "] {
                summary.push_str(part);
            }
            push_two_decimals(&mut summary, state.value);
            summary.push_str(", threshold ");
            push_two_decimals(&mut summary, state.threshold);
            for part in [" [", change, "]"] {
                summary.push_str(part);
            }
            for part in [severity.chinese(), "：", &state.scope_key, "（", &place, "）", &state.rule, " 当前值 "] {
                summary_zh.push_str(part);
            }
            push_two_decimals(&mut summary_zh, state.value);
            summary_zh.push_str("，阈值 ");
            push_two_decimals(&mut summary_zh, state.threshold);
        }
    }
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_owned(), state.rule.clone());
    labels.insert("severity".to_owned(), severity.as_str().to_owned());
    for (k, v) in [("district", &state.area.district), ("street", &state.area.street), ("grid", &state.area.grid)] {
        if !v.is_empty() {
            labels.insert(k.to_owned(), v.to_string());
        }
    }
    labels.insert(if state.scope == "sensor" { "sensor_id".to_owned() } else { state.scope.clone() }, state.scope_key.clone());
    if !description.is_empty() {
        labels.insert("description".to_owned(), description.to_owned());
    }
    let starts = state.starts_at_ms.unwrap_or(at_ms);
    AlertEvent {
        event_id: event_id(&state.fingerprint, change, severity.as_str(), at_ms),
        fingerprint: state.fingerprint.clone(),
        rule: state.rule.clone(),
        status: status.as_str().to_owned(),
        severity: severity.as_str().to_owned(),
        change: change.to_owned(),
        starts_at: rfc3339(starts),
        starts_at_ms: starts,
        ends_at: state.ends_at_ms.filter(|_| status == super::AlertStatus::Resolved).map(rfc3339),
        ends_at_ms: state.ends_at_ms.filter(|_| status == super::AlertStatus::Resolved),
        at_ms,
        scope: state.scope.clone(),
        scope_key: state.scope_key.clone(),
        grid: state.area.grid.to_string(),
        street: state.area.street.to_string(),
        district: state.area.district.to_string(),
        value: state.value,
        threshold: state.threshold,
        window: state.window.clone(),
        summary,
        summary_zh,
        labels,
        acknowledged_by: state.acknowledged.as_ref().map(|a| a.by.clone()),
    }
}

/// Appends `value` as `format!("{value:.2}")` would. Rust's exact formatting costs
/// ~1,400 instructions per number; a non-negative value below 10^10 whose hundredths are
/// clearly not a tie is rounded here with integers instead. The product `value × 100` is
/// within 2^-13 of the exact one below 2^40, so a fraction more than 10^-3 from one half
/// rounds the same way as the exact decimal expansion; anything else goes to `format!`.
fn push_two_decimals(out: &mut String, value: f64) {
    let hundredths = value * 100.0;
    let fraction = hundredths - hundredths.floor();
    if !(value.is_sign_positive() && hundredths < 1e12 && (fraction - 0.5).abs() > 1e-3) {
        use std::fmt::Write;
        let _ = write!(out, "{value:.2}");
        return;
    }
    let rounded = hundredths.round() as u64;
    let mut digits = itoa::Buffer::new();
    out.push_str(digits.format(rounded / 100));
    out.push('.');
    let cents = rounded % 100;
    out.push(char::from(b'0' + (cents / 10) as u8));
    out.push(char::from(b'0' + (cents % 10) as u8));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::rules::parse_rules;
    use crate::model::{LevelValues, PileValues};

    fn two_decimals(value: f64) -> String {
        let mut out = String::new();
        push_two_decimals(&mut out, value);
        out
    }

    #[test]
    fn two_decimals_are_written_as_format_writes_them_ties_and_edges_included() {
        for value in [
            0.0,
            -0.0,
            0.005,
            0.015,
            0.125,
            0.375,
            1.005,
            2.675,
            99.995,
            100.0,
            149.999,
            150.004999,
            -0.001,
            -3.25159,
            1e10,
            1e10 - 0.005,
            9_999_999_999.994,
            1e15,
            1e300,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            assert_eq!(two_decimals(value), format!("{value:.2}"), "{value:e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn two_decimals_match_format_for_any_value(bits in proptest::prelude::any::<u64>(), small in 0.0f64..100_000.0, cents in 0u64..10_000_000) {
            for value in [f64::from_bits(bits), small, cents as f64 / 100.0, cents as f64 / 1000.0, cents as f64 * 0.005] {
                proptest::prop_assert_eq!(two_decimals(value), format!("{value:.2}"), "{:e}", value);
            }
        }
    }

    const HOUR: i64 = 3_600_000;

    fn engine() -> AlertEngine {
        AlertEngine::new(parse_rules(include_str!("../../deploy/rules.toml"), "rules").unwrap(), FlapPolicy::default(), 1000)
    }

    fn pm25_hour(sensor: &str, hour: i64, iaqi: u32) -> WindowResult {
        WindowResult {
            kind: Kind::Pm25,
            sensor_id: sensor.into(),
            window: "1h".into(),
            start_ms: hour * HOUR,
            end_ms: (hour + 1) * HOUR,
            area: Area { grid: "g1".into(), street: "s1".into(), district: "haidian".into() },
            values: WindowValues::Level(LevelValues { count: 60, ..LevelValues::single(50.0) }),
            coverage: Some(1.0),
            domain: Some(DomainValues::Pm25 {
                iaqi,
                category: "x",
                above_scale: false,
                standard: "HJ633-2026",
                epa_aqi: None,
                nowcast: None,
            }),
        }
    }

    fn run(engine: &mut AlertEngine, windows: &[WindowResult]) -> Vec<AlertEvent> {
        let mut out = Vec::new();
        for w in windows {
            engine.evaluate(AlertInput::Window(w), &mut out);
        }
        out.into_iter().map(|(e, _)| e).collect()
    }

    fn changes(events: &[AlertEvent]) -> Vec<(String, String)> {
        events.iter().map(|e| (e.change.clone(), e.severity.clone())).collect()
    }

    #[test]
    fn a_value_hovering_at_the_line_fires_once_and_resolves_once() {
        let mut e = engine();
        // 98..104 hovers around 101; clear is 96.
        let iaqi = [90, 102, 99, 103, 98, 104, 100, 97, 95, 90];
        let windows: Vec<WindowResult> = iaqi.iter().enumerate().map(|(h, v)| pm25_hour("s1", h as i64, *v)).collect();
        let events = run(&mut e, &windows);
        assert_eq!(changes(&events), vec![("fired".into(), "warning".into()), ("resolved".into(), "warning".into())]);
        assert_eq!(events[0].starts_at_ms, 2 * HOUR);
        assert_eq!(events[1].ends_at_ms, Some(9 * HOUR));
        assert_eq!(events[0].fingerprint, events[1].fingerprint);
        assert_ne!(events[0].event_id, events[1].event_id);
        assert_eq!(events[0].labels["sensor_id"], "s1");
        assert_eq!(events[0].labels["district"], "haidian");
    }

    #[test]
    fn an_episode_escalates_through_categories_and_replays_emit_nothing() {
        let mut e = engine();
        let windows: Vec<WindowResult> =
            [80, 120, 210, 320, 250, 150, 60].iter().enumerate().map(|(h, v)| pm25_hour("s1", h as i64, *v)).collect();
        let events = run(&mut e, &windows);
        assert_eq!(
            changes(&events),
            [
                ("fired", "warning"),
                ("escalated", "critical"),
                ("escalated", "emergency"),
                ("deescalated", "critical"),
                ("deescalated", "warning"),
                ("resolved", "warning")
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert!(run(&mut e, &windows).is_empty(), "replaying the same windows changes nothing");
    }

    #[test]
    fn the_same_input_gives_the_same_event_ids() {
        let windows: Vec<WindowResult> = [80, 120, 60].iter().enumerate().map(|(h, v)| pm25_hour("s1", h as i64, *v)).collect();
        let a: Vec<String> = run(&mut engine(), &windows).into_iter().map(|e| e.event_id).collect();
        let b: Vec<String> = run(&mut engine(), &windows).into_iter().map(|e| e.event_id).collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn a_stuck_sensor_fires_after_three_flat_windows_while_peers_vary() {
        let mut e = engine();
        let peer = |m: i64, flat: bool, peers_varying: u32| PeerDeviation {
            kind: Kind::Pm25,
            window: "1m".into(),
            end_ms: (m + 1) * 60_000,
            sensor_id: "s9".into(),
            grid: "g".into(),
            street: "s".into(),
            district: "d".into(),
            mean: 30.0,
            peer_median: 31.0,
            robust_z: 0.5,
            peers: 6,
            flat,
            peers_varying,
        };
        let mut out = Vec::new();
        // Minutes 1-2: flat but so is everyone (clean air, integer readings): not stuck.
        for (m, (flat, varying)) in [(false, 5), (true, 0), (true, 0), (true, 5), (true, 5), (true, 5), (false, 5)].iter().enumerate() {
            e.evaluate(AlertInput::Peer(&peer(m as i64, *flat, *varying)), &mut out);
        }
        let events: Vec<(&str, i64)> = out.iter().map(|(ev, _)| (ev.change.as_str(), ev.at_ms)).collect();
        assert_eq!(events, [("fired", 6 * 60_000), ("resolved", 7 * 60_000)]);
        assert_eq!(out[0].0.rule, "pm25-stuck");
    }

    #[test]
    fn a_pile_faulted_for_ten_minutes_fires() {
        let mut e = engine();
        let pile = |i: i64, status: &str| WindowResult {
            kind: Kind::Charging,
            sensor_id: "cp-1".into(),
            window: "5m".into(),
            start_ms: i * 300_000,
            end_ms: (i + 1) * 300_000,
            area: Area::default(),
            values: WindowValues::Pile(PileValues {
                count: 5,
                status_counts: vec![],
                last_status: status.into(),
                time_in_status_ms: vec![],
                power_kw_mean: None,
            }),
            coverage: None,
            domain: None,
        };
        let events = run(&mut e, &[pile(0, "Available"), pile(1, "Faulted"), pile(2, "Faulted"), pile(3, "Faulted"), pile(4, "Available")]);
        assert_eq!(changes(&events), vec![("fired".into(), "warning".into()), ("resolved".into(), "warning".into())]);
        assert_eq!(events[0].at_ms, 3 * 300_000, "10 minutes of Faulted windows");
    }

    #[test]
    fn a_sensor_far_from_its_peers_is_an_outlier() {
        let rules =
            parse_rules("[[rule]]\nid = \"pm25-outlier\"\nkind = \"pm25\"\ntype = \"outlier\"\nwindow = \"1h\"\noutlier_k = 5\n", "t")
                .unwrap();
        let mut e = AlertEngine::new(rules, FlapPolicy::default(), 100);
        let peer = |hour: i64, z: f64, peers: u32| PeerDeviation {
            kind: Kind::Pm25,
            window: "1h".into(),
            end_ms: (hour + 1) * HOUR,
            sensor_id: "low-1".into(),
            grid: "g".into(),
            street: "s".into(),
            district: "d".into(),
            mean: 8.0,
            peer_median: 32.0,
            robust_z: z,
            peers,
            flat: false,
            peers_varying: peers - 1,
        };
        let mut out = Vec::new();
        for (h, (z, peers)) in [(1.0, 8), (9.0, 3), (9.0, 8), (9.5, 8), (0.5, 8)].iter().enumerate() {
            e.evaluate(AlertInput::Peer(&peer(h as i64, *z, *peers)), &mut out);
        }
        let changes: Vec<&str> = out.iter().map(|(ev, _)| ev.change.as_str()).collect();
        assert_eq!(changes, ["fired", "resolved"], "too few peers at hour 1 to judge");
        assert_eq!(out[0].0.at_ms, 3 * HOUR);
        assert_eq!((out[0].0.value, out[0].0.threshold), (8.0, 32.0));
    }

    #[test]
    fn water_rising_faster_than_the_rate_fires_on_the_slope() {
        let mut e = engine();
        let gauge = |i: i64, slope: f64| WindowResult {
            kind: Kind::Water,
            sensor_id: "up-1".into(),
            window: "1h/5m".into(),
            start_ms: i * 300_000,
            end_ms: i * 300_000 + HOUR,
            area: Area::default(),
            values: WindowValues::Level(LevelValues { slope_per_h: Some(slope), ..LevelValues::single(0.1) }),
            coverage: None,
            domain: None,
        };
        // 0.05 m per 5 min is 0.6 m/h: fires at 0.6, holds until below the 0.4 clear.
        let events = run(&mut e, &[gauge(0, 0.2), gauge(1, 0.65), gauge(2, 0.5), gauge(3, 0.3)]);
        assert_eq!(changes(&events), vec![("fired".into(), "warning".into()), ("resolved".into(), "warning".into())]);
        assert_eq!(events[0].rule, "water-rising-fast");
        assert_eq!(events[0].value, 0.65);
    }

    #[test]
    fn a_silent_sensor_is_noticed_by_the_wall_clock() {
        let mut e = engine();
        e.seen("s1", Kind::Pm25, &AreaRef::default(), 0, 7);
        let mut out = Vec::new();
        let wall = |_: u32| None;
        e.tick(60_000, &wall, &mut out);
        assert!(out.is_empty());
        e.tick(181_000, &wall, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].0.rule.as_str(), out[0].0.change.as_str()), ("pm25-no-data/no_data", "fired"));
        e.tick(200_000, &wall, &mut out);
        assert_eq!(out.len(), 1, "still silent, nothing new");
        e.seen("s1", Kind::Pm25, &AreaRef::default(), 205_000, 7);
        e.tick(206_000, &wall, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].0.change, "resolved");
    }

    #[test]
    fn a_silent_sensor_alert_names_its_area_and_a_restored_one_resolves_when_it_reports() {
        let mut e = engine();
        let wall = |_: u32| None;
        let mut out = Vec::new();
        for (sensor, grid) in [("s1", "hd-0001"), ("s2", "hd-0002"), ("s3", "hd-0003")] {
            e.seen(sensor, Kind::Pm25, &AreaRef::new(grid, "zgc", "haidian"), 0, 7);
        }
        e.seen("s2", Kind::Pm25, &AreaRef::new("elsewhere", "", ""), 150_000, 7);
        e.tick(181_000, &wall, &mut out);
        let fired: Vec<(&str, &str)> = out.iter().map(|(ev, _)| (ev.scope_key.as_str(), ev.grid.as_str())).collect();
        assert_eq!(fired, [("s1", "hd-0001"), ("s3", "hd-0003")], "the silent two, each with the area it reported from");

        // A new engine restores s3's firing alert from the changelog; s3 reports again.
        let mut restored = engine();
        restored.restore(out[1].1.clone());
        restored.seen("s3", Kind::Pm25, &AreaRef::new("hd-0003", "zgc", "haidian"), 190_000, 7);
        let mut after = Vec::new();
        restored.tick(200_000, &wall, &mut after);
        assert_eq!(after.len(), 1);
        assert_eq!((after[0].0.scope_key.as_str(), after[0].0.change.as_str()), ("s3", "resolved"));
    }

    #[test]
    fn catching_up_on_a_backlog_is_not_silence() {
        let mut e = engine();
        // Hours-old readings arrive now; the stream's own clock is at their time.
        e.seen("s1", Kind::Pm25, &AreaRef::default(), 1_000, 3);
        let stream_at = |clock: u32| (clock == 3).then_some(60_000);
        let mut out = Vec::new();
        e.tick(10 * HOUR, &stream_at, &mut out);
        assert!(out.is_empty(), "one minute of stream time, not ten hours of wall time");
    }

    #[test]
    fn an_area_with_few_available_piles_fires_after_two_windows_and_can_be_acknowledged() {
        let mut e = engine();
        let area = |i: i64, availability: f64| AreaResult {
            kind: Kind::Charging,
            window: "5m".into(),
            start_ms: i * 300_000,
            end_ms: (i + 1) * 300_000,
            level: AreaLevel::Street,
            area: "s1".into(),
            district: "cy".into(),
            mean: None,
            max: None,
            sensors_reporting: 10,
            sensors_silent: Some(0),
            availability: Some(availability),
            fault_ratio: Some(0.0),
            utilisation: None,
            piles_offline: Some(0),
            hotspots: None,
        };
        let mut out = Vec::new();
        for (i, a) in [0.5, 0.1, 0.1, 0.25, 0.35].iter().enumerate() {
            e.evaluate(AlertInput::Area(&area(i as i64, *a)), &mut out);
            if i == 2 {
                let fp = out[0].0.fingerprint.clone();
                let (ack, _) = e.acknowledge(&fp, "duty officer", "crew sent", 1).unwrap();
                assert_eq!((ack.status.as_str(), ack.acknowledged_by.as_deref()), ("acknowledged", Some("duty officer")));
            }
        }
        let events: Vec<&str> = out.iter().map(|(e, _)| e.change.as_str()).collect();
        assert_eq!(events, ["fired", "resolved"], "0.25 is inside the hysteresis band; 0.35 clears");
        assert_eq!(out[0].0.at_ms, 3 * 300_000);
        assert_eq!(out[0].0.scope, "street");
        assert_eq!(e.acknowledge("nope", "x", "", 0).unwrap_err(), AckError::Unknown);
    }
}
