"""Offline verification of tessera badges and trust lists, written from
docs/PROTOCOL.md alone: the rules are numbered there, and the comments here
name them.

Nothing of tessera's code is used: protobuf classes generated from
proto/tessera/v1 (see standard.py), `cryptography` for X.509 parsing and the
root's ECDSA P-256 signatures, and ed25519_rule.py for Ed25519.

    standard = load_standard(proto_root, work_dir)
    trust = verify_trust_list(signed_list_bytes, root_der, now, standard)
    result = verify_text(qr_text, trust, now, standard)   # or verify_envelope
    result.outcome, result.reason, result.detail

A refused list raises ListRefused(reason, detail). A badge always gets a
Result; like `tessera verify --offline`, VALID means the signature, signer and
window hold, and the city's status was not asked.
"""

import datetime
import hashlib
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtensionOID, SignatureAlgorithmOID

import ed25519_rule

BADGE_CONTEXT = b"tessera/badge/v1"
TRUST_LIST_CONTEXT = b"tessera/trust-list/v1"

TEXT_PREFIX = "TB1:"
BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
MAX_ENVELOPE_LEN = 512
MAX_TEXT_LEN = len(TEXT_PREFIX) + (MAX_ENVELOPE_LEN + 1) // 2 * 3
MAX_TRUST_LIST_LEN = 16 * 1024 * 1024
MAX_CERTIFICATE_LEN = 16 * 1024
MAX_ROOT_VALIDITY_SECS = 30 * 366 * 86_400
MAX_LEAF_VALIDITY_SECS = 5 * 366 * 86_400
MAX_VALIDITY_SECS = 30 * 86_400
MAX_MASK_STARS = 3
ID_TAIL_CHARS = 4
CLOCK_SKEW_SECS = 300
CLAIMS_VERSION = 1
TRUST_LIST_VERSION = 1

# T1: the characters trimmed from both ends of a badge text, and no others.
TRIMMED = frozenset("\t\n\r ")

ROLES = {
    "root": ("nation", 1),
    "trust-list-signer": ("nation", 2),
    "authority": ("nation", 3),
    "gateway": ("nation", 4),
    "node": ("city", 5),
    "badge-signer": ("city", 6),
    "operator": ("city", 7),
    "verifier": ("province", 8),
    "issuing-ca": ("nation", 9),
}
TLS_ROLES = {"authority", "gateway", "node", "operator", "verifier"}
SIGNER_ROLES = {"trust-list-signer", "badge-signer"}
# K2, K3: the only roles that are CAs.
CA_ROLES = {"root", "issuing-ca"}
# E3: the roles a trust list names.
LISTED_ROLES = {"trust-list-signer", "issuing-ca", "gateway", "node", "badge-signer"}
KNOWN_CRITICAL = {
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    ExtensionOID.EXTENDED_KEY_USAGE,
}
# AlgorithmIdentifier { ecdsa-with-SHA256 }, DER, no parameters.
ECDSA_SHA256_ALGORITHM = bytes.fromhex("300a06082a8648ce3d040302")


class ListRefused(Exception):
    """A trust list was refused: `reason` is the stable code."""

    def __init__(self, reason, detail):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class CertRefused(Exception):
    def __init__(self, reason, detail):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class Refused(Exception):
    """A badge was refused with an outcome and a reason."""

    def __init__(self, outcome, reason, detail):
        super().__init__(f"{outcome} {reason}: {detail}")
        self.outcome, self.reason, self.detail = outcome, reason, detail


@dataclass
class Result:
    outcome: str
    reason: str
    detail: str = ""
    colour: str = ""
    valid_until: int = 0
    issuer_city: int = 0
    issuer_name: str = ""


# --- certificates -------------------------------------------------------------


@dataclass
class Cert:
    role: str
    code: int
    serial: bytes
    not_before: int
    not_after: int
    key_type: str  # "p256" or "ed25519"
    public_key: object
    raw_key: bytes
    key_id: bytes
    is_ca: bool
    path_len: object  # the pathLenConstraint, None when absent
    key_cert_sign: bool
    subject: bytes
    issuer: bytes
    der: bytes
    tbs: bytes = field(repr=False, default=b"")
    signature: bytes = field(repr=False, default=b"")


