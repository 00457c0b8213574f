//! The node's configuration: TOML, unknown keys refused, validated once into
//! [`NodeSettings`]. It holds paths to keys, never key material. Relative
//! paths are read relative to the configuration file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tessera_core::CityCode;

/// Default most records per batch.
pub const DEFAULT_MAX_BATCH: usize = 10_000;
/// Default largest gRPC message, in bytes.
pub const DEFAULT_MAX_MESSAGE: usize = 4 * 1024 * 1024;

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
    /// Not valid TOML for a node, or an unknown key.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with its line.
        message: String,
    },
    /// A value is out of range.
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
struct NodeFile {
    city: String,
    listen: String,
    data_dir: PathBuf,
    #[serde(default)]
    max_batch_records: Option<usize>,
    #[serde(default)]
    max_message_bytes: Option<usize>,
    #[serde(default)]
    store_cache_mb: Option<u64>,
    #[serde(default)]
    max_connections_per_peer: Option<usize>,
    #[serde(default)]
    reload_secs: Option<u64>,
    #[serde(default)]
    connections: tessera_runtime::limits::ConnectionsFile,
    tls: TlsFile,
    badges: BadgesFile,
    #[serde(default)]
    metrics: Option<tessera_runtime::metrics::MetricsFile>,
    #[serde(default)]
    storage: StorageFile,
    #[serde(default)]
    retention: RetentionFile,
    #[serde(default)]
    sunset: Option<SunsetFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SunsetFile {
    #[serde(default)]
    automatic: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageFile {
    #[serde(default)]
    master_key: Option<PathBuf>,
    #[serde(default)]
    backup_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionFile {
    test_days: Option<u32>,
    vaccination_days: Option<u32>,
    exposure_days: Option<u32>,
    travel_days: Option<u32>,
    symptoms_days: Option<u32>,
    badge_days: Option<u32>,
    sweep_secs: Option<u64>,
}

/// The master key's file unless configured, beside the configuration file.
pub const DEFAULT_MASTER_KEY: &str = "master.key";
/// How often expired records are swept unless configured, in seconds.
pub const DEFAULT_SWEEP_SECS: u64 = 3600;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    certificate: PathBuf,
    key: PathBuf,
    root: PathBuf,
    #[serde(default)]
    trust_list: Option<PathBuf>,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    refresh_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BadgesFile {
    certificate: PathBuf,
    #[serde(default)]
    key: Option<PathBuf>,
    #[serde(default)]
    pkcs11: Option<Pkcs11File>,
    #[serde(default)]
    policy: Option<PathBuf>,
    #[serde(default)]
    policies: Vec<PathBuf>,
    #[serde(default)]
    notice_hours: Option<u32>,
}

/// `[badges] pkcs11 = { module, token, key, pin_file }`: the badge-signer
/// key in a PKCS#11 token instead of a key file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pkcs11File {
    module: PathBuf,
    token: String,
    key: String,
    pin_file: PathBuf,
}

/// The least notice, in hours, between a policy's signing and its effective
/// date that the node accepts for every policy but the city's first
/// (`[badges] notice_hours`), unless configured: the gateway's default.
pub const DEFAULT_NOTICE_HOURS: u32 = 48;
/// The longest notice that may be configured: a year.
pub const MAX_NOTICE_HOURS: u32 = 8760;

/// The store's page cache unless configured: enough for a city of a
/// million residents without letting the node grow past 1 GiB
/// (docs/BENCHMARKS.md).
pub const DEFAULT_STORE_CACHE_MB: u64 = 256;

/// A validated node configuration.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// The node's city.
    pub city: CityCode,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The sled directory (also holds the pseudonym key).
    pub data_dir: PathBuf,
    /// Most records per batch.
    pub max_batch_records: usize,
    /// Largest gRPC message.
    pub max_message_bytes: usize,
    /// Memory the store may keep as its page cache, in bytes.
    pub store_cache_bytes: u64,
    /// Connections one remote IP address may hold at once.
    pub max_connections_per_peer: usize,
    /// Every bound on connections and streams (`[connections]`, with
    /// `max_connections_per_peer`).
    pub connections: tessera_runtime::grpc::ConnectionLimits,
    /// How often the TLS and badge-signer certificate and key files are
    /// looked at for a renewal (also at once on SIGHUP).
    pub reload: std::time::Duration,
    /// Where to serve Prometheus metrics (plain HTTP), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Node TLS certificate (PEM).
    pub tls_certificate: PathBuf,
    /// Node TLS key (PEM).
    pub tls_key: PathBuf,
    /// National root certificate (PEM).
    pub root: PathBuf,
    /// A signed trust list to start from, to refuse revoked callers.
    pub trust_list: Option<PathBuf>,
    /// The gateway to fetch newer trust lists from, as host:port.
    pub gateway: Option<String>,
    /// How often to ask the gateway for a newer list.
    pub refresh: std::time::Duration,
    /// Badge-signer certificate (PEM).
    pub signer_certificate: PathBuf,
    /// Badge-signer key (PEM); empty when the key is in a token
    /// (`signer_token`).
    pub signer_key: PathBuf,
    /// The badge-signer key in a PKCS#11 token (`[badges] pkcs11`), in
    /// place of a key file.
    pub signer_token: Option<tessera_certs::pkcs11::TokenKeyRef>,
    /// Scoring policy file (TOML); the built-in default when `None`. The
    /// node signs it itself, in force at once, only when it holds no signed
    /// policy yet (a city's first policy); see docs/POLICY.md.
    pub policy: Option<PathBuf>,
    /// The master key file (`[storage] master_key`); never inside
    /// `data_dir`.
    pub master_key: PathBuf,
    /// Where `BackupStore` may write (`[storage] backup_dir`); no online
    /// backup when `None`. Never inside `data_dir`.
    pub backup_dir: Option<PathBuf>,
    /// How long records and badge states are kept (`[retention]`).
    pub retention: crate::records::Retention,
    /// How often expired records are deleted (`[retention] sweep_secs`).
    pub sweep: std::time::Duration,
    /// `[sunset] automatic`: destroy everything by itself at the trust
    /// list's sunset_at (off unless the city opts in; docs/CONFIG.md).
    pub sunset_automatic: bool,
    /// Signed policy files (`tessera policy sign`), in force from their
    /// effective dates; held together with those in `data_dir/policies`.
    pub policies: Vec<PathBuf>,
    /// The least notice, in seconds, every policy but the city's first must
    /// give (`[badges] notice_hours`).
    pub policy_notice_secs: i64,
}

impl NodeSettings {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                message,
            },
            ConfigError::Invalid { message, .. } => ConfigError::Invalid {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses configuration text; relative paths resolve against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let file: NodeFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: String::new(),
            message: e.to_string(),
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: String::new(),
            message,
        };
        let city: CityCode = file
            .city
            .parse()
            .map_err(|e| invalid(format!("city: {e}")))?;
        let listen: SocketAddr = file.listen.parse().map_err(|_| {
            invalid(format!(
                "listen: {:?} is not an IP:port address",
                file.listen
            ))
        })?;
        let max_batch_records = file.max_batch_records.unwrap_or(DEFAULT_MAX_BATCH);
        if !(1..=1_000_000).contains(&max_batch_records) {
            return Err(invalid("max_batch_records must be 1 to 1000000".into()));
        }
        if file
            .tls
            .refresh_secs
            .is_some_and(|s| !(1..=86_400).contains(&s))
        {
            return Err(invalid("tls.refresh_secs must be 1 to 86400".into()));
        }
        if file.reload_secs.is_some_and(|s| !(1..=86_400).contains(&s)) {
            return Err(invalid("reload_secs must be 1 to 86400".into()));
        }
        let max_message_bytes = file.max_message_bytes.unwrap_or(DEFAULT_MAX_MESSAGE);
        if !(4096..=256 * 1024 * 1024).contains(&max_message_bytes) {
            return Err(invalid(
                "max_message_bytes must be 4096 to 268435456".into(),
            ));
        }
        let store_cache_mb = file.store_cache_mb.unwrap_or(DEFAULT_STORE_CACHE_MB);
        if !(16..=65_536).contains(&store_cache_mb) {
            return Err(invalid("store_cache_mb must be 16 to 65536".into()));
        }
        let max_connections_per_peer = file
            .max_connections_per_peer
            .unwrap_or(tessera_runtime::grpc::DEFAULT_CONNECTIONS_PER_PEER);
        if !(1..=1_000_000).contains(&max_connections_per_peer) {
            return Err(invalid(
                "max_connections_per_peer must be 1 to 1000000".into(),
            ));
        }
        if file.connections.bounds_watches() {
            return Err(invalid(
                "connections.max_watches_per_caller: a node serves no watch stream (the key \
                 belongs in gateway.toml)"
                    .into(),
            ));
        }
        let connections = file
            .connections
            .limits(max_connections_per_peer)
            .map_err(invalid)?;
        let metrics_listen = file
            .metrics
            .as_ref()
            .map(tessera_runtime::metrics::MetricsFile::address)
            .transpose()
            .map_err(invalid)?;
        let retention = retention(&file.retention).map_err(invalid)?;
        let sweep_secs = file.retention.sweep_secs.unwrap_or(DEFAULT_SWEEP_SECS);
        if !(1..=86_400).contains(&sweep_secs) {
            return Err(invalid("retention.sweep_secs must be 1 to 86400".into()));
        }
        let notice_hours = file.badges.notice_hours.unwrap_or(DEFAULT_NOTICE_HOURS);
        if notice_hours > MAX_NOTICE_HOURS {
            return Err(invalid(format!(
                "badges.notice_hours must be 0 to {MAX_NOTICE_HOURS}"
            )));
        }
        let at = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let (signer_key, signer_token) = match (file.badges.key, file.badges.pkcs11) {
            (Some(key), None) => (at(key), None),
            (None, Some(t)) => (
                PathBuf::new(),
                Some(tessera_certs::pkcs11::TokenKeyRef {
                    module: t.module,
                    token: t.token,
                    key: t.key,
                    pin_file: at(t.pin_file),
                }),
            ),
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "[badges] names both a key file (key) and a token (pkcs11): keep one".into(),
                ));
            }
            (None, None) => {
                return Err(invalid(
                    "[badges] needs the badge-signer key: a key file (key = \"badge-signer.key\") or a token (pkcs11 = { module, token, key, pin_file })".into(),
                ));
            }
        };
        Ok(Self {
            city,
            listen,
            data_dir: at(file.data_dir),
            max_batch_records,
            max_message_bytes,
            store_cache_bytes: store_cache_mb * 1024 * 1024,
            max_connections_per_peer,
            connections,
            reload: std::time::Duration::from_secs(
                file.reload_secs
                    .unwrap_or(tessera_runtime::reload::DEFAULT_RELOAD_SECS),
            ),
            metrics_listen,
            tls_certificate: at(file.tls.certificate),
            tls_key: at(file.tls.key),
            root: at(file.tls.root),
            trust_list: file.tls.trust_list.map(at),
            gateway: file.tls.gateway,
            refresh: std::time::Duration::from_secs(file.tls.refresh_secs.unwrap_or(30)),
            signer_certificate: at(file.badges.certificate),
            signer_key,
            signer_token,
            policy: file.badges.policy.map(at),
            master_key: at(file
                .storage
                .master_key
                .unwrap_or_else(|| PathBuf::from(DEFAULT_MASTER_KEY))),
            backup_dir: file.storage.backup_dir.map(at),
            retention,
            sweep: std::time::Duration::from_secs(sweep_secs),
            sunset_automatic: file.sunset.is_some_and(|s| s.automatic),
            policies: file.badges.policies.into_iter().map(at).collect(),
            policy_notice_secs: i64::from(notice_hours) * 3600,
        })
    }
}

