//! The authority's root and trust-list signer keys in a real PKCS#11 token
//! (SoftHSM2): `init` makes them in the token and writes no key file for
//! them; enrolment, renewal and `publish` sign through the token and what
//! they sign verifies; the token will not reveal the keys; a wrong PIN, a
//! missing label and another key than the certificate's are refused, each
//! with its own error, and change nothing.
//!
//! Skipped when `softhsm2-util` is not installed, unless
//! `TESSERA_REQUIRE_SOFTHSM=1` (as in `.ci/run`), where it fails instead.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` once per process when the module is
//! initialised, and a test may not set its own process's environment: each
//! test makes a fresh token, then runs itself again as a child process with
//! `SOFTHSM2_CONF` pointing at it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::process::Command;

use tessera_certs::authority::custody::{CaRole, Custody};
use tessera_certs::authority::{
    AuthorityDir, CUSTODY_FILE, InitOptions, RenewTarget, RevokeTarget, TokenSettings,
};
use tessera_certs::keys::{self, TlsKey};
use tessera_certs::pkcs11::ec::{TokenCaKey, generate_p256};
use tessera_certs::pkcs11::{self, TokenKey, TokenKeyRef};
use tessera_certs::profile::{CertRequest, RootCa};
use tessera_core::trust::CheckedTrustList;
use tessera_core::{CertInfo, CityCode, Identity, Role, Scope, TrustAnchor};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "tessera-authority";
/// The root key's own token, attached only for the root's ceremonies.
const ROOT_TOKEN: &str = "tessera-root";
const PIN: &str = "2718-pin";
/// Set in the child: the directory holding the token and its PIN file.
const CHILD: &str = "TESSERA_SOFTHSM_DIR";
const NOW: i64 = 1_790_000_000;

/// Runs `body` in a child process of this test binary whose SoftHSM2
/// configuration points at a fresh token; in the child, runs `body` with
/// the directory holding the PIN file.
fn with_token(test: &str, body: impl FnOnce(&Path)) {
    if let Ok(dir) = std::env::var(CHILD) {
        body(Path::new(&dir));
        return;
    }
    let util = Command::new("softhsm2-util").arg("--version").output();
    if util.is_err() || !Path::new(MODULE).exists() {
        let required = std::env::var("TESSERA_REQUIRE_SOFTHSM").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "TESSERA_REQUIRE_SOFTHSM=1 but softhsm2-util or {MODULE} is missing (apt-get install softhsm2)"
        );
        eprintln!("skipped: softhsm2-util or {MODULE} not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    for label in [TOKEN, ROOT_TOKEN] {
        let init = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label, "--pin", PIN])
            .args(["--so-pin", "2718-so-pin"])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap();
        assert!(init.status.success(), "{init:?}");
    }
    write_private(&dir.path().join("pin"), PIN);
    let exe = std::env::current_exe().unwrap();
    let run = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env("SOFTHSM2_CONF", &conf)
        .env(CHILD, dir.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "child failed:\n{out}\n{err}");
    assert!(
        out.contains("1 passed"),
        "the child ran no test:\n{out}\n{err}"
    );
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn settings(pin_dir: &Path) -> TokenSettings {
    TokenSettings {
        module: MODULE.into(),
        token: TOKEN.into(),
        pin_file: pin_dir.join("pin"),
    }
}

fn root_settings(pin_dir: &Path) -> TokenSettings {
    TokenSettings {
        token: ROOT_TOKEN.into(),
        ..settings(pin_dir)
    }
}

fn root_key_ref(pin_dir: &Path, label: &str) -> TokenKeyRef {
    TokenKeyRef {
        token: ROOT_TOKEN.into(),
        ..key_ref(pin_dir, label)
    }
}

fn key_ref(pin_dir: &Path, label: &str) -> TokenKeyRef {
    TokenKeyRef {
        module: MODULE.into(),
        token: TOKEN.into(),
        key: label.into(),
        pin_file: pin_dir.join("pin"),
    }
}

fn options() -> InitOptions {
    InitOptions {
        name: "Token Authority".into(),
        sunset_at: NOW + 400 * 86_400,
    }
}