def _der_header(tag, length):
    if length < 0x80:
        return bytes([tag, length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(body)]) + body


def _der_values(data):
    """The (tag, contents) of the DER values filling `data`, which
    cryptography has already read as DER."""
    out, i = [], 0
    while i < len(data):
        tag, n = data[i], data[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(data[i : i + k], "big")
            i += k
        out.append((tag, data[i : i + n]))
        i += n
    return out


def _check_code(code, scope):
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        raise CertRefused("cert.identity", f"{code!r} is not a 6-digit code")
    value = int(code)
    if scope == "nation":
        if code != "000000":
            raise CertRefused("cert.identity", "the nation scope must carry code 000000")
        return 0
    if not 11 <= value // 10_000 <= 82:
        raise CertRefused("cert.identity", f"{code} does not start with a province prefix")
    if scope == "city" and value % 10_000 == 0:
        raise CertRefused("cert.identity", f"{code} is a province code, not a city code")
    if scope == "province" and value % 10_000 != 0:
        raise CertRefused("cert.identity", f"{code} is not a province code")
    return value


def _identity(uri):
    parts = uri[len("tessera:"):].split(":")
    if len(parts) != 3:
        raise CertRefused("cert.identity", f"{uri!r} is not tessera:<scope>:<code>:<role>")
    scope, code, role = parts
    if role not in ROLES:
        raise CertRefused("cert.identity", f"unknown role {role!r}")
    if scope not in ("nation", "city", "province"):
        raise CertRefused("cert.identity", f"unknown scope {scope!r}")
    value = _check_code(code, scope)
    if ROLES[role][0] != scope:
        raise CertRefused("cert.identity", f"role {role} cannot be scoped to a {scope}")
    return role, value


def _seconds(moment):
    return int(moment.replace(tzinfo=datetime.timezone.utc).timestamp()) if moment.tzinfo is None \
        else int(moment.timestamp())


def parse_cert(der):
    """Reads a certificate without checking who issued it."""
    if len(der) > MAX_CERTIFICATE_LEN:
        raise CertRefused("cert.too_large", f"{len(der)} bytes")
    try:
        cert = x509.load_der_x509_certificate(der)
        tbs = cert.tbs_certificate_bytes
        signature = cert.signature
        sig_oid = cert.signature_algorithm_oid
        key = cert.public_key()
        version = cert.version
    except (ValueError, TypeError, x509.InvalidVersion) as e:
        raise CertRefused("cert.malformed", str(e)) from e
    if version != x509.Version.v3:  # K1
        raise CertRefused("cert.malformed", "not an X.509 v3 certificate")
    if sig_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA256:
        raise CertRefused("cert.algorithm", f"signature algorithm {sig_oid.dotted_string}")
    # K3: the algorithm inside the signed part too, byte for byte, and K4's
    # encoding of the subject key, both read from the TBS fields (version,
    # serial, signature, issuer, validity, subject, subjectPublicKeyInfo).
    fields = _der_values(_der_values(tbs)[0][1])
    if _der_header(0x30, len(fields[2][1])) + fields[2][1] != ECDSA_SHA256_ALGORITHM:
        raise CertRefused("cert.algorithm", "the TBS signature algorithm is not ecdsa-with-SHA256")
    spki_bits = _der_values(fields[6][1])[1][1][1:]
    # Only the TBS part is signed: the bytes around it must be the one DER
    # encoding, or one certificate would have many key ids.
    bit_string = _der_header(0x03, len(signature) + 1) + b"\x00" + signature
    body = tbs + ECDSA_SHA256_ALGORITHM + bit_string
    if _der_header(0x30, len(body)) + body != der:
        raise CertRefused("cert.malformed", "non-canonical encoding outside the signed part")
    try:
        r, s = _ecdsa_der_to_ints(signature)
    except ValueError as e:
        raise CertRefused("cert.malformed", f"ECDSA signature: {e}") from e
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        key_type = "p256"
        raw_key = key.public_bytes(
            encoding=_serialization().Encoding.X962,
            format=_serialization().PublicFormat.UncompressedPoint,
        )
        if spki_bits != raw_key:  # K4: an uncompressed point
            raise CertRefused("cert.bad_key", "a P-256 key that is not an uncompressed point")
    elif isinstance(key, ed25519.Ed25519PublicKey):
        key_type = "ed25519"
        raw_key = key.public_bytes(
            encoding=_serialization().Encoding.Raw, format=_serialization().PublicFormat.Raw
        )
        if not ed25519_rule.names_a_point(raw_key):  # K4
            raise CertRefused("cert.bad_key", "Ed25519 key bytes that decode to no curve point")
    else:
        raise CertRefused("cert.key_type", f"subject key {type(key).__name__}")

    identity = None
    server_auth = client_auth = False
    is_ca = key_cert_sign = False
    path_len = None
    try:
        extensions = list(cert.extensions)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as e:
        raise CertRefused("cert.malformed", str(e)) from e
    for ext in extensions:
        if ext.critical and ext.oid not in KNOWN_CRITICAL:
            raise CertRefused("cert.critical_extension", ext.oid.dotted_string)
        if ext.oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME:
            for uri in ext.value.get_values_for_type(x509.UniformResourceIdentifier):
                if uri.startswith("tessera:"):
                    if identity is not None:
                        raise CertRefused("cert.identity", "more than one tessera identity")
                    identity = _identity(uri)
        elif ext.oid == ExtensionOID.BASIC_CONSTRAINTS:
            is_ca = ext.value.ca
            path_len = ext.value.path_length
        elif ext.oid == ExtensionOID.KEY_USAGE:
            key_cert_sign = ext.value.key_cert_sign
        elif ext.oid == ExtensionOID.EXTENDED_KEY_USAGE:
            server_auth = x509.ExtendedKeyUsageOID.SERVER_AUTH in ext.value
            client_auth = x509.ExtendedKeyUsageOID.CLIENT_AUTH in ext.value
    if identity is None:
        raise CertRefused("cert.identity", "no tessera identity (SAN URI)")
    role, code = identity
    expected = "ed25519" if role in SIGNER_ROLES else "p256"
    if key_type != expected:
        raise CertRefused("cert.key_type", f"a {role} certificate must carry a {expected} key")
    if is_ca != (role in CA_ROLES):  # K2, K3a, K3b
        raise CertRefused("cert.ca_flag", f"role {role} with is_ca = {is_ca}")
    not_before = _seconds(cert.not_valid_before_utc)
    not_after = _seconds(cert.not_valid_after_utc)
    if not_after < not_before:
        raise CertRefused("cert.validity", "empty validity")
    longest = MAX_ROOT_VALIDITY_SECS if role == "root" else MAX_LEAF_VALIDITY_SECS
    if not_after - not_before > longest:
        raise CertRefused("cert.validity", f"valid for {(not_after - not_before) // 86_400} days")
    del r, s, server_auth, client_auth
    return Cert(
        role=role,
        code=code,
        serial=_serial_bytes(cert.serial_number),
        not_before=not_before,
        not_after=not_after,
        key_type=key_type,
        public_key=key,
        raw_key=raw_key,
        key_id=hashlib.sha256(der).digest()[:8],
        is_ca=is_ca,
        path_len=path_len,
        key_cert_sign=key_cert_sign,
        subject=cert.subject.public_bytes(),
        issuer=cert.issuer.public_bytes(),
        der=der,
        tbs=tbs,
        signature=signature,
    )


def _serialization():
    from cryptography.hazmat.primitives import serialization

    return serialization


def _serial_bytes(number):
    """The DER INTEGER content bytes of a (non-negative) serial."""
    length = number.bit_length() // 8 + 1
    return number.to_bytes(length, "big")


def _ecdsa_der_to_ints(signature):
    """Checks the ECDSA-Sig-Value is canonical DER; returns (r, s)."""
    if len(signature) < 8 or signature[0] != 0x30 or signature[1] != len(signature) - 2:
        raise ValueError("not a DER SEQUENCE of the stated length")
    values, i = [], 2
    for _ in range(2):
        if i + 2 > len(signature) or signature[i] != 0x02:
            raise ValueError("not an INTEGER")
        n = signature[i + 1]
        content = signature[i + 2 : i + 2 + n]
        if n == 0 or len(content) != n:
            raise ValueError("truncated INTEGER")
        if content[0] & 0x80 or (n > 1 and content[0] == 0 and not content[1] & 0x80):
            raise ValueError("non-minimal INTEGER")
        values.append(int.from_bytes(content, "big"))
        i += 2 + n
    if i != len(signature):
        raise ValueError("bytes trail the signature")
    return values[0], values[1]


def root_anchor(der):
    """Reads the pinned root: a self-signed tessera root."""
    root = parse_cert(der)
    if root.role != "root":
        raise CertRefused("cert.ca_flag", f"role {root.role} is not the root")
    if root.subject != root.issuer or not _ecdsa_holds(root.public_key, root):
        raise CertRefused("cert.not_issued_by_root", "the root is not self-signed")
    return root


def _ecdsa_holds(key, cert):
    try:
        key.verify(cert.signature, cert.tbs, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False


def _issued_by(cert, issuer):
    """K3: issuer name, algorithm (parse_cert) and signature."""
    return cert.issuer == issuer.subject and _ecdsa_holds(issuer.public_key, cert)


def parse_issuing_ca(der, root):
    """K3a: an issuing-CA certificate, issued by the root."""
    cert = parse_cert(der)
    if cert.role != "issuing-ca":
        raise CertRefused("cert.role", f"a {cert.role} is not an issuing CA")
    if not _issued_by(cert, root):
        raise CertRefused("cert.not_issued_by_root", "an issuing CA not issued by the root")
    if cert.path_len != 0:
        raise CertRefused("cert.path_len", f"issuing CA with pathLenConstraint {cert.path_len}")
    if not cert.key_cert_sign:
        raise CertRefused("cert.key_usage", "issuing CA without keyCertSign")
    if root.path_len is not None and root.path_len < 1:
        raise CertRefused("cert.path_len", "a root of pathLenConstraint 0 issues no CA")
    return cert


def parse_issued_by(der, root, issuing_cas=()):
    """K1-K7 for any certificate but the root: returns (cert, issuing CA or
    None). `issuing_cas` are the issuing CAs available where it is read."""
    cert = parse_cert(der)
    if cert.role == "issuing-ca":
        return parse_issuing_ca(der, root), None
    if _issued_by(cert, root):
        return cert, None
    for ca in issuing_cas:  # K3b: the one whose key verifies it
        if _issued_by(cert, ca):
            return cert, ca
    raise CertRefused("cert.not_issued", "issued neither by the root nor by an issuing CA held")


def valid_at(cert, now):
    return cert.not_before <= now <= cert.not_after


# --- signing input --------------------------------------------------------------


def signing_input(context, payload):
    return context + len(payload).to_bytes(4, "big") + payload


def ed25519_holds(context, payload, signature, cert):
    return ed25519_rule.verify(cert.raw_key, signature, signing_input(context, payload))


# --- trust list -------------------------------------------------------------------


@dataclass
class Entry:
    cert: Cert
    name: str
    endpoint: str
    revoked: bool
    issuer_key_id: object = None  # the key id of its issuing CA's certificate (E1)
    issuer: object = field(default=None, repr=False)  # that CA's Entry


@dataclass
class TrustList:
    sequence: int
    issued_at: int
    next_update: int
    sunset_at: int
    entries: dict  # key id -> Entry
    revoked_serials: set
    signer: Cert
    payload: bytes

    def revokes(self, cert):
        entry = self.entries.get(cert.key_id)
        return cert.serial in self.revoked_serials or (entry is not None and entry.revoked)


def _decode(message_class, data, reason, refusal):
    from google.protobuf.message import DecodeError

    message = message_class()
    try:
        message.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise refusal(reason, str(e)) from e
    return message


def verify_trust_list(data, root, now, standard, held=None):
    """Rules T1-T…: accepts an encoded SignedTrustList against the root at
    `now` (and as the successor of `held`), or raises ListRefused."""
    pb = standard.trust
    if len(data) > MAX_TRUST_LIST_LEN:
        raise ListRefused("list_too_large", f"{len(data)} bytes")
    signed = _decode(pb.SignedTrustList, data, "list_malformed", ListRefused)
    try:
        signer, _ = parse_issued_by(signed.signer_certificate, root)  # L3: the root alone
    except CertRefused as e:
        raise ListRefused("signer_untrusted", str(e)) from e
    if signer.role != "trust-list-signer":
        raise ListRefused("signer_role", f"signed by a {signer.role}")
    if not valid_at(signer, now):
        raise ListRefused("signer_expired", "signer certificate not valid now")
    if len(signed.signature) != 64 or not ed25519_holds(
        TRUST_LIST_CONTEXT, signed.payload, signed.signature, signer
    ):
        raise ListRefused("bad_signature", "signature does not match")
    body = _decode(pb.TrustList, signed.payload, "list_malformed", ListRefused)
    if body.version != TRUST_LIST_VERSION:
        raise ListRefused("unsupported_version", f"version {body.version}")
    if body.next_update < body.issued_at:
        raise ListRefused("dates_inconsistent", "next_update is before issued_at")
    if body.sunset_at < body.next_update:
        raise ListRefused("dates_inconsistent", "sunset_at is before next_update")
    if body.issued_at > now + CLOCK_SKEW_SECS:
        raise ListRefused("issued_in_future", f"{body.issued_at} > {now}")
    if now > body.sunset_at:
        raise ListRefused("sunset", f"passed its sunset at {body.sunset_at}")
    issuing_cas = []  # the list's issuing CAs, wherever they stand (E1)
    for entry in body.entries:
        try:
            issuing_cas.append(parse_issuing_ca(entry.certificate_der, root))
        except CertRefused:
            pass
    checked_entries = [
        _check_entry(entry, root, issuing_cas, i) for i, entry in enumerate(body.entries)
    ]  # L13
    entries = {}
    for checked in checked_entries:  # L14
        if checked.cert.key_id in entries:
            raise ListRefused("duplicate_key", checked.cert.key_id.hex())
        entries[checked.cert.key_id] = checked
    for checked in checked_entries:
        if checked.issuer_key_id is not None:
            checked.issuer = entries[checked.issuer_key_id]
    revoked_serials = set(body.revoked_serials)
    own = entries.get(signer.key_id)
    if signer.serial in revoked_serials or (own is not None and own.revoked):
        raise ListRefused("signer_revoked", "the list revokes its own signer")
    checked = TrustList(
        sequence=body.sequence,
        issued_at=body.issued_at,
        next_update=body.next_update,
        sunset_at=body.sunset_at,
        entries=entries,
        revoked_serials=revoked_serials,
        signer=signer,
        payload=signed.payload,
    )
    if held is not None:
        if checked.sequence < held.sequence:
            raise ListRefused("rollback", f"{checked.sequence} < held {held.sequence}")
        if checked.sequence == held.sequence and checked.payload != held.payload:
            raise ListRefused("sequence_reused", f"sequence {checked.sequence}")
        if held.revokes(signer):
            raise ListRefused("signer_revoked", "signed by a signer the held list revokes")
    return checked


def _check_entry(entry, root, issuing_cas, index):
    def refuse(reason, detail):
        return ListRefused(reason, f"entry {index}: {detail}")

    try:
        cert, issuing_ca = parse_issued_by(entry.certificate_der, root, issuing_cas)
    except CertRefused as e:
        raise refuse("entry_certificate", str(e)) from e
    if entry.role != ROLES[cert.role][1]:
        raise refuse("entry_role_mismatch", f"entry role {entry.role}, certificate {cert.role}")
    if cert.role not in LISTED_ROLES:
        raise refuse("entry_unlisted_role", cert.role)
    if cert.role in ("node", "gateway") and not entry.endpoint:
        raise refuse("entry_missing_endpoint", f"a {cert.role} entry needs an endpoint")
    if entry.code != cert.code:
        raise refuse("entry_code_mismatch", f"{entry.code:06} vs {cert.code:06}")
    if entry.not_before != cert.not_before or entry.not_after != cert.not_after:
        raise refuse("entry_validity_mismatch", "validity does not match the certificate")
    if entry.status not in (1, 2):
        raise refuse("entry_status", f"status {entry.status}")
    return Entry(
        cert=cert,
        name=entry.name,
        endpoint=entry.endpoint,
        revoked=entry.status == 2,
        issuer_key_id=issuing_ca.key_id if issuing_ca is not None else None,
    )


# --- badges -------------------------------------------------------------------------


def _base45_decode(body):
    for position, ch in enumerate(body):
        if ch not in BASE45:
            raise Refused("MALFORMED", "text_invalid_character",
                          f"{ch!r} at {len(TEXT_PREFIX) + position}")
    if len(body) % 3 == 1:
        raise Refused("MALFORMED", "text_dangling_character", f"{len(body)} characters")
    out = bytearray()
    for start in range(0, len(body), 3):
        chunk = body[start : start + 3]
        n = 0
        for ch in reversed(chunk):
            n = n * 45 + BASE45.index(ch)
        if (len(chunk) == 3 and n > 0xFFFF) or (len(chunk) == 2 and n > 0xFF):
            raise Refused("MALFORMED", "text_value_out_of_range", f"group at {start}")
        out += n.to_bytes(len(chunk) - 1, "big")
    return bytes(out)


def text_to_envelope(text):
    start, end = 0, len(text)
    while start < end and text[start] in TRIMMED:
        start += 1
    while end > start and text[end - 1] in TRIMMED:
        end -= 1
    text = text[start:end]
    if len(text) > MAX_TEXT_LEN:
        raise Refused("MALFORMED", "text_too_long", f"{len(text)} characters")
    if not text.startswith(TEXT_PREFIX):
        version, sep, _ = text.partition(":")
        if sep and version.startswith("TB") and len(version) <= 6:
            raise Refused("MALFORMED", "text_unsupported_version", f"{version}:")
        raise Refused("MALFORMED", "text_missing_prefix", "it must start with TB1:")
    return _base45_decode(text[len(TEXT_PREFIX):])


def _unverified(envelope, trust, now, standard):
    if now > trust.sunset_at:
        raise Refused("UNKNOWN_SIGNER", "trust_list_sunset", "the trust list passed its sunset")
    if len(envelope) > MAX_ENVELOPE_LEN:
        raise Refused("MALFORMED", "envelope_too_large", f"{len(envelope)} bytes")

    class Malformed(Refused):
        def __init__(self, reason, detail):
            super().__init__("MALFORMED", reason, detail)

    signed = _decode(standard.badge.SignedBadge, envelope, "envelope_decode", Malformed)
    if len(signed.key_id) != 8:
        raise Malformed("key_id_length", f"{len(signed.key_id)} bytes")
    if len(signed.signature) != 64:
        raise Malformed("signature_length", f"{len(signed.signature)} bytes")
    if not signed.payload:
        raise Malformed("empty_payload", "no payload")
    entry = trust.entries.get(signed.key_id)
    if entry is None:
        raise Refused("UNKNOWN_SIGNER", "unknown_signer", signed.key_id.hex())
    if entry.cert.role != "badge-signer":
        raise Refused("UNKNOWN_SIGNER", "wrong_signer_role", entry.cert.role)
    return signed, entry


def _masked_name_ok(name):
    """C9: empty, or one character followed by one to three '*'."""
    return name == "" or (2 <= len(name) <= 1 + MAX_MASK_STARS and set(name[1:]) == {"*"})


def _id_tail_ok(tail):
    """C10: empty, or exactly four of 0-9 and X."""
    return tail == "" or (len(tail) == ID_TAIL_CHARS and all(c in "0123456789X" for c in tail))


def _accept(signed, entry, now, standard):
    if entry.revoked:  # V10
        raise Refused("SIGNER_REVOKED", "signer_revoked", signed.key_id.hex())
    if entry.issuer is not None and entry.issuer.revoked:  # V10a
        raise Refused("SIGNER_REVOKED", "issuer_revoked", entry.issuer.cert.key_id.hex())

    class Malformed(Refused):
        def __init__(self, reason, detail):
            super().__init__("MALFORMED", reason, detail)

    claims = _decode(standard.badge.BadgeClaims, signed.payload, "claims_decode", Malformed)
    if claims.version != CLAIMS_VERSION:
        raise Malformed("unsupported_version", f"version {claims.version}")
    try:
        city = _check_code(f"{claims.issuer_city:06}", "city")
    except CertRefused as e:
        raise Malformed("issuer_city_invalid", e.detail) from e
    if len(claims.badge_id) != 16:
        raise Malformed("badge_id_length", f"{len(claims.badge_id)} bytes")
    if claims.colour not in (1, 2, 3):
        raise Malformed("colour_invalid", f"colour {claims.colour}")
    if claims.valid_until <= claims.issued_at:
        raise Malformed("empty_window", "valid_until <= issued_at")
    if claims.valid_until - claims.issued_at > MAX_VALIDITY_SECS:
        raise Malformed("window_too_long", "over 30 days")
    if claims.policy_version == 0:  # C8
        raise Malformed("policy_version_zero", "policy versions start at 1")
    hint = claims.holder_hint
    if not _masked_name_ok(hint.masked_name):  # C9
        raise Malformed("masked_name_form", repr(hint.masked_name))
    if not _id_tail_ok(hint.id_tail):  # C10
        raise Malformed("id_tail_form", repr(hint.id_tail))
    if city != entry.cert.code:
        raise Refused("BAD_SIGNATURE", "issuer_mismatch", f"{city:06} vs {entry.cert.code:06}")
    chain = [entry.cert] + ([entry.issuer.cert] if entry.issuer is not None else [])
    for cert in chain:  # V13: the signer, and its issuing CA
        if not valid_at(cert, claims.issued_at) or claims.valid_until > cert.not_after:
            raise Refused("BAD_SIGNATURE", "signer_not_valid_at_issue",
                          f"window outside the {cert.role} certificate")
    if claims.issued_at > now + CLOCK_SKEW_SECS:
        raise Refused("NOT_YET_VALID", "not_yet_valid", f"issued at {claims.issued_at}")
    if now > claims.valid_until:
        raise Refused("EXPIRED", "expired", f"expired at {claims.valid_until}")
    colour = standard.badge.Colour.Name(claims.colour)[len("COLOUR_"):]
    return Result(
        outcome="VALID",
        reason="valid",
        detail="signature, signer and window hold; the city's status was not asked",
        colour=colour,
        valid_until=claims.valid_until,
        issuer_city=city,
        issuer_name=entry.name,
    )


def verify_envelope(envelope, trust, now, standard):
    try:
        signed, entry = _unverified(envelope, trust, now, standard)
        if not ed25519_holds(BADGE_CONTEXT, signed.payload, signed.signature, entry.cert):
            raise Refused("BAD_SIGNATURE", "bad_signature", "badge signature does not match")
        return _accept(signed, entry, now, standard)
    except Refused as e:
        return Result(outcome=e.outcome, reason=e.reason, detail=e.detail)


def verify_text(text, trust, now, standard):
    try:
        envelope = text_to_envelope(text)
    except Refused as e:
        return Result(outcome=e.outcome, reason=e.reason, detail=e.detail)
    return verify_envelope(envelope, trust, now, standard)
