//! The gateway's configuration: TOML, unknown keys refused, validated once
//! into [`GatewaySettings`]. Paths to keys, never key material; relative
//! paths are read relative to the configuration file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid TOML for a gateway, an unknown key, or a value out of range.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewayFile {
    listen: String,
    data_dir: PathBuf,
    #[serde(default)]
    max_message_bytes: Option<usize>,
    #[serde(default)]
    max_connections_per_peer: Option<usize>,
    #[serde(default)]
    reload_secs: Option<u64>,
    #[serde(default)]
    connections: tessera_runtime::limits::ConnectionsFile,
    tls: TlsFile,
    #[serde(default)]
    relay: RelayFile,
    #[serde(default)]
    metrics: Option<tessera_runtime::metrics::MetricsFile>,
    follow: Option<FollowFile>,
    #[serde(default)]
    policy: PolicyFile,
    #[serde(default)]
    public: Option<PublicFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicFile {
    listen: String,
    max_connections: Option<usize>,
}

/// The public, read-only copy of the trust list and every city's scoring
/// policies (`[public]`): HTTPS with the gateway's certificate, no client
/// certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicSettings {
    /// Where to serve it.
    pub listen: SocketAddr,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
}

impl PublicSettings {
    /// Default of `max_connections`.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    notice_hours: Option<u32>,
}

/// Notice a city gives before a new scoring policy comes into force, unless
/// configured (`[policy] notice_hours`).
pub const DEFAULT_NOTICE_HOURS: u32 = 48;
/// Longest notice that may be configured: one year.
pub const MAX_NOTICE_HOURS: u32 = 8760;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FollowFile {
    peer: String,
    refresh_secs: Option<u64>,
    retry_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    certificate: PathBuf,
    key: PathBuf,
    root: PathBuf,
    #[serde(default)]
    trust_list: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RelayFile {
    enabled: Option<bool>,
    timeout_ms: Option<u64>,
    concurrency_per_node: Option<usize>,
    cache_ttl_ms: Option<u64>,
    breaker_failures: Option<u32>,
    breaker_open_ms: Option<u64>,
}

/// How the relay to city nodes behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelaySettings {
    /// Whether status checks are relayed at all. Off, verdicts rest on the
    /// signature and the trust list alone, like an offline check, and say so.
    pub enabled: bool,
    /// Deadline of one status check, retry included.
    pub timeout: Duration,
    /// `CheckStatus` calls in flight to one node at most; checks that arrive
    /// meanwhile wait and go out together in the next call.
    pub concurrency_per_node: usize,
    /// How long a status answer is reused; zero disables the cache.
    pub cache_ttl: Duration,
    /// Consecutive failures that open a node's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before one probe.
    pub breaker_open: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            timeout: Duration::from_millis(800),
            concurrency_per_node: 4,
            cache_ttl: Duration::from_secs(5),
            breaker_failures: 5,
            breaker_open: Duration::from_secs(5),
        }
    }
}

/// Another gateway whose trust list this one follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowSettings {
    /// The peer gateway, `host:port`; its certificate must name the host.
    pub peer: String,
    /// The watch on the peer is reopened, so the peer is asked, at least
    /// this often.
    pub refresh: Duration,
    /// How long to wait before connecting again after a failure.
    pub retry: Duration,
}

impl FollowSettings {
    /// Default of `refresh`.
    pub const DEFAULT_REFRESH: Duration = Duration::from_secs(30);
    /// Default of `retry`.
    pub const DEFAULT_RETRY: Duration = Duration::from_secs(2);
}

/// A validated gateway configuration.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The sled directory of the trust registry.
    pub data_dir: PathBuf,
    /// Largest gRPC message.
    pub max_message_bytes: usize,
    /// Connections one remote IP address may hold at once.
    pub max_connections_per_peer: usize,
    /// Every bound on connections and streams (`[connections]`, with
    /// `max_connections_per_peer`).
    pub connections: tessera_runtime::grpc::ConnectionLimits,
    /// How often the TLS certificate and key files are looked at for a
    /// renewal (also at once on SIGHUP).
    pub reload: Duration,
    /// Where to serve Prometheus metrics (plain HTTP), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Gateway TLS certificate (PEM).
    pub tls_certificate: PathBuf,
    /// Gateway TLS key (PEM).
    pub tls_key: PathBuf,
    /// National root certificate (PEM).
    pub root: PathBuf,
    /// A signed trust list to start from when the registry holds none.
    pub trust_list: Option<PathBuf>,
    /// The relay.
    pub relay: RelaySettings,
    /// The peer gateway whose trust lists this one installs, if any.
    pub follow: Option<FollowSettings>,
    /// Hours between publication and effect that a city's second and later
    /// scoring policies must leave (`[policy] notice_hours`, 48 unless set;
    /// 0 only for test federations).
    pub notice_hours: u32,
    /// The public copy (`[public]`), if served.
    pub public: Option<PublicSettings>,
}

