//! The authority commands as a user runs them: the real binary, a temporary
//! directory, and refused commands that change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{ok, tessera};

use std::collections::BTreeMap;
use std::path::Path;

fn refused(args: &[&str], expected: &str) {
    let out = tessera(args);
    assert!(
        !out.status.success(),
        "tessera {args:?} succeeded but should have failed"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(expected),
        "tessera {args:?}: expected {expected:?} in {stderr:?}"
    );
}

/// Every file under `dir` with its contents.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.display().to_string(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn an_authority_enrols_publishes_revokes_and_shows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("authority");
    let d = dir.to_str().unwrap();
    ok(&["authority", "init", "--dir", d]);
    ok(&[
        "authority",
        "enrol-city",
        "--dir",
        d,
        "--code",
        "330100",
        "--name",
        "Hangzhou",
        "--endpoint",
        "127.0.0.1:7101",
    ]);
    ok(&[
        "authority",
        "enrol-city",
        "--dir",
        d,
        "--code",
        "420100",
        "--name",
        "Wuhan",
        "--endpoint",
        "127.0.0.1:7102",
    ]);
    ok(&[
        "authority",
        "enrol-verifier",
        "--dir",
        d,
        "--province",
        "420000",
        "--name",
        "Wuhan station",
    ]);
    ok(&[
        "authority",
        "enrol-operator",
        "--dir",
        d,
        "--city",
        "330100",
        "--name",
        "Hangzhou CDC",
    ]);
    ok(&[
        "authority",
        "enrol-gateway",
        "--dir",
        d,
        "--endpoint",
        "127.0.0.1:7000",
    ]);
    let list1 = tmp.path().join("one.tsl");
    ok(&[
        "authority",
        "trust-list",
        "publish",
        "--dir",
        d,
        "--out",
        list1.to_str().unwrap(),
    ]);
    let shown = ok(&[
        "authority",
        "trust-list",
        "show",
        list1.to_str().unwrap(),
        "--dir",
        d,
    ]);
    assert!(shown.contains("Trust list 1 — signature valid"), "{shown}");
    assert!(
        shown.contains("Hangzhou") && shown.contains("Wuhan"),
        "{shown}"
    );
    assert!(!shown.contains("REVOKED"), "{shown}");

    ok(&["authority", "revoke", "--dir", d, "--city", "330100"]);
    let list2 = tmp.path().join("two.tsl");
    ok(&[
        "authority",
        "trust-list",
        "publish",
        "--dir",
        d,
        "--out",
        list2.to_str().unwrap(),
    ]);
    let shown = ok(&[
        "authority",
        "trust-list",
        "show",
        list2.to_str().unwrap(),
        "--root",
        dir.join("root/root.crt").to_str().unwrap(),
    ]);
    assert!(shown.contains("Trust list 2"), "{shown}");
    assert_eq!(shown.matches("REVOKED").count(), 2, "{shown}");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in [
            "root/root.key",
            "trust-list-signer/signer.key",
            "cities/330100/node.key",
            "cities/330100/badge-signer.key",
        ] {
            let mode = std::fs::metadata(dir.join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key} has mode {mode:o}");
        }
    }
}

