//! Writes the seed corpus of every fuzz target into `fuzz/seeds/<target>/`,
//! from the golden vectors of `tests/golden/` and the CSV example of
//! docs/OPERATIONS.md. Run from the repository root:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds
//! ```
//!
//! The output is deterministic; the seeds are checked in.

use std::path::{Path, PathBuf};

use prost::Message;
use tessera_core::badge::Envelope;
use tessera_fuzz::{BADGE_TEXTS, BADGES, ROOT_DER, TRUST_LIST, golden};
use tessera_node::pseudonym::check_character;
use tessera_proto::v1 as pb;
use x509_parser::prelude::{FromDer, X509Certificate};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// A valid 18-character ID number from 17 digits.
fn national_id(first17: &str) -> String {
    let check = check_character(first17.as_bytes()).unwrap();
    format!("{first17}{check}")
}

fn badge_text(dir: &Path) {
    for line in BADGE_TEXTS.lines() {
        let (stem, text) = line.split_once(' ').unwrap();
        write(dir, &format!("text-{stem}"), text.as_bytes());
        write(
            dir,
            &format!("text-{stem}-newline"),
            format!("{text}\n").as_bytes(),
        );
    }
    let green = BADGE_TEXTS
        .lines()
        .next()
        .unwrap()
        .split_once(' ')
        .unwrap()
        .1;
    write(
        dir,
        "text-version-2",
        green.replacen("TB1:", "TB2:", 1).as_bytes(),
    );
    write(dir, "text-lower-case", green.to_lowercase().as_bytes());
    write(dir, "text-truncated", &green.as_bytes()[..green.len() - 1]);
    for (stem, envelope) in ["green", "yellow", "red"].iter().zip(BADGES) {
        write(dir, &format!("envelope-{stem}"), envelope);
        // The claims alone: the target signs them with the golden key.
        let payload = Envelope::decode(envelope).unwrap().payload;
        write(dir, &format!("claims-{stem}"), &payload);
    }
}

fn trust_list(dir: &Path) {
    write(dir, "signed-golden", TRUST_LIST);
    let signed = pb::SignedTrustList::decode(TRUST_LIST).unwrap();
    // The payload alone: the target signs it with the golden signer key.
    write(dir, "payload-golden", &signed.payload);
    let list = pb::TrustList::decode(signed.payload.as_slice()).unwrap();
    let mut next = list.clone();
    next.sequence += 1;
    if let Some(entry) = next.entries.last_mut() {
        entry.status = pb::EntryStatus::Revoked as i32;
        entry.revoked_at = list.issued_at;
    }
    write(dir, "payload-revoked-signer", &next.encode_to_vec());
    let mut twice = list.clone();
    twice.entries.extend(list.entries.last().cloned());
    write(dir, "payload-duplicate-key", &twice.encode_to_vec());
    let mut empty = list;
    empty.entries.clear();
    empty.revoked_serials.clear();
    write(dir, "payload-empty", &empty.encode_to_vec());
}

fn certificate(dir: &Path) {
    let signed = pb::SignedTrustList::decode(TRUST_LIST).unwrap();
    let list = pb::TrustList::decode(signed.payload.as_slice()).unwrap();
    let mut certs = vec![("root".to_owned(), ROOT_DER.to_vec())];
    for entry in &list.entries {
        let role = pb::Role::try_from(entry.role).unwrap().as_str_name();
        certs.push((role.to_ascii_lowercase(), entry.certificate_der.clone()));
    }
    for (name, der) in &certs {
        write(dir, &format!("der-{name}"), der);
        // The to-be-signed part alone: the target has the root sign it.
        let (_, cert) = X509Certificate::from_der(der).unwrap();
        let tbs = cert.tbs_certificate.as_ref();
        assert_eq!(golden().sign_certificate(tbs), *der, "{name}");
        write(dir, &format!("tbs-{name}"), tbs);
    }
    for uri in [
        "tessera:nation:000000:root",
        "tessera:nation:000000:trust-list-signer",
        "tessera:nation:000000:authority",
        "tessera:nation:000000:gateway",
        "tessera:city:330100:node",
        "tessera:city:330100:badge-signer",
        "tessera:city:330100:operator",
        "tessera:province:420000:verifier",
    ] {
        let role = uri.rsplit(':').next().unwrap();
        write(dir, &format!("uri-{role}"), uri.as_bytes());
    }
}

fn csv_import(dir: &Path) {
    let hz = |n: &str| national_id(&format!("33010619850312{n}"));
    write(
        dir,
        "operations-example.csv",
        format!(
            "record_id,national_id,type,time,test_kind,positive,lab,product,dose,symptoms\n\
             hz-lab-0001,{},test,2026-11-20T08:30:00+08:00,pcr,false,HZ-LAB-01,,,\n\
             hz-vac-0002,{},vaccination,2026-10-02T14:00:00+08:00,,,,CoronaVac,3,\n\
             hz-sym-0003,{},symptoms,2026-11-21T19:05:00+08:00,,,,,,fever;cough\n",
            hz("002"),
            hz("451"),
            hz("123"),
        )
        .as_bytes(),
    );
    write(
        dir,
        "every-type.csv",
        format!(
            "record_id,national_id,type,time,test_kind,positive,lab,product,dose,contact,source,area_code,risk,symptoms\n\
             t-1,{a},test,2026-11-20T08:30:00Z,antigen,true,HZ-LAB-02,,,,,,,\n\
             v-1,{a},vaccination,2026-03-01T09:00:00+08:00,,,,Comirnaty,1,,,,,\n\
             e-1,{b},exposure,2026-11-18T12:00:00+08:00,,,,,,close,HZ-CDC,,,\n\
             e-2,{b},exposure,2026-11-19T12:00:00+08:00,,,,,,secondary,HZ-CDC,,,\n\
             r-1,{c},travel,2026-11-10T07:00:00+08:00,,,,,,,,420100,high,\n\
             s-1,{c},symptoms,2026-11-21T19:05:00+08:00,,,,,,,,,,\"sore_throat; loss_of_taste_or_smell;fatigue;shortness_of_breath\"\n",
            a = hz("777"),
            b = national_id("42010619851231004"),
            c = national_id("11010519491231002"),
        )
        .as_bytes(),
    );
    write(
        dir,
        "columns-reordered.csv",
        format!(
            "type,time,national_id,record_id,lab,positive,test_kind\n\
             test,2026-11-27T08:00:00+08:00,{},hz-1,HZ-LAB-01,false,pcr\n",
            hz("888")
        )
        .as_bytes(),
    );
    write(
        dir,
        "invalid-lines.csv",
        format!(
            "record_id,national_id,type,time,test_kind,positive,lab\n\
             bad-1,330106198503120021,test,2026-11-27T08:00:00+08:00,pcr,false,HZ\n\
             bad-2,{},test,yesterday,pcr,maybe,HZ\n\
             bad-3,{},colour,2026-11-27T08:00:00+08:00,,,\n\
             \"bad-4\nsplit\",{},test,2026-11-27T08:00:00+08:00,pcr,false,HZ\n\
             bad-5,short\n",
            hz("111"),
            hz("222"),
            hz("333"),
        )
        .as_bytes(),
    );
    write(dir, "header-only.csv", b"record_id,national_id,type,time\n");
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds");
    type Seeder = fn(&Path);
    let targets: [(&str, Seeder); 4] = [
        ("badge_text", badge_text),
        ("trust_list", trust_list),
        ("certificate", certificate),
        ("csv_import", csv_import),
    ];
    for (target, seed) in targets {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        seed(&dir);
        println!("{}", dir.display());
    }
}