/// A new authority in `dir` with its issuing-CA and signer keys in the
/// token and its root key in a token of its own.
fn init(pin_dir: &Path, dir: &Path) -> AuthorityDir {
    let custody = Custody::in_token(
        settings(pin_dir),
        Some(root_settings(pin_dir)),
        "root",
        "issuing-ca",
        "list-signer",
    )
    .unwrap();
    AuthorityDir::init_with(dir, &options(), &custody, NOW).unwrap()
}

/// Every file under `dir`, relative.
fn files(dir: &Path) -> Vec<String> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn cert(path: PathBuf) -> Vec<u8> {
    keys::read_cert(&path).unwrap()
}

#[test]
fn the_root_and_list_signer_keys_in_a_token_sign_everything() {
    with_token(
        "the_root_and_list_signer_keys_in_a_token_sign_everything",
        |pin_dir| {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("authority");
            let mut a = init(pin_dir, &dir);
            let listing = files(&dir);
            assert!(listing.contains(&CUSTODY_FILE.to_owned()), "{listing:?}");
            assert!(
                !listing.contains(&"root/root.key".to_owned())
                    && !listing.contains(&"issuing-ca/issuing-ca.key".to_owned())
                    && !listing.contains(&"trust-list-signer/signer.key".to_owned()),
                "a key file for a token key: {listing:?}"
            );
            let toml = std::fs::read_to_string(dir.join(CUSTODY_FILE)).unwrap();
            assert!(
                toml.contains("root = \"root\"")
                    && toml.contains("[root_pkcs11]")
                    && toml.contains("issuing_ca = \"issuing-ca\"")
                    && !toml.contains(PIN),
                "{toml}"
            );

            // The token keys are sensitive and not extractable.
            let root = TokenCaKey::open(&root_key_ref(pin_dir, "root")).unwrap();
            assert!(root.value_is_hidden().unwrap());
            drop(root);
            let ica = TokenCaKey::open(&key_ref(pin_dir, "issuing-ca")).unwrap();
            assert!(ica.value_is_hidden().unwrap());
            drop(ica);
            // The root's label is in its own token only.
            assert!(TokenCaKey::open(&key_ref(pin_dir, "root")).is_err());
            let signer = TokenKey::open(&key_ref(pin_dir, "list-signer")).unwrap();
            assert!(signer.value_is_hidden().unwrap());
            drop(signer);

            // The root (self-signed through the token) anchors; a leaf the
            // token's root signs verifies under it.
            let anchor = TrustAnchor::from_der(a.root_der()).unwrap();
            let hz = CityCode::new(330_100).unwrap();
            let issued = a.enrol_city(hz, "Hangzhou", "127.0.0.1:7101", NOW).unwrap();
            let node = cert(issued.dir.join("node.crt"));
            let cas = a.issuing_cas();
            assert_eq!(cas.len(), 1);
            CertInfo::parse_issued_within(&node, &anchor, &cas).unwrap();
            let renewed = a.renew(&RenewTarget::City(hz), NOW + 10).unwrap();
            CertInfo::parse_issued_within(&cert(renewed.live.0.clone()), &anchor, &cas).unwrap();

            // The list, signed through the token, verifies under the root.
            let (_, bytes) = a.publish(NOW + 20, 86_400).unwrap();
            let list = CheckedTrustList::verify(&bytes, &anchor, NOW + 30).unwrap();
            assert!(list.city_node(hz).is_some());

            // Revoked, and the next list (token again) says so.
            a.revoke(&RevokeTarget::City(hz), NOW + 40).unwrap();
            let (_, bytes) = a.publish(NOW + 50, 86_400).unwrap();
            let list = CheckedTrustList::verify(&bytes, &anchor, NOW + 60).unwrap();
            assert!(list.entries().iter().any(|e| e.is_revoked()));

            // A directory opened afresh finds the keys in the token again.
            let mut again = AuthorityDir::open(&dir).unwrap();
            again
                .enrol_gateway("national", "127.0.0.1:7000", NOW + 70)
                .unwrap();
            let (_, bytes) = again.publish(NOW + 80, 86_400).unwrap();
            CheckedTrustList::verify(&bytes, &anchor, NOW + 90).unwrap();

            // rotate-list-signer makes the new key in the token under a
            // new label, which authority.toml names from then on; the next
            // list is signed with it and lists the old signer REVOKED. A
            // key an interrupted rotation left under the next label is
            // stepped over.
            pkcs11::generate(&key_ref(pin_dir, "list-signer.2")).unwrap();
            let rotated = again.rotate_list_signer(NOW + 100).unwrap();
            let toml = std::fs::read_to_string(dir.join(CUSTODY_FILE)).unwrap();
            assert!(
                toml.contains("trust_list_signer = \"list-signer.3\"")
                    && toml.contains("root = \"root\""),
                "{toml}"
            );
            assert!(!rotated.issued.1.exists() && !rotated.live.1.exists());
            let new_signer = TokenKey::open(&key_ref(pin_dir, "list-signer.3")).unwrap();
            assert!(new_signer.value_is_hidden().unwrap());
            drop(new_signer);
            let (_, bytes) = again.publish(NOW + 110, 86_400).unwrap();
            let list = CheckedTrustList::verify(&bytes, &anchor, NOW + 120).unwrap();
            assert_eq!(
                list.signer_certificate().serial(),
                hex::decode(&rotated.new.serial).unwrap().as_slice()
            );
            assert!(list.entries().iter().any(|e| {
                e.is_revoked() && e.cert().serial() == hex::decode(&rotated.old.serial).unwrap()
            }));
            // Again: the next free label (signer.3.crt, but .3 is taken).
            AuthorityDir::open(&dir)
                .unwrap()
                .rotate_list_signer(NOW + 130)
                .unwrap();
            let toml = std::fs::read_to_string(dir.join(CUSTODY_FILE)).unwrap();
            assert!(
                toml.contains("trust_list_signer = \"list-signer.4\""),
                "{toml}"
            );
            AuthorityDir::open(&dir)
                .unwrap()
                .publish(NOW + 140, 86_400)
                .unwrap();
            assert!(
                !files(&dir).iter().any(|f| f.ends_with("root.key")
                    || f.ends_with("issuing-ca.key")
                    || f.starts_with("trust-list-signer/") && f.ends_with(".key")),
                "{:?}",
                files(&dir)
            );
        },
    );
}

