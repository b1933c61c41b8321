//! Alert rules from TOML (`[[rule]]` tables; deploy/rules.toml is the default set),
//! validated into typed `Rule`s with every problem reported by field path.

use serde::Deserialize;

use super::lifecycle::Severity;
use crate::config::duration::parse_ms;
use crate::config::ConfigProblem;
use crate::model::Kind;

pub type RuleError = ConfigProblem;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRulesFile {
    #[serde(default)]
    pub rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Unique id; part of every fingerprint.
    pub id: String,
    pub kind: String,
    /// sensor (or pile), grid, street, district.
    #[serde(default = "sensor_scope")]
    pub scope: String,
    /// threshold, rate, missing, stuck, outlier, charging.
    #[serde(rename = "type")]
    pub rule_type: String,
    /// The window label the rule reads (not for `missing` with `no_data_for` only).
    pub window: Option<String>,
    /// The aggregate the condition reads (threshold/rate): mean, max, min, p95, last, iaqi,
    /// coverage, rate_per_h, slope_per_h, flood_level, underpass_level, dust_level,
    /// availability, fault_ratio, utilisation, piles_offline, sensors_silent.
    pub field: Option<String>,
    /// above (default) or below.
    pub direction: Option<String>,
    #[serde(default)]
    pub levels: Vec<RawLevel>,
    /// Consecutive windows the condition must hold before firing.
    pub for_windows: Option<u32>,
    /// missing: no reading for this long (processing time), and/or coverage below a fraction.
    pub no_data_for: Option<String>,
    pub coverage_below: Option<f64>,
    /// stuck: zero variance over this many consecutive windows.
    pub stuck_windows: Option<u32>,
    /// outlier: robust z-score (distance from the peers' median in MAD units) that fires,
    /// and the fewest peers (same street) to judge by.
    pub outlier_k: Option<f64>,
    pub min_peers: Option<u32>,
    /// charging: a pile reporting Faulted for this long.
    pub faulted_for: Option<String>,
    /// Severity of single-level rules (missing, stuck, charging).
    pub severity: Option<String>,
    /// Why the numbers are what they are (shown with the alert).
    pub description: Option<String>,
}

fn sensor_scope() -> String {
    "sensor".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLevel {
    pub severity: String,
    pub trigger: f64,
    /// Hysteresis: a firing level clears only past this value (default: the trigger).
    pub clear: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Sensor,
    Grid,
    Street,
    District,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Sensor => "sensor",
            Scope::Grid => "grid",
            Scope::Street => "street",
            Scope::District => "district",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Mean,
    Max,
    Min,
    P95,
    Last,
    Iaqi,
    Coverage,
    RatePerH,
    SlopePerH,
    /// Flood signal as a number: none 0, blue 1, yellow 2, orange 3, red 4.
    FloodLevel,
    /// Underpass grade as a number: dry 0, info 1, warning 2, road closure 3, critical 4.
    UnderpassLevel,
    /// Dust grade as a number: normal 0, watch 1, alert 2.
    DustLevel,
    Availability,
    FaultRatio,
    Utilisation,
    PilesOffline,
    SensorsSilent,
}

impl Field {
    fn parse(text: &str) -> Option<Field> {
        Some(match text {
            "mean" => Field::Mean,
            "max" => Field::Max,
            "min" => Field::Min,
            "p95" => Field::P95,
            "last" => Field::Last,
            "iaqi" => Field::Iaqi,
            "coverage" => Field::Coverage,
            "rate_per_h" => Field::RatePerH,
            "slope_per_h" => Field::SlopePerH,
            "flood_level" => Field::FloodLevel,
            "underpass_level" => Field::UnderpassLevel,
            "dust_level" => Field::DustLevel,
            "availability" => Field::Availability,
            "fault_ratio" => Field::FaultRatio,
            "utilisation" => Field::Utilisation,
            "piles_offline" => Field::PilesOffline,
            "sensors_silent" => Field::SensorsSilent,
            _ => return None,
        })
    }

    pub fn is_area_field(self) -> bool {
        matches!(self, Field::Availability | Field::FaultRatio | Field::PilesOffline | Field::SensorsSilent)
    }
}

/// One severity level of a threshold rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    pub severity: Severity,
    pub trigger: f64,
    pub clear: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    /// Levels on a field, with hysteresis; `below` rules fire when the value falls.
    Threshold { field: Field, below: bool, levels: Vec<Level> },
    /// Deadman: no reading for a duration (processing time) or coverage below a fraction.
    Missing { no_data_for_ms: Option<i64>, coverage_below: Option<f64>, severity: Severity },
    /// Zero variance over `windows` consecutive windows with more than one sample each,
    /// while peers (same street) vary. Evaluated by the area stage.
    Stuck { windows: u32, severity: Severity },
    /// A pile reporting Faulted for at least `for_ms` of event time.
    PileFaulted { for_ms: i64, severity: Severity },
    /// A sensor whose window mean is more than `k` robust deviations from its street peers'
    /// median (median ± k·MAD): a faulty or falsified sensor. Evaluated by the area stage.
    Outlier { k: f64, min_peers: u32, severity: Severity },
}

