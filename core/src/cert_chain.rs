//! K3 with an issuing CA: who may issue which certificate.
//!
//! The root issues issuing CAs and (always) the trust-list signer; an issuing
//! CA issues everything else, which the root may also still issue directly
//! (directories made before issuing CAs existed). An issuing CA is a CA with
//! path length 0 and keyCertSign, issued by a root whose path length is
//! absent or at least 1; an issuing CA under an issuing CA fails.

use super::{CertError, CertInfo, TrustAnchor, parse_inner, signed_by};
use crate::identity::Role;

/// Who issued a certificate that passed K3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuedBy {
    /// The national root, directly.
    Root,
    /// The issuing CA at this index of the slice the caller gave.
    IssuingCa(usize),
}

/// An issuing-CA certificate checked against the root: its role, profile
/// and the root's signature hold. Built once by [`IssuingCa::from_der`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuingCa {
    cert: CertInfo,
    der: Vec<u8>,
}

impl IssuingCa {
    /// Reads an issuing-CA certificate and checks it against K3: role
    /// issuing-ca, issued by `root`, a CA with path length present and 0,
    /// keyCertSign, and a root whose path length allows it.
    pub fn from_der(der: &[u8], root: &TrustAnchor) -> Result<Self, CertError> {
        let (cert, tbs, signature) = parse_inner(der)?;
        if cert.identity.role() != Role::IssuingCa {
            return Err(CertError::IssuingCaProfile("its role is not issuing-ca"));
        }
        if cert.issuer != root.cert.subject || !signed_by(&root.cert, &tbs, &signature) {
            return Err(CertError::NotIssuedByRoot);
        }
        if !cert.is_ca || cert.path_len != Some(0) {
            return Err(CertError::IssuingCaProfile(
                "it must be a CA with pathLenConstraint present and 0",
            ));
        }
        if !cert.key_cert_sign {
            return Err(CertError::IssuingCaProfile(
                "its keyUsage lacks keyCertSign",
            ));
        }
        if root.cert.path_len == Some(0) {
            return Err(CertError::RootPathLen);
        }
        Ok(Self {
            cert,
            der: der.to_vec(),
        })
    }

    /// The issuing CA's facts.
    pub fn info(&self) -> &CertInfo {
        &self.cert
    }

    /// Its DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

impl CertInfo {
    /// Reads a certificate and checks K3 against the root and these issuing
    /// CAs: an issuing-CA certificate must be one the root issued
    /// ([`IssuingCa::from_der`]); any other certificate must not be a CA and
    /// must be issued by the root or by one of `cas` (whose index is
    /// returned). The root's own certificate is refused.
    pub fn parse_issued_within(
        der: &[u8],
        root: &TrustAnchor,
        cas: &[IssuingCa],
    ) -> Result<(Self, IssuedBy), CertError> {
        let (info, tbs, signature) = parse_inner(der)?;
        match info.identity.role() {
            Role::IssuingCa => {
                let ca = IssuingCa::from_der(der, root)?;
                return Ok((ca.cert, IssuedBy::Root));
            }
            _ if info.is_ca => return Err(CertError::NotIssuedByRoot),
            _ => {}
        }
        if info.issuer == root.cert.subject && signed_by(&root.cert, &tbs, &signature) {
            return Ok((info, IssuedBy::Root));
        }
        let by = cas
            .iter()
            .position(|ca| info.issuer == ca.cert.subject && signed_by(&ca.cert, &tbs, &signature));
        match by {
            Some(index) => Ok((info, IssuedBy::IssuingCa(index))),
            None => Err(CertError::NotIssuedByRoot),
        }
    }

    /// The issuing-CA certificate among `candidates` (a TLS peer's
    /// intermediates) that issued `der`: of role issuing-ca, its subject
    /// the certificate's issuer name, and its key the one that signed it;
    /// `None` if none did (a certificate the root issued directly). Checks
    /// nothing about who issued the candidate: for a chain TLS has already
    /// verified to the root, to learn which issuing CA to look up in the
    /// trust list.
    pub fn issuing_ca_among<C: AsRef<[u8]>>(der: &[u8], candidates: &[C]) -> Option<CertInfo> {
        let (info, tbs, signature) = parse_inner(der).ok()?;
        candidates.iter().find_map(|c| {
            let ca = CertInfo::parse(c.as_ref()).ok()?;
            (ca.identity.role() == Role::IssuingCa
                && ca.subject == info.issuer
                && signed_by(&ca, &tbs, &signature))
            .then_some(ca)
        })
    }

    /// Reads a party's own certificate with the chain its file carries
    /// after it: each chain certificate must be an issuing CA the root
    /// issued, and the certificate must be issued by the root or by one of
    /// them ([`CertInfo::parse_issued_within`]).
    pub fn parse_with_chain<C: AsRef<[u8]>>(
        der: &[u8],
        chain: &[C],
        root: &TrustAnchor,
    ) -> Result<Self, CertError> {
        let cas = chain
            .iter()
            .map(|c| IssuingCa::from_der(c.as_ref(), root))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::parse_issued_within(der, root, &cas)?.0)
    }
}

#[cfg(test)]
#[path = "cert_chain_tests.rs"]
mod tests;