/// Rewrites `authority.toml` with `from` replaced by `to`.
fn edit(dir: &Path, from: &str, to: &str) {
    let path = dir.join(CUSTODY_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{text}");
    write_private(&path, &text.replace(from, to));
}

/// Destroys the private key labelled `label` through a session of its own.
fn destroy_private_key(pin_dir: &Path, label: &str) {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::object::{Attribute, ObjectClass};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    let pkcs11 = Pkcs11::new(MODULE).unwrap();
    let _ = pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = pkcs11
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|slot| pkcs11.get_token_info(*slot).unwrap().label().trim_end() == TOKEN)
        .unwrap();
    let session = pkcs11.open_rw_session(slot).unwrap();
    let pin = std::fs::read_to_string(pin_dir.join("pin")).unwrap();
    match session.login(UserType::User, Some(&AuthPin::from(pin.trim().to_owned()))) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {
        }
        Err(e) => panic!("{e}"),
    }
    let found = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap();
    assert_eq!(found.len(), 1);
    session.destroy_object(found[0]).unwrap();
}

/// What a city node's certificate says.
fn leaf_request(city: CityCode) -> CertRequest {
    CertRequest {
        identity: Identity::new(Role::CityNode, Scope::City(city)).unwrap(),
        common_name: "Hangzhou city node".into(),
        hosts: vec!["127.0.0.1".into()],
        not_before: NOW,
        not_after: NOW + 86_400,
        serial: None,
    }
}

