//! What ships beside the binary is checked with the tools that will read it:
//! the systemd units with `systemd-analyze verify` (and their sandboxing
//! scored with `systemd-analyze security`), the Prometheus alert rules and
//! scrape configuration with `promtool check`, and the rules' behaviour with
//! `promtool test rules` on the unit tests beside them; `tessera --version`
//! names the commit it was built from.
//!
//! systemd-analyze comes with systemd, promtool with Debian's `prometheus`
//! package. Without them the tests say they are skipped, unless
//! `TESSERA_REQUIRE_PACKAGING_TOOLS=1` (as in `.ci/run`), where they fail.
//! (The dashboard's metric names are checked against live servers in
//! tests/it/metrics.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Whether `tool --version` runs; if not, a skip, or a failure when the
/// tools are required.
fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    let required = std::env::var("TESSERA_REQUIRE_PACKAGING_TOOLS").is_ok_and(|v| v == "1");
    if !found && required {
        panic!("TESSERA_REQUIRE_PACKAGING_TOOLS=1 but {tool} is not on PATH");
    }
    if !found {
        eprintln!("skipped: no {tool} on PATH");
    }
    found
}

/// The units, with the install path of the binary replaced by this build's
/// (systemd-analyze checks that ExecStart names an executable).
fn units_here(dir: &Path) -> Vec<PathBuf> {
    let mut units = vec![];
    for entry in std::fs::read_dir(repo().join("packaging/systemd")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "service") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("ExecStart=/usr/local/bin/tessera "),
            "{} does not run /usr/local/bin/tessera",
            path.display()
        );
        let here = text.replace("/usr/local/bin/tessera", env!("CARGO_BIN_EXE_tessera"));
        let out = dir.join(path.file_name().unwrap());
        std::fs::write(&out, here).unwrap();
        units.push(out);
    }
    units.sort();
    units
}

#[test]
fn the_systemd_units_verify_cleanly_and_are_sandboxed() {
    if !have("systemd-analyze") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let units = units_here(dir.path());
    let names: Vec<_> = units
        .iter()
        .map(|u| u.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "tessera-checkpoint.service",
            "tessera-gateway.service",
            "tessera-node.service"
        ]
    );
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // An unknown or misspelt directive is only a warning to systemd: fail
    // on any word from it.
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");

    for unit in &units {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(unit)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let exposure: f64 = text
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|rest| rest.split(": ").nth(1))
            .and_then(|score| score.split_whitespace().next())
            .and_then(|score| score.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level in\n{text}"));
        // systemd's scale runs from 0 (locked down) to 10 (unprotected);
        // under 2 is what it calls OK.
        assert!(
            exposure < 2.0,
            "{}: exposure {exposure}\n{text}",
            unit.display()
        );
    }
}

#[test]
fn a_misspelt_directive_fails_the_unit_check() {
    if !have("systemd-analyze") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let units = units_here(dir.path());
    let node = units
        .iter()
        .find(|u| u.ends_with("tessera-node.service"))
        .unwrap();
    let text = std::fs::read_to_string(node).unwrap();
    std::fs::write(node, text.replace("NoNewPrivileges=", "NoNewPrivilege=")).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(node)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NoNewPrivilege"),
        "the check above would miss a misspelt directive"
    );
}

#[test]
fn the_alert_rules_and_scrape_config_check_and_their_unit_tests_pass() {
    if !have("promtool") {
        return;
    }
    let dir = repo().join("packaging/prometheus");
    for args in [
        &["check", "rules", "alerts.yml"][..],
        &["check", "config", "prometheus.yml"][..],
        &["test", "rules", "alerts.test.yml"][..],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        line.starts_with(&format!("tessera {version} (commit ")),
        "{line}"
    );
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo())
        .output();
    if let Ok(head) = head
        && head.status.success()
        && std::env::var("TESSERA_BUILD_COMMIT").is_err()
    {
        let head = String::from_utf8(head.stdout).unwrap();
        assert_eq!(
            line.trim(),
            format!("tessera {version} (commit {})", head.trim())
        );
    }
}