#[test]
fn refused_commands_say_why_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("authority");
    let d = dir.to_str().unwrap();
    ok(&["authority", "init", "--dir", d]);
    ok(&[
        "authority",
        "enrol-city",
        "--dir",
        d,
        "--code",
        "330100",
        "--name",
        "Hangzhou",
        "--endpoint",
        "127.0.0.1:7101",
    ]);
    let before = snapshot(&dir);

    refused(
        &["authority", "init", "--dir", d],
        "already holds an authority",
    );
    refused(
        &[
            "authority",
            "enrol-city",
            "--dir",
            d,
            "--code",
            "330100",
            "--name",
            "Hangzhou",
            "--endpoint",
            "127.0.0.1:7101",
        ],
        "already enrolled",
    );
    refused(
        &[
            "authority",
            "enrol-city",
            "--dir",
            d,
            "--code",
            "33O100",
            "--name",
            "X",
            "--endpoint",
            "127.0.0.1:1",
        ],
        "not a 6-digit",
    );
    refused(
        &[
            "authority",
            "enrol-city",
            "--dir",
            d,
            "--code",
            "330000",
            "--name",
            "X",
            "--endpoint",
            "127.0.0.1:1",
        ],
        "province code, not a city code",
    );
    refused(
        &[
            "authority",
            "enrol-city",
            "--dir",
            d,
            "--code",
            "420100",
            "--name",
            "Wuhan",
            "--endpoint",
            "nowhere",
        ],
        "not a host:port endpoint",
    );
    refused(
        &[
            "authority",
            "enrol-verifier",
            "--dir",
            d,
            "--province",
            "420100",
            "--name",
            "X",
        ],
        "not a province code",
    );
    refused(
        &[
            "authority",
            "enrol-operator",
            "--dir",
            d,
            "--city",
            "420100",
            "--name",
            "X",
        ],
        "not enrolled",
    );
    refused(
        &["authority", "revoke", "--dir", d, "--serial", "00"],
        "no active certificate",
    );
    assert_eq!(
        snapshot(&dir),
        before,
        "a refused command changed the authority directory"
    );

    let missing = tmp.path().join("missing");
    refused(
        &[
            "authority",
            "enrol-city",
            "--dir",
            missing.to_str().unwrap(),
            "--code",
            "330100",
            "--name",
            "H",
            "--endpoint",
            "127.0.0.1:1",
        ],
        "does not exist",
    );
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    refused(
        &[
            "authority",
            "enrol-city",
            "--dir",
            empty.to_str().unwrap(),
            "--code",
            "330100",
            "--name",
            "H",
            "--endpoint",
            "127.0.0.1:1",
        ],
        "holds no authority",
    );
    refused(
        &[
            "authority",
            "init",
            "--dir",
            tmp.path().join("no/such/parent").to_str().unwrap(),
        ],
        "does not exist",
    );
    assert!(!missing.exists());
}

#[test]
fn a_tampered_trust_list_is_refused_by_show() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("authority");
    let d = dir.to_str().unwrap();
    ok(&["authority", "init", "--dir", d]);
    let list = tmp.path().join("list.tsl");
    ok(&[
        "authority",
        "trust-list",
        "publish",
        "--dir",
        d,
        "--out",
        list.to_str().unwrap(),
    ]);
    let mut bytes = std::fs::read(&list).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&list, &bytes).unwrap();
    refused(
        &[
            "authority",
            "trust-list",
            "show",
            list.to_str().unwrap(),
            "--dir",
            d,
        ],
        "does not verify",
    );
    std::fs::write(&list, &bytes[..bytes.len() / 3]).unwrap();
    refused(
        &[
            "authority",
            "trust-list",
            "show",
            list.to_str().unwrap(),
            "--dir",
            d,
        ],
        "does not verify",
    );
}

#[test]
fn enrolment_says_whether_a_new_trust_list_is_needed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("authority");
    let d = dir.to_str().unwrap();
    ok(&["authority", "init", "--dir", d]);
    let city = ok(&[
        "authority",
        "enrol-city",
        "--dir",
        d,
        "--code",
        "330100",
        "--name",
        "Hangzhou",
        "--endpoint",
        "127.0.0.1:7101",
    ]);
    assert!(city.contains("Publish a new trust list"), "{city}");
    for args in [
        ["enrol-operator", "--city", "330100"],
        ["enrol-verifier", "--province", "420000"],
    ] {
        let out = ok(&[
            "authority",
            args[0],
            "--dir",
            d,
            args[1],
            args[2],
            "--name",
            "Someone",
        ]);
        assert!(out.contains("No new trust list is needed"), "{out}");
        assert!(!out.contains("Publish a new trust list"), "{out}");
    }
}
