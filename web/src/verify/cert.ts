// Certificates as a verifier reads them: K1 to K7 of docs/PROTOCOL.md
// ("Certificates: what a verifier accepts") and the identity URIs of
// "Identity URIs". K8 (serverAuth/clientAuth) belongs to a TLS handshake,
// which an offline verifier never makes.
import { p256 } from "@noble/curves/nist.js";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  DerError,
  type Tlv,
  bitStringBytes,
  booleanValue,
  checkTree,
  children,
  equalBytes,
  expect,
  integerBytes,
  oid,
  readOnly,
  smallInteger,
  time,
} from "./der.js";
import { namesAPoint } from "./ed25519.js";

export const MAX_CERTIFICATE_LEN = 16 * 1024;
const MAX_ROOT_VALIDITY_SECS = 30 * 366 * 86_400;
const MAX_LEAF_VALIDITY_SECS = 5 * 366 * 86_400;

/** Role name -> [scope, the trust.proto Role number]. */
export const ROLES: Record<string, [string, number]> = {
  root: ["nation", 1],
  "trust-list-signer": ["nation", 2],
  authority: ["nation", 3],
  gateway: ["nation", 4],
  node: ["city", 5],
  "badge-signer": ["city", 6],
  operator: ["city", 7],
  verifier: ["province", 8],
  "issuing-ca": ["nation", 9],
};
const SIGNER_ROLES = new Set(["trust-list-signer", "badge-signer"]);
/** K2, K3: the only roles that are CAs. */
const CA_ROLES = new Set(["root", "issuing-ca"]);

const OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2";
const OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1";
const OID_P256 = "1.2.840.10045.3.1.7";
const OID_ED25519 = "1.3.101.112";
const OID_BASIC_CONSTRAINTS = "2.5.29.19";
const OID_KEY_USAGE = "2.5.29.15";
const OID_SAN = "2.5.29.17";
const OID_EKU = "2.5.29.37";
const KNOWN_CRITICAL = new Set([OID_BASIC_CONSTRAINTS, OID_KEY_USAGE, OID_SAN, OID_EKU]);
/** AlgorithmIdentifier { ecdsa-with-SHA256 }, DER, parameters absent. */
const ECDSA_SHA256_ALGORITHM = new Uint8Array([0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);

/** A certificate refused by K1 to K7; `reason` is a stable internal code
 *  (the standard maps every one of them to `signer_untrusted` or
 *  `entry_certificate`). */
export class CertRefused extends Error {
  constructor(
    public reason: string,
    public detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}

export interface Cert {
  role: string;
  /** The 6-digit code as a number (0 for the nation). */
  code: number;
  /** The serial's DER INTEGER content bytes. */
  serial: Uint8Array;
  notBefore: bigint;
  notAfter: bigint;
  keyType: "p256" | "ed25519";
  /** Uncompressed SEC1 point (P-256) or the 32 raw bytes (Ed25519). */
  rawKey: Uint8Array;
  /** First 8 bytes of SHA-256 over the DER ("Key id"). */
  keyId: Uint8Array;
  isCa: boolean;
  /** The basic constraints' pathLenConstraint, null when absent. */
  pathLen: number | null;
  /** Whether a key usage extension sets keyCertSign. */
  keyCertSign: boolean;
  subject: Uint8Array;
  issuer: Uint8Array;
  der: Uint8Array;
  tbs: Uint8Array;
  /** The ECDSA signature as r || s, 32 bytes each. */
  signature: Uint8Array;
}

/** A 6-digit code in a scope, as "Identity URIs" states. */
export function checkCode(code: string, scope: string): number {
  if (!/^[0-9]{6}$/.test(code)) throw new CertRefused("cert.identity", `${JSON.stringify(code)} is not a 6-digit code`);
  const value = Number(code);
  if (scope === "nation") {
    if (code !== "000000") throw new CertRefused("cert.identity", "the nation scope must carry code 000000");
    return 0;
  }
  const province = Math.floor(value / 10_000);
  if (province < 11 || province > 82) throw new CertRefused("cert.identity", `${code} does not start with a province prefix`);
  if (scope === "city" && value % 10_000 === 0) throw new CertRefused("cert.identity", `${code} is a province code, not a city code`);
  if (scope === "province" && value % 10_000 !== 0) throw new CertRefused("cert.identity", `${code} is not a province code`);
  return value;
}

function identity(uri: string): [string, number] {
  const parts = uri.slice("tessera:".length).split(":");
  if (parts.length !== 3) throw new CertRefused("cert.identity", `${JSON.stringify(uri)} is not tessera:<scope>:<code>:<role>`);
  const [scope, code, role] = parts;
  if (!Object.hasOwn(ROLES, role)) throw new CertRefused("cert.identity", `unknown role ${JSON.stringify(role)}`);
  if (!["nation", "city", "province"].includes(scope)) throw new CertRefused("cert.identity", `unknown scope ${JSON.stringify(scope)}`);
  const value = checkCode(code, scope);
  if (ROLES[role][0] !== scope) throw new CertRefused("cert.identity", `role ${role} cannot be scoped to a ${scope}`);
  return [role, value];
}

/** ECDSA-Sig-Value, checked to be the one DER encoding: r || s. */
function ecdsaSignature(bytes: Uint8Array): Uint8Array {
  const seq = readOnly(bytes);
  expect(seq, 0x30, "ECDSA-Sig-Value");
  const parts = children(seq);
  if (parts.length !== 2) throw new DerError("ECDSA-Sig-Value is not two INTEGERs");
  const out = new Uint8Array(64);
  parts.forEach((part, i) => {
    let b = integerBytes(part);
    if (b[0] & 0x80) throw new DerError("negative ECDSA value");
    if (b.length > 1 && b[0] === 0) b = b.subarray(1);
    if (b.length > 32) throw new DerError("ECDSA value too large");
    out.set(b, i * 32 + 32 - b.length);
  });
  return out;
}

function publicKey(spki: Tlv): ["p256" | "ed25519", Uint8Array] {
  const [alg, key, ...extra] = children(expect(spki, 0x30, "SubjectPublicKeyInfo"));
  if (extra.length) throw new DerError("SubjectPublicKeyInfo has extra fields");
  const [algOid, params, ...more] = children(expect(alg, 0x30, "AlgorithmIdentifier"));
  if (more.length) throw new DerError("AlgorithmIdentifier has extra fields");
  const bits = bitStringBytes(expect(key, 0x03, "subjectPublicKey"));
  const algorithm = oid(algOid);
  if (algorithm === OID_EC_PUBLIC_KEY) {
    if (params === undefined || params.tag !== 0x06 || oid(params) !== OID_P256)
      throw new CertRefused("cert.key_type", "an EC key not on P-256");
    if (bits.length !== 65 || bits[0] !== 0x04) throw new CertRefused("cert.key_type", "a P-256 key that is not an uncompressed point");
    try {
      p256.Point.fromBytes(bits).assertValidity();
    } catch (e) {
      throw new CertRefused("cert.malformed", `P-256 key: ${(e as Error).message}`);
    }
    return ["p256", bits];
  }
  if (algorithm === OID_ED25519) {
    if (params !== undefined) throw new CertRefused("cert.malformed", "Ed25519 with parameters");
    if (bits.length !== 32) throw new CertRefused("cert.malformed", "an Ed25519 key that is not 32 bytes");
    if (!namesAPoint(bits)) throw new CertRefused("cert.bad_key", "Ed25519 key bytes that decode to no curve point");
    return ["ed25519", bits];
  }
  throw new CertRefused("cert.key_type", `subject key algorithm ${algorithm}`);
}

/** K1, K4 to K7: reads a certificate without checking who issued it. */
export function parseCert(der: Uint8Array): Cert {
  if (der.length > MAX_CERTIFICATE_LEN) throw new CertRefused("cert.too_large", `${der.length} bytes`);
  try {
    return parseInner(der);
  } catch (e) {
    if (e instanceof DerError) throw new CertRefused("cert.malformed", e.message);
    throw e;
  }
}

function parseInner(der: Uint8Array): Cert {
  const outer = readOnly(der); // K1: nothing trailing
  checkTree(outer); // K1: every length definite and minimal
  const [tbsTlv, sigAlg, sigBits, ...extra] = children(expect(outer, 0x30, "Certificate"));
  if (extra.length) throw new DerError("Certificate has extra fields");
  expect(tbsTlv, 0x30, "TBSCertificate");
  if (!equalBytes(expect(sigAlg, 0x30, "signatureAlgorithm").raw, ECDSA_SHA256_ALGORITHM))
    throw new CertRefused("cert.algorithm", "the signature algorithm is not ecdsa-with-SHA256 without parameters");
  const signature = ecdsaSignature(bitStringBytes(expect(sigBits, 0x03, "signatureValue")));

  const fields = children(tbsTlv);
  let i = 0;
  const version = expect(fields[i++], 0xa0, "version [0]");
  const versionInner = children(version);
  if (versionInner.length !== 1 || smallInteger(versionInner[0]) !== 2) throw new DerError("not an X.509 v3 certificate");
  const serial = integerBytes(expect(fields[i++], 0x02, "serialNumber"));
  if (!equalBytes(expect(fields[i++], 0x30, "signature").raw, ECDSA_SHA256_ALGORITHM))
    throw new CertRefused("cert.algorithm", "the TBS signature algorithm is not ecdsa-with-SHA256");
  const issuer = expect(fields[i++], 0x30, "issuer").raw;
  const validity = children(expect(fields[i++], 0x30, "validity"));
  if (validity.length !== 2) throw new DerError("validity is not two times");
  const notBefore = BigInt(time(validity[0]));
  const notAfter = BigInt(time(validity[1]));
  const subject = expect(fields[i++], 0x30, "subject").raw;
  const [keyType, rawKey] = publicKey(fields[i++]);
  if (fields[i]?.tag === 0x81) i++; // issuerUniqueID
  if (fields[i]?.tag === 0x82) i++; // subjectUniqueID
  let extensions: Tlv[] = [];
  if (fields[i]?.tag === 0xa3) {
    const wrapped = children(fields[i++]);
    if (wrapped.length !== 1) throw new DerError("extensions [3] holds more than one value");
    extensions = children(expect(wrapped[0], 0x30, "Extensions"));
    if (extensions.length === 0) throw new DerError("empty Extensions");
  }
  if (i !== fields.length) throw new DerError("TBSCertificate has extra fields");

  let ident: [string, number] | null = null;
  let isCa = false;
  let pathLen: number | null = null;
  let keyCertSign = false;
  const seen = new Set<string>();
  for (const ext of extensions) {
    const parts = children(expect(ext, 0x30, "Extension"));
    if (parts.length < 2 || parts.length > 3) throw new DerError("Extension has the wrong number of fields");
    const id = oid(parts[0]);
    let critical = false;
    if (parts.length === 3) {
      critical = booleanValue(parts[1]);
      if (!critical) throw new DerError("critical FALSE encoded (DER omits a default)");
    }
    const value = expect(parts[parts.length - 1], 0x04, "extnValue").body;
    if (seen.has(id)) throw new DerError(`extension ${id} twice`);
    seen.add(id);
    if (critical && !KNOWN_CRITICAL.has(id)) throw new CertRefused("cert.critical_extension", id); // K6
    if (id === OID_SAN) {
      const names = readOnly(value);
      checkTree(names);
      for (const name of children(expect(names, 0x30, "GeneralNames"))) {
        if (name.tag !== 0x86) continue; // uniformResourceIdentifier [6] IA5String
        for (const c of name.body) if (c > 0x7f) throw new DerError("URI is not IA5");
        const uri = String.fromCharCode(...name.body);
        if (uri.startsWith("tessera:")) {
          if (ident !== null) throw new CertRefused("cert.identity", "more than one tessera identity"); // K5
          ident = identity(uri);
        }
      }
    } else if (id === OID_BASIC_CONSTRAINTS) {
      const bc = readOnly(value);
      const items = children(expect(bc, 0x30, "BasicConstraints"));
      if (items[0]?.tag === 0x01) {
        isCa = booleanValue(items[0]);
        if (!isCa) throw new DerError("cA FALSE encoded (DER omits a default)");
        items.shift();
      }
      if (items[0]?.tag === 0x02) {
        pathLen = smallInteger(items[0]);
        items.shift();
      }
      if (items.length) throw new DerError("BasicConstraints has extra fields");
    } else if (id === OID_KEY_USAGE) {
      // KeyUsage ::= BIT STRING; keyCertSign is bit 5, the 0x04 of the
      // first byte (DER drops trailing zero bits, so unused bits may be set).
      const bits = expect(readOnly(value), 0x03, "KeyUsage");
      if (bits.body.length === 0 || bits.body[0] > 7) throw new DerError("KeyUsage is not a BIT STRING");
      keyCertSign = bits.body.length > 1 && (bits.body[1] & 0x04) !== 0;
    }
  }
  if (ident === null) throw new CertRefused("cert.identity", "no tessera identity (SAN URI)"); // K5
  const [role, code] = ident;
  const expected = SIGNER_ROLES.has(role) ? "ed25519" : "p256"; // K4
  if (keyType !== expected) throw new CertRefused("cert.key_type", `a ${role} certificate must carry a ${expected} key`);
  if (isCa !== CA_ROLES.has(role)) throw new CertRefused("cert.ca_flag", `role ${role} with is_ca = ${isCa}`);
  if (notAfter < notBefore) throw new CertRefused("cert.validity", "empty validity"); // K7
  const longest = BigInt(role === "root" ? MAX_ROOT_VALIDITY_SECS : MAX_LEAF_VALIDITY_SECS);
  if (notAfter - notBefore > longest) throw new CertRefused("cert.validity", `valid for ${(notAfter - notBefore) / 86_400n} days`);
  return {
    role,
    code,
    serial,
    notBefore,
    notAfter,
    keyType,
    rawKey,
    keyId: sha256(der).subarray(0, 8),
    isCa,
    pathLen,
    keyCertSign,
    subject,
    issuer,
    der,
    tbs: tbsTlv.raw,
    signature,
  };
}

function ecdsaHolds(key: Uint8Array, cert: Cert): boolean {
  try {
    return p256.verify(cert.signature, cert.tbs, key, { prehash: true, lowS: false, format: "compact" });
  } catch {
    return false;
  }
}

/** K2: the pinned root, self-signed, P-256, a CA. */
export function rootAnchor(der: Uint8Array): Cert {
  const root = parseCert(der);
  if (root.role !== "root") throw new CertRefused("cert.ca_flag", `role ${root.role} is not the root`);
  if (!equalBytes(root.subject, root.issuer) || !ecdsaHolds(root.rawKey, root))
    throw new CertRefused("cert.not_issued_by_root", "the root is not self-signed");
  return root;
}

/** K3: `cert` names `issuer` as its issuer and `issuer`'s key signed it
 *  (parseCert checked both algorithm fields). */
function issuedBy(cert: Cert, issuer: Cert): boolean {
  return equalBytes(cert.issuer, issuer.subject) && ecdsaHolds(issuer.rawKey, cert);
}

/** K3a: an issuing-CA certificate, issued by the root. */
export function parseIssuingCa(der: Uint8Array, root: Cert): Cert {
  const cert = parseCert(der);
  if (cert.role !== "issuing-ca") throw new CertRefused("cert.role", `a ${cert.role} is not an issuing CA`);
  if (!issuedBy(cert, root)) throw new CertRefused("cert.not_issued_by_root", "an issuing CA not issued by the root");
  if (cert.pathLen !== 0) throw new CertRefused("cert.path_len", `an issuing CA of pathLenConstraint ${cert.pathLen}`);
  if (!cert.keyCertSign) throw new CertRefused("cert.key_usage", "an issuing CA without keyCertSign");
  if (root.pathLen !== null && root.pathLen < 1) throw new CertRefused("cert.path_len", "a root of pathLenConstraint 0 issues no CA");
  return cert;
}

/** K3 for any certificate but the root: the certificate and its issuing CA
 *  (null when the root issued it). `issuingCas` are the issuing CAs
 *  available where it is read (K3b): none for a trust-list signer. */
export function parseIssuedBy(der: Uint8Array, root: Cert, issuingCas: readonly Cert[] = []): [Cert, Cert | null] {
  const cert = parseCert(der);
  if (cert.role === "issuing-ca") return [parseIssuingCa(der, root), null];
  if (issuedBy(cert, root)) return [cert, null];
  const ca = issuingCas.find((ca) => issuedBy(cert, ca)); // the one whose key verifies it
  if (ca === undefined) throw new CertRefused("cert.not_issued", "issued neither by the root nor by an issuing CA held");
  return [cert, ca];
}

export function validAt(cert: Cert, now: bigint): boolean {
  return cert.notBefore <= now && now <= cert.notAfter;
}
