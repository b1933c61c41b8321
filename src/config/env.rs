//! `CITYSENSE_…` environment overrides: `CITYSENSE_KAFKA__BROKERS=host:9092` sets
//! `kafka.brokers`. Path segments are separated by a double underscore and lower-cased;
//! values are read as TOML (numbers, booleans, arrays) and fall back to a plain string.
//! Only names with a double underscore are overrides (every config field sits in a
//! section), so other `CITYSENSE_` variables such as `CITYSENSE_LOG` are left alone.

use super::ConfigProblem;

pub const PREFIX: &str = "CITYSENSE_";

pub fn apply_overrides(value: &mut toml::Value, environment: impl IntoIterator<Item = (String, String)>) -> Result<(), ConfigProblem> {
    let mut overrides: Vec<(String, String)> =
        environment.into_iter().filter(|(name, _)| name.starts_with(PREFIX) && name.contains("__")).collect();
    overrides.sort();
    for (name, text) in overrides {
        let path: Vec<String> = name[PREFIX.len()..].split("__").map(str::to_lowercase).collect();
        let field = path.join(".");
        if path.iter().any(String::is_empty) {
            return Err(ConfigProblem { field: name, reason: "empty path segment in environment override".into() });
        }
        let parsed =
            toml::from_str::<toml::Table>(&format!("v = {text}")).ok().and_then(|mut t| t.remove("v")).unwrap_or(toml::Value::String(text));
        let mut node = &mut *value;
        for segment in &path[..path.len() - 1] {
            let table = node.as_table_mut().ok_or_else(|| ConfigProblem {
                field: field.clone(),
                reason: format!("{name} overrides inside a value that is not a table"),
            })?;
            node = table.entry(segment.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        }
        let table = node.as_table_mut().ok_or_else(|| ConfigProblem {
            field: field.clone(),
            reason: format!("{name} overrides inside a value that is not a table"),
        })?;
        table.insert(path[path.len() - 1].clone(), parsed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_set_nested_fields_with_typed_values() {
        let mut value: toml::Value = toml::from_str("[kafka]\nbrokers = \"a:1\"\n").unwrap();
        let env = [
            ("CITYSENSE_KAFKA__BROKERS".to_owned(), "b:2".to_owned()),
            ("CITYSENSE_WINDOWS__MAX_TRACKED_SENSORS".to_owned(), "5".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
            ("CITYSENSE_TEST_KAFKA".to_owned(), "not an override".to_owned()),
        ];
        apply_overrides(&mut value, env).unwrap();
        assert_eq!(value["kafka"]["brokers"].as_str(), Some("b:2"));
        assert_eq!(value["windows"]["max_tracked_sensors"].as_integer(), Some(5));
        assert!(value.get("test_kafka").is_none());
    }
}
