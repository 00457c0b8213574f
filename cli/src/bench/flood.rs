//! A stream flood against a gateway process: one mutual-TLS connection
//! opens --streams `VerifyBatch` streams at once, ignoring the limit the
//! gateway announces, in raw HTTP/2 frames (a well-behaved client waits for
//! a free stream instead). Reports what the gateway did with them (held
//! open, refused, the connection closed after
//! `grpc::MAX_RESETS_PER_CONNECTION` refusals) and its resident memory
//! before, during and after, over three floods in a row.

use std::time::{Duration, Instant};

use anyhow::Context;
use tessera_core::Role;
use tessera_runtime::tls;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::idle::{connect, rss, spawn_gateway, wait_listening};
use super::report::{Report, num};
use crate::creds;
use crate::federation::Layout;

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const REFUSED_STREAM: u32 = 0x7;

/// What the gateway did with one flood.
#[derive(Debug, Default)]
struct Outcome {
    announced: Option<u32>,
    refused: u64,
    /// The last stream the gateway processed and the code, if it closed
    /// the connection with GOAWAY.
    goaway: Option<(u32, u32)>,
    peak_rss: u64,
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(0).to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Literal HPACK fields (no indexing, no Huffman) of a VerifyBatch call.
fn verify_batch_headers() -> Vec<u8> {
    let mut block = vec![];
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "https"),
        (":path", "/tessera.v1.Gateway/VerifyBatch"),
        (":authority", "127.0.0.1"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        block.push(0);
        for s in [name, value] {
            block.push(u8::try_from(s.len()).unwrap_or(0));
            block.extend_from_slice(s.as_bytes());
        }
    }
    block
}

/// Opens `streams` streams on one connection and reads the gateway's
/// answers until it closes the connection or answers a ping sent after the
/// last stream; samples the gateway's memory meanwhile.
async fn flood(layout: &Layout, pid: u32, streams: u32) -> anyhow::Result<Outcome> {
    let (identity, trust) = creds::bundle(&layout.checkpoint)?;
    let config = tls::client_config(&identity, trust, Role::Gateway)?;
    let tcp = TcpStream::connect(layout.gateway).await?;
    let name = rustls_pki_types::ServerName::IpAddress(layout.gateway.ip().into());
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .context("TLS handshake with the gateway")?;
    let (mut rx, mut tx) = tokio::io::split(tls);
    let block = verify_batch_headers();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out.extend(frame(SETTINGS, ACK, 0, &[]));
    for i in 0..streams {
        out.extend(frame(HEADERS, END_HEADERS, 2 * i + 1, &block));
    }
    out.extend(frame(PING, 0, 0, b"floodend"));
    // The gateway may close the connection while this is still written.
    let writer = tokio::spawn(async move {
        let _ = tx.write_all(&out).await;
        tx
    });
    let mut outcome = Outcome::default();
    let mut last_sample = Instant::now();
    let read = async {
        let mut head = [0u8; 9];
        while rx.read_exact(&mut head).await.is_ok() {
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; len];
            if rx.read_exact(&mut payload).await.is_err() {
                break;
            }
            let word = |at: usize| {
                payload
                    .get(at..at + 4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            };
            match (head[3], head[4]) {
                (SETTINGS, 0) => {
                    outcome.announced = payload.chunks_exact(6).find_map(|s| {
                        (u16::from_be_bytes([s[0], s[1]]) == 0x3)
                            .then(|| u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
                    });
                }
                (RST_STREAM, _) if word(0) == Some(REFUSED_STREAM) => outcome.refused += 1,
                (GOAWAY, _) => outcome.goaway = word(0).zip(word(4)),
                (PING, flags) if flags & ACK != 0 => break,
                _ => {}
            }
            if last_sample.elapsed() > Duration::from_millis(100) {
                outcome.peak_rss = outcome.peak_rss.max(rss(pid)?);
                last_sample = Instant::now();
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .context("the gateway neither answered nor closed within 120 s")??;
    // Memory with the streams the gateway accepted still open.
    outcome.peak_rss = outcome.peak_rss.max(rss(pid)?);
    drop(rx);
    drop(writer.await);
    Ok(outcome)
}

/// Three floods of `streams` streams in a row at a gateway process with
/// the default limits; reports its memory.
pub async fn stream_flood(streams: u32, report: &mut Report) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let (layout, listeners) = Layout::create(dir.path(), 0, "").await?;
    drop(listeners);
    let gateway = spawn_gateway(&layout.gateway_bundle)?;
    let pid = gateway.0.id();
    wait_listening(layout.gateway).await?;
    connect(&layout, 1).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss(pid)?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let mut peak = 0;
    let mut after = 0;
    for round in 1..=3 {
        let o = flood(&layout, pid, streams).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        after = rss(pid)?;
        peak = peak.max(o.peak_rss);
        // A GOAWAY names the last stream the gateway took: those up to it
        // were held open, the refused ones all came after.
        let held = o.goaway.map_or_else(
            || u64::from(streams).saturating_sub(o.refused),
            |(last, _)| u64::from(last).div_ceil(2),
        );
        report.note(format!(
            "stream-flood {round}: {} streams on one connection; limit announced {}; {} held open, \
             {} refused (REFUSED_STREAM){}; gateway RSS {:.1} MiB before, {:.1} MiB at most \
             during, {:.1} MiB 2 s after",
            num(f64::from(streams)),
            o.announced.map_or_else(|| "none".into(), |n| n.to_string()),
            held,
            o.refused,
            o.goaway.map_or_else(String::new, |(_, code)| format!(
                ", then the connection closed (GOAWAY code {code}), the rest unread"
            )),
            mib(before),
            mib(o.peak_rss),
            mib(after)
        ));
    }
    // Still serving after the floods.
    connect(&layout, 1).await?;
    report.target(
        &format!(
            "gateway RSS during floods of {} streams",
            num(f64::from(streams))
        ),
        mib(peak),
        100.0,
        true,
        " MiB",
    );
    report.target(
        "gateway RSS growth after three floods",
        mib(after.saturating_sub(before)),
        16.0,
        true,
        " MiB",
    );
    drop(gateway);
    dir.close().context("removing the benchmark's directory")?;
    Ok(())
}
