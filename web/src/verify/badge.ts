// Badge verification, V1 to V16 and the claims rules C1 to C10 of
// docs/PROTOCOL.md ("Badge verification and outcomes").
import { fromBinary } from "@bufbuild/protobuf";
import { BadgeClaimsSchema, SignedBadgeSchema, type BadgeClaims, type SignedBadge } from "../gen/tessera/v1/badge_pb.js";
import { CertRefused, checkCode, validAt } from "./cert.js";
import { hex } from "./der.js";
import { verifyStrict } from "./ed25519.js";
import { BADGE_CONTEXT, signingInput } from "./signing.js";
import { MAX_ENVELOPE_LEN, TextRefused, textToEnvelope } from "./text.js";
import { CLOCK_SKEW_SECS, type Entry, type TrustList } from "./trustlist.js";

export type Outcome =
  | "VALID"
  | "REVOKED"
  | "EXPIRED"
  | "NOT_YET_VALID"
  | "BAD_SIGNATURE"
  | "UNKNOWN_SIGNER"
  | "SIGNER_REVOKED"
  | "MALFORMED"
  | "STATUS_UNAVAILABLE";
export type Colour = "GREEN" | "YELLOW" | "RED";

export interface Result {
  outcome: Outcome;
  reason: string;
  detail: string;
  /** For VALID only. */
  colour?: Colour;
  validUntil?: bigint;
  issuerCity?: number;
  issuerName?: string;
  /** For VALID only: the holder hint, to compare with an identity card. */
  maskedName?: string;
  idTail?: string;
}

const CLAIMS_VERSION = 1;
const MAX_VALIDITY_SECS = 30n * 86_400n;
const MAX_MASK_STARS = 3;
const COLOURS: Record<number, Colour> = { 1: "GREEN", 2: "YELLOW", 3: "RED" };

class Refused extends Error {
  constructor(
    public outcome: Outcome,
    public reason: string,
    public detail: string,
  ) {
    super(`${outcome} ${reason}: ${detail}`);
  }
}
const malformed = (reason: string, detail: string) => new Refused("MALFORMED", reason, detail);

/** C9: empty, or one character followed by one to three '*'. */
function maskedNameOk(name: string): boolean {
  const chars = Array.from(name);
  return chars.length === 0 || (chars.length >= 2 && chars.length <= 1 + MAX_MASK_STARS && chars.slice(1).every((c) => c === "*"));
}

/** C10: empty, or exactly four of 0-9 and X. */
function idTailOk(tail: string): boolean {
  return tail === "" || /^[0-9X]{4}$/.test(tail);
}

/** V1 to V8: what can be checked before the signature. */
function unverified(envelope: Uint8Array, trust: TrustList, now: bigint): [SignedBadge, Entry] {
  if (now > trust.sunsetAt) throw new Refused("UNKNOWN_SIGNER", "trust_list_sunset", "the trust list passed its sunset"); // V1
  if (envelope.length > MAX_ENVELOPE_LEN) throw malformed("envelope_too_large", `${envelope.length} bytes`); // V2
  let signed: SignedBadge;
  try {
    signed = fromBinary(SignedBadgeSchema, envelope); // V3
  } catch (e) {
    throw malformed("envelope_decode", (e as Error).message);
  }
  if (signed.keyId.length !== 8) throw malformed("key_id_length", `${signed.keyId.length} bytes`); // V4
  if (signed.signature.length !== 64) throw malformed("signature_length", `${signed.signature.length} bytes`); // V5
  if (signed.payload.length === 0) throw malformed("empty_payload", "no payload"); // V6
  const entry = trust.entries.get(hex(signed.keyId));
  if (entry === undefined) throw new Refused("UNKNOWN_SIGNER", "unknown_signer", hex(signed.keyId)); // V7
  if (entry.cert.role !== "badge-signer") throw new Refused("UNKNOWN_SIGNER", "wrong_signer_role", entry.cert.role); // V8
  return [signed, entry];
}

