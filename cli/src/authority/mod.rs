//! `tessera authority …`: the national authority's commands.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use tessera_core::{CityCode, ProvinceCode};

use crate::fmt;

const DAY: i64 = 86_400;

#[derive(Debug, Subcommand)]
pub enum AuthorityCommand {
    /// Create a national authority: root CA, trust-list signer, admin client.
    #[command(
        long_about = r"Create a national authority: root CA, trust-list signer, admin client.

With --pkcs11-module, --token and --pin-file, the root key (ECDSA P-256) and
the trust-list signer key (Ed25519) are made inside that PKCS#11 token,
sensitive and not extractable, under the labels --root-label and
--signer-label; no key file is written for them, and authority.toml records
where they are. Every later command that signs with them (enrol-*, renew,
rotate-signer, trust-list publish) opens the token with the PIN file. The
token must be initialised and its labels unused (docs/OPERATIONS.md).",
        after_help = "Examples:\n  tessera authority init --dir ./authority --name \"National Health Authority\"\n  tessera authority init --dir ./authority --pkcs11-module /usr/lib/softhsm/libsofthsm2.so --token tessera-authority --pin-file /etc/tessera/authority.pin"
    )]
    Init {
        #[command(flatten)]
        dir: DirArg,
        /// The authority's display name.
        #[arg(long, default_value = "National Health Authority")]
        name: String,
        /// Days until the federation's sunset: past it, nothing is trusted.
        #[arg(long, default_value_t = 730)]
        sunset_days: i64,
        #[command(flatten)]
        token: enrol::TokenArgs,
    },
    /// Enrol a city: its node's TLS certificate and its badge signer's.
    #[command(
        long_about = r"Enrol a city: its node's TLS certificate and its badge signer's.

With --csr NODE.csr BADGE-SIGNER.csr (made by `tessera keygen --role city` on the
city's machine), the authority checks each request's signature (proof that the
city holds the key) and key type (ECDSA P-256 for the node, Ed25519 for the
badge signer), certifies those keys, and writes a bundle of certificates,
root.crt and node.toml, with no private key. What the certificates say comes
from --code, --name and --endpoint; the requests' subjects are ignored.

Without --csr the authority makes both keys itself, writes them into the bundle
and keeps a copy: for local use only (a federation on one machine, tests).",
        after_help = "Examples:\n  tessera authority enrol-city --dir ./authority --code 330100 --name Hangzhou --endpoint node.hangzhou.example:7101 --csr node.csr badge-signer.csr\n  tessera authority enrol-city --dir ./authority --code 330100 --name Hangzhou --endpoint 127.0.0.1:7101   (local use only)"
    )]
    EnrolCity {
        #[command(flatten)]
        dir: DirArg,
        /// The city's requests, the node's then the badge signer's (from
        /// `tessera keygen --role city`). Without it: local use only.
        #[arg(long, num_args = 2, value_names = ["NODE_CSR", "BADGE_SIGNER_CSR"])]
        csr: Option<Vec<PathBuf>>,
        /// The city's 6-digit administrative division code, e.g. 330100.
        #[arg(long)]
        code: CityCode,
        /// Display name, e.g. Hangzhou.
        #[arg(long)]
        name: String,
        /// Where the city's node listens, as host:port.
        #[arg(long)]
        endpoint: String,
    },
    /// Enrol a checkpoint verifier scoped to a province (by request with
    /// --csr; without it, for local use only).
    #[command(
        after_help = "Example:\n  tessera authority enrol-verifier --dir ./authority --province 420000 --name \"Wuhan station\" --csr verifier.csr"
    )]
    EnrolVerifier {
        #[command(flatten)]
        dir: DirArg,
        /// The request from `tessera keygen --role checkpoint` on the
        /// checkpoint's machine; its key must be ECDSA P-256. Without it the
        /// authority makes the key and keeps a copy: local use only.
        #[arg(long, value_name = "FILE")]
        csr: Option<PathBuf>,
        /// The province code, e.g. 420000.
        #[arg(long)]
        province: ProvinceCode,
        /// Display name of the checkpoint.
        #[arg(long)]
        name: String,
    },
    /// Enrol an operator of an enrolled city (feeds records, issues badges;
    /// by request with --csr; without it, for local use only).
    #[command(
        after_help = "Example:\n  tessera authority enrol-operator --dir ./authority --city 330100 --name \"Hangzhou CDC\" --csr operator.csr"
    )]
    EnrolOperator {
        #[command(flatten)]
        dir: DirArg,
        /// The request from `tessera keygen --role operator` on the
        /// operator's machine; its key must be ECDSA P-256. Without it the
        /// authority makes the key and keeps a copy: local use only.
        #[arg(long, value_name = "FILE")]
        csr: Option<PathBuf>,
        /// The city code, e.g. 330100.
        #[arg(long)]
        city: CityCode,
        /// Display name of the operator.
        #[arg(long)]
        name: String,
    },
    /// Enrol a national gateway (by request with --csr; without it, for
    /// local use only).
    #[command(
        after_help = "Example:\n  tessera authority enrol-gateway --dir ./authority --endpoint gw-east.example.cn:7000 --name east-1 --csr gateway.csr"
    )]
    EnrolGateway {
        #[command(flatten)]
        dir: DirArg,
        /// The request from `tessera keygen --role gateway` on the
        /// gateway's machine; its key must be ECDSA P-256. Without it the
        /// authority makes the key and keeps a copy: local use only.
        #[arg(long, value_name = "FILE")]
        csr: Option<PathBuf>,
        /// Where the gateway listens, as host:port.
        #[arg(long)]
        endpoint: String,
        /// Display name.
        #[arg(long, default_value = "gateway")]
        name: String,
    },
    /// Revoke a city (its node and badge signer) or any certificate by serial.
    /// Takes effect with the next published trust list.
    #[command(
        after_help = "Examples:\n  tessera authority revoke --dir ./authority --city 330100\n  tessera authority revoke --dir ./authority --serial 4f2a…"
    )]
    Revoke {
        #[command(flatten)]
        dir: DirArg,
        /// Revoke this city's node and badge signer.
        #[arg(long, conflicts_with = "serial", required_unless_present = "serial")]
        city: Option<CityCode>,
        /// Revoke the certificate with this serial (hex, as listed in registry.json).
        #[arg(long)]
        serial: Option<String>,
    },
    /// Rotate a city's badge signer: a new signing key, the old one retired
    /// but still trusted so the badges it signed stay valid until they expire.
    #[command(
        long_about = r"Rotate a city's badge signer.

