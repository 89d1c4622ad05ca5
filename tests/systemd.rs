//! `systemd/tillsyn.service` checked by systemd's own tools: `systemd-analyze
//! verify` (with the unit's binary pointed at the one just built) and
//! `systemd-analyze security --offline=true`, whose exposure must stay at 2.0 or
//! lower; plus the settings the service relies on.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::text;

const INSTALLED_BINARY: &str = "/usr/local/bin/tillsyn";

fn unit() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("systemd/tillsyn.service");
    std::fs::read_to_string(path).expect("systemd/tillsyn.service")
}

/// The unit with its commands pointed at the binary under test, in a folder of
/// its own (the file name is the unit name).
fn unit_for_this_build() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tillsyn.service");
    let text = unit().replace(INSTALLED_BINARY, env!("CARGO_BIN_EXE_tillsyn"));
    std::fs::write(&path, text).expect("write unit");
    (dir, path)
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let (_dir, path) = unit_for_this_build();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.trim().is_empty() && stderr.trim().is_empty(),
        "systemd-analyze verify has remarks:\n{stdout}{stderr}"
    );
}

#[test]
fn exposure_is_two_or_lower() {
    let (_dir, path) = unit_for_this_build();
    let output = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let (stdout, stderr) = text(&output);
    let line = stdout
        .lines()
        .find(|line| line.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in:\n{stdout}{stderr}"));
    let exposure: f64 = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("unreadable exposure line {line:?}"));
    assert!(exposure <= 2.0, "exposure {exposure} > 2.0:\n{stdout}");
}

#[test]
fn the_unit_runs_the_daemon_the_way_it_expects() {
    let unit = unit();
    let settings: Vec<&str> = unit
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#') && line.contains('='))
        .collect();
    let has = |setting: &str| settings.contains(&setting);
    for setting in [
        "Type=notify",
        "ExecStartPre=/usr/local/bin/tillsyn check-config --config /etc/tillsyn/config.toml",
        "ExecStart=/usr/local/bin/tillsyn run --config /etc/tillsyn/config.toml",
        "ExecReload=/usr/local/bin/tillsyn check-config --config /etc/tillsyn/config.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "DynamicUser=yes",
        "StateDirectory=tillsyn",
        "ConfigurationDirectory=tillsyn",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    ] {
        assert!(has(setting), "the unit lacks {setting:?}");
    }
    assert!(
        settings
            .iter()
            .any(|line| line.starts_with("LoadCredential=")),
        "secrets come through LoadCredential="
    );
    assert!(settings.iter().any(|line| line.starts_with("WatchdogSec=")));
    // ExecReload checks before it signals.
    let reloads: Vec<&&str> = settings
        .iter()
        .filter(|line| line.starts_with("ExecReload="))
        .collect();
    assert!(reloads[0].contains("check-config") && reloads[1].contains("-HUP"));
    // The state dir systemd makes is the config's default.
    let example = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config.example.toml"),
    )
    .expect("example config");
    assert!(example.contains("state_dir = \"/var/lib/tillsyn\""));
}