/** V10 to V16, after the signature held. */
function accept(signed: SignedBadge, entry: Entry, now: bigint): Result {
  if (entry.revoked) throw new Refused("SIGNER_REVOKED", "signer_revoked", hex(signed.keyId)); // V10
  if (entry.issuer?.revoked) throw new Refused("SIGNER_REVOKED", "issuer_revoked", hex(entry.issuer.cert.keyId)); // V10a
  let claims: BadgeClaims;
  try {
    claims = fromBinary(BadgeClaimsSchema, signed.payload); // C1
  } catch (e) {
    throw malformed("claims_decode", (e as Error).message);
  }
  if (claims.version !== CLAIMS_VERSION) throw malformed("unsupported_version", `version ${claims.version}`); // C2
  let city: number;
  try {
    city = checkCode(String(claims.issuerCity).padStart(6, "0"), "city"); // C3
  } catch (e) {
    if (e instanceof CertRefused) throw malformed("issuer_city_invalid", e.detail);
    throw e;
  }
  if (claims.badgeId.length !== 16) throw malformed("badge_id_length", `${claims.badgeId.length} bytes`); // C4
  const colour = COLOURS[claims.colour];
  if (colour === undefined) throw malformed("colour_invalid", `colour ${claims.colour}`); // C5
  if (claims.validUntil <= claims.issuedAt) throw malformed("empty_window", "valid_until <= issued_at"); // C6
  if (claims.validUntil - claims.issuedAt > MAX_VALIDITY_SECS) throw malformed("window_too_long", "over 30 days"); // C7
  if (claims.policyVersion === 0) throw malformed("policy_version_zero", "policy versions start at 1"); // C8
  const maskedName = claims.holderHint?.maskedName ?? "";
  const idTail = claims.holderHint?.idTail ?? "";
  if (!maskedNameOk(maskedName)) throw malformed("masked_name_form", JSON.stringify(maskedName)); // C9
  if (!idTailOk(idTail)) throw malformed("id_tail_form", JSON.stringify(idTail)); // C10
  if (city !== entry.cert.code) throw new Refused("BAD_SIGNATURE", "issuer_mismatch", `${city} vs ${entry.cert.code}`); // V12
  for (const cert of entry.issuer ? [entry.cert, entry.issuer.cert] : [entry.cert]) {
    if (!validAt(cert, claims.issuedAt) || claims.validUntil > cert.notAfter)
      throw new Refused("BAD_SIGNATURE", "signer_not_valid_at_issue", `the window is outside the ${cert.role} certificate`); // V13
  }
  if (claims.issuedAt > now + CLOCK_SKEW_SECS) throw new Refused("NOT_YET_VALID", "not_yet_valid", `issued at ${claims.issuedAt}`); // V14
  if (now > claims.validUntil) throw new Refused("EXPIRED", "expired", `expired at ${claims.validUntil}`); // V15
  return {
    outcome: "VALID", // V16
    reason: "valid",
    detail: "signature, signer and window hold; the city's status was not asked",
    colour,
    validUntil: claims.validUntil,
    issuerCity: city,
    issuerName: entry.name,
    maskedName,
    idTail,
  };
}

/** Verifies envelope bytes (from V1) offline at `now`. */
export function verifyEnvelope(envelope: Uint8Array, trust: TrustList, now: bigint): Result {
  try {
    const [signed, entry] = unverified(envelope, trust, now);
    if (!verifyStrict(entry.cert.rawKey, signed.signature, signingInput(BADGE_CONTEXT, signed.payload)))
      throw new Refused("BAD_SIGNATURE", "bad_signature", "the badge signature does not hold"); // V9
    return accept(signed, entry, now);
  } catch (e) {
    if (e instanceof Refused) return { outcome: e.outcome, reason: e.reason, detail: e.detail };
    throw e;
  }
}

/** Verifies a badge text (T1 to T6, then V1 on) offline at `now`. */
export function verifyText(text: string, trust: TrustList, now: bigint): Result {
  let envelope: Uint8Array;
  try {
    envelope = textToEnvelope(text);
  } catch (e) {
    if (e instanceof TextRefused) return { outcome: "MALFORMED", reason: e.reason, detail: e.detail };
    throw e;
  }
  return verifyEnvelope(envelope, trust, now);
}
