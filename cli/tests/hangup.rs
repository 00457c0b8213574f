//! SIGHUP during start-up: a server takes SIGHUP from its default action
//! (ending the process) before anything slow, so a log rotation that sends
//! it while the server opens its store and checks its trust list does not
//! kill it. Linux only: it reads which signals the process catches from
//! /proc.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Authority, stop};

const SIGHUP: u32 = 1;
const SIGTERM: u32 = 15;

/// The signals `pid` catches (SigCgt), or None once it is gone.
fn caught(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("SigCgt:"))?;
    u64::from_str_radix(line.trim_start_matches("SigCgt:").trim(), 16).ok()
}

fn catches(mask: u64, signal: u32) -> bool {
    mask & (1 << (signal - 1)) != 0
}

fn hangup(pid: u32) {
    let _ = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status();
}

/// Starts `tessera args` (a server that will listen on `port`), sends
/// SIGHUP from the moment it catches SIGTERM (it has started main, and is
/// about to open its store) until it listens, and checks that it survives
/// and stops cleanly.
fn survives_sighup_while_starting(args: &[&str], port: u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();

    // As soon as the server catches SIGTERM, SIGHUP must be caught too.
    let mask = common::wait(
        format!("tessera {args:?} to catch SIGTERM"),
        Duration::from_secs(20),
    )
    .every(Duration::from_millis(1))
    .until(|| {
        assert!(
            child.try_wait().unwrap().is_none(),
            "tessera {args:?} exited"
        );
        caught(pid).filter(|&mask| catches(mask, SIGTERM))
    });
    assert!(
        catches(mask, SIGHUP),
        "SIGTERM is caught but SIGHUP is not yet: a SIGHUP now would end the process"
    );

    // SIGHUP all through the start-up: the server still comes up.
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    common::wait(
        format!("tessera {args:?} to listen on {addr} under SIGHUPs"),
        Duration::from_secs(20),
    )
    .every(Duration::from_millis(2))
    .until(|| {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(50)).is_ok() {
            return true;
        }
        hangup(pid);
        if let Some(status) = child.try_wait().unwrap() {
            panic!("a SIGHUP during start-up ended tessera {args:?}: {status}");
        }
        false
    });
    for _ in 0..5 {
        hangup(pid);
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP ended tessera {args:?}"
    );
    stop(child);
}

#[test]
fn a_sighup_during_start_up_does_not_kill_the_gateway() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("skipped: no /proc");
        return;
    }
    let a = Authority::new();
    let (port, _) = a.enrol_gateway();
    let config = a.dir.join("gateways/national/gateway.toml");
    survives_sighup_while_starting(
        &["gateway", "run", "--config", config.to_str().unwrap()],
        port,
    );
}

#[test]
fn a_sighup_during_start_up_does_not_kill_a_node() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("skipped: no /proc");
        return;
    }
    let a = Authority::new();
    survives_sighup_while_starting(&["node", "run", "--config", &a.config()], a.port);
}
