//! The demo's scenario as a newcomer runs it, its QR code read back by a real
//! QR decoder, and the checkpoint's offline check with no server running.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::tessera;

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
    assert_eq!(stdout.matches("   ✓ expected").count(), 9, "{stdout}");
    assert!(!stdout.contains('✗'), "{stdout}");
    for expected in [
        "got VALID",
        "got REVOKED",
        "got SIGNER_REVOKED",
        "positive-test-14d",
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
}
