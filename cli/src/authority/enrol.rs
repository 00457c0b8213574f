//! Enrolling the federation's parties: the authority itself, city nodes,
//! verifiers, operators and gateways.

use std::path::PathBuf;

use tessera_certs::authority::custody::{
    DEFAULT_ISSUING_CA_LABEL, DEFAULT_ROOT_LABEL, DEFAULT_SIGNER_LABEL,
};
use tessera_certs::authority::{
    AuthorityDir, Custody, ISSUING_CA_CERT, InitOptions, Issued, TokenSettings,
};
use tessera_certs::keys;
use tessera_certs::request::CheckedRequest;
use tessera_core::{CityCode, ProvinceCode};

use super::{DAY, DirArg};
use crate::fmt;

/// Where `authority init` makes the root, issuing-CA and trust-list signer
/// keys.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// Make the root, issuing-CA and trust-list signer keys inside a PKCS#11
    /// token through this module (a shared library) instead of in key files.
    #[arg(long, requires_all = ["token", "pin_file"])]
    pkcs11_module: Option<PathBuf>,
    /// The token's label (with --pkcs11-module).
    #[arg(long, requires = "pkcs11_module")]
    token: Option<String>,
    /// A file (mode 0600) whose first line is the token's user PIN (with
    /// --pkcs11-module). Give an absolute path: authority.toml records it.
    #[arg(long, requires = "pkcs11_module")]
    pin_file: Option<PathBuf>,
    /// The root key's label in the token.
    #[arg(long, requires = "pkcs11_module", default_value = DEFAULT_ROOT_LABEL)]
    root_label: String,
    /// The trust-list signer key's label in the token.
    #[arg(long, requires = "pkcs11_module", default_value = DEFAULT_SIGNER_LABEL)]
    signer_label: String,
    /// The issuing CA key's label in the token.
    #[arg(long, requires = "pkcs11_module", default_value = DEFAULT_ISSUING_CA_LABEL)]
    issuing_ca_label: String,
    /// Make the root key in this other token (same module) instead: an
    /// offline token, attached only for the root's ceremonies (init,
    /// rotate-list-signer, rotate-issuing-ca).
    #[arg(long, requires_all = ["pkcs11_module", "root_pin_file"])]
    root_token: Option<String>,
    /// The root token's PIN file (with --root-token).
    #[arg(long, requires = "root_token")]
    root_pin_file: Option<PathBuf>,
}

impl TokenArgs {
    fn custody(self) -> anyhow::Result<Custody> {
        let (Some(module), Some(token), Some(pin_file)) =
            (self.pkcs11_module, self.token, self.pin_file)
        else {
            return Ok(Custody::files());
        };
        // authority.toml outlives the shell's working directory.
        let pin_file = std::path::absolute(&pin_file)?;
        let settings = TokenSettings {
            module,
            token,
            pin_file,
        };
        let root_settings = match (self.root_token, self.root_pin_file) {
            (Some(token), Some(pin_file)) => Some(TokenSettings {
                module: settings.module.clone(),
                token,
                pin_file: std::path::absolute(&pin_file)?,
            }),
            _ => None,
        };
        Ok(Custody::in_token(
            settings,
            root_settings,
            &self.root_label,
            &self.issuing_ca_label,
            &self.signer_label,
        )?)
    }
}

/// `tessera authority init`: a new authority directory, root and trust-list signer.
pub(super) fn init(
    dir: DirArg,
    name: String,
    sunset_days: i64,
    token: TokenArgs,
    now: i64,
) -> anyhow::Result<()> {
    let options = InitOptions {
        name,
        sunset_at: now.saturating_add(sunset_days.saturating_mul(DAY)),
    };
    let custody = token.custody()?;
    let authority = AuthorityDir::init_with(&dir.dir, &options, &custody, now)?;
    outln!(
        "Authority {:?} created in {}",
        authority.registry().name,
        dir.dir.display()
    );
    outln!(
        "  root certificate   {}",
        authority.root_cert_path().display()
    );
    outln!(
        "  sunset             {}",
        fmt::time(authority.registry().sunset_at)
    );
    outln!(
        "  issuing CA         {}",
        authority.dir().join(ISSUING_CA_CERT).display()
    );
    match (custody.token(), &custody.labels().root) {
        (Some(token), Some(root)) => {
            let root_token = custody.root_token().unwrap_or(token);
            outln!(
                "  keys in tokens     root {root:?} in {:?}; issuing CA {:?} and trust-list signer {:?} in {:?} (no key files; see {})",
                root_token.token,
                custody.labels().issuing_ca.as_deref().unwrap_or_default(),
                custody
                    .labels()
                    .trust_list_signer
                    .as_deref()
                    .unwrap_or_default(),
                token.token,
                dir.dir
                    .join(tessera_certs::authority::CUSTODY_FILE)
                    .display()
            );
            outln!(
                "Keep the root's token offline: only rotate-list-signer and rotate-issuing-ca need\n\
                 it. Next: tessera authority enrol-city --dir {} …",
                dir.dir.display()
            );
        }
        _ => outln!(
            "Move root/root.key offline: only rotate-list-signer and rotate-issuing-ca need\n\
             it; enrolment and renewal use issuing-ca/issuing-ca.key. Next: tessera\n\
             authority enrol-city --dir {} …",
            dir.dir.display()
        ),
    }
    Ok(())
}

/// Reads and checks each request (form and signature; the key type is
/// checked against the role by the enrolment).
fn read_requests(paths: &[PathBuf]) -> anyhow::Result<Vec<CheckedRequest>> {
    let requests = paths
        .iter()
        .map(|path| CheckedRequest::read(path))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(requests)
}

