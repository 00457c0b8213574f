//! The demo's scenario as a newcomer runs it, its QR code read back by a real
//! QR decoder, the checkpoint's offline check with no server running, and
//! the deletion attestations its switch-off left, checked by the authority's
//! command;
//! what the demo leaves on the gateway's disk (nothing of a badge or a
//! record); and a checkpoint's `tessera verify`, offline and online, writing
//! nothing to disk.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
#[allow(dead_code)] // the gateway's test uses more of it
#[path = "../../tests/src/scan.rs"]
mod scan;

use std::collections::BTreeMap;
use std::path::Path;

use common::tessera;
use scan::Needle;

fn decode_png(path: &std::path::Path) -> String {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| pixels[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "expected one QR code in {}", path.display());
    grids[0].decode().unwrap().1
}

#[test]
fn the_demo_tells_its_story_and_its_badge_scans_and_verifies_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let keep = tmp.path().join("demo");
    let out = tessera(&[
        "demo",
        "--keep",
        keep.to_str().unwrap(),
        "--residents",
        "100",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Every step behaved as told."), "{stdout}");
    assert_eq!(stdout.matches("   ✓ expected").count(), 19, "{stdout}");
    assert!(!stdout.contains('✗'), "{stdout}");
    for expected in [
        "got VALID",
        "got REVOKED",
        "got SIGNER_REVOKED",
        "positive-test-14d",
        // Step 2: policies published, notice enforced.
        "got Hangzhou, Wuhan, Guangzhou",
        "less than the notice period of 48 hours after publication",
        "✓ expected refused, got refused",
        "got v2 IN FORCE, v3 ANNOUNCED",
        // Step 10: access, the access log, erasure.
        "got issue, explain, export, access_log",
        "✓ expected 2 / 0, got 2 / 0",
        "the issuing city does not know this badge",
        "got VALID, REVOKED (unknown)",
        // Step 11: the switch-off, attested.
        "✓ expected Hangzhou, Wuhan, got Hangzhou, Wuhan",
        "got Guangzhou VALID",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in\n{stdout}"
        );
    }

    // The PNG, read by a real QR decoder, gives back the badge text.
    let text = std::fs::read_to_string(keep.join("badge.txt")).unwrap();
    assert_eq!(decode_png(&keep.join("badge.png")), text);
    assert!(
        std::fs::read_to_string(keep.join("badge.svg"))
            .unwrap()
            .starts_with("<?xml")
    );

    // Offline, from the checkpoint's cached list, with every server stopped.
    let checkpoint = std::fs::read_dir(keep.join("authority/verifiers"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let list = keep.join("checkpoint-trust-list.tsl");
    let args = [
        "verify",
        "--offline",
        "--trust-list",
        list.to_str().unwrap(),
        "--bundle",
        checkpoint.to_str().unwrap(),
        &text,
    ];
    let out = tessera(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("VALID") && stdout.contains("Hangzhou"),
        "{stdout}"
    );
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = tessera(&json_args);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "VALID");
    assert_eq!(v["colour"], "green");
    assert_eq!(v["issuer_city"], 330_100);

    // A tampered badge: BAD_SIGNATURE or MALFORMED, each with its exit status.
    let mut tampered = text.clone().into_bytes();
    let i = tampered.len() - 10;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let mut bad_args = args.to_vec();
    *bad_args.last_mut().unwrap() = &tampered;
    let code = tessera(&bad_args).status.code().unwrap();
    assert!(code == 15 || code == 18, "tampered badge exited {code}");
    *bad_args.last_mut().unwrap() = "TB1:not*base45";
    assert_eq!(tessera(&bad_args).status.code(), Some(18));
    // `badge show` decodes without verifying.
    let shown = tessera(&["badge", "show", &text]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("NOT VERIFIED"));

    // Each switched-off node left its attestation beside its data
    // directory; the authority's command verifies each, and a tampered
    // copy fails.
    let authority = keep.join("authority");
    let mut attested = 0;
    for city in ["330100", "420100", "440100"] {
        let dir = authority.join("cities").join(city);
        let file = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("attestation-")
            })
            .unwrap_or_else(|| panic!("no attestation in {}", dir.display()));
        let out = tessera(&[
            "authority",
            "verify-attestation",
            file.to_str().unwrap(),
            "--dir",
            authority.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}");
        assert!(stdout.contains(&format!("city {city}")), "{stdout}");
        assert!(stdout.contains("signer key   destroyed"), "{stdout}");
        assert!(!dir.join("badge-signer.key").exists());
        let mut bytes = std::fs::read(&file).unwrap();
        let i = bytes.len() / 3;
        bytes[i] ^= 1;
        let tampered = tmp.path().join(format!("tampered-{city}.pb"));
        std::fs::write(&tampered, bytes).unwrap();
        let out = tessera(&[
            "authority",
            "verify-attestation",
            tampered.to_str().unwrap(),
            "--dir",
            authority.to_str().unwrap(),
        ]);
        assert_ne!(out.status.code(), Some(0));
        attested += 1;
    }
    assert_eq!(attested, 3);
}

