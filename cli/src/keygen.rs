//! `tessera keygen`: a party makes its own key pair(s) and a certificate
//! signing request for each, to hand to the authority (`tessera authority
//! enrol-… --csr`). The private keys never leave the directory written
//! here.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use tessera_certs::keys::{self, RoleKey, TlsKey};
use tessera_certs::pkcs11::{self, TokenKey, TokenKeyRef};
use tessera_certs::request::{
    held_key_fingerprint, key_fingerprint, make_held_key_request, make_request,
};
use tessera_core::{CityCode, ProvinceCode};

/// Who the keys are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyRole {
    /// A city: its node's TLS key and its badge-signer key, both.
    City,
    /// A city node's TLS key (ECDSA P-256).
    Node,
    /// A city's badge-signer key (Ed25519).
    BadgeSigner,
    /// An operator's TLS client key (ECDSA P-256).
    Operator,
    /// A checkpoint's (verifier's) TLS client key (ECDSA P-256).
    Checkpoint,
    /// A gateway's TLS key (ECDSA P-256).
    Gateway,
}

/// `tessera keygen`.
#[derive(Debug, Args)]
#[command(
    long_about = r"Make your own key pair(s) and a certificate signing request for each.

Run it on the machine that will hold the keys. It writes, in --out (created
0700 if missing), each private key (PKCS#8 PEM, mode 0600) and a request
(PKCS#10 PEM, <stem>.csr) carrying the public key and signed with the private
key. Hand the .csr files to the authority, and tell it the fingerprints printed
here by another channel (a phone call): it checks them before enrolling you
with `tessera authority enrol-… --csr`. The authority never sees the private
keys. What your certificate says (city code, name, endpoint) is decided by the
authority's enrolment command, not by the request: --city, --province,
--endpoint and --name only label the request and fill in the command printed
for the authority.

Files by role: city: node.key, node.csr, badge-signer.key, badge-signer.csr;
node; badge-signer; operator: operator.*; checkpoint: verifier.*; gateway:
gateway.*. Put the certificates, root.crt and the configuration the authority
returns beside them.",
    after_help = "Example:\n  tessera keygen --role city --city 330100 --name Hangzhou --endpoint node.hangzhou.example:7101 --out ./hangzhou-keys"
)]
pub struct KeygenArgs {
    /// Who the keys are for.
    #[arg(long, value_enum)]
    role: KeyRole,
    /// The directory to write the keys and requests to.
    #[arg(long)]
    out: PathBuf,
    /// The city (city, node, badge-signer, operator).
    #[arg(long)]
    city: Option<CityCode>,
    /// The province (checkpoint).
    #[arg(long)]
    province: Option<ProvinceCode>,
    /// Where the server listens, host:port (city, node, gateway).
    #[arg(long)]
    endpoint: Option<String>,
    /// Display name, e.g. Hangzhou.
    #[arg(long)]
    name: Option<String>,
    /// Make the badge-signer key inside a PKCS#11 token through this module
    /// (a shared library) instead of in a file (roles badge-signer, city).
    #[arg(long, requires_all = ["token", "key_label", "pin_file"])]
    pkcs11_module: Option<PathBuf>,
    /// The token's label (with --pkcs11-module).
    #[arg(long, requires = "pkcs11_module")]
    token: Option<String>,
    /// The label to give the key in the token (with --pkcs11-module).
    #[arg(long, requires = "pkcs11_module")]
    key_label: Option<String>,
    /// A file (mode 0600) whose first line is the token's user PIN (with
    /// --pkcs11-module).
    #[arg(long, requires = "pkcs11_module")]
    pin_file: Option<PathBuf>,
}

impl KeygenArgs {
    /// The token key to make, when asked for one.
    fn token_key(&self) -> Option<TokenKeyRef> {
        Some(TokenKeyRef {
            module: self.pkcs11_module.clone()?,
            token: self.token.clone()?,
            key: self.key_label.clone()?,
            pin_file: self.pin_file.clone()?,
        })
    }
}

/// The keys one role makes: file stem and whether it is a TLS key.
fn stems(role: KeyRole) -> &'static [(&'static str, bool)] {
    match role {
        KeyRole::City => &[("node", true), ("badge-signer", false)],
        KeyRole::Node => &[("node", true)],
        KeyRole::BadgeSigner => &[("badge-signer", false)],
        KeyRole::Operator => &[("operator", true)],
        KeyRole::Checkpoint => &[("verifier", true)],
        KeyRole::Gateway => &[("gateway", true)],
    }
}

