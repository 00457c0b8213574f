//! The scanner app in a real browser (issue 17): a federation and
//! `tessera checkpoint serve` start; headless Chromium (Debian's package,
//! driven by playwright-core through `web/e2e/scan.mjs`) opens the station's
//! pairing URL, and its fake camera is fed a video of a real badge's QR code
//! (`web/e2e/qr-video.mjs`). The page shows VALID with the status asked
//! online; a badge its city revoked shows REVOKED; a forged one (a flipped
//! signature byte) BAD_SIGNATURE; and with the gateway stopped a valid badge
//! gets the offline verdict with the status not asked. A screenshot of each
//! screen is written to `target/scanner-screens/`.
//!
//! It needs Node.js, `web/node_modules` (`npm ci` in `web/`) and Chromium
//! (`/usr/bin/chromium`, or `TESSERA_CHROMIUM`). Without them the test says
//! it is skipped, unless `TESSERA_REQUIRE_WEB=1` (as in `.ci/run`), where it
//! fails instead.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    checkpoint_serve, federation_up, issue_hangzhou_badge_for, pairing_code, positive_test,
    tessera, wait_until,
};
use prost::Message;
use tessera_core::text;
use tessera_proto::v1 as pb;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn chromium() -> PathBuf {
    std::env::var_os("TESSERA_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Whether Node.js, the app's packages and Chromium are there; `false` when
/// the test is skipped.
fn browser() -> bool {
    let web = Path::new(REPO).join("web");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let missing = if !node {
        Some("no node on PATH")
    } else if !web.join("node_modules/playwright-core").is_dir()
        || !web.join("node_modules/qrcode").is_dir()
    {
        Some("web/node_modules is missing (run `npm ci` in web/)")
    } else if !chromium().is_file() {
        Some("no Chromium at /usr/bin/chromium (apt-get install chromium, or set TESSERA_CHROMIUM)")
    } else {
        None
    };
    let Some(what) = missing else { return true };
    let required = std::env::var("TESSERA_REQUIRE_WEB").is_ok_and(|v| v == "1");
    assert!(!required, "TESSERA_REQUIRE_WEB=1 but {what}");
    eprintln!("skipped: {what}");
    false
}

fn screens() -> PathBuf {
    let dir = Path::new(REPO).join("target/scanner-screens");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A Y4M video of `badge`'s QR code, for Chromium's fake camera.
fn video(badge: &str, out: &Path) {
    let made = Command::new("node")
        .arg(Path::new(REPO).join("web/e2e/qr-video.mjs"))
        .arg(badge)
        .arg(out)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
}

/// Scans `video` in a fresh browser paired with a new code; returns what
/// the page showed, as scan.mjs reports it.
fn scan(
    data: &Path,
    port: u16,
    video: &Path,
    name: &str,
    expect: &str,
    online: Option<&str>,
) -> serde_json::Value {
    let code = pairing_code(data, port);
    let mut cmd = Command::new("node");
    cmd.arg(Path::new(REPO).join("web/e2e/scan.mjs"))
        .args(["--url", &format!("https://127.0.0.1:{port}/")])
        .arg("--video")
        .arg(video)
        .arg("--screenshot")
        .arg(screens().join(format!("{name}.png")))
        .args(["--pair", &code, "--expect", expect])
        .arg("--chromium")
        .arg(chromium())
        .args(["--timeout-ms", "60000"]);
    if let Some(online) = online {
        cmd.args(["--online", online]);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "scan.mjs printed no report: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(
        out.status.success(),
        "{name}: expected {expect} (online {online:?}), the page showed {report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

/// `badge` with one signature byte flipped, as TB1 text again.
fn forged(badge: &str) -> String {
    let envelope = text::from_text(badge, tessera_core::badge::MAX_ENVELOPE_LEN).unwrap();
    let mut signed = pb::SignedBadge::decode(envelope.as_slice()).unwrap();
    signed.signature[10] ^= 0x01;
    text::to_text(&signed.encode_to_vec())
}

#[test]
fn the_scanner_shows_valid_revoked_forged_and_offline_verdicts_in_chromium() {
    if !browser() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut federation, layout) =
        federation_up(&dir.path().join("fed"), &dir.path().join("fed.log"));
    let data = dir.path().join("station");
    let (_station, port) = checkpoint_serve(&layout, &data, &dir.path().join("station.log"));
    wait_until("the station's trust list", Duration::from_secs(30), || {
        data.join("trust-list.tsl").exists()
    });

    let revoked_later = issue_hangzhou_badge_for(&layout, 7);
    let valid = issue_hangzhou_badge_for(&layout, 8);
    let v = dir.path().join("valid.y4m");
    video(&valid, &v);
    let shown = scan(&data, port, &v, "valid", "VALID", Some("asked"));
    assert!(!shown["timings"].as_array().unwrap().is_empty(), "{shown}");

    // The city revokes resident 7's badge; once the gateway says so (its
    // status cache lasts a few seconds), the page does too.
    positive_test(&layout, 7);
    let gateway = layout["gateway"].as_str().unwrap();
    let bundle = layout["checkpoint"].as_str().unwrap();
    wait_until(
        "the gateway to answer REVOKED",
        Duration::from_secs(30),
        || {
            let out = tessera(&[
                "verify",
                "--gateway",
                gateway,
                "--bundle",
                bundle,
                &revoked_later,
            ]);
            out.status.code() == Some(12)
        },
    );
    let r = dir.path().join("revoked.y4m");
    video(&revoked_later, &r);
    scan(&data, port, &r, "revoked", "REVOKED", Some("asked"));

    let f = dir.path().join("forged.y4m");
    video(&forged(&valid), &f);
    scan(&data, port, &f, "forged", "BAD_SIGNATURE", None);

    // The gateway stops: the station cannot ask, and the page shows the
    // offline verdict from the list the station keeps serving.
    let mut gone = federation.0.take().unwrap();
    gone.kill().unwrap();
    gone.wait().unwrap();
    scan(&data, port, &v, "offline", "VALID", Some("not-asked"));
}
