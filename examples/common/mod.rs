//! The part of the benchmark programs' config they share: one topic per kind under a
//! prefix, the InfluxDB sink, and the area stage, for a consumer group of this process.

/// Config text for `brokers`, topics named `PREFIX.*`, InfluxDB at `influx`, followed by
/// the program's own sections (`sections`).
pub fn bench_config(brokers: &str, prefix: &str, group: &str, influx: &str, sections: &str) -> String {
    let pid = std::process::id();
    format!(
        r#"
[kafka]
brokers = "{brokers}"
group_id = "{group}-{pid}"
[topics]
deadletter = "{prefix}.deadletter"
checkpoints = "{prefix}.checkpoints"
pm25 = {{ name = "{prefix}.pm25" }}
dust = {{ name = "{prefix}.dust" }}
water = {{ name = "{prefix}.water" }}
charging = {{ name = "{prefix}.charging" }}
[influx]
url = "{influx}"
org = "citysense"
bucket = "citysense"
batch_size = 5000
flush_interval = "200ms"
[rollup]
topic = "{prefix}.aggregates"
group_id = "{group}-areas-{pid}"
{sections}"#
    )
}

/// An `[alerts]` section: the rules at `rules`, events and changelog on `PREFIX.alerts` and
/// `PREFIX.alerts.changelog` (the topics scripts/bench.sh creates). Further `[alerts]` keys
/// may follow it.
pub fn alerts_section(prefix: &str, rules: &std::path::Path) -> String {
    format!("[alerts]\nrules = \"{}\"\ntopic = \"{prefix}.alerts\"\nchangelog_topic = \"{prefix}.alerts.changelog\"\n", rules.display())
}
