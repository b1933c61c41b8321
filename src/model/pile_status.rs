//! Charging-pile status values from OCPP 1.6 and 2.0.1 (DOMAIN.md §5), plus heartbeats.

/// A pile's reported status. OCPP 1.6 `ChargePointStatus` and OCPP 2.0.1
/// `ConnectorStatusEnumType` share a namespace (`Available`, `Reserved`, `Unavailable`,
/// `Faulted` are in both); `Heartbeat` only says the pile is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum PileStatus {
    Available,
    Preparing,
    Charging,
    SuspendedEvse,
    SuspendedEv,
    Finishing,
    Reserved,
    Unavailable,
    Faulted,
    /// OCPP 2.0.1: covers 1.6 Preparing / Charging / Suspended* / Finishing.
    Occupied,
    Heartbeat,
}

impl PileStatus {
    pub const ALL: [PileStatus; 11] = [
        PileStatus::Available,
        PileStatus::Preparing,
        PileStatus::Charging,
        PileStatus::SuspendedEvse,
        PileStatus::SuspendedEv,
        PileStatus::Finishing,
        PileStatus::Reserved,
        PileStatus::Unavailable,
        PileStatus::Faulted,
        PileStatus::Occupied,
        PileStatus::Heartbeat,
    ];

    /// The OCPP spelling, as vendors send it.
    pub fn as_str(self) -> &'static str {
        match self {
            PileStatus::Available => "Available",
            PileStatus::Preparing => "Preparing",
            PileStatus::Charging => "Charging",
            PileStatus::SuspendedEvse => "SuspendedEVSE",
            PileStatus::SuspendedEv => "SuspendedEV",
            PileStatus::Finishing => "Finishing",
            PileStatus::Reserved => "Reserved",
            PileStatus::Unavailable => "Unavailable",
            PileStatus::Faulted => "Faulted",
            PileStatus::Occupied => "Occupied",
            PileStatus::Heartbeat => "Heartbeat",
        }
    }

    pub fn parse(text: &str) -> Option<PileStatus> {
        PileStatus::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Index into per-status arrays (`[T; PileStatus::ALL.len()]`).
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_ocpp_name() {
        for status in PileStatus::ALL {
            assert_eq!(PileStatus::parse(status.as_str()), Some(status));
            assert_eq!(PileStatus::ALL[status.index()], status);
        }
        assert_eq!(PileStatus::parse("charging"), None, "OCPP names are case-sensitive");
    }
}
