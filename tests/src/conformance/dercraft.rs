//! Certificates the vectors of K1, K3 and K4 need that no issuing code
//! makes: a root-signed certificate taken apart into its DER fields, one
//! field changed, and signed again by the root (ECDSA P-256, RFC 6979, so
//! the bytes are the same on every run). Nothing here runs a verifier.

use rcgen::SigningKey as _;
use tessera_certs::profile::RootCa;

/// One TLV: its identifier octet and its contents.
#[derive(Clone)]
pub struct Tlv {
    /// The identifier octet.
    pub tag: u8,
    /// The contents.
    pub body: Vec<u8>,
}

/// A definite length in the fewest octets.
fn length(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

impl Tlv {
    /// Its DER encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.tag];
        length(self.body.len(), &mut out);
        out.extend_from_slice(&self.body);
        out
    }

    /// Its encoding with the length in long form, one octet more than DER
    /// allows (`81 len` for a length under 128).
    pub fn encode_long_length(&self) -> Vec<u8> {
        assert!(self.body.len() < 0x80, "a short value");
        let mut out = vec![self.tag, 0x81, self.body.len() as u8];
        out.extend_from_slice(&self.body);
        out
    }

    /// Its encoding with an indefinite length (`80`, contents, `00 00`).
    pub fn encode_indefinite(&self) -> Vec<u8> {
        let mut out = vec![self.tag, 0x80];
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&[0, 0]);
        out
    }

    /// A constructed value of these children, each encoded as given.
    pub fn constructed(tag: u8, children: &[Vec<u8>]) -> Self {
        Tlv {
            tag,
            body: children.concat(),
        }
    }
}

/// Reads the DER values that fill `bytes` (the input is DER from rcgen).
pub fn children(mut bytes: &[u8]) -> Vec<Tlv> {
    let mut out = vec![];
    while !bytes.is_empty() {
        let tag = bytes[0];
        let (len, header) = match bytes[1] {
            n if n < 0x80 => (n as usize, 2),
            n => {
                let k = (n & 0x7f) as usize;
                let len = bytes[2..2 + k]
                    .iter()
                    .fold(0usize, |acc, b| acc * 256 + *b as usize);
                (len, 2 + k)
            }
        };
        out.push(Tlv {
            tag,
            body: bytes[header..header + len].to_vec(),
        });
        bytes = &bytes[header + len..];
    }
    out
}

/// The fields of a certificate's TBSCertificate: version, serial,
/// signature, issuer, validity, subject, subjectPublicKeyInfo, extensions.
pub fn tbs_fields(der: &[u8]) -> Vec<Tlv> {
    let cert = children(der).remove(0);
    let tbs = children(&cert.body).remove(0);
    children(&tbs.body)
}

/// `AlgorithmIdentifier { ecdsa-with-SHA256 }`, DER.
pub const ECDSA_SHA256: [u8; 12] = [
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];

/// `AlgorithmIdentifier { ecdsa-with-SHA384 }`, DER.
pub const ECDSA_SHA384: [u8; 12] = [
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
];

/// A certificate of `tbs` (the whole TBSCertificate encoding, as given),
/// signed by `root` with ecdsa-with-SHA256, the bytes outside `tbs` DER.
pub fn sign_tbs(root: &RootCa, tbs: &[u8]) -> Vec<u8> {
    let signature = root.key().sign(tbs).expect("conformance signature");
    let mut bits = vec![0u8];
    bits.extend_from_slice(&signature);
    let bit_string = Tlv {
        tag: 0x03,
        body: bits,
    };
    Tlv::constructed(
        0x30,
        &[tbs.to_vec(), ECDSA_SHA256.to_vec(), bit_string.encode()],
    )
    .encode()
}

/// The certificate `der` with each TBSCertificate field replaced by the
/// encoding `edit` returns for it (given its index and value), signed
/// again by `root`.
pub fn reissue(root: &RootCa, der: &[u8], edit: &dyn Fn(usize, &Tlv) -> Vec<u8>) -> Vec<u8> {
    let fields: Vec<Vec<u8>> = tbs_fields(der)
        .iter()
        .enumerate()
        .map(|(i, f)| edit(i, f))
        .collect();
    sign_tbs(root, &Tlv::constructed(0x30, &fields).encode())
}

/// Index of the extensions `[3]` among the TBSCertificate fields.
pub const EXTENSIONS: usize = 7;

/// The certificate `der` with its list of extensions (each one an
/// `Extension` TLV) replaced by what `edit` makes of it, signed again.
pub fn reissue_extensions(root: &RootCa, der: &[u8], edit: &dyn Fn(&mut Vec<Vec<u8>>)) -> Vec<u8> {
    reissue(root, der, &|i, f| {
        if i != EXTENSIONS {
            return f.encode();
        }
        let list = children(&f.body).remove(0);
        let mut extensions: Vec<Vec<u8>> = children(&list.body).iter().map(Tlv::encode).collect();
        edit(&mut extensions);
        Tlv::constructed(0xa3, &[Tlv::constructed(0x30, &extensions).encode()]).encode()
    })
}

/// The OID content bytes of an extension's `extnID`.
pub fn extension_oid(extension: &[u8]) -> Vec<u8> {
    let ext = children(extension).remove(0);
    children(&ext.body).remove(0).body
}

/// basicConstraints, 2.5.29.19.
pub const OID_BASIC_CONSTRAINTS: [u8; 3] = [0x55, 0x1d, 0x13];
/// subjectAltName, 2.5.29.17.
pub const OID_SAN: [u8; 3] = [0x55, 0x1d, 0x11];
