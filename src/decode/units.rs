//! Unit normalisation on ingest (SPEC §1): every value leaves here in its kind's canonical
//! unit. An unknown unit is a rejection, never a guess.

use crate::model::Kind;

/// A value in `unit` converted to the canonical unit of `kind`, or `None` when the unit
/// is not accepted for that kind. Smaller units divide (35 cm → 0.35 m exactly as
/// `35.0 / 100.0`, where `35.0 * 0.01` would not round to the same double).
pub fn to_canonical(kind: Kind, unit: &str, value: f64) -> Option<f64> {
    let factor = factor_to_canonical(kind, unit)?;
    Some(if factor < 1.0 { value / (1.0 / factor).round() } else { value * factor })
}

/// The factor that converts a value in `unit` to the canonical unit of `kind`.
pub fn factor_to_canonical(kind: Kind, unit: &str) -> Option<f64> {
    // `trim` looks for Unicode white space at both ends; a unit that starts and ends with a
    // visible ASCII character (the usual one) has none to trim.
    let unit = match unit.as_bytes() {
        [first, .., last] if first.is_ascii_graphic() && last.is_ascii_graphic() => unit,
        _ => unit.trim(),
    };
    match kind {
        // µ appears as U+00B5 (micro sign) or U+03BC (Greek mu) depending on the vendor.
        Kind::Pm25 => match unit {
            "ug/m3" | "ug/m³" | "µg/m³" | "µg/m3" | "μg/m³" | "μg/m3" => Some(1.0),
            "mg/m3" | "mg/m³" => Some(1000.0),
            _ => None,
        },
        Kind::Dust => match unit {
            "g/m2" | "g/m²" => Some(1.0),
            "mg/m2" | "mg/m²" => Some(0.001),
            _ => None,
        },
        Kind::Water => match unit {
            "m" => Some(1.0),
            "cm" => Some(0.01),
            "mm" => Some(0.001),
            _ => None,
        },
        Kind::Charging => match unit {
            "" | "kW" | "kw" => Some(1.0),
            "W" | "w" => Some(0.001),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_units_convert_to_the_canonical_unit() {
        let cases = [
            (Kind::Pm25, "ug/m3", 1.0),
            (Kind::Pm25, "µg/m³", 1.0),
            (Kind::Pm25, "μg/m³", 1.0),
            (Kind::Pm25, "mg/m3", 1000.0),
            (Kind::Dust, "g/m2", 1.0),
            (Kind::Dust, "mg/m2", 0.001),
            (Kind::Water, "m", 1.0),
            (Kind::Water, "cm", 0.01),
            (Kind::Water, "mm", 0.001),
        ];
        for (kind, unit, factor) in cases {
            assert_eq!(factor_to_canonical(kind, unit), Some(factor), "{kind} {unit}");
        }
    }

    #[test]
    fn white_space_around_a_unit_is_ignored_ascii_or_not() {
        for (kind, unit, factor) in [
            (Kind::Pm25, " ug/m3", 1.0),
            (Kind::Pm25, "ug/m3\t", 1.0),
            (Kind::Pm25, "\u{3000}µg/m³\u{3000}", 1.0),
            (Kind::Water, " m ", 1.0),
            (Kind::Water, "cm\u{a0}", 0.01),
        ] {
            assert_eq!(factor_to_canonical(kind, unit), Some(factor), "{kind} {unit:?}");
        }
        assert_eq!(factor_to_canonical(Kind::Pm25, " "), None);
    }

    #[test]
    fn conversions_round_like_the_decimal_a_vendor_meant() {
        assert_eq!(to_canonical(Kind::Water, "cm", 35.0), Some(0.35));
        assert_eq!(to_canonical(Kind::Water, "mm", 1234.0), Some(1.234));
        assert_eq!(to_canonical(Kind::Dust, "mg/m2", 450.0), Some(0.45));
        assert_eq!(to_canonical(Kind::Pm25, "mg/m3", 0.0415), Some(41.5));
    }

    #[test]
    fn units_of_another_kind_or_unknown_units_are_refused() {
        assert_eq!(factor_to_canonical(Kind::Pm25, "g/m2"), None);
        assert_eq!(factor_to_canonical(Kind::Dust, "ug/m3"), None);
        assert_eq!(factor_to_canonical(Kind::Water, "ft"), None);
        assert_eq!(factor_to_canonical(Kind::Pm25, ""), None);
    }
}
