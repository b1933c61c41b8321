//! Why a record was dead-lettered: one reason per record, with a human-readable detail.

use std::fmt;

/// The reason a record was not processed (SPEC §2). `as_str` is the value of the
/// `citysense-reason` header and of the `reason` metric label: keep the set small and stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Bytes that are neither JSON nor protobuf of the expected message.
    Undecodable,
    /// A required field is missing or has the wrong type.
    Schema,
    /// A `kind` this topic does not carry.
    UnknownKind,
    /// A unit the kind does not accept (never guessed).
    UnknownUnit,
    /// A pile status that is not an OCPP 1.6 / 2.0.1 value.
    UnknownStatus,
    /// NaN or ±infinity.
    NonFinite,
    /// Physically impossible for the kind or outside the gauge's configured range.
    OutOfRange,
    /// Stamped further ahead of the wall clock than allowed.
    Future,
    /// Older than the configured horizon.
    TooOld,
    /// Same sensor and timestamp, or same sensor and sequence number, as an earlier record.
    Duplicate,
    /// Its window has already closed (late policy `deadletter`).
    Late,
    /// Larger than the configured maximum record size.
    Oversize,
    /// Not in the registry while the registry is strict.
    UnknownSensor,
    /// A new sensor past the tracked-sensor cap.
    Cardinality,
}

impl Reason {
    pub const ALL: [Reason; 14] = [
        Reason::Undecodable,
        Reason::Schema,
        Reason::UnknownKind,
        Reason::UnknownUnit,
        Reason::UnknownStatus,
        Reason::NonFinite,
        Reason::OutOfRange,
        Reason::Future,
        Reason::TooOld,
        Reason::Duplicate,
        Reason::Late,
        Reason::Oversize,
        Reason::UnknownSensor,
        Reason::Cardinality,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Undecodable => "undecodable",
            Reason::Schema => "schema",
            Reason::UnknownKind => "unknown_kind",
            Reason::UnknownUnit => "unknown_unit",
            Reason::UnknownStatus => "unknown_status",
            Reason::NonFinite => "non_finite",
            Reason::OutOfRange => "out_of_range",
            Reason::Future => "future",
            Reason::TooOld => "too_old",
            Reason::Duplicate => "duplicate",
            Reason::Late => "late",
            Reason::Oversize => "oversize",
            Reason::UnknownSensor => "unknown_sensor",
            Reason::Cardinality => "cardinality",
        }
    }

    pub fn parse(text: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|reason| reason.as_str() == text)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record's dead-letter verdict: the reason and what exactly was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: Reason,
    pub detail: String,
    /// The vendor, when the record got far enough to name one (for per-vendor counts).
    pub vendor: Option<String>,
}

impl Rejection {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Rejection { reason, detail: detail.into(), vendor: None }
    }

    pub fn with_vendor(mut self, vendor: &str) -> Self {
        if !vendor.is_empty() {
            self.vendor = Some(vendor.to_owned());
        }
        self
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}