Issues a new badge-signer certificate and key for the city and keeps them as
badge-signer.<n>.crt and .key in the city's bundle. The bundle's live
badge-signer.crt and .key (the files node.toml names) keep the old signer, whose
certificate and key are also kept as badge-signer.<m>.crt and .key, until the
next trust-list publish, which lists the new signer and installs it over the
live files: a node restarted in between still signs with a key the lists carry.
The old signer is retired, not revoked: it stays ACTIVE in every trust list, so
the badges it signed verify until they expire (30 days at most), and its key
stays in the bundle until prune-signers. Needs the issuing CA's key (the root's
in a directory made before issuing CAs).

In order:
  1. tessera authority rotate-signer --dir D --city CODE
  2. tessera authority trust-list publish --dir D --gateway HOST:PORT
     (both signers are listed ACTIVE; the new pair becomes the live files)
  3. hand the city badge-signer.<n>.crt and .key, to install over the files its
     node.toml names once it holds that list (a node running from this bundle
     already has them)
  4. the node signs with the new key as soon as it holds that list (it checks
     its files every reload_secs and on SIGHUP); until then it keeps the old key
  5. 30 days after step 2: tessera authority prune-signers --dir D

A city enrolled by request makes a new badge-signer key and request
(`tessera keygen --role badge-signer`); step 1 takes it with --csr and issues
badge-signer.<n>.crt for it (nothing is installed: the bundle holds no key).
After step 2 the city installs that certificate and its new key as the files
[badges] names; its node switches once it holds a list carrying the new
signer.",
        after_help = "Examples:\n  tessera authority rotate-signer --dir ./authority --city 330100\n  tessera authority rotate-signer --dir ./authority --city 330100 --csr badge-signer.csr"
    )]
    RotateSigner {
        #[command(flatten)]
        dir: DirArg,
        /// The city code, e.g. 330100.
        #[arg(long)]
        city: CityCode,
        /// For a city enrolled by request: the request for its new
        /// badge-signer key (`tessera keygen --role badge-signer`).
        #[arg(long)]
        csr: Option<PathBuf>,
    },
    /// Leave retired badge signers out of later trust lists once every badge
    /// they signed has expired.
    #[command(
        long_about = r"Leave retired badge signers out of later trust lists once every badge they