#[test]
fn a_wrong_pin_a_missing_label_or_another_key_is_refused() {
    with_token(
        "a_wrong_pin_a_missing_label_or_another_key_is_refused",
        |pin_dir| {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("authority");
            drop(init(pin_dir, &dir));
            let hz = CityCode::new(330_100).unwrap();
            let registry = std::fs::read(dir.join("registry.json")).unwrap();
            let unchanged = || {
                assert_eq!(std::fs::read(dir.join("registry.json")).unwrap(), registry);
                assert!(!dir.join("cities").exists());
            };

            // A wrong PIN (first: a login holds while a session is open).
            let wrong = tmp.path().join("wrong-pin");
            write_private(&wrong, "0000");
            let pin = pin_dir.join("pin").display().to_string();
            edit(&dir, &pin, &wrong.display().to_string());
            let mut a = AuthorityDir::open(&dir).unwrap();
            let why = a
                .enrol_city(hz, "Hangzhou", "127.0.0.1:7101", NOW)
                .unwrap_err()
                .to_string();
            assert!(
                why.contains("refused the PIN from") && why.contains("wrong-pin"),
                "{why}"
            );
            let why = a.publish(NOW, 86_400).unwrap_err().to_string();
            assert!(why.contains("refused the PIN from"), "{why}");
            unchanged();
            edit(&dir, &wrong.display().to_string(), &pin);

            // No key with the label.
            edit(
                &dir,
                "issuing_ca = \"issuing-ca\"",
                "issuing_ca = \"absent\"",
            );
            let mut a = AuthorityDir::open(&dir).unwrap();
            let why = a
                .enrol_city(hz, "Hangzhou", "127.0.0.1:7101", NOW)
                .unwrap_err()
                .to_string();
            assert!(
                why.contains("holds 0 ECDSA P-256 private key(s) labelled \"absent\""),
                "{why}"
            );
            unchanged();

            // Another P-256 key of the token than the issuing CA
            // certificate's.
            generate_p256(&key_ref(pin_dir, "other-ica")).unwrap();
            edit(
                &dir,
                "issuing_ca = \"absent\"",
                "issuing_ca = \"other-ica\"",
            );
            let mut a = AuthorityDir::open(&dir).unwrap();
            let why = a
                .enrol_city(hz, "Hangzhou", "127.0.0.1:7101", NOW)
                .unwrap_err()
                .to_string();
            assert!(
                why.contains(
                    "the key \"other-ica\" in token \"tessera-authority\" is not the key of the issuing-CA certificate"
                ),
                "{why}"
            );
            unchanged();
            edit(
                &dir,
                "issuing_ca = \"other-ica\"",
                "issuing_ca = \"issuing-ca\"",
            );

            // Another Ed25519 key than the trust-list signer certificate's.
            pkcs11::generate(&key_ref(pin_dir, "other-signer")).unwrap();
            edit(
                &dir,
                "trust_list_signer = \"list-signer\"",
                "trust_list_signer = \"other-signer\"",
            );
            let mut a = AuthorityDir::open(&dir).unwrap();
            let why = a.publish(NOW, 86_400).unwrap_err().to_string();
            assert!(
                why.contains("is not the key of the trust-list signer certificate"),
                "{why}"
            );
            assert!(!dir.join("trust-lists").exists());
            edit(
                &dir,
                "trust_list_signer = \"other-signer\"",
                "trust_list_signer = \"list-signer\"",
            );

            // Put right, everything works again.
            let mut a = AuthorityDir::open(&dir).unwrap();
            a.enrol_city(hz, "Hangzhou", "127.0.0.1:7101", NOW).unwrap();
            a.publish(NOW, 86_400).unwrap();

            // A second authority on the same token and labels is refused
            // before anything is written.
            let second = tmp.path().join("second");
            let custody = Custody::in_token(
                settings(pin_dir),
                Some(root_settings(pin_dir)),
                "root",
                "ica-fresh",
                "fresh",
            )
            .unwrap();
            let why = AuthorityDir::init_with(&second, &options(), &custody, NOW)
                .unwrap_err()
                .to_string();
            assert!(
                why.contains("already holds a key labelled \"root\""),
                "{why}"
            );
            assert!(!second.exists());
            // The CA role names the key file a file custody reads.
            assert_eq!(CaRole::Root.key_file(), "root/root.key");

            // A token key that stops answering (as an unplugged token
            // would) fails the certificate, saying what the token answered.
            let root_der = a.root_der().to_vec();
            let key = TokenCaKey::open(&key_ref(pin_dir, "other-ica")).unwrap();
            let root = RootCa::from_parts(key, root_der);
            destroy_private_key(pin_dir, "other-ica");
            let why = root
                .issue(&leaf_request(hz), &TlsKey::generate())
                .unwrap_err()
                .to_string();
            assert!(
                why.contains(
                    "the CA key did not sign the certificate: token \"tessera-authority\": signing:"
                ),
                "{why}"
            );
        },
    );
}