fn retention(file: &RetentionFile) -> Result<crate::records::Retention, String> {
    let default = crate::records::Retention::default();
    let days = |name: &str, value: Option<u32>, default: u32| {
        let days = value.unwrap_or(default);
        if crate::records::Retention::RANGE.contains(&days) {
            Ok(days)
        } else {
            Err(format!("retention.{name} must be 1 to 3650 (days)"))
        }
    };
    Ok(crate::records::Retention {
        test_days: days("test_days", file.test_days, default.test_days)?,
        vaccination_days: days(
            "vaccination_days",
            file.vaccination_days,
            default.vaccination_days,
        )?,
        exposure_days: days("exposure_days", file.exposure_days, default.exposure_days)?,
        travel_days: days("travel_days", file.travel_days, default.travel_days)?,
        symptoms_days: days("symptoms_days", file.symptoms_days, default.symptoms_days)?,
        badge_days: days("badge_days", file.badge_days, default.badge_days)?,
    })
}

/// The configuration the authority ships in a city's bundle directory, next
/// to the certificates and keys it names. `listen` is the enrolled endpoint
/// when it is an IP address, else all interfaces on its port.
pub fn bundle_config(city: CityCode, endpoint: &str) -> String {
    let listen = tessera_runtime::grpc::listen_address(endpoint, 7101);
    format!(
        r#"# tessera city node {city}: `tessera node run --config node.toml`
# Paths are relative to this file. See docs/node.toml for every setting.
city = "{city}"
listen = "{listen}"
data_dir = "data"

[tls]
certificate = "node.crt"
key = "node.key"
root = "root.crt"

[badges]
certificate = "badge-signer.crt"
key = "badge-signer.key"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_configuration_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/node.toml");
        let settings = NodeSettings::load(&path).unwrap();
        assert_eq!(settings.city.get(), 330_100);
        assert_eq!(settings.max_batch_records, 10_000);
        assert!(settings.tls_key.ends_with("node.key"));
        assert!(settings.trust_list.is_some());
        assert!(!settings.sunset_automatic);
        assert_eq!(
            settings.connections,
            tessera_runtime::grpc::ConnectionLimits::default(),
            "the sample's [connections] shows the defaults"
        );
    }

    #[test]
    fn connection_limits_are_read_and_checked() {
        let good = bundle_config("330100".parse().unwrap(), "127.0.0.1:7101");
        let base = Path::new(".");
        let s = NodeSettings::parse(
            &format!("{good}\n[connections]\nmax_concurrent_streams = 8\nidle_timeout_secs = 2\n"),
            base,
        )
        .unwrap();
        assert_eq!(s.connections.max_concurrent_streams, 8);
        assert_eq!(s.connections.idle_timeout.as_secs(), 2);
        for (text, why) in [
            (
                "max_concurrent_streams = 0",
                "max_concurrent_streams must be",
            ),
            ("max_watches_per_caller = 2", "serves no watch stream"),
            ("keepalive_secs = 0", "keepalive_secs must be"),
        ] {
            let err =
                NodeSettings::parse(&format!("{good}\n[connections]\n{text}\n"), base).unwrap_err();
            assert!(err.to_string().contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn the_bundle_configuration_parses() {
        let city: CityCode = "330100".parse().unwrap();
        let settings =
            NodeSettings::parse(&bundle_config(city, "127.0.0.1:7101"), Path::new("/b")).unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:7101");
        assert_eq!(settings.data_dir, Path::new("/b/data"));
        assert_eq!(settings.master_key, Path::new("/b/master.key"));
        assert_eq!(settings.retention, crate::records::Retention::default());
        assert_eq!(settings.sweep.as_secs(), DEFAULT_SWEEP_SECS);
        let settings =
            NodeSettings::parse(&bundle_config(city, "hz.example:7443"), Path::new("/b")).unwrap();
        assert_eq!(settings.listen.to_string(), "0.0.0.0:7443");
    }

    #[test]
    fn the_badge_signer_key_is_a_file_or_a_token_never_both_nor_neither() {
        let good = bundle_config("330100".parse().unwrap(), "127.0.0.1:7101");
        let base = Path::new("/b");
        let file = NodeSettings::parse(&good, base).unwrap();
        assert_eq!(file.signer_key, Path::new("/b/badge-signer.key"));
        assert!(file.signer_token.is_none());
        let token_line = r#"pkcs11 = { module = "/usr/lib/softhsm/libsofthsm2.so", token = "hangzhou", key = "hz-badge-signer", pin_file = "token.pin" }"#;
        let in_token = good.replace(r#"key = "badge-signer.key""#, token_line);
        let token = NodeSettings::parse(&in_token, base)
            .unwrap()
            .signer_token
            .unwrap();
        assert_eq!(token.module, Path::new("/usr/lib/softhsm/libsofthsm2.so"));
        assert_eq!(
            (token.token.as_str(), token.key.as_str()),
            ("hangzhou", "hz-badge-signer")
        );
        assert_eq!(token.pin_file, Path::new("/b/token.pin"));
        let both = good.replace(
            r#"key = "badge-signer.key""#,
            &format!("key = \"badge-signer.key\"\n{token_line}"),
        );
        let err = NodeSettings::parse(&both, base).unwrap_err().to_string();
        assert!(
            err.contains("names both a key file (key) and a token (pkcs11)"),
            "{err}"
        );
        let neither = good.replace(r#"key = "badge-signer.key""#, "");
        let err = NodeSettings::parse(&neither, base).unwrap_err().to_string();
        assert!(err.contains("[badges] needs the badge-signer key"), "{err}");
        // The PIN itself has no place in the configuration.
        let pin = in_token.replace(r#"pin_file = "token.pin""#, r#"pin = "1234""#);
        assert!(NodeSettings::parse(&pin, base).is_err());
    }

    #[test]
    fn sunset_is_manual_unless_the_city_opts_in() {
        let good = bundle_config("330100".parse().unwrap(), "127.0.0.1:7101");
        let base = Path::new(".");
        assert!(!NodeSettings::parse(&good, base).unwrap().sunset_automatic);
        let off = format!("{good}\n[sunset]\n");
        assert!(!NodeSettings::parse(&off, base).unwrap().sunset_automatic);
        let on = format!("{good}\n[sunset]\nautomatic = true\n");
        assert!(NodeSettings::parse(&on, base).unwrap().sunset_automatic);
        let typo = format!("{good}\n[sunset]\nautomatc = true\n");
        assert!(matches!(
            NodeSettings::parse(&typo, base),
            Err(ConfigError::Parse { .. })
        ));
        let wrong_type = format!("{good}\n[sunset]\nautomatic = \"yes\"\n");
        assert!(matches!(
            NodeSettings::parse(&wrong_type, base),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn broken_configurations_say_what_is_wrong() {
        let good = bundle_config("330100".parse().unwrap(), "127.0.0.1:7101");
        let unknown = format!("{good}\n[extra]\nkey = 1\n");
        assert!(matches!(
            NodeSettings::parse(&unknown, Path::new(".")),
            Err(ConfigError::Parse { .. })
        ));
        let typo = good.replace("listen =", "listne =");
        assert!(matches!(
            NodeSettings::parse(&typo, Path::new(".")),
            Err(ConfigError::Parse { .. })
        ));
        let bad_city = good.replace("\"330100\"", "\"330000\"");
        let err = NodeSettings::parse(&bad_city, Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("province code"), "{err}");
        let bad_listen = good.replace("127.0.0.1:7101", "localhost");
        assert!(NodeSettings::parse(&bad_listen, Path::new(".")).is_err());
        let short = format!("{good}\n[retention]\ntest_days = 0\n");
        let err = NodeSettings::parse(&short, Path::new(".")).unwrap_err();
        assert!(
            err.to_string()
                .contains("retention.test_days must be 1 to 3650"),
            "{err}"
        );
        let typo = format!("{good}\n[retention]\ntests_days = 3\n");
        assert!(matches!(
            NodeSettings::parse(&typo, Path::new(".")),
            Err(ConfigError::Parse { .. })
        ));
        let missing = Path::new("/no/such/node.toml");
        assert!(matches!(
            NodeSettings::load(missing),
            Err(ConfigError::Read { .. })
        ));
    }
}