signed has expired.

A signer retired by rotate-signer goes on signing until its node holds a list
carrying its successor, and a badge lives 30 days at most. So a retired signer
can be pruned 30 days (plus 5 minutes of clock skew) after the first list
carrying its successor was published, or once its own certificate has expired.
It first prints what it will prune; the others (whose badges could still be
valid) are refused, listed with the date they can go. Pruning removes the
signer's key from the bundle (its certificate stays on file); it is the only
command that does. A pruned signer is not revoked; its badges, all expired,
verify as UNKNOWN_SIGNER. Takes effect in the next published list. --dry-run
prints the same and changes nothing. (A signer whose key leaked is revoked
instead: revoke --serial.)",
        after_help = "Examples:\n  tessera authority prune-signers --dir ./authority\n  tessera authority prune-signers --dir ./authority --city 330100"
    )]
    PruneSigners {
        #[command(flatten)]
        dir: DirArg,
        /// Only this city's signers.
        #[arg(long)]
        city: Option<CityCode>,
        /// Print what would be pruned; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Renew a TLS certificate (a city node's, a gateway's, or any by serial)
    /// with a new key; a running server picks it up without a restart.
    #[command(
        long_about = r"Renew a TLS certificate with a new key.

Issues a new certificate and key for the same party (same role, scope, name and
endpoint; valid a year from now, capped at the sunset), keeps them as
<stem>.<n>.crt and .key in the bundle, and installs them over the bundle's live
<stem>.crt and .key (node.crt, gateway.crt, ...). The old certificate is
retired, not revoked: it stays valid until it expires, and connections made
with it go on. A node or gateway checks its files every reload_secs (30 s by
default) and at once on SIGHUP, and presents the new certificate on every new
connection, as server and as client. Needs the issuing CA's key (the root's in
a directory made before issuing CAs). No trust list has to
be published for a renewal to work; publish anyway to list the new
certificate.

A city elsewhere installs node.<n>.crt and .key over the files its node.toml
names (key first, each with an atomic mv) and sends SIGHUP or waits.

A party enrolled by request (the authority holds no key of it) makes a new key
and request with `tessera keygen` (same role) and the renewal takes it with
--csr: the request is checked as enrolment checks it, and refused if its key is
one an earlier certificate of the party carries. The new certificate is kept as
<stem>.<n>.crt with the request as <stem>.<n>.csr; nothing is installed. The
party puts <stem>.<n>.crt beside its new key as its live files and sends SIGHUP
or waits. (--csr for a party enrolled all in one is refused.)",
        after_help = "Examples:\n  tessera authority renew --dir ./authority --city 330100\n  tessera authority renew --dir ./authority --gateway national\n  tessera authority renew --dir ./authority --serial 4f2a…\n  tessera authority renew --dir ./authority --city 330100 --csr node.csr"
    )]
    Renew {
        #[command(flatten)]
        dir: DirArg,
        /// Renew this city's node certificate.
        #[arg(long, conflicts_with_all = ["gateway", "serial"], required_unless_present_any = ["gateway", "serial"])]
        city: Option<CityCode>,
        /// Renew the gateway enrolled under this name.
        #[arg(long, conflicts_with = "serial")]
        gateway: Option<String>,
        /// Renew the TLS certificate with this serial (an operator's, a
        /// verifier's, the authority's own).
        #[arg(long)]
        serial: Option<String>,
        /// For a party enrolled by request: the request for its new key
        /// (`tessera keygen`, same role).
        #[arg(long)]
        csr: Option<PathBuf>,
    },
    /// Rotate the trust-list signer: lists from the next one on are signed by a
    /// new key, and the old signer is revoked in that first list.
    #[command(
        long_about = r"Rotate the trust-list signer.

