//! `tessera policy sign / publish / show` with the real binary against a
//! real gateway over mutual TLS: the notice period is enforced, and a
//! city's policies read back in plain words.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{Authority, ok, stop, tessera};

const DEFAULT: &str = include_str!("../../core/policy/default.toml");

#[test]
fn a_policy_with_less_than_the_notice_period_is_refused_and_show_prints_it_announced() {
    let a = Authority::new();
    let (gateway, gw) = a.run_gateway();
    a.publish_to(&gw);
    let work = tempfile::tempdir().unwrap();
    let city = a.dir.join("cities/330100");
    let key = city.join("badge-signer.key");
    let cert = city.join("badge-signer.crt");
    let v1_rules = work.path().join("v1.toml");
    std::fs::write(&v1_rules, DEFAULT).unwrap();
    let v2_rules = work.path().join("v2.toml");
    std::fs::write(
        &v2_rules,
        DEFAULT
            .replace("version = 2", "version = 3")
            .replace("score = -100", "score = -90"),
    )
    .unwrap();
    let sign = |rules: &std::path::Path, when: &str, out: &str| {
        let out = work.path().join(out);
        ok(&[
            "policy",
            "sign",
            "--key",
            key.to_str().unwrap(),
            "--certificate",
            cert.to_str().unwrap(),
            "--rules",
            rules.to_str().unwrap(),
            "--effective-from",
            when,
            "--out",
            out.to_str().unwrap(),
        ]);
        out
    };
    let config = a.config();
    let publish = |file: &std::path::Path| {
        tessera(&[
            "policy",
            "publish",
            "--config",
            &config,
            "--gateway",
            &gw,
            file.to_str().unwrap(),
        ])
    };

    // The city's first policy takes effect at publication (no notice).
    let v1 = sign(&v1_rules, "+0h", "v1.signed");
    let out = publish(&v1);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The next version (3) with 47 hours' notice: refused, naming the notice period.
    let early = sign(&v2_rules, "+47h", "v2-early.signed");
    let out = publish(&early);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("less than the notice period of 48 hours"),
        "{err}"
    );

    // With 49 hours: accepted.
    let v2 = sign(&v2_rules, "+49h", "v2.signed");
    let out = publish(&v2);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Shown through the gateway, verified against the trust list: v1 in
    // force, v2 announced, rules in plain words from their fields.
    let shown = ok(&[
        "policy",
        "show",
        "330100",
        "--gateway",
        &gw,
        "--bundle",
        a.dir
            .join("operators/330100-hangzhou-cdc")
            .to_str()
            .unwrap(),
    ]);
    assert!(
        shown.contains("city 330100: 2 published scoring policies"),
        "{shown}"
    );
    let v1_at = shown.find("policy version 2 ").expect(&shown);
    let v2_at = shown.find("policy version 3 ").expect(&shown);
    assert!(v1_at < v2_at, "oldest effective first: {shown}");
    assert!(shown[v1_at..v2_at].contains(": IN FORCE"), "{shown}");
    assert!(
        shown[v2_at..].contains(": ANNOUNCED, takes effect in 2 days"),
        "{shown}"
    );
    assert!(
        shown[v1_at..v2_at].contains(
            "A positive test sampled within the last 14 days: score \u{2212}100, colour at least red."
        ),
        "{shown}"
    );
    assert!(
        shown[v2_at..].contains(
            "A positive test sampled within the last 14 days: score \u{2212}90, colour at least red."
        ),
        "{shown}"
    );

    // Issue 21: how a negative test counts, in words, and the rule it lifts.
    assert!(
        shown.contains("A negative test never counts against anyone: it only lifts the rules that name it below"),
        "{shown}"
    );
    assert!(
        shown.contains(
            "A close contact within the last 14 days, unless a negative test was sampled after it within the last 3 days (such a test lifts the rule for 3 days after it was sampled, and a badge it makes better ends then): score \u{2212}40, colour at least yellow."
        ),
        "{shown}"
    );

    // A local signed file renders too, its signature checked.
    let local = ok(&[
        "policy",
        "show",
        "--file",
        v2.to_str().unwrap(),
        "--certificate",
        cert.to_str().unwrap(),
    ]);
    assert!(local.contains("policy version 3 "), "{local}");
    assert!(local.contains("signature checked"), "{local}");
    stop(gateway);
}

#[test]
fn policy_sign_refuses_rules_outside_the_record_schema() {
    let a = Authority::new();
    let work = tempfile::tempdir().unwrap();
    let city = a.dir.join("cities/330100");
    let rules = work.path().join("income.toml");
    std::fs::write(
        &rules,
        format!(
            "{DEFAULT}\n[[rules]]\nid = \"poor\"\ndescription = \"Low income\"\nrecord = \"income\"\nscore = -10\n"
        ),
    )
    .unwrap();
    let out = tessera(&[
        "policy",
        "sign",
        "--key",
        city.join("badge-signer.key").to_str().unwrap(),
        "--certificate",
        city.join("badge-signer.crt").to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
        "--effective-from",
        "+72h",
        "--out",
        work.path().join("out.signed").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown variant `income`"), "{err}");
    assert!(err.contains("record schema"), "{err}");
    assert!(!work.path().join("out.signed").exists());
}
