//! A reading after decoding, unit normalisation and validation.

use std::borrow::Cow;

use smol_str::SmolStr;

use super::{Kind, PileStatus};

/// Where a sensor sits in the grid-management hierarchy (grid → street → district).
/// Names are `SmolStr`: up to 23 bytes inline, so decoding, copying and comparing an area
/// allocates nothing for every grid, street and district name in use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Area {
    pub grid: SmolStr,
    pub street: SmolStr,
    pub district: SmolStr,
}

impl Area {
    /// An area from borrowed names (inline copies for names up to 23 bytes).
    pub fn new(grid: &str, street: &str, district: &str) -> Self {
        Area { grid: grid.into(), street: street.into(), district: district.into() }
    }

    pub fn is_empty(&self) -> bool {
        self.grid.is_empty() && self.street.is_empty() && self.district.is_empty()
    }
}

/// What was observed: a level in the kind's canonical unit, or a pile status.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observation {
    /// pm25 µg/m³, dust g/m², water m.
    Level(f64),
    /// A charging-pile status notification; `power_kw` when the pile reports it.
    Pile { status: PileStatus, power_kw: Option<f64> },
}

/// A location whose names are borrowed: from the record's bytes, or from the registry.
/// The window stage copies it into its own `Area` only when a sensor's location changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AreaRef<'a> {
    pub grid: Cow<'a, str>,
    pub street: Cow<'a, str>,
    pub district: Cow<'a, str>,
}

impl<'a> AreaRef<'a> {
    pub fn new(grid: &'a str, street: &'a str, district: &'a str) -> Self {
        AreaRef { grid: Cow::Borrowed(grid), street: Cow::Borrowed(street), district: Cow::Borrowed(district) }
    }

    pub fn is_empty(&self) -> bool {
        self.grid.is_empty() && self.street.is_empty() && self.district.is_empty()
    }

    /// Whether `area` has the same names (asked once per reading, and nearly always so).
    pub fn matches(&self, area: &Area) -> bool {
        same_text(&self.grid, &area.grid) && same_text(&self.street, &area.street) && same_text(&self.district, &area.district)
    }

    pub fn to_area(&self) -> Area {
        Area::new(&self.grid, &self.street, &self.district)
    }
}

/// `a == b`, for names: up to 16 bytes compared in two overlapping loads each, not through
/// a call to `memcmp`.
#[inline(always)]
fn same_text(a: &str, b: &str) -> bool {
    let (a, b, len) = (a.as_bytes(), b.as_bytes(), a.len());
    if len != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or_default());
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().unwrap_or_default());
    match len {
        0..=3 => a == b,
        4..=7 => half(a, 0) == half(b, 0) && half(a, len - 4) == half(b, len - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, len - 8) == word(b, len - 8),
        _ => a == b,
    }
}

/// A clean, normalised reading: the only thing the window stage ever sees. Its text
/// borrows the record (or the registry): a reading copies no names, and the window stage
/// copies the id only for a sensor it has not seen.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading<'a> {
    pub sensor_id: Cow<'a, str>,
    pub kind: Kind,
    /// Event time, epoch milliseconds UTC.
    pub ts_ms: i64,
    pub observation: Observation,
    /// Location as the record gave it (the registry, when it knows the sensor, wins).
    pub area: AreaRef<'a>,
    pub vendor: Cow<'a, str>,
    pub seq: Option<u64>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_the_same_exactly_when_their_bytes_are() {
        for len in 0..24 {
            let name: String = (0..len).map(|i| char::from(b'a' + i as u8)).collect();
            assert!(super::same_text(&name, &name.clone()), "{len} bytes");
            for at in 0..len {
                let mut other = name.clone().into_bytes();
                other[at] = b'Z';
                assert!(!super::same_text(&name, std::str::from_utf8(&other).unwrap()), "byte {at} of {len}");
            }
            assert!(!super::same_text(&name, &format!("{name}x")));
        }
    }
}
