//! `tessera verify` (and the other commands that print) in a shell
//! pipeline, run as the real binary: a closed output ends the command
//! quietly with its usual status, standard input is read with a bound,
//! `--stream` answers each line while the pipe stays open, bytes that are
//! not UTF-8 are MALFORMED, and usage errors exit 2.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::ok;

/// Exit status of MALFORMED.
const MALFORMED: i32 = 18;

/// An authority's root and a trust list it signed, for offline checks.
struct Offline {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    list: PathBuf,
}

impl Offline {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("authority");
        let list = tmp.path().join("list.tsl");
        ok(&["authority", "init", "--dir", dir.to_str().unwrap()]);
        ok(&[
            "authority",
            "trust-list",
            "publish",
            "--dir",
            dir.to_str().unwrap(),
            "--out",
            list.to_str().unwrap(),
        ]);
        Self {
            _tmp: tmp,
            dir,
            list,
        }
    }

    /// `tessera verify --offline …` with `extra` arguments.
    fn verify(&self, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
        cmd.args(["verify", "--offline", "--trust-list"])
            .arg(&self.list)
            .arg("--root")
            .arg(self.dir.join("root/root.crt"))
            .args(extra)
            .stderr(Stdio::piped());
        cmd
    }
}

/// Runs `cmd` with its standard output a pipe whose reader is already
/// closed (as after `| head -n1` has read its line): its exit status and
/// standard error.
fn with_closed_output(mut cmd: Command) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = cmd
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_output_ends_the_command_quietly_with_its_usual_status() {
    let o = Offline::new();
    for extra in [&["TB1:AAA"][..], &["--json", "TB1:AAA"]] {
        let (code, stderr) = with_closed_output(o.verify(extra));
        assert_eq!(code, Some(MALFORMED), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{extra:?}: {stderr}");
    }
    // Another command that prints, and succeeds.
    let mut show = Command::new(env!("CARGO_BIN_EXE_tessera"));
    show.args(["authority", "trust-list", "show"])
        .arg(&o.list)
        .arg("--dir")
        .arg(&o.dir);
    let (code, stderr) = with_closed_output(show);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Spawns `cmd` with piped standard input and output.
fn spawn(mut cmd: Command) -> Child {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

#[test]
fn oversized_standard_input_is_malformed_without_being_read_to_its_end() {
    let o = Offline::new();
    let mut child = spawn(o.verify(&["--json"]));
    let mut stdin = child.stdin.take().unwrap();
    // 16 MiB: far more than a pipe buffers, so writing it all succeeds only
    // if tessera reads it all.
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'A'; 1 << 20];
        (0..16).try_for_each(|_| stdin.write_all(&chunk))
    });
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(MALFORMED));
    let v = json(String::from_utf8_lossy(&out.stdout).trim());
    assert_eq!(v["reason"], "text_too_long", "{v}");
    let written = writer.join().unwrap();
    assert_eq!(
        written.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::BrokenPipe),
        "tessera read all 16 MiB"
    );
}

#[test]
fn bytes_that_are_not_utf8_are_malformed() {
    let o = Offline::new();
    let mut child = spawn(o.verify(&["--json"]));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"TB1:\xff\xfeABC\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(MALFORMED),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(String::from_utf8_lossy(&out.stdout).trim());
    assert_eq!(v["outcome"], "MALFORMED", "{v}");
    assert_eq!(v["reason"], "text_invalid_character", "{v}");
}

#[test]
fn stream_answers_each_line_while_the_pipe_stays_open() {
    let o = Offline::new();
    let mut child = spawn(o.verify(&["--stream", "--json"]));
    let mut stdin = child.stdin.take().unwrap();
    let mut verdicts = BufReader::new(child.stdout.take().unwrap()).lines();
    // Each verdict is read before the next line is written, with the input
    // still open: no answer waits for the end of the input.
    for (line, reason) in [
        ("TB1:AAAA", "text_dangling_character"),
        ("", ""),
        ("hello", "text_missing_prefix"),
        (&"A".repeat(5000), "text_too_long"),
        ("TB1:\u{3000}", "text_invalid_character"),
    ] {
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
        if reason.is_empty() {
            continue; // a blank line gets no verdict
        }
        let v = json(&verdicts.next().unwrap().unwrap());
        assert_eq!(v["outcome"], "MALFORMED", "{line:?}: {v}");
        assert_eq!(v["reason"], reason, "{line:?}: {v}");
    }
    drop(stdin);
    assert!(verdicts.next().is_none(), "one verdict per badge line");
    assert_eq!(child.wait().unwrap().code(), Some(MALFORMED));
}

#[test]
fn usage_errors_exit_2() {
    let o = Offline::new();
    for args in [
        vec!["badge", "show"],
        vec!["badge", "render"],
        vec!["verify"],
        vec!["verify", "--stream", "TB1:AAA", "--offline"],
        vec!["authority", "trust-list", "show", o.list.to_str().unwrap()],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn stream_through_the_gateway_answers_each_line_as_it_arrives() {
    let authority = common::Authority::new();
    let (gateway, addr) = authority.run_gateway();
    authority.publish_to(&addr);
    let d = authority.dir.to_str().unwrap();
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
    let bundle = authority.dir.join("verifiers/420000-wuhan-station");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.args([
        "verify",
        "--stream",
        "--json",
        "--gateway",
        &addr,
        "--bundle",
    ])
    .arg(&bundle);
    let mut child = spawn(cmd);
    let mut stdin = child.stdin.take().unwrap();
    let mut verdicts = BufReader::new(child.stdout.take().unwrap()).lines();
    // "TB1:X50" is good base45 (two bytes), so only the gateway can say
    // that those bytes are no envelope; "TB1:AAAA" is refused locally.
    for (line, reason) in [
        ("TB1:X50", "envelope_"),
        ("TB1:AAAA", "text_dangling_character"),
        ("TB1:X50", "envelope_"),
    ] {
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        let v = json(&verdicts.next().unwrap().unwrap());
        assert_eq!(v["outcome"], "MALFORMED", "{line:?}: {v}");
        assert!(
            v["reason"].as_str().unwrap().starts_with(reason),
            "{line:?}: {v}"
        );
    }
    drop(stdin);
    assert!(verdicts.next().is_none());
    assert_eq!(child.wait().unwrap().code(), Some(MALFORMED));
    common::stop(gateway);
}