impl Rule {
    /// Whether an alert's rule key belongs to this rule: the rule id itself, or the id and a
    /// `/` suffix for a rule's separate alerts (`pm25-no-data/no_data`).
    pub fn owns(&self, rule_key: &str) -> bool {
        rule_key.strip_prefix(self.id.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// Whether the area stage evaluates this rule (area scopes and peer comparisons).
    pub fn needs_area_stage(&self) -> bool {
        self.scope != Scope::Sensor || matches!(self.condition, RuleKind::Outlier { .. } | RuleKind::Stuck { .. })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub kind: Kind,
    pub scope: Scope,
    pub window: Option<String>,
    pub condition: RuleKind,
    pub for_windows: u32,
    pub description: String,
}

fn severity(text: &str) -> Option<Severity> {
    Severity::ALL.into_iter().find(|s| s.as_str() == text)
}

/// Parses and validates a rules file.
pub fn parse_rules(text: &str, source: &str) -> Result<Vec<Rule>, Vec<RuleError>> {
    let problem = |field: String, reason: String| ConfigProblem { field, reason };
    let value: toml::Value =
        toml::from_str(text).map_err(|e| vec![problem(String::new(), format!("{source}: not valid TOML: {}", e.message()))])?;
    let raw: RawRulesFile =
        serde_path_to_error::deserialize(value).map_err(|e| vec![problem(e.path().to_string(), e.into_inner().message().to_owned())])?;
    let mut problems = Vec::new();
    let mut rules = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for (i, r) in raw.rule.iter().enumerate() {
        let at = |f: &str| format!("rule[{i}].{f}");
        let mut bad = |f: &str, reason: String| problems.push(problem(at(f), reason));
        if r.id.trim().is_empty() || !ids.insert(r.id.clone()) {
            bad("id", format!("{:?} must be a non-empty id used once", r.id));
        }
        let Some(kind) = Kind::parse(&r.kind) else {
            bad("kind", format!("{:?}: use pm25, dust, water or charging", r.kind));
            continue;
        };
        let scope = match r.scope.as_str() {
            "sensor" | "pile" => Scope::Sensor,
            "grid" => Scope::Grid,
            "street" => Scope::Street,
            "district" => Scope::District,
            other => {
                bad("scope", format!("{other:?}: use sensor, pile, grid, street or district"));
                continue;
            }
        };
        let one_severity = |bad: &mut dyn FnMut(&str, String)| match r.severity.as_deref().map(|s| (s, severity(s))) {
            None => Severity::Warning,
            Some((_, Some(s))) => s,
            Some((s, None)) => {
                bad("severity", format!("{s:?}: use info, warning, critical or emergency"));
                Severity::Warning
            }
        };
        let duration = |bad: &mut dyn FnMut(&str, String), f: &str, v: &Option<String>| match v.as_deref().map(parse_ms) {
            None => None,
            Some(Ok(ms)) if ms > 0 => Some(ms),
            Some(Ok(_)) => {
                bad(f, "must be longer than zero".into());
                None
            }
            Some(Err(e)) => {
                bad(f, e);
                None
            }
        };
        let condition = match r.rule_type.as_str() {
            "threshold" | "rate" => {
                let default_field = if r.rule_type == "rate" { "slope_per_h" } else { "mean" };
                let field_name = r.field.as_deref().unwrap_or(default_field);
                let Some(field) = Field::parse(field_name) else {
                    bad("field", format!("{field_name:?} is not an aggregate a rule can read"));
                    continue;
                };
                if field.is_area_field() && scope == Scope::Sensor {
                    bad("field", format!("{field_name:?} exists for grid, street or district scopes only"));
                }
                let below = match r.direction.as_deref() {
                    None | Some("above") => false,
                    Some("below") => true,
                    Some(other) => {
                        bad("direction", format!("{other:?}: use above or below"));
                        false
                    }
                };
                if r.levels.is_empty() {
                    bad("levels", "a threshold needs at least one level".into());
                }
                let mut levels = Vec::new();
                for (j, l) in r.levels.iter().enumerate() {
                    let Some(sev) = severity(&l.severity) else {
                        bad(&format!("levels[{j}].severity"), format!("{:?}: use info, warning, critical or emergency", l.severity));
                        continue;
                    };
                    let clear = l.clear.unwrap_or(l.trigger);
                    let wrong_side = if below { clear < l.trigger } else { clear > l.trigger };
                    if !l.trigger.is_finite() || !clear.is_finite() || wrong_side {
                        bad(
                            &format!("levels[{j}].clear"),
                            format!(
                                "clear {clear} must be {} the trigger {}",
                                if below { "at or above" } else { "at or below" },
                                l.trigger
                            ),
                        );
                    }
                    if levels
                        .last()
                        .is_some_and(|p: &Level| p.severity >= sev || if below { p.trigger <= l.trigger } else { p.trigger >= l.trigger })
                    {
                        bad(&format!("levels[{j}]"), "levels must rise in severity and in how far past the line they are".into());
                    }
                    levels.push(Level { severity: sev, trigger: l.trigger, clear });
                }
                RuleKind::Threshold { field, below, levels }
            }
            "missing" => {
                let no_data_for_ms = duration(&mut bad, "no_data_for", &r.no_data_for);
                if let Some(c) = r.coverage_below {
                    if !(0.0..=1.0).contains(&c) {
                        bad("coverage_below", format!("{c} is not a fraction between 0 and 1"));
                    }
                }
                if no_data_for_ms.is_none() && r.coverage_below.is_none() {
                    bad("no_data_for", "a missing-data rule needs no_data_for, coverage_below, or both".into());
                }
                RuleKind::Missing { no_data_for_ms, coverage_below: r.coverage_below, severity: one_severity(&mut bad) }
            }
            "outlier" => {
                let k = r.outlier_k.unwrap_or(5.0);
                if !(k.is_finite() && k > 0.0) {
                    bad("outlier_k", format!("{k} must be a positive number of deviations"));
                }
                if scope != Scope::Sensor {
                    bad("scope", "outlier rules judge single sensors against their peers: scope = \"sensor\"".into());
                }
                RuleKind::Outlier { k, min_peers: r.min_peers.unwrap_or(4).max(3), severity: one_severity(&mut bad) }
            }
            "stuck" => RuleKind::Stuck { windows: r.stuck_windows.unwrap_or(3).max(2), severity: one_severity(&mut bad) },
            "charging" => {
                if kind != Kind::Charging {
                    bad("kind", "charging rules read charging piles".into());
                }
                let for_ms = duration(&mut bad, "faulted_for", &r.faulted_for).unwrap_or(600_000);
                RuleKind::PileFaulted { for_ms, severity: one_severity(&mut bad) }
            }
            other => {
                bad("type", format!("{other:?}: use threshold, rate, missing, stuck, outlier or charging"));
                continue;
            }
        };
        let needs_window = !matches!(condition, RuleKind::Missing { coverage_below: None, .. });
        if needs_window && r.window.is_none() {
            bad("window", "name the window label this rule reads, e.g. \"1h\"".into());
        }
        rules.push(Rule {
            id: r.id.clone(),
            kind,
            scope,
            window: r.window.clone(),
            condition,
            for_windows: r.for_windows.unwrap_or(1).max(1),
            description: r.description.clone().unwrap_or_default(),
        });
    }
    if problems.is_empty() {
        Ok(rules)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rule_set_is_valid() {
        let rules = parse_rules(include_str!("../../deploy/rules.toml"), "deploy/rules.toml").unwrap();
        assert!(rules.len() >= 8);
        for kind in Kind::ALL {
            assert!(rules.iter().any(|r| r.kind == kind), "no rule for {kind}");
        }
    }

    #[test]
    fn a_rule_owns_its_id_and_its_sub_alerts_only() {
        let rules = parse_rules(include_str!("../../deploy/rules.toml"), "rules").unwrap();
        let no_data = rules.iter().find(|r| r.id == "pm25-no-data").unwrap();
        assert!(no_data.owns("pm25-no-data") && no_data.owns("pm25-no-data/no_data"));
        assert!(!no_data.owns("pm25-no-data-extra") && !no_data.owns("pm25"));
    }

    #[test]
    fn every_problem_names_its_field() {
        let text = r#"
[[rule]]
id = "a"
kind = "pm25"
type = "threshold"
window = "1h"
levels = [{ severity = "warning", trigger = 100, clear = 110 }, { severity = "loud", trigger = 200 }]

[[rule]]
id = "a"
kind = "water"
type = "missing"

[[rule]]
id = "c"
kind = "ozone"
type = "threshold"
"#;
        let problems: Vec<String> = parse_rules(text, "t").unwrap_err().iter().map(|p| p.to_string()).collect();
        for expected in ["rule[0].levels[0].clear", "rule[0].levels[1].severity", "rule[1].id", "rule[1].no_data_for", "rule[2].kind"] {
            assert!(problems.iter().any(|p| p.starts_with(expected)), "{expected} not in {problems:?}");
        }
    }
}
