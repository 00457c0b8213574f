//! The checkpoint scenario: checks per second `checkpoint serve` relays
//! over its one mutual-TLS connection to the gateway, for devices calling
//! `POST /api/verify` over HTTPS (one keep-alive connection per call in
//! flight), beside the gateway's own Verify over one connection, measured
//! in the same run (D1).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tessera_checkpoint::devices::Devices;
use tessera_checkpoint::{Settings, Station};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

use super::BenchArgs;
use super::fixture::Fixture;
use super::load::{self, Plan};
use super::report::Report;
use super::scenarios::{Walk, badges_for, verify_window};
use crate::creds;

type Conn = BufReader<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// One device's keep-alive HTTPS connection to the station.
struct Device {
    port: u16,
    tls: tokio_rustls::TlsConnector,
    token: String,
    conn: Mutex<Option<Conn>>,
}

impl Device {
    async fn connect(&self) -> Result<Conn, String> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        Ok(BufReader::new(tls))
    }

    /// One check; the outcome must be VALID.
    async fn check(&self, qr_text: &str) -> Result<u64, String> {
        let mut slot = self.conn.lock().await;
        if slot.is_none() {
            *slot = Some(self.connect().await?);
        }
        let conn = slot.as_mut().ok_or("no connection")?;
        let body = serde_json::json!({ "qr_text": qr_text }).to_string();
        let request = format!(
            "POST /api/verify HTTP/1.1\r\nhost: station\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            self.token,
            body.len()
        );
        let answer = async {
            conn.get_mut().write_all(request.as_bytes()).await?;
            let mut status = String::new();
            conn.read_line(&mut status).await?;
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                conn.read_line(&mut line).await?;
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            conn.read_exact(&mut body).await?;
            std::io::Result::Ok((status, body))
        }
        .await;
        let (status, body) = match answer {
            Ok(a) => a,
            Err(e) => {
                *slot = None;
                return Err(e.to_string());
            }
        };
        if !status.starts_with("HTTP/1.1 200") {
            *slot = None;
            return Err(format!(
                "{} {}",
                status.trim(),
                String::from_utf8_lossy(&body)
            ));
        }
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        if v["outcome"] == "VALID" {
            Ok(1)
        } else {
            Err(format!("verdict {}", v["outcome"]))
        }
    }
}

/// `tessera bench checkpoint`.
pub async fn checkpoint(args: &BenchArgs, e: f64, report: &mut Report) -> anyhow::Result<()> {
    let fx = Fixture::start(&args.relay()).await?;
    let badges = badges_for("checkpoint", &fx, args.badges, report).await?;
    let texts: Arc<Vec<String>> = Arc::new(
        badges
            .iter()
            .map(|b| tessera_core::text::to_text(b))
            .collect(),
    );

    // D1: the gateway's own Verify over one connection, the station's share.
    let walk = Walk::default();
    let one = Arc::new(fx.gateway_clients(1)?);
    let d1 = load::median_of(args.runs, || {
        verify_window(&one, args.plan(), &badges, &walk)
    })
    .await?;
    report.sample("gateway Verify over one connection (D1)", &d1);

    let data = tempfile::tempdir().context("creating the station's data directory")?;
    let l = &fx.fed.layout;
    let (identity, trust) = creds::bundle(&l.checkpoint)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let station = Station::load(
        identity,
        trust,
        Settings {
            gateway: l.gateway.to_string(),
            data: data.path().to_path_buf(),
            tls: None,
            host: "127.0.0.1".into(),
            refresh: Duration::from_secs(60),
            max_connections: args.concurrency.max(1) + 8,
        },
    )?;
    station.announce(port)?;
    let counters = station.counters();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(station.serve(listener, async move {
        let _ = stopped.await;
    }));
    let devices = Devices::new(data.path());
    let now = crate::fmt::now();
    let token = devices.pair(&devices.new_code(now)?, now)?.token;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(
        data.path().join("station.crt"),
    )?)?;
    let config = rustls::ClientConfig::builder_with_provider(tessera_runtime::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config));
    let devices: Arc<Vec<Device>> = Arc::new(
        (0..args.concurrency.max(1))
            .map(|_| Device {
                port,
                tls: tls.clone(),
                token: token.clone(),
                conn: Mutex::new(None),
            })
            .collect(),
    );
    let plan = Plan { ..args.plan() };
    let sample = load::median_of(args.runs, || {
        let (devices, texts, walk) = (Arc::clone(&devices), Arc::clone(&texts), walk.clone());
        load::drive(plan, move |worker, _| {
            let devices = Arc::clone(&devices);
            let seq = walk.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let text = texts[(seq % texts.len() as u64) as usize].clone();
            async move { devices[worker % devices.len()].check(&text).await }
        })
    })
    .await?;
    let _ = stop.send(());
    let _ = serving.await;
    report.sample(
        format!(
            "checkpoint serve /api/verify ({} HTTPS devices, one gateway connection)",
            args.concurrency
        ),
        &sample,
    );
    report.note(format!(
        "checkpoint: the station counted {} VALID checks",
        counters.checks("VALID")
    ));
    report.ratio("checkpoint / D1", sample.per_second() / d1.per_second());
    report.ratio("checkpoint / E", sample.per_second() / e);
    fx.stop().await?;
    Ok(())
}