/// Runs `tessera keygen`.
pub fn run(args: KeygenArgs) -> anyhow::Result<()> {
    if let Some(endpoint) = &args.endpoint {
        tessera_certs::authority::endpoint_host(endpoint)?;
    }
    let stems = stems(args.role);
    let token = args.token_key();
    if token.is_some() && !matches!(args.role, KeyRole::BadgeSigner | KeyRole::City) {
        anyhow::bail!(
            "--pkcs11-module is for the badge-signer key (roles badge-signer and city); the {:?} role's keys are files",
            args.role
        );
    }
    // Every file is new: nothing is written if any is there already.
    for (stem, _) in stems {
        for ext in ["key", "csr"] {
            let path = args.out.join(format!("{stem}.{ext}"));
            if path.exists() {
                return Err(keys::KeyError::Exists(path.display().to_string()).into());
            }
        }
    }
    if let Some(parent) = args.out.parent()
        && !parent.as_os_str().is_empty()
        && !parent.is_dir()
    {
        anyhow::bail!("directory {} does not exist", parent.display());
    }
    tessera_certs::files::private_dir(&args.out)?;
    let label = label(&args);
    let mut csrs = vec![];
    // A key to make in the token goes first: a label already taken there
    // then stops the run before any file is written.
    let mut order: Vec<_> = stems.iter().collect();
    if token.is_some() {
        order.sort_by_key(|(_, tls)| *tls);
    }
    for (stem, tls) in order {
        if let (false, Some(token)) = (*tls, &token) {
            csrs.push(in_token(&args, token, &format!("{label} {stem}"), stem)?);
            continue;
        }
        let key = if *tls {
            RoleKey::Tls(TlsKey::generate())
        } else {
            RoleKey::Signer(keys::generate_signer_key())
        };
        let request = make_request(&key, &format!("{label} {stem}"))?;
        let key_path = args.out.join(format!("{stem}.key"));
        let csr_path = args.out.join(format!("{stem}.csr"));
        keys::write_new_file(&key_path, key.to_pem()?.as_bytes(), true)?;
        keys::write_new_file(&csr_path, request.as_bytes(), false)?;
        outln!(
            "  {:<44} private key (keep it here, mode 0600)",
            key_path.display()
        );
        outln!(
            "  {:<44} request, fingerprint SHA-256 {}",
            csr_path.display(),
            key_fingerprint(&key)?
        );
        csrs.push(csr_path);
    }
    outln!(
        "Hand the authority the request(s) and read it the fingerprint(s) by another channel; it runs:"
    );
    outln!("  {}", enrol_command(&args, &csrs));
    Ok(())
}

/// Makes the badge-signer key inside the token and a request the token
/// signs; writes only the request.
fn in_token(
    args: &KeygenArgs,
    token: &TokenKeyRef,
    common_name: &str,
    stem: &str,
) -> anyhow::Result<PathBuf> {
    pkcs11::generate(token)?;
    let key = TokenKey::open(token)?;
    let request = make_held_key_request(&key, common_name)?;
    let csr_path = args.out.join(format!("{stem}.csr"));
    keys::write_new_file(&csr_path, request.as_bytes(), false)?;
    outln!(
        "  {:<44} private key in token {:?} as {:?} (sensitive, not extractable)",
        format!("[{}]", token.module.display()),
        token.token,
        token.key
    );
    outln!(
        "  {:<44} request, fingerprint SHA-256 {}",
        csr_path.display(),
        held_key_fingerprint(&key)?
    );
    outln!(
        "In node.toml, [badges]: pkcs11 = {{ module = {:?}, token = {:?}, key = {:?}, pin_file = {:?} }}",
        token.module.display().to_string(),
        token.token,
        token.key,
        token.pin_file.display().to_string()
    );
    Ok(csr_path)
}

fn label(args: &KeygenArgs) -> String {
    let mut parts = vec![];
    if let Some(name) = &args.name {
        parts.push(name.clone());
    }
    if let Some(city) = args.city {
        parts.push(city.to_string());
    }
    if let Some(province) = args.province {
        parts.push(province.to_string());
    }
    if let Some(endpoint) = &args.endpoint {
        parts.push(endpoint.clone());
    }
    if parts.is_empty() {
        "tessera".into()
    } else {
        parts.join(" ")
    }
}

fn enrol_command(args: &KeygenArgs, csrs: &[PathBuf]) -> String {
    let or = |v: Option<String>, placeholder: &str| v.unwrap_or_else(|| placeholder.to_owned());
    let city = or(args.city.map(|c| c.to_string()), "CODE");
    let name = format!("{:?}", or(args.name.clone(), "NAME"));
    let endpoint = or(args.endpoint.clone(), "HOST:PORT");
    let files = csrs
        .iter()
        .map(|p| file_name(p))
        .collect::<Vec<_>>()
        .join(" ");
    match args.role {
        KeyRole::City => format!(
            "tessera authority enrol-city --dir AUTHORITY --code {city} --name {name} --endpoint {endpoint} --csr {files}"
        ),
        KeyRole::Node | KeyRole::BadgeSigner => format!(
            "tessera authority enrol-city --dir AUTHORITY --code {city} --name {name} --endpoint {endpoint} --csr node.csr badge-signer.csr"
        ),
        KeyRole::Operator => format!(
            "tessera authority enrol-operator --dir AUTHORITY --city {city} --name {name} --csr {files}"
        ),
        KeyRole::Checkpoint => format!(
            "tessera authority enrol-verifier --dir AUTHORITY --province {} --name {name} --csr {files}",
            or(args.province.map(|p| p.to_string()), "CODE")
        ),
        KeyRole::Gateway => format!(
            "tessera authority enrol-gateway --dir AUTHORITY --endpoint {endpoint} --name {name} --csr {files}"
        ),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