impl GatewaySettings {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, path.parent().unwrap_or(Path::new("."))).map_err(|message| {
            ConfigError::Invalid {
                path: path.display().to_string(),
                message,
            }
        })
    }

    /// Parses configuration text; relative paths resolve against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, String> {
        let file: GatewayFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let listen = file
            .listen
            .parse()
            .map_err(|_| format!("listen: {:?} is not an IP:port address", file.listen))?;
        let max_message_bytes = file.max_message_bytes.unwrap_or(4 * 1024 * 1024);
        if !(4096..=64 * 1024 * 1024).contains(&max_message_bytes) {
            return Err("max_message_bytes must be 4096 to 67108864".into());
        }
        let max_connections_per_peer = file
            .max_connections_per_peer
            .unwrap_or(tessera_runtime::grpc::DEFAULT_CONNECTIONS_PER_PEER);
        if !(1..=1_000_000).contains(&max_connections_per_peer) {
            return Err("max_connections_per_peer must be 1 to 1000000".into());
        }
        if file.reload_secs.is_some_and(|s| !(1..=86_400).contains(&s)) {
            return Err("reload_secs must be 1 to 86400".into());
        }
        let connections = file.connections.limits(max_connections_per_peer)?;
        let d = RelaySettings::default();
        let r = file.relay;
        let relay = RelaySettings {
            enabled: r.enabled.unwrap_or(d.enabled),
            timeout: r.timeout_ms.map_or(d.timeout, Duration::from_millis),
            concurrency_per_node: r.concurrency_per_node.unwrap_or(d.concurrency_per_node),
            cache_ttl: r.cache_ttl_ms.map_or(d.cache_ttl, Duration::from_millis),
            breaker_failures: r.breaker_failures.unwrap_or(d.breaker_failures),
            breaker_open: r
                .breaker_open_ms
                .map_or(d.breaker_open, Duration::from_millis),
        };
        if relay.timeout.is_zero() || relay.timeout > Duration::from_secs(30) {
            return Err("relay.timeout_ms must be 1 to 30000".into());
        }
        if !(1..=1024).contains(&relay.concurrency_per_node) {
            return Err("relay.concurrency_per_node must be 1 to 1024".into());
        }
        if !(1..=1000).contains(&relay.breaker_failures) {
            return Err("relay.breaker_failures must be 1 to 1000".into());
        }
        if relay.breaker_open.is_zero() || relay.breaker_open > Duration::from_secs(600) {
            return Err("relay.breaker_open_ms must be 1 to 600000".into());
        }
        if relay.cache_ttl > Duration::from_secs(60) {
            return Err(
                "relay.cache_ttl_ms must be at most 60000: a revocation shows only after it".into(),
            );
        }
        let follow = file.follow.map(parse_follow).transpose()?;
        let notice_hours = file.policy.notice_hours.unwrap_or(DEFAULT_NOTICE_HOURS);
        if notice_hours > MAX_NOTICE_HOURS {
            return Err(format!(
                "policy.notice_hours must be 0 to {MAX_NOTICE_HOURS} (0 only for test federations)"
            ));
        }
        let public = file.public.map(parse_public).transpose()?;
        let at = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        Ok(Self {
            listen,
            data_dir: at(file.data_dir),
            max_message_bytes,
            max_connections_per_peer,
            connections,
            reload: Duration::from_secs(
                file.reload_secs
                    .unwrap_or(tessera_runtime::reload::DEFAULT_RELOAD_SECS),
            ),
            metrics_listen: file
                .metrics
                .as_ref()
                .map(tessera_runtime::metrics::MetricsFile::address)
                .transpose()?,
            tls_certificate: at(file.tls.certificate),
            tls_key: at(file.tls.key),
            root: at(file.tls.root),
            trust_list: file.tls.trust_list.map(at),
            relay,
            follow,
            notice_hours,
            public,
        })
    }
}

