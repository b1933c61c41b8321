//! Charging piles (DOMAIN.md §5): operative statuses, offline detection from missed
//! heartbeats, and per-area availability, fault ratio and utilisation.

use crate::model::PileStatus;

/// A pile is offline after this many heartbeat intervals without any message (SPEC §8).
pub const OFFLINE_AFTER_INTERVALS: i64 = 3;
/// Heartbeat interval when the registry gives none (SPEC §8).
pub const DEFAULT_HEARTBEAT_MS: i64 = 60_000;

pub fn is_offline(last_seen_ms: i64, now_ms: i64, heartbeat_ms: i64) -> bool {
    now_ms - last_seen_ms > OFFLINE_AFTER_INTERVALS * heartbeat_ms
}

/// Whether a status counts as charging for utilisation (1.6 Charging, 2.0.1 Occupied).
pub fn is_charging(status: PileStatus) -> bool {
    matches!(status, PileStatus::Charging | PileStatus::Occupied)
}

/// One pile as the area stage sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PileView {
    pub status: PileStatus,
    pub last_seen_ms: i64,
    pub heartbeat_ms: i64,
    /// Time in the window spent charging and online, ms.
    pub charging_ms: i64,
    pub online_ms: i64,
}

/// Availability (Available ÷ online), fault ratio, utilisation and offline count of an area.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct AreaCharging {
    pub piles: u32,
    pub online: u32,
    pub offline: u32,
    pub available: u32,
    pub faulted: u32,
    pub availability: Option<f64>,
    pub fault_ratio: Option<f64>,
    pub utilisation: Option<f64>,
}

pub fn area_charging(piles: &[PileView], now_ms: i64) -> AreaCharging {
    let mut out = AreaCharging { piles: piles.len() as u32, ..AreaCharging::default() };
    let (mut charging_ms, mut online_ms) = (0i64, 0i64);
    for pile in piles {
        if is_offline(pile.last_seen_ms, now_ms, pile.heartbeat_ms) {
            out.offline += 1;
            continue;
        }
        out.online += 1;
        out.available += u32::from(pile.status == PileStatus::Available);
        out.faulted += u32::from(pile.status == PileStatus::Faulted);
        charging_ms += pile.charging_ms;
        online_ms += pile.online_ms;
    }
    if out.online > 0 {
        out.availability = Some(out.available as f64 / out.online as f64);
        out.fault_ratio = Some(out.faulted as f64 / out.online as f64);
    }
    if online_ms > 0 {
        out.utilisation = Some(charging_ms as f64 / online_ms as f64);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_after_three_missed_heartbeats() {
        assert!(!is_offline(0, 180_000, 60_000));
        assert!(is_offline(0, 180_001, 60_000));
    }

    #[test]
    fn area_ratios_count_only_online_piles() {
        let now = 1_000_000;
        let pile =
            |status, last_seen_ms, charging_ms| PileView { status, last_seen_ms, heartbeat_ms: 60_000, charging_ms, online_ms: 300_000 };
        let piles = [
            pile(PileStatus::Available, now - 1_000, 0),
            pile(PileStatus::Charging, now - 1_000, 300_000),
            pile(PileStatus::Faulted, now - 1_000, 0),
            pile(PileStatus::Available, now - 500_000, 0), // offline
        ];
        let area = area_charging(&piles, now);
        assert_eq!((area.piles, area.online, area.offline, area.available, area.faulted), (4, 3, 1, 1, 1));
        assert_eq!(area.availability, Some(1.0 / 3.0));
        assert_eq!(area.fault_ratio, Some(1.0 / 3.0));
        assert_eq!(area.utilisation, Some(1.0 / 3.0));
        assert_eq!(area_charging(&[], now).availability, None);
    }
}
