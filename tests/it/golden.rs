//! The checked-in golden vectors still match what the code produces, byte for
//! byte, and still verify.

use tessera_core::text;
use tessera_core::trust::CheckedTrustList;
use tessera_core::{TrustAnchor, verify};
use tessera_tests::golden::{self, GOLDEN_NOW};

#[test]
fn golden_files_match_the_code_byte_for_byte() {
    let dir = golden::golden_dir();
    for file in golden::build() {
        let on_disk = std::fs::read(dir.join(file.name))
            .unwrap_or_else(|e| panic!("golden file {} missing: {e}", file.name));
        assert!(
            on_disk == file.bytes,
            "golden file {} differs from what the code produces: the wire format changed. \
             If intended, run `cargo run -p tessera-tests --bin regen-golden` and say why.",
            file.name
        );
    }
}

#[test]
fn golden_badges_verify_with_the_golden_trust_list() {
    let dir = golden::golden_dir();
    let root = TrustAnchor::from_der(&std::fs::read(dir.join("root.der")).unwrap()).unwrap();
    let list_bytes = std::fs::read(dir.join("trust-list.tsl")).unwrap();
    let list = CheckedTrustList::verify(&list_bytes, &root, GOLDEN_NOW).unwrap();
    assert_eq!(list.sequence(), 7);
    assert_eq!(list.entries().len(), 4);

    let texts = std::fs::read_to_string(dir.join("badges.txt")).unwrap();
    let expected = golden::golden_claims();
    assert_eq!(texts.lines().count(), expected.len());
    for (line, (stem, claims)) in texts.lines().zip(expected) {
        let (name, badge_text) = line.split_once(' ').unwrap();
        assert_eq!(name, stem);
        let bytes = std::fs::read(dir.join(format!("badge-{stem}.bin"))).unwrap();
        assert_eq!(text::from_text(badge_text, 512).unwrap(), bytes);
        let verified = verify(&bytes, &list, GOLDEN_NOW).unwrap();
        assert_eq!(verified.claims(), &claims);
        assert_eq!(verified.issuer_name(), "Hangzhou");
    }
}