Issues a new trust-list-signer certificate and key (kept as
trust-list-signer/signer.<n>.crt and .key, installed over signer.crt and .key)
and revokes the old signer. The next list published is signed by the new
signer and lists the old one REVOKED. Verifiers need nothing new: the new
signer chains to the root they pin. Once a verifier (gateway, node, a
checkpoint's trust-list fetch) holds that list, it refuses every list the old
key signs, whatever its sequence; a list that revokes its own signer is
refused everywhere. Needs the root key.

With the signer key in a PKCS#11 token (authority.toml), the new key is made
in the token under the next label (<label>.<n>), no key file is written, and
authority.toml is rewritten to name the new key.

In order:
  1. tessera authority rotate-list-signer --dir D
  2. tessera authority trust-list publish --dir D --gateway HOST:PORT at once
     (every list from now on is signed by the new key)",
        after_help = "Example:\n  tessera authority rotate-list-signer --dir ./authority"
    )]
    RotateListSigner {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Replace the issuing CA: a new one from the root, every certificate in
    /// use that the old one issued certified again for the same key.
    #[command(
        long_about = r"Replace the issuing CA.

The root issues a new issuing CA (kept as issuing-ca/issuing-ca.<n>.crt and
.key, installed over issuing-ca.crt and .key). Every certificate in use that
the old issuing CA issued is certified again by the new one for the same
public key (a compromised issuing CA does not compromise the parties' keys:
nobody needs a new key or request), written into its bundle as
<stem>.<n>.crt (the certificate, then the new issuing CA's) and installed over
the live file as renew does; a badge signer's goes live with the next list
published. The old certificates are retired. Needs the root key.

With --compromised the old issuing CA is revoked: the next list lists it
REVOKED, and every peer holding that list refuses a certificate it issued
(badges of signers it issued: SIGNER_REVOKED, issuer_revoked). Without, it
is retired and stays ACTIVE until what it issued expires.

In order:
  1. tessera authority rotate-issuing-ca --dir D --compromised
  2. tessera authority trust-list publish --dir D --gateway HOST:PORT
  3. hand each party its new certificate file (printed below); until it
     installs it, peers holding the new list refuse it",
        after_help = "Example:\n  tessera authority rotate-issuing-ca --dir ./authority --compromised"
    )]
    RotateIssuingCa {
        #[command(flatten)]
        dir: DirArg,
        /// The old issuing CA's key may have leaked: revoke it.
        #[arg(long)]
        compromised: bool,
    },
    /// Finish or undo a command that was interrupted half way (a crash, a
    /// kill): every other command refuses to run until this has.
    #[command(
        long_about = r"Finish or undo a command that was interrupted half way.

Every command that writes several files (init, enrol-*, renew, rotate-signer,
rotate-list-signer, rotate-issuing-ca, prune-signers, trust-list publish) first writes
D/journal.json with what it will create and do, and removes it when done. If it
was interrupted, every later command refuses and says what was half done. This
command finishes it when registry.json had recorded the change (installs the
new pair over the live files, removes a pruned key), and otherwise undoes it
(removes the files it had created), so the command can simply be run again.",
        after_help = "Example:
  tessera authority recover --dir ./authority"
    )]
    Recover {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Sign and inspect trust lists.
    #[command(subcommand)]
    TrustList(TrustListCommand),
    /// Check one city's deletion attestation against the national root.
    #[command(
        long_about = "Check one city's deletion attestation (the file `tessera node sunset` writes)
against the national root: the signer chains to the root, is that city's node,
was valid when the destruction finished, and signed exactly these bytes.
Prints what it attests and VALID, or INVALID and why (exit code 1). The
attestation carries the node's certificate alone: with --dir the authority's
issuing CAs are known too; with --root alone, only a node certificate the root
issued directly verifies.",
        after_help = "Examples:\n  tessera authority verify-attestation attestation-330100-1893456000.pb --root root.crt\n  tessera authority verify-attestation attestation-330100-1893456000.pb --dir ./authority"
    )]
    VerifyAttestation {
        /// The signed attestation.
        file: PathBuf,
        /// The national root certificate (PEM) to verify against.
        #[arg(long, conflicts_with = "dir", required_unless_present = "dir")]
        root: Option<PathBuf>,
        /// Or the authority directory, whose root is used.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Fetch every city's deletion attestation from the gateway, verify each,
    /// and say whether every city of the last trust list has switched off.
    #[command(
        long_about = "Fetch the deletion attestations the gateway collected, verify each against
the root, and print, for every city whose node the last trust list the
authority signed carries, whether it has attested. Exit code 0 only when every
such city has a valid attestation: the whole country switched off.",
        after_help = "Example:\n  tessera authority attestations --dir ./authority --gateway gateway.example:7443"
    )]
    Attestations {
        #[command(flatten)]
        dir: DirArg,
        /// The gateway, as host:port (called as the authority, with
        /// D/authority/authority.crt).
        #[arg(long)]
        gateway: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrustListCommand {
    /// Sign the next trust list from the registry and write it to a file.
    #[command(
        after_help = "Example:\n  tessera authority trust-list publish --dir ./authority --out trust-list.tsl"
    )]
    Publish {
        #[command(flatten)]
        dir: DirArg,
        /// Where to write the signed list.
        #[arg(long, required_unless_present = "gateway")]
        out: Option<PathBuf>,
        /// Also upload it to the gateway at this host:port, as the authority
        /// (with D/authority/authority.crt).
        #[arg(long)]
        gateway: Option<String>,
        /// Hours until the list is due for renewal (its next_update).
        #[arg(long, default_value_t = 24)]
        valid_hours: i64,
    },
    /// Verify a trust list against the national root and print it.
    #[command(
        after_help = "Examples:\n  tessera authority trust-list show trust-list.tsl --dir ./authority\n  tessera authority trust-list show trust-list.tsl --root root.crt"
    )]
    Show {
        /// The signed list.
        file: PathBuf,
        /// The national root certificate (PEM) to verify against.
        #[arg(long, conflicts_with = "dir", required_unless_present = "dir")]
        root: Option<PathBuf>,
        /// Or the authority directory, whose root is used.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct DirArg {
    /// The authority directory.
    #[arg(long)]
    dir: PathBuf,
}

