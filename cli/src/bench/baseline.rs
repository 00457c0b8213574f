//! Baselines that are not services: what the machine's cores do with raw
//! Ed25519, and what sled does with a bare batch and flush. Each runs for a
//! fixed time on as many threads as there are cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use ed25519_dalek::{Signer, SigningKey};
use tessera_core::signing::{self, BADGE_CONTEXT};

/// The machine's cores as the runtime sees them.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `work` on every core for `duration`; `work` returns the items it did
/// per call. Returns items per second over all cores.
fn on_every_core<F>(duration: Duration, work: F) -> anyhow::Result<f64>
where
    F: Fn() -> anyhow::Result<u64> + Send + Sync + 'static,
{
    let work = Arc::new(work);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..cores())
        .map(|_| {
            let (work, stop, done) = (Arc::clone(&work), Arc::clone(&stop), Arc::clone(&done));
            std::thread::spawn(move || -> anyhow::Result<()> {
                while !stop.load(Ordering::Relaxed) {
                    done.fetch_add(work()?, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a baseline thread failed"))??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// V: raw Ed25519 verifications per second on all cores (the signature
/// rule badge verification uses, `tessera_core::signing::verify`, over a
/// badge-sized payload).
pub fn ed25519_verify(duration: Duration) -> anyhow::Result<f64> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let message = [7u8; 72];
    let signature =
        signing::sign(BADGE_CONTEXT, &message, &key).context("signing the baseline message")?;
    let public = key.verifying_key();
    on_every_core(duration, move || {
        anyhow::ensure!(
            signing::verify(BADGE_CONTEXT, &message, &signature, &public),
            "the baseline signature did not verify"
        );
        Ok(1)
    })
}

/// Raw Ed25519 signatures per second on all cores.
pub fn ed25519_sign(duration: Duration) -> anyhow::Result<f64> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let message = [7u8; 72];
    on_every_core(duration, move || {
        std::hint::black_box(key.sign(std::hint::black_box(&message)));
        Ok(1)
    })
}

/// Records per second sled stores durably with nothing else to do: batches
/// of `batch` values of `value_len` bytes, each batch applied and flushed,
/// from every core at once.
pub fn sled_batches(duration: Duration, batch: u64, value_len: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let db = sled::open(dir.path().join("baseline")).context("opening sled")?;
    let next = Arc::new(AtomicU64::new(0));
    let value = vec![0x5a; value_len];
    let rate = on_every_core(duration, move || {
        let mut b = sled::Batch::default();
        for _ in 0..batch {
            let key = next.fetch_add(1, Ordering::Relaxed).to_be_bytes();
            b.insert(&key, value.as_slice());
        }
        db.apply_batch(b).context("sled batch")?;
        db.flush().context("sled flush")?;
        Ok(batch)
    })?;
    dir.close().context("removing the baseline store")?;
    Ok(rate)
}

/// Bytes the files under `dir` take on disk.
pub fn disk_usage(dir: &std::path::Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            disk_usage(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// The bytes of every key and value in a closed sled store: what it holds
/// before any storage overhead.
pub fn sled_logical_size(dir: &std::path::Path) -> anyhow::Result<u64> {
    let db = sled::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let mut total = 0;
    for name in db.tree_names() {
        for entry in db.open_tree(name)?.iter() {
            let (k, v) = entry?;
            total += (k.len() + v.len()) as u64;
        }
    }
    Ok(total)
}

/// Starts the peak resident memory of this process afresh (Linux; elsewhere
/// the peak stays the peak since start).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident memory of this process so far, in bytes (Linux).
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The resident memory of this process now, in bytes (Linux).
pub fn current_rss() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")
        .context("reading /proc/self/status (memory is measured on Linux only)")?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/self/status")?;
    Ok(kb * 1024)
}

/// The files (sockets included) this process has open (Linux).
pub fn open_fds() -> anyhow::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")
        .context("reading /proc/self/fd (open files are counted on Linux only)")?
        .count())
}