/// Runs `tessera demo --keep DIR` with `residents` per city; returns DIR's
/// temporary parent and DIR.
fn demo(residents: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let keep = tmp.path().join("demo");
    let out = tessera(&[
        "demo",
        "--keep",
        keep.to_str().unwrap(),
        "--residents",
        residents,
    ]);
    assert!(
        out.status.success(),
        "demo failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (tmp, keep)
}

fn strings(v: &serde_json::Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} missing from the demo's manifest"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn after_a_full_demo_run_the_gateways_directory_holds_no_badge_id_and_no_record() {
    let (_tmp, keep) = demo("50");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(keep.join("demo-manifest.json")).unwrap()).unwrap();
    let badge_ids = strings(&manifest, "badge_ids");
    let record_ids = strings(&manifest, "record_ids");
    let national_ids = strings(&manifest, "national_ids");
    let sources = strings(&manifest, "sources");
    // Everything the demo did is listed: three badges, 2 × 50 + 50 + 50
    // residents' tests, one exposure per 20 residents of each city (5 + 2 +
    // 2), Li Hua's two tests and Wang Fang's two.
    assert_eq!(badge_ids.len(), 3);
    assert_eq!(record_ids.len(), 200 + 9 + 2 + 2, "{record_ids:?}");
    assert!(national_ids.len() >= 200 + 3);
    assert_eq!(sources, ["LAB-01", "CDC"]);

    let mut needles = vec![];
    for id in &badge_ids {
        let raw: Vec<u8> = (0..id.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&id[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(raw.len(), 16);
        needles.extend(Needle::id("badge id", &raw));
    }
    needles.extend(record_ids.iter().map(|r| Needle::text("record id", r)));
    needles.extend(national_ids.iter().map(|n| Needle::text("ID number", n)));
    needles.extend(sources.iter().map(|s| Needle::text("lab or source", s)));

    // The scan finds them where they are: the manifest itself.
    let (_, control) = scan::find(&keep, &needles).unwrap();
    assert!(
        control
            .iter()
            .filter(|h| h.ends_with("demo-manifest.json"))
            .count()
            >= badge_ids.len() + record_ids.len()
    );

    // The gateway's whole directory: configuration, certificates, key and
    // data, after every server of the demo has stopped.
    let layout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(keep.join("federation.json")).unwrap()).unwrap();
    let gateway = Path::new(layout["gateway_bundle"].as_str().unwrap());
    assert!(gateway.starts_with(&keep), "{}", gateway.display());
    let (files, hits) = scan::find(gateway, &needles).unwrap();
    assert!(files >= 3, "only {files} files under {}", gateway.display());
    assert!(hits.is_empty(), "the gateway kept:\n{}", hits.join("\n"));

    // The scan did cover the policies and the deletion attestations the
    // gateway now keeps: a policy's name and Hangzhou's signed attestation,
    // byte for byte, are found in the same directory.
    let hangzhou = keep.join("authority/cities/330100");
    let attestation = std::fs::read_dir(&hangzhou)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("attestation-")
        })
        .unwrap();
    let kept = [
        Needle::text("policy", "tessera default infection-risk policy"),
        Needle {
            label: "Hangzhou's attestation".into(),
            bytes: std::fs::read(attestation).unwrap(),
        },
    ];
    let (_, found) = scan::find(gateway, &kept).unwrap();
    for label in ["policy", "Hangzhou's attestation"] {
        assert!(
            found.iter().any(|h| h.starts_with(label)),
            "{label} not found under {}: {found:?}",
            gateway.display()
        );
    }
}

/// Every directory and file under `dir`, with file contents.
fn snapshot(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut all = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let name = path.display().to_string();
            if path.is_dir() {
                all.insert(name, None);
                stack.push(path);
            } else {
                all.insert(name, Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    all
}

/// Runs `tessera verify ARGS` as a checkpoint would, in `cwd`, with HOME
/// and TMPDIR at `home` and no XDG directories, plain and as JSON; both must
/// exit 0 (VALID).
fn verify_as_a_checkpoint(cwd: &Path, home: &Path, args: &[&str]) {
    for json in [false, true] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
        cmd.current_dir(cwd)
            .env("HOME", home)
            .env_remove("XDG_CACHE_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_STATE_HOME")
            .env("TMPDIR", home)
            .arg("verify")
            .args(args);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_checkpoints_offline_verify_writes_nothing_to_disk() {
    let (tmp, keep) = demo("20");
    let text = std::fs::read_to_string(keep.join("badge.txt")).unwrap();
    let checkpoint = std::fs::read_dir(keep.join("authority/verifiers"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let list = keep.join("checkpoint-trust-list.tsl");
    let (cwd, home) = (tmp.path().join("cwd"), tmp.path().join("home"));
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let before = snapshot(tmp.path());
    // The demo revoked Li Hua's badge later, but offline the signature and
    // validity are all a checkpoint checks: VALID.
    verify_as_a_checkpoint(
        &cwd,
        &home,
        &[
            "--offline",
            "--trust-list",
            list.to_str().unwrap(),
            "--bundle",
            checkpoint.to_str().unwrap(),
            &text,
        ],
    );
    // Not a byte, not a directory: in the working directory, in HOME, in
    // TMPDIR, or beside the trust list and bundle.
    assert_eq!(snapshot(tmp.path()), before);
}

#[test]
fn a_checkpoints_online_verify_writes_nothing_to_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut running, layout) =
        common::federation_up(&tmp.path().join("fed"), &tmp.path().join("fed.log"));
    let text = common::issue_hangzhou_badge(&layout);
    let bundle = Path::new(layout["checkpoint"].as_str().unwrap());
    let (cwd, home) = (tmp.path().join("cwd"), tmp.path().join("home"));
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    // The federation's own servers write under fed/ meanwhile; the
    // checkpoint's side is its bundle, its working directory, HOME, TMPDIR.
    let watched = [&cwd, &home, &bundle.to_path_buf()];
    let before: Vec<_> = watched.iter().map(|d| snapshot(d)).collect();
    verify_as_a_checkpoint(
        &cwd,
        &home,
        &[
            "--gateway",
            layout["gateway"].as_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
            &text,
        ],
    );
    let after: Vec<_> = watched.iter().map(|d| snapshot(d)).collect();
    assert_eq!(after, before);
    common::stop(running.0.take().unwrap());
}