mod attestations;
mod certificates;
mod enrol;
mod trust_list;

pub use attestations::census;
pub use trust_list::upload_async;

/// The root certificate to check against: `--root`, or the one in the
/// authority directory `--dir`.
fn root_path(root: Option<PathBuf>, dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match (root, dir) {
        (Some(root), _) => Ok(root),
        (None, Some(dir)) => Ok(dir.join("root/root.crt")),
        (None, None) => {
            Err(crate::Usage::new("give --root ROOT.crt or --dir AUTHORITY_DIR").into())
        }
    }
}

/// Runs one `tessera authority` subcommand.
pub fn run(cmd: AuthorityCommand) -> anyhow::Result<()> {
    let now = fmt::now();
    match cmd {
        AuthorityCommand::Init {
            dir,
            name,
            sunset_days,
            token,
        } => enrol::init(dir, name, sunset_days, token, now),
        AuthorityCommand::EnrolCity {
            dir,
            csr,
            code,
            name,
            endpoint,
        } => enrol::enrol_city(dir, code, name, endpoint, csr, now),
        AuthorityCommand::EnrolVerifier {
            dir,
            csr,
            province,
            name,
        } => enrol::enrol_verifier(dir, province, name, csr, now),
        AuthorityCommand::EnrolOperator {
            dir,
            csr,
            city,
            name,
        } => enrol::enrol_operator(dir, city, name, csr, now),
        AuthorityCommand::EnrolGateway {
            dir,
            csr,
            endpoint,
            name,
        } => enrol::enrol_gateway(dir, endpoint, name, csr, now),
        AuthorityCommand::Revoke { dir, city, serial } => {
            certificates::revoke(dir, city, serial, now)
        }
        AuthorityCommand::RotateSigner { dir, city, csr } => {
            certificates::rotate_signer(dir, city, csr, now)
        }
        AuthorityCommand::PruneSigners { dir, city, dry_run } => {
            certificates::prune_signers(dir, city, dry_run, now)
        }
        AuthorityCommand::Renew {
            dir,
            city,
            gateway,
            serial,
            csr,
        } => certificates::renew(dir, city, gateway, serial, csr, now),
        AuthorityCommand::Recover { dir } => certificates::recover(dir),
        AuthorityCommand::RotateListSigner { dir } => certificates::rotate_list_signer(dir, now),
        AuthorityCommand::RotateIssuingCa { dir, compromised } => {
            certificates::rotate_issuing_ca(dir, compromised, now)
        }
        AuthorityCommand::TrustList(TrustListCommand::Publish {
            dir,
            out,
            gateway,
            valid_hours,
        }) => trust_list::publish(dir, out, gateway, valid_hours, now),
        AuthorityCommand::TrustList(TrustListCommand::Show { file, root, dir }) => {
            trust_list::show_file(file, root, dir, now)
        }
        AuthorityCommand::VerifyAttestation { file, root, dir } => {
            attestations::verify_file(file, root, dir, now)
        }
        AuthorityCommand::Attestations { dir, gateway } => {
            attestations::attestations_cmd(dir, gateway, now)
        }
    }
}
