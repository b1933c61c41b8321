//! The binary's command line as an operator meets it: `check-config` accepts the shipped
//! config and refuses a bad one with the field path and the reason, exiting non-zero.

use std::process::Command;

fn citysense(args: &[&str]) -> (bool, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_citysense")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().expect("binary runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn check_config_accepts_the_shipped_config_and_its_registry() {
    let (ok, out) = citysense(&["check-config", "deploy/citysense.toml"]);
    assert!(ok, "{out}");
    assert!(out.contains("registry deploy/registry.csv: 320 sensors"), "{out}");
}

#[test]
fn check_config_names_each_bad_field_and_fails() {
    let path = std::env::temp_dir().join(format!("citysense-bad-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[windows]\nallowed_lateness = \"soon\"\nwater = [\"1h/7m\"]\n[influx]\nurl = \"ftp://x\"\norg = \"o\"\nbucket = \"b\"\n",
    )
    .unwrap();
    let (ok, out) = citysense(&["check-config", path.to_str().unwrap()]);
    std::fs::remove_file(&path).ok();
    assert!(!ok, "a bad config must fail: {out}");
    for field in ["windows.allowed_lateness:", "windows.water[0]:", "influx.url:"] {
        assert!(out.contains(field), "{field} not reported in:\n{out}");
    }
}

#[test]
fn run_refuses_a_bad_config_before_connecting() {
    let path = std::env::temp_dir().join(format!("citysense-bad-run-{}.toml", std::process::id()));
    std::fs::write(&path, "[kafka]\nbrokers = 9092\n").unwrap();
    let (ok, out) = citysense(&["run", "--config", path.to_str().unwrap()]);
    std::fs::remove_file(&path).ok();
    assert!(!ok);
    assert!(out.contains("kafka.brokers"), "{out}");
}

#[test]
fn every_subcommand_has_help_with_examples() {
    for sub in ["demo", "run", "simulate", "replay", "check-config"] {
        let (ok, out) = citysense(&[sub, "--help"]);
        assert!(ok, "{sub} --help: {out}");
        assert!(out.contains("Example"), "{sub} --help has no example:\n{out}");
    }
}
