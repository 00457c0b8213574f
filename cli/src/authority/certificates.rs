//! A certificate's later life: revocation, renewal, badge-signer and
//! trust-list-signer rotation, pruning, and recovery after a crash.

use std::path::{Path, PathBuf};

use tessera_certs::authority::{
    AuthorityDir, Recovered, Reissued, ReissuedByRequest, RenewTarget, RevokeTarget,
};
use tessera_certs::request::CheckedRequest;
use tessera_core::CityCode;

use super::DirArg;
use crate::fmt;

/// `tessera authority revoke`: a city's certificates, or one by serial.
pub(super) fn revoke(
    dir: DirArg,
    city: Option<CityCode>,
    serial: Option<String>,
    now: i64,
) -> anyhow::Result<()> {
    let target = match (city, serial) {
        (Some(code), _) => RevokeTarget::City(code),
        (None, Some(serial)) => RevokeTarget::Serial(serial),
        (None, None) => {
            return Err(crate::Usage::new("give --city CODE or --serial HEX").into());
        }
    };
    let revoked = AuthorityDir::open(&dir.dir)?.revoke(&target, now)?;
    for e in &revoked {
        outln!("revoked {} (serial {})", e.identity, e.serial);
    }
    outln!("Publish a new trust list for the revocation to take effect.");
    Ok(())
}

/// `tessera authority rotate-signer`: a new badge signer for a city, the old one kept until pruned.
pub(super) fn rotate_signer(
    dir: DirArg,
    city: CityCode,
    csr: Option<PathBuf>,
    now: i64,
) -> anyhow::Result<()> {
    if let Some(path) = csr {
        let request = read_request(&path)?;
        let r = AuthorityDir::open(&dir.dir)?.rotate_signer_requested(city, &request, now)?;
        print_reissued_by_request(&format!("Badge signer of city {city} rotated"), &r);
        outln!(
            "The old signer is retired and stays ACTIVE: badges it signed verify until they\n\
             expire. Nothing was installed: the authority holds no key of this city.\n\
             Next: publish a trust list (both signers are listed). Then the city installs\n\
             {} and its new badge-signer key as the files [badges] names in its\n\
             node.toml (key first, each with an atomic mv); its node signs with the new key\n\
             once it holds a list carrying it (it checks its files every reload_secs and\n\
             on SIGHUP). 30 days after publishing, run\n\
             `tessera authority prune-signers --dir {}`.",
            r.cert.display(),
            dir.dir.display()
        );
        return Ok(());
    }
    let r = AuthorityDir::open(&dir.dir)?.rotate_signer(city, now)?;
    print_reissued(&format!("Badge signer of city {city} rotated"), &r);
    outln!(
        "The old signer stays ACTIVE: badges it signed verify until they expire, and\n\
         the live files keep it (its key is kept until prune-signers).\n\
         Next: publish a trust list (both signers are listed); it installs the new\n\
         pair as the live files, and the node signs with the new key once it holds\n\
         that list. 30 days after publishing, run\n\
         `tessera authority prune-signers --dir {}`.",
        dir.dir.display()
    );
    Ok(())
}

/// `tessera authority prune-signers`: retired badge signers whose badges can no longer be valid.
pub(super) fn prune_signers(
    dir: DirArg,
    city: Option<CityCode>,
    dry_run: bool,
    now: i64,
) -> anyhow::Result<()> {
    let mut authority = AuthorityDir::open(&dir.dir)?;
    let plan = authority.prune_signers(city, now, true)?;
    for e in &plan.pruned {
        outln!(
            "{} {} (serial {}): left out of the next trust list, key {} removed",
            if dry_run { "would prune" } else { "will prune" },
            e.identity,
            e.serial,
            dir.dir.join(&e.cert_file).with_extension("key").display()
        );
    }
    let pruned = if dry_run {
        plan
    } else {
        authority.prune_signers(city, now, false)?
    };
    for (e, at, published) in &pruned.waiting {
        outln!(
            "kept   {} (serial {}): refused, its badges may be valid until {}{}",
            e.identity,
            e.serial,
            fmt::time(*at),
            if *published {
                ""
            } else {
                " (its successor is not published yet: publish a trust list)"
            }
        );
    }
    if pruned.pruned.is_empty() {
        outln!("No retired badge signer can be pruned yet.");
    } else if dry_run {
        outln!("Dry run: nothing was changed.");
    } else {
        for e in &pruned.pruned {
            outln!("pruned {} (serial {})", e.identity, e.serial);
        }
        outln!("Publish a new trust list for the change to take effect.");
    }
    Ok(())
}

/// `tessera authority renew`: a new certificate for the same key holder.
pub(super) fn renew(
    dir: DirArg,
    city: Option<CityCode>,
    gateway: Option<String>,
    serial: Option<String>,
    csr: Option<PathBuf>,
    now: i64,
) -> anyhow::Result<()> {
    let target = match (city, gateway, serial) {
        (Some(code), _, _) => RenewTarget::City(code),
        (None, Some(name), _) => RenewTarget::Gateway(name),
        (None, None, Some(serial)) => RenewTarget::Serial(serial),
        (None, None, None) => {
            return Err(
                crate::Usage::new("give --city CODE, --gateway NAME or --serial HEX").into(),
            );
        }
    };
    if let Some(path) = csr {
        let request = read_request(&path)?;
        let r = AuthorityDir::open(&dir.dir)?.renew_requested(&target, &request, now)?;
        print_reissued_by_request("Certificate renewed", &r);
        outln!(
            "The old certificate is retired, not revoked: it stays valid until it expires.\n\
             Nothing was installed: the authority holds no key of this party. Hand it\n\
             {}; it installs its new key and that file as the live key and certificate\n\
             its configuration names (key first, each with an atomic mv), and a node or\n\
             gateway presents the new certificate on new connections at once on SIGHUP or\n\
             within its reload_secs. If the old key may have leaked, revoke it:\n\
             tessera authority revoke --dir {} --serial {}",
            r.cert.display(),
            dir.dir.display(),
            r.old.serial
        );
        return Ok(());
    }
    let r = AuthorityDir::open(&dir.dir)?.renew(&target, now)?;
    print_reissued("Certificate renewed", &r);
    outln!(
        "The old certificate is retired, not revoked: it stays valid until it expires.\n\
         A server running from this bundle presents the new one on new connections\n\
         within its reload_secs (or at once on SIGHUP). If the old key may have\n\
         leaked, revoke it: tessera authority revoke --dir {} --serial {}",
        dir.dir.display(),
        r.old.serial
    );
    Ok(())
}

