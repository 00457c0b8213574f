// tessera's Ed25519 rule, S1 to S5 of docs/PROTOCOL.md ("Ed25519 signatures").
//
// @noble/curves supplies the curve arithmetic; every choice the RFC leaves
// open is made here, in the order the standard states, rather than by the
// library's verify(): S1 (S < L), S2/S3 (canonical, on the curve, not of
// small order), S4 (k from the bytes as received), S5 (the cofactored
// equation).
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha512 } from "@noble/hashes/sha2.js";

const Point = ed25519.Point;
type EdPoint = InstanceType<typeof Point>;

/** The order of the prime subgroup. */
export const L = (1n << 252n) + 27742317777372353535851937790883648493n;
const P = (1n << 255n) - 19n;

function littleEndian(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  return n;
}

function power(base: bigint, exponent: bigint): bigint {
  let result = 1n;
  base %= P;
  for (let e = exponent; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * base) % P;
    base = (base * base) % P;
  }
  return result;
}

/** K4: whether 32 bytes decode to a curve point at all, read leniently (y is
 *  the low 255 bits reduced mod p; the sign bit is ignored): whether
 *  (y^2 - 1) / (d y^2 + 1) is a square mod p. S2 is stricter. */
export function namesAPoint(encoded: Uint8Array): boolean {
  if (encoded.length !== 32) return false;
  const y = (littleEndian(encoded) & ((1n << 255n) - 1n)) % P;
  const d = (P - ((121665n * power(121666n, P - 2n)) % P)) % P;
  const w = (((y * y - 1n + P) % P) * power((d * y * y + 1n) % P, P - 2n)) % P;
  return w === 0n || power(w, (P - 1n) / 2n) === 1n;
}

/** S2/S3: the point a 32-byte encoding names, or null when the encoding is
 *  not canonical (y >= p, or x = 0 with the sign bit set), names no point, or
 *  names a point of small order. */
export function acceptablePoint(encoded: Uint8Array): EdPoint | null {
  if (encoded.length !== 32) return null;
  const value = littleEndian(encoded);
  const y = value & ((1n << 255n) - 1n);
  if (y >= P) return null;
  let point: EdPoint;
  try {
    // zip215 = false: the RFC 8032 decoding, which refuses y >= p and x = 0
    // with the sign bit set; both are checked above or below regardless.
    point = Point.fromBytes(encoded, false);
  } catch {
    return null;
  }
  const sign = value >> 255n;
  if (point.toAffine().x === 0n && sign === 1n) return null;
  if (point.isSmallOrder()) return null;
  return point;
}

/** Whether `signature` by the 32-byte `publicKey` holds over `message`. */
export function verifyStrict(publicKey: Uint8Array, signature: Uint8Array, message: Uint8Array): boolean {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  const rBytes = signature.subarray(0, 32);
  const s = littleEndian(signature.subarray(32, 64));
  if (s >= L) return false; // S1
  const a = acceptablePoint(publicKey); // S2
  if (a === null) return false;
  const r = acceptablePoint(rBytes); // S3
  if (r === null) return false;
  const h = new Uint8Array(32 + 32 + message.length); // S4
  h.set(rBytes, 0);
  h.set(publicKey, 32);
  h.set(message, 64);
  const k = littleEndian(sha512(h)) % L;
  const sB = s === 0n ? Point.ZERO : Point.BASE.multiplyUnsafe(s);
  const kA = k === 0n ? Point.ZERO : a.multiplyUnsafe(k);
  return sB.subtract(r).subtract(kA).clearCofactor().is0(); // S5
}
