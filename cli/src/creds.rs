//! Credentials from a bundle directory the authority wrote: one role
//! certificate and key (e.g. verifier.crt, verifier.key) and root.crt.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tessera_certs::keys;
use tessera_core::{Role, TrustAnchor};
use tessera_proto::v1::city_node_client::CityNodeClient;
use tessera_proto::v1::gateway_client::GatewayClient;
use tessera_runtime::{TlsIdentity, TrustState, grpc, tls};
use tonic::transport::Channel;

/// The pinned national root from a file.
pub fn root(path: &Path) -> anyhow::Result<TrustAnchor> {
    TrustAnchor::from_der(&keys::read_cert(path)?)
        .with_context(|| format!("{} is not a tessera root certificate", path.display()))
}

/// The role certificate of a bundle: the one live `<stem>.crt` that is not
/// root.crt (the numbered `<stem>.<n>.crt` a renewal keeps beside it are
/// not live).
fn bundle_cert(dir: &Path) -> anyhow::Result<PathBuf> {
    let mut found = vec![];
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("reading bundle {}", dir.display()))?
    {
        let path = entry?.path();
        let live = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".crt"))
            .is_some_and(|stem| !stem.contains('.') && stem != "root" && stem != "badge-signer");
        if live {
            found.push(path);
        }
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => anyhow::bail!(
            "{} holds no certificate: pass the directory the authority wrote for you",
            dir.display()
        ),
        _ => anyhow::bail!(
            "{} holds several certificates: pass a single party's bundle",
            dir.display()
        ),
    }
}

/// A TLS client identity and trust from a bundle.
pub fn bundle(dir: &Path) -> anyhow::Result<(TlsIdentity, Arc<TrustState>)> {
    let cert = bundle_cert(dir)?;
    let identity = TlsIdentity::from_files(&cert, &cert.with_extension("key"))?;
    let trust = Arc::new(TrustState::new(root(&dir.join("root.crt"))?)?);
    Ok((identity, trust))
}

/// A client of the gateway at `addr` presenting the bundle's identity.
pub fn gateway(dir: &Path, addr: &str) -> anyhow::Result<GatewayClient<Channel>> {
    gateway_with_list(dir, addr, None)
}

/// A client of the gateway that also refuses a gateway certificate revoked
/// by the cached trust list at `list`.
pub fn gateway_with_list(
    dir: &Path,
    addr: &str,
    list: Option<&Path>,
) -> anyhow::Result<GatewayClient<Channel>> {
    tls::install_default_provider();
    let (identity, trust) = bundle(dir)?;
    if let Some(path) = list {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        trust
            .update(&bytes, crate::fmt::now())
            .with_context(|| format!("{} does not verify", path.display()))?;
    }
    let config = tls::client_config(&identity, trust, Role::Gateway)?;
    Ok(GatewayClient::new(grpc::channel(addr, config)?))
}

/// A client of the city node at `addr` presenting the bundle's identity.
pub fn node(dir: &Path, addr: &str) -> anyhow::Result<CityNodeClient<Channel>> {
    tls::install_default_provider();
    let (identity, trust) = bundle(dir)?;
    let config = tls::client_config(&identity, trust, Role::CityNode)?;
    Ok(CityNodeClient::new(grpc::channel(addr, config)?))
}
