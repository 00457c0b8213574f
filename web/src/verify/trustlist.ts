// Trust-list acceptance: L1 to L15, E1 to E7, a successor's R1 to R3 and
// freshness F1 to F3 of docs/PROTOCOL.md ("Trust list").
import { fromBinary } from "@bufbuild/protobuf";
import { SignedTrustListSchema, TrustListSchema, type TrustEntry } from "../gen/tessera/v1/trust_pb.js";
import { type Cert, CertRefused, ROLES, parseIssuedBy, parseIssuingCa, validAt } from "./cert.js";
import { equalBytes, hex } from "./der.js";
import { verifyStrict } from "./ed25519.js";
import { TRUST_LIST_CONTEXT, signingInput } from "./signing.js";

export const MAX_TRUST_LIST_LEN = 16 * 1024 * 1024;
export const CLOCK_SKEW_SECS = 300n;
const TRUST_LIST_VERSION = 1;

/** A refused list; `reason` is the standard's code (L, E and R rules). */
export class ListRefused extends Error {
  constructor(
    public reason: string,
    public detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}

export interface Entry {
  cert: Cert;
  name: string;
  endpoint: string;
  revoked: boolean;
  /** The entry of its issuing CA (E1), when an issuing CA issued it. */
  issuer?: Entry;
}

/** E3: the roles a list names. */
const LISTED_ROLES = new Set(["trust-list-signer", "issuing-ca", "gateway", "node", "badge-signer"]);

export interface TrustList {
  sequence: bigint;
  issuedAt: bigint;
  nextUpdate: bigint;
  sunsetAt: bigint;
  /** Key id (hex) -> entry. */
  entries: Map<string, Entry>;
  /** Revoked serials (hex of the DER INTEGER content bytes). */
  revokedSerials: Set<string>;
  signer: Cert;
  payload: Uint8Array;
}

export function revokes(list: TrustList, cert: Cert): boolean {
  const entry = list.entries.get(hex(cert.keyId));
  return list.revokedSerials.has(hex(cert.serial)) || (entry !== undefined && entry.revoked);
}

/** F1 to F3 for an accepted list. */
export function freshness(list: TrustList, now: bigint): "fresh" | "stale" | "sunset" {
  if (now > list.sunsetAt) return "sunset";
  return now <= list.nextUpdate ? "fresh" : "stale";
}

function decode<T>(parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    throw new ListRefused("list_malformed", (e as Error).message);
  }
}

/** Accepts an encoded SignedTrustList against the root at `now` (and as the
 *  successor of `held` when given), or throws ListRefused. */
export function verifyTrustList(data: Uint8Array, root: Cert, now: bigint, held?: TrustList): TrustList {
  if (data.length > MAX_TRUST_LIST_LEN) throw new ListRefused("list_too_large", `${data.length} bytes`); // L1
  const signed = decode(() => fromBinary(SignedTrustListSchema, data)); // L2
  let signer: Cert;
  try {
    [signer] = parseIssuedBy(signed.signerCertificate, root); // L3: the root itself
  } catch (e) {
    if (e instanceof CertRefused) throw new ListRefused("signer_untrusted", e.message);
    throw e;
  }
  if (signer.role !== "trust-list-signer") throw new ListRefused("signer_role", `signed by a ${signer.role}`); // L4
  if (!validAt(signer, now)) throw new ListRefused("signer_expired", "the signer certificate is not valid now"); // L5
  if (
    signed.signature.length !== 64 ||
    !verifyStrict(signer.rawKey, signed.signature, signingInput(TRUST_LIST_CONTEXT, signed.payload))
  )
    throw new ListRefused("bad_signature", "the signature does not hold"); // L6
  const body = decode(() => fromBinary(TrustListSchema, signed.payload)); // L7
  if (body.version !== TRUST_LIST_VERSION) throw new ListRefused("unsupported_version", `version ${body.version}`); // L8
  if (body.nextUpdate < body.issuedAt) throw new ListRefused("dates_inconsistent", "next_update is before issued_at"); // L9
  if (body.sunsetAt < body.nextUpdate) throw new ListRefused("dates_inconsistent", "sunset_at is before next_update"); // L10
  if (body.issuedAt > now + CLOCK_SKEW_SECS) throw new ListRefused("issued_in_future", `${body.issuedAt} > ${now}`); // L11
  if (now > body.sunsetAt) throw new ListRefused("sunset", `passed its sunset at ${body.sunsetAt}`); // L12
  const issuingCas: Cert[] = []; // the list's issuing CAs, wherever they stand (E1)
  for (const entry of body.entries) {
    try {
      issuingCas.push(parseIssuingCa(entry.certificateDer, root));
    } catch (e) {
      if (!(e instanceof CertRefused)) throw e;
    }
  }
  const checked = body.entries.map((entry, i) => checkEntry(entry, root, issuingCas, i)); // L13
  const entries = new Map<string, Entry>();
  for (const [entry] of checked) {
    const id = hex(entry.cert.keyId);
    if (entries.has(id)) throw new ListRefused("duplicate_key", id); // L14
    entries.set(id, entry);
  }
  for (const [entry, ca] of checked) if (ca !== null) entry.issuer = entries.get(hex(ca.keyId));
  const list: TrustList = {
    sequence: body.sequence,
    issuedAt: body.issuedAt,
    nextUpdate: body.nextUpdate,
    sunsetAt: body.sunsetAt,
    entries,
    revokedSerials: new Set(body.revokedSerials.map(hex)),
    signer,
    payload: signed.payload,
  };
  if (revokes(list, signer)) throw new ListRefused("signer_revoked", "the list revokes its own signer"); // L15
  if (held !== undefined) {
    if (list.sequence < held.sequence) throw new ListRefused("rollback", `${list.sequence} < held ${held.sequence}`); // R1
    if (list.sequence === held.sequence && !equalBytes(list.payload, held.payload))
      throw new ListRefused("sequence_reused", `sequence ${list.sequence}`); // R2
    if (revokes(held, signer)) throw new ListRefused("signer_revoked", "signed by a signer the held list revokes"); // R3
  }
  return list;
}

function checkEntry(entry: TrustEntry, root: Cert, issuingCas: readonly Cert[], index: number): [Entry, Cert | null] {
  const refuse = (reason: string, detail: string) => new ListRefused(reason, `entry ${index}: ${detail}`);
  let cert: Cert;
  let ca: Cert | null;
  try {
    [cert, ca] = parseIssuedBy(entry.certificateDer, root, issuingCas); // E1
  } catch (e) {
    if (e instanceof CertRefused) throw refuse("entry_certificate", e.message);
    throw e;
  }
  if (entry.role !== ROLES[cert.role][1]) throw refuse("entry_role_mismatch", `entry role ${entry.role}, certificate ${cert.role}`); // E2
  if (!LISTED_ROLES.has(cert.role)) throw refuse("entry_unlisted_role", cert.role); // E3
  if ((cert.role === "node" || cert.role === "gateway") && entry.endpoint === "")
    throw refuse("entry_missing_endpoint", `a ${cert.role} entry needs an endpoint`); // E4
  if (entry.code !== cert.code) throw refuse("entry_code_mismatch", `${entry.code} vs ${cert.code}`); // E5
  if (entry.notBefore !== cert.notBefore || entry.notAfter !== cert.notAfter)
    throw refuse("entry_validity_mismatch", "the validity does not match the certificate"); // E6
  if (entry.status !== 1 && entry.status !== 2) throw refuse("entry_status", `status ${entry.status}`); // E7
  return [{ cert, name: entry.name, endpoint: entry.endpoint, revoked: entry.status === 2 }, ca];
}