fn parse_public(p: PublicFile) -> Result<PublicSettings, String> {
    let listen = p
        .listen
        .parse()
        .map_err(|_| format!("public.listen: {:?} is not an IP:port address", p.listen))?;
    let max_connections = p
        .max_connections
        .unwrap_or(PublicSettings::DEFAULT_MAX_CONNECTIONS);
    if !(1..=65_536).contains(&max_connections) {
        return Err("public.max_connections must be 1 to 65536".into());
    }
    Ok(PublicSettings {
        listen,
        max_connections,
    })
}

fn parse_follow(f: FollowFile) -> Result<FollowSettings, String> {
    let valid_peer = f
        .peer
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !valid_peer {
        return Err(format!(
            "follow.peer: {:?} is not a host:port endpoint",
            f.peer
        ));
    }
    if f.refresh_secs.is_some_and(|s| !(1..=86_400).contains(&s)) {
        return Err("follow.refresh_secs must be 1 to 86400".into());
    }
    if f.retry_ms.is_some_and(|ms| !(100..=600_000).contains(&ms)) {
        return Err("follow.retry_ms must be 100 to 600000".into());
    }
    Ok(FollowSettings {
        peer: f.peer,
        refresh: f
            .refresh_secs
            .map_or(FollowSettings::DEFAULT_REFRESH, Duration::from_secs),
        retry: f
            .retry_ms
            .map_or(FollowSettings::DEFAULT_RETRY, Duration::from_millis),
    })
}

