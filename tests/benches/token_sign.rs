//! Badge signatures per second with the badge-signer key in a PKCS#11
//! token (SoftHSM2) beside the same work with the key in memory, in one
//! run, as a ratio (docs/BENCHMARKS.md). Not a test: run with
//! `cargo bench -p tessera-tests --bench token_sign`.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` once per process, so the bench makes a
//! fresh token and runs itself again with the variable set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use tessera_certs::pkcs11::{self, TokenKey, TokenKeyRef};
use tessera_certs::profile::{CertRequest, SubjectKey};
use tessera_core::badge::{BadgeKey as _, BadgeSigner};
use tessera_core::{Identity, Role, Scope};
use tessera_tests::{TestPki, claims, unix_now};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const CHILD: &str = "TESSERA_BENCH_SOFTHSM_DIR";
const ROUNDS: usize = 7;
const PER_ROUND: usize = 1000;

fn main() {
    match std::env::var(CHILD) {
        Ok(dir) => measure(Path::new(&dir)),
        Err(_) => parent(),
    }
}

fn parent() {
    if !Path::new(MODULE).exists() {
        eprintln!("skipped: {MODULE} not installed (apt-get install softhsm2)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let init = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "bench",
            "--pin",
            "1234",
        ])
        .args(["--so-pin", "5678"])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(dir.path().join("pin"), "1234").unwrap();
    std::fs::set_permissions(
        dir.path().join("pin"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .env("SOFTHSM2_CONF", &conf)
        .env(CHILD, dir.path())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Signatures per second of `signer` over `n` fresh claims.
fn rate(signer: &BadgeSigner, code: tessera_core::CityCode, n: usize) -> f64 {
    let now = unix_now();
    let batch: Vec<_> = (0..n).map(|_| claims(code, now)).collect();
    let start = Instant::now();
    for c in &batch {
        std::hint::black_box(signer.sign(c).unwrap());
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Signatures per second of `signer` from `threads` threads at once.
fn rate_threads(signer: &Arc<BadgeSigner>, code: tessera_core::CityCode, threads: usize) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| rate(signer, code, PER_ROUND));
        }
    });
    (threads * PER_ROUND) as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn measure(dir: &Path) {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let code = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
    let key = TokenKeyRef {
        module: MODULE.into(),
        token: "bench".into(),
        key: "badge-signer".into(),
        pin_file: dir.join("pin"),
    };
    pkcs11::generate(&key).unwrap();
    let token = TokenKey::open(&key).unwrap();
    let identity = Identity::new(Role::BadgeSigner, Scope::City(code)).unwrap();
    let der = pki
        .root
        .issue(
            &CertRequest {
                identity,
                common_name: identity.to_uri(),
                hosts: vec![],
                not_before: pki.now - 86_400,
                not_after: pki.now + 365 * 86_400,
                serial: None,
            },
            SubjectKey::Ed25519(token.public_key().to_bytes()),
        )
        .unwrap();
    let in_token = Arc::new(BadgeSigner::with_key(Arc::new(token), &der).unwrap());
    let in_memory = Arc::new(pki.badge_signer(code).unwrap());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Interleaved rounds, so both see the same machine load.
    let (mut memory, mut hsm, mut memory_n, mut hsm_n) = (vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        memory.push(rate(&in_memory, code, PER_ROUND));
        hsm.push(rate(&in_token, code, PER_ROUND));
        memory_n.push(rate_threads(&in_memory, code, threads));
        hsm_n.push(rate_threads(&in_token, code, threads));
    }
    let (memory, hsm) = (median(memory), median(hsm));
    let (memory_n, hsm_n) = (median(memory_n), median(hsm_n));
    println!("badge signatures per second, median of {ROUNDS} interleaved rounds of {PER_ROUND}:");
    println!(
        "  one thread:  in memory {memory:.0}/s, in the SoftHSM2 token {hsm:.0}/s: token/memory = {:.2}",
        hsm / memory
    );
    println!(
        "  {threads} threads:   in memory {memory_n:.0}/s, in the SoftHSM2 token {hsm_n:.0}/s: token/memory = {:.2}",
        hsm_n / memory_n
    );
}
