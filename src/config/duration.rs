//! Human durations in the config: "500ms", "30s", "5m", "1h", "7d".

/// Parses a duration into milliseconds. Zero is allowed; negative values are not
/// representable (a leading `-` is an error).
pub fn parse_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(format!("{text:?} is not a duration: expected a whole number and a unit, e.g. \"30s\""));
    }
    let n: i64 = number.parse().map_err(|_| format!("{text:?}: number too large"))?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use ms, s, m, h or d)")),
    };
    n.checked_mul(unit_ms).ok_or_else(|| format!("{text:?}: too large"))
}

/// Formats milliseconds as the shortest exact human duration ("90s", "1h").
pub fn format_ms(ms: i64) -> String {
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms != 0 && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse_ms("30s"), Ok(30_000));
        assert_eq!(parse_ms("5m"), Ok(300_000));
        assert_eq!(parse_ms("7d"), Ok(604_800_000));
        assert_eq!(parse_ms("250ms"), Ok(250));
        assert_eq!(format_ms(3_600_000), "1h");
        assert_eq!(format_ms(90_000), "90s");
        assert_eq!(format_ms(250), "250ms");
    }

    #[test]
    fn refuses_nonsense() {
        assert!(parse_ms("-5s").is_err());
        assert!(parse_ms("5 minutes").is_err());
        assert!(parse_ms("s").is_err());
        assert!(parse_ms("99999999999999999999s").is_err());
    }
}