/// The configuration the authority ships in a gateway's bundle directory.
pub fn bundle_config(endpoint: &str) -> String {
    let listen = tessera_runtime::grpc::listen_address(endpoint, 7000);
    format!(
        r#"# tessera national gateway: `tessera gateway run --config gateway.toml`
# Paths are relative to this file. See docs/gateway.toml for every setting.
listen = "{listen}"
data_dir = "data"

[tls]
certificate = "gateway.crt"
key = "gateway.key"
root = "root.crt"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_notice_hours_defaults_to_48_and_is_bounded() {
        let good = bundle_config("127.0.0.1:7000");
        let s = GatewaySettings::parse(&good, Path::new(".")).unwrap();
        assert_eq!(s.notice_hours, 48);
        let s = GatewaySettings::parse(
            &format!("{good}\n[policy]\nnotice_hours = 0\n"),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(s.notice_hours, 0);
        let e = GatewaySettings::parse(
            &format!("{good}\n[policy]\nnotice_hours = 8761\n"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.contains("policy.notice_hours must be 0 to 8760"), "{e}");
        let e = GatewaySettings::parse(
            &format!("{good}\n[policy]\nnotice_days = 2\n"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(e.contains("notice_days"), "{e}");
    }

    #[test]
    fn the_sample_and_bundle_configurations_parse() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/gateway.toml");
        let s = GatewaySettings::load(&path).unwrap();
        assert_eq!(s.relay, RelaySettings::default());
        assert_eq!(
            s.connections,
            tessera_runtime::grpc::ConnectionLimits::default(),
            "the sample's [connections] shows the defaults"
        );
        assert_eq!(s.notice_hours, DEFAULT_NOTICE_HOURS);
        assert!(s.trust_list.is_some());
        assert_eq!(s.follow, None, "the sample's [follow] is commented out");
        // The sample's commented-out [follow] section, switched on, parses.
        let text = std::fs::read_to_string(&path).unwrap();
        let on: String = text
            .lines()
            .map(|l| {
                let keys = [
                    "# [follow]",
                    "# peer =",
                    "# refresh_secs =",
                    "# retry_ms =",
                    "# [public]",
                    "# listen =",
                    "# max_connections =",
                ];
                if keys.iter().any(|k| l.starts_with(k)) {
                    &l[2..]
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let s = GatewaySettings::parse(&on, Path::new("/g")).unwrap();
        assert_eq!(
            s.follow,
            Some(FollowSettings {
                peer: "gateway-north.example.cn:7000".into(),
                refresh: FollowSettings::DEFAULT_REFRESH,
                retry: FollowSettings::DEFAULT_RETRY,
            })
        );
        assert_eq!(
            s.public,
            Some(PublicSettings {
                listen: "0.0.0.0:8443".parse().unwrap(),
                max_connections: PublicSettings::DEFAULT_MAX_CONNECTIONS,
            }),
            "the sample's [public] section, switched on"
        );
        assert_eq!(
            GatewaySettings::load(&path).unwrap().public,
            None,
            "the sample's [public] is commented out"
        );
        let s = GatewaySettings::parse(&bundle_config("127.0.0.1:7000"), Path::new("/g")).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(s.follow, None);
        assert_eq!(s.data_dir, Path::new("/g/data"));
    }

    #[test]
    fn the_public_copy_is_off_unless_configured_and_bounded() {
        let good = bundle_config("127.0.0.1:7000");
        assert_eq!(
            GatewaySettings::parse(&good, Path::new("."))
                .unwrap()
                .public,
            None
        );
        let s = GatewaySettings::parse(
            &format!("{good}\n[public]\nlisten = \"0.0.0.0:8443\"\n"),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(
            s.public,
            Some(PublicSettings {
                listen: "0.0.0.0:8443".parse().unwrap(),
                max_connections: PublicSettings::DEFAULT_MAX_CONNECTIONS,
            })
        );
        for (public, why) in [
            ("listen = \"8443\"", "public.listen"),
            (
                "listen = \"0.0.0.0:8443\"\nmax_connections = 0",
                "max_connections",
            ),
            ("listen = \"0.0.0.0:8443\"\nport = 1", "port"),
        ] {
            let e =
                GatewaySettings::parse(&format!("{good}\n[public]\n{public}\n"), Path::new("."))
                    .unwrap_err();
            assert!(e.contains(why), "{public}: {e}");
        }
    }

    #[test]
    fn broken_configurations_are_refused() {
        let good = bundle_config("127.0.0.1:7000");
        assert!(
            GatewaySettings::parse(&format!("{good}\n[relay]\ntimeout = 5\n"), Path::new("."))
                .is_err()
        );
        assert!(
            GatewaySettings::parse(
                &format!("{good}\n[relay]\ntimeout_ms = 0\n"),
                Path::new(".")
            )
            .is_err()
        );
        assert!(
            GatewaySettings::parse(
                &format!("{good}\n[relay]\ncache_ttl_ms = 600000\n"),
                Path::new(".")
            )
            .is_err()
        );
        for (relay, why) in [
            ("breaker_open_ms = 0", "breaker_open_ms"),
            ("breaker_open_ms = 18446744073709551615", "breaker_open_ms"),
            ("concurrency_per_node = 100000000", "concurrency_per_node"),
            ("breaker_failures = 0", "breaker_failures"),
        ] {
            let e = GatewaySettings::parse(&format!("{good}\n[relay]\n{relay}\n"), Path::new("."))
                .unwrap_err();
            assert!(e.contains(why), "{relay}: {e}");
        }
        assert!(GatewaySettings::parse(&good.replace("listen", "lisen"), Path::new(".")).is_err());
        for (connections, why) in [
            (
                "max_watches_per_caller = 0",
                "max_watches_per_caller must be",
            ),
            ("idle_timeout_secs = 86401", "idle_timeout_secs must be"),
            ("listen_backlog = 70000", "listen_backlog must be"),
        ] {
            let e = GatewaySettings::parse(
                &format!("{good}\n[connections]\n{connections}\n"),
                Path::new("."),
            )
            .unwrap_err();
            assert!(e.contains(why), "{connections}: {e}");
        }
        let s = GatewaySettings::parse(
            &format!("connections = {{ max_watches_per_caller = 2 }}\n{good}"),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(s.connections.max_watches_per_caller, 2);
        for follow in [
            "peer = \"127.0.0.1\"",
            "peer = \":7000\"",
            "peer = \"127.0.0.1:7000\"\nrefresh_secs = 0",
            "peer = \"127.0.0.1:7000\"\nretry_ms = 5",
            "peer = \"127.0.0.1:7000\"\nretry = 5",
            "refresh_secs = 5",
        ] {
            assert!(
                GatewaySettings::parse(&format!("{good}\n[follow]\n{follow}\n"), Path::new("."))
                    .is_err(),
                "{follow}"
            );
        }
        let s = GatewaySettings::parse(
            &format!(
                "{good}\n[follow]\npeer = \"127.0.0.1:7001\"\nrefresh_secs = 5\nretry_ms = 250\n"
            ),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(
            s.follow,
            Some(FollowSettings {
                peer: "127.0.0.1:7001".into(),
                refresh: Duration::from_secs(5),
                retry: Duration::from_millis(250),
            })
        );
    }
}