/// `tessera authority recover`: finish or undo a command a crash interrupted.
pub(super) fn recover(dir: DirArg) -> anyhow::Result<()> {
    match tessera_certs::authority::recover(&dir.dir)? {
        Recovered::Clean => outln!("Nothing to recover: no command was interrupted."),
        Recovered::Finished { command, done } => {
            outln!("The interrupted `{command}` had been recorded; finished it:");
            for d in &done {
                outln!("  {d}");
            }
        }
        Recovered::Undone { command, removed } => {
            outln!("The interrupted `{command}` had not been recorded; undid it:");
            for r in &removed {
                outln!("  removed {r}");
            }
            outln!("Run it again.");
        }
    }
    Ok(())
}

/// `tessera authority rotate-list-signer`: a new trust-list signer, the old one revoked.
pub(super) fn rotate_list_signer(dir: DirArg, now: i64) -> anyhow::Result<()> {
    let r = AuthorityDir::open(&dir.dir)?.rotate_list_signer(now)?;
    print_reissued("Trust-list signer rotated", &r);
    outln!(
        "The old signer is revoked. Publish a trust list now: it is signed by the new\n\
         signer and lists the old one REVOKED, and whoever holds it refuses lists\n\
         from the old key from then on."
    );
    Ok(())
}

pub(super) fn rotate_issuing_ca(dir: DirArg, compromised: bool, now: i64) -> anyhow::Result<()> {
    let r = AuthorityDir::open(&dir.dir)?.rotate_issuing_ca(compromised, now)?;
    outln!("Issuing CA rotated: {}", r.new.identity);
    outln!(
        "  old  serial {}  ({})",
        r.old.serial,
        if r.old.revoked_at.is_some() {
            "revoked: the next list lists it REVOKED"
        } else {
            "retired: it stays ACTIVE until what it issued expires"
        }
    );
    outln!(
        "  new  serial {}  valid until {}",
        r.new.serial,
        fmt::time(r.new.not_after)
    );
    outln!(
        "Certified again for the same keys ({}):",
        r.recertified.len()
    );
    for (old, new, file) in &r.recertified {
        outln!(
            "  {}  {}  serial {} -> {}  {}",
            new.identity,
            new.name,
            old.serial,
            new.serial,
            file.display()
        );
    }
    outln!(
        "Publish a trust list now, then hand each party its new certificate file;\n\
         nodes and gateways running from these bundles pick theirs up by themselves\n\
         (badge signers once that list carries them)."
    );
    Ok(())
}

pub(super) fn print_reissued(what: &str, r: &Reissued) {
    outln!("{what}: {}", r.new.identity);
    outln!(
        "  old  serial {}  valid until {}  ({})",
        r.old.serial,
        fmt::time(r.old.not_after),
        if r.old.revoked_at.is_some() {
            "revoked"
        } else {
            "retired"
        }
    );
    outln!(
        "  new  serial {}  valid until {}",
        r.new.serial,
        fmt::time(r.new.not_after)
    );
    // A key made in the authority's token has no file (authority.toml
    // names it).
    let key = |path: &std::path::Path| {
        if r.issued.1.exists() {
            path.display().to_string()
        } else {
            "the key in the token (authority.toml names its label)".to_owned()
        }
    };
    outln!(
        "  issued as {} and {}",
        r.issued.0.display(),
        key(&r.issued.1)
    );
    outln!(
        "  {} {} and {}",
        if r.deferred {
            "installed by the next trust-list publish as"
        } else {
            "installed as"
        },
        r.live.0.display(),
        key(&r.live.1)
    );
}

/// Reads and checks the request of `--csr` and prints its key's
/// fingerprint, for the operator to compare with the one the party gave.
fn read_request(path: &Path) -> anyhow::Result<CheckedRequest> {
    let request = CheckedRequest::read(path)?;
    outln!(
        "Request {}: {} key, fingerprint SHA-256 {} (compare it with the one the requester gave you)",
        path.display(),
        request.algorithm(),
        request.fingerprint()
    );
    Ok(request)
}

fn print_reissued_by_request(what: &str, r: &ReissuedByRequest) {
    outln!("{what}: {}", r.new.identity);
    outln!(
        "  old  serial {}  valid until {}  (retired)",
        r.old.serial,
        fmt::time(r.old.not_after)
    );
    outln!(
        "  new  serial {}  valid until {}",
        r.new.serial,
        fmt::time(r.new.not_after)
    );
    outln!(
        "  issued as {} (request kept as {})",
        r.cert.display(),
        r.request.display()
    );
    outln!(
        "  to install by the party as its live {}.crt, beside its new key",
        r.stem
    );
}