/// Prints each request's key fingerprint, for the operator to compare
/// with the one the requester gave by another channel.
fn print_fingerprints(paths: &[PathBuf], requests: &[CheckedRequest]) {
    for (path, request) in paths.iter().zip(requests) {
        outln!(
            "Request {}: {} key, fingerprint SHA-256 {} (compare it with the one the requester gave you)",
            path.display(),
            request.algorithm(),
            request.fingerprint()
        );
    }
}

/// `tessera authority enrol-city`: a city node and its badge signer, with the node's configuration.
pub(super) fn enrol_city(
    dir: DirArg,
    code: CityCode,
    name: String,
    endpoint: String,
    csr: Option<Vec<PathBuf>>,
    now: i64,
) -> anyhow::Result<()> {
    let requests = csr.as_deref().map(read_requests).transpose()?;
    let issued = match requests.as_deref() {
        Some([node, signer]) => AuthorityDir::open(&dir.dir)?
            .enrol_city_requested(code, &name, &endpoint, node, signer, now)?,
        Some(_) => {
            return Err(crate::Usage::new(
                "--csr takes two requests: the node's, then the badge signer's",
            )
            .into());
        }
        None => AuthorityDir::open(&dir.dir)?.enrol_city(code, &name, &endpoint, now)?,
    };
    if let (Some(paths), Some(requests)) = (&csr, &requests) {
        print_fingerprints(paths, requests);
    }
    let config = issued.dir.join("node.toml");
    keys::write_new_file(
        &config,
        tessera_node::config::bundle_config(code, &endpoint).as_bytes(),
        // 0600 like everything in the authority's directory.
        true,
    )?;
    print_issued(&format!("City {code} ({name})"), &issued, true);
    outln!(
        "Node configuration: {} (run it with: tessera node run --config {})",
        config.display(),
        config.display()
    );
    Ok(())
}

/// The request of `--csr`, read and checked.
fn read_one(csr: Option<&PathBuf>) -> anyhow::Result<Option<CheckedRequest>> {
    let Some(path) = csr else {
        return Ok(None);
    };
    let request = CheckedRequest::read(path)?;
    Ok(Some(request))
}

/// `tessera authority enrol-verifier`: a checkpoint of a province.
pub(super) fn enrol_verifier(
    dir: DirArg,
    province: ProvinceCode,
    name: String,
    csr: Option<PathBuf>,
    now: i64,
) -> anyhow::Result<()> {
    let request = read_one(csr.as_ref())?;
    let issued = AuthorityDir::open(&dir.dir)?.enrol_verifier_requested(
        province,
        &name,
        request.as_ref(),
        now,
    )?;
    if let (Some(path), Some(request)) = (&csr, &request) {
        print_fingerprints(std::slice::from_ref(path), std::slice::from_ref(request));
    }
    print_issued(
        &format!("Verifier {name:?} of province {province}"),
        &issued,
        false,
    );
    Ok(())
}

/// `tessera authority enrol-operator`: an operator of a city.
pub(super) fn enrol_operator(
    dir: DirArg,
    city: CityCode,
    name: String,
    csr: Option<PathBuf>,
    now: i64,
) -> anyhow::Result<()> {
    let request = read_one(csr.as_ref())?;
    let issued = AuthorityDir::open(&dir.dir)?.enrol_operator_requested(
        city,
        &name,
        request.as_ref(),
        now,
    )?;
    if let (Some(path), Some(request)) = (&csr, &request) {
        print_fingerprints(std::slice::from_ref(path), std::slice::from_ref(request));
    }
    print_issued(&format!("Operator {name:?} of city {city}"), &issued, false);
    Ok(())
}

/// `tessera authority enrol-gateway`: a gateway, with its configuration.
pub(super) fn enrol_gateway(
    dir: DirArg,
    endpoint: String,
    name: String,
    csr: Option<PathBuf>,
    now: i64,
) -> anyhow::Result<()> {
    let request = read_one(csr.as_ref())?;
    let issued = AuthorityDir::open(&dir.dir)?.enrol_gateway_requested(
        &name,
        &endpoint,
        request.as_ref(),
        now,
    )?;
    if let (Some(path), Some(request)) = (&csr, &request) {
        print_fingerprints(std::slice::from_ref(path), std::slice::from_ref(request));
    }
    let config = issued.dir.join("gateway.toml");
    keys::write_new_file(
        &config,
        tessera_gateway::config::bundle_config(&endpoint).as_bytes(),
        // 0600 like everything in the authority's directory.
        true,
    )?;
    print_issued(&format!("Gateway {name:?}"), &issued, true);
    outln!(
        "Gateway configuration: {} (run it with: tessera gateway run --config {})",
        config.display(),
        config.display()
    );
    Ok(())
}

/// Prints what was enrolled; `listed` when trust lists carry it, so that
/// it takes effect with the next one published.
pub(super) fn print_issued(what: &str, issued: &Issued, listed: bool) {
    if issued.by_request {
        outln!(
            "{what} enrolled by request; certificates (no private key) in {}: hand them over to be put beside the keys made by `tessera keygen`",
            issued.dir.display()
        );
    } else {
        outln!(
            "{what} enrolled; certificates and keys in {} (the authority made the keys and holds a copy: for local use only)",
            issued.dir.display()
        );
    }
    for e in &issued.enrolments {
        outln!(
            "  {:<40} serial {}  valid until {}",
            e.identity,
            e.serial,
            fmt::time(e.not_after)
        );
    }
    if !listed {
        // Operators and verifiers are never listed in a trust list: they
        // are admitted once their certificate chains to the root.
        outln!(
            "No new trust list is needed: operators and verifiers are not listed; they are admitted once their certificate chains to the root and is not revoked"
        );
    } else {
        outln!(
            "Publish a new trust list for the change to take effect: tessera authority trust-list publish"
        );
    }
}
