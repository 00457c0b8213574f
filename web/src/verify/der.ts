// A strict DER reader: just what K1 to K7 need (docs/PROTOCOL.md,
// "Certificates"). Definite, minimal lengths only; every TLV must fit its
// parent exactly. Anything else throws DerError.

export class DerError extends Error {}

export interface Tlv {
  /** The identifier octet (tags above 30 are refused: X.509 uses none). */
  tag: number;
  /** The whole encoding, header included. */
  raw: Uint8Array;
  /** The contents. */
  body: Uint8Array;
}

/** Reads one TLV at `offset`; returns it and the offset after it. */
export function readTlv(buf: Uint8Array, offset: number): [Tlv, number] {
  if (offset + 2 > buf.length) throw new DerError("truncated header");
  const tag = buf[offset];
  if ((tag & 0x1f) === 0x1f) throw new DerError("high tag number");
  let length = buf[offset + 1];
  let pos = offset + 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    if (n === 0) throw new DerError("indefinite length");
    if (n > 4) throw new DerError("length too large");
    if (pos + n > buf.length) throw new DerError("truncated length");
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[pos + i];
    if (buf[pos] === 0) throw new DerError("non-minimal length");
    if (length < 0x80) throw new DerError("non-minimal length");
    pos += n;
  }
  if (pos + length > buf.length) throw new DerError("truncated contents");
  return [{ tag, raw: buf.subarray(offset, pos + length), body: buf.subarray(pos, pos + length) }, pos + length];
}

/** Reads exactly one TLV filling `buf`. */
export function readOnly(buf: Uint8Array): Tlv {
  const [tlv, end] = readTlv(buf, 0);
  if (end !== buf.length) throw new DerError("bytes trail the value");
  return tlv;
}

/** The children of a constructed value. */
export function children(tlv: Tlv): Tlv[] {
  if (!(tlv.tag & 0x20)) throw new DerError(`tag 0x${tlv.tag.toString(16)} is not constructed`);
  const out: Tlv[] = [];
  let pos = 0;
  while (pos < tlv.body.length) {
    const [child, next] = readTlv(tlv.body, pos);
    out.push(child);
    pos = next;
  }
  return out;
}

/** Walks every constructed value beneath `tlv`, so that a malformed or
 *  non-minimal encoding anywhere in it is refused. */
export function checkTree(tlv: Tlv, depth = 0): void {
  if (depth > 32) throw new DerError("nested too deeply");
  if (tlv.tag & 0x20) for (const child of children(tlv)) checkTree(child, depth + 1);
}

export function expect(tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (tlv === undefined) throw new DerError(`${what} missing`);
  if (tlv.tag !== tag) throw new DerError(`${what}: tag 0x${tlv.tag.toString(16)}, expected 0x${tag.toString(16)}`);
  return tlv;
}

/** An INTEGER's content bytes, checked minimal. */
export function integerBytes(tlv: Tlv): Uint8Array {
  expect(tlv, 0x02, "INTEGER");
  const b = tlv.body;
  if (b.length === 0) throw new DerError("empty INTEGER");
  if (b.length > 1 && ((b[0] === 0 && !(b[1] & 0x80)) || (b[0] === 0xff && b[1] & 0x80)))
    throw new DerError("non-minimal INTEGER");
  return b;
}

export function smallInteger(tlv: Tlv): number {
  const b = integerBytes(tlv);
  if (b.length > 4 || b[0] & 0x80) throw new DerError("INTEGER out of range");
  let n = 0;
  for (const x of b) n = n * 256 + x;
  return n;
}

export function booleanValue(tlv: Tlv): boolean {
  expect(tlv, 0x01, "BOOLEAN");
  if (tlv.body.length !== 1 || (tlv.body[0] !== 0 && tlv.body[0] !== 0xff)) throw new DerError("BOOLEAN not 00 or FF");
  return tlv.body[0] === 0xff;
}

/** An OBJECT IDENTIFIER in dotted form. */
export function oid(tlv: Tlv): string {
  expect(tlv, 0x06, "OBJECT IDENTIFIER");
  const b = tlv.body;
  if (b.length === 0) throw new DerError("empty OID");
  const arcs: number[] = [];
  let n = 0;
  let started = false;
  for (let i = 0; i < b.length; i++) {
    if (!started && b[i] === 0x80) throw new DerError("non-minimal OID arc");
    started = true;
    n = n * 128 + (b[i] & 0x7f);
    if (n > Number.MAX_SAFE_INTEGER / 256) throw new DerError("OID arc too large");
    if (!(b[i] & 0x80)) {
      arcs.push(n);
      n = 0;
      started = false;
    }
  }
  if (started) throw new DerError("truncated OID");
  const first = arcs[0] < 40 ? 0 : arcs[0] < 80 ? 1 : 2;
  return [first, arcs[0] - first * 40, ...arcs.slice(1)].join(".");
}

/** A BIT STRING with no unused bits: its bytes. */
export function bitStringBytes(tlv: Tlv): Uint8Array {
  expect(tlv, 0x03, "BIT STRING");
  if (tlv.body.length === 0 || tlv.body[0] !== 0) throw new DerError("BIT STRING with unused bits");
  return tlv.body.subarray(1);
}

function digits(s: string, from: number, n: number): number {
  const part = s.slice(from, from + n);
  if (!/^[0-9]+$/.test(part) || part.length !== n) throw new DerError(`bad time ${JSON.stringify(s)}`);
  return Number(part);
}

/** UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), as DER
 *  requires them, in Unix seconds. */
export function time(tlv: Tlv): number {
  const s = String.fromCharCode(...tlv.body);
  let year: number;
  let rest: number;
  if (tlv.tag === 0x17) {
    if (s.length !== 13) throw new DerError(`bad UTCTime ${JSON.stringify(s)}`);
    const yy = digits(s, 0, 2);
    year = yy < 50 ? 2000 + yy : 1900 + yy;
    rest = 2;
  } else if (tlv.tag === 0x18) {
    if (s.length !== 15) throw new DerError(`bad GeneralizedTime ${JSON.stringify(s)}`);
    year = digits(s, 0, 4);
    rest = 4;
  } else throw new DerError("not a time");
  if (s[s.length - 1] !== "Z") throw new DerError("time not in UTC");
  const month = digits(s, rest, 2);
  const day = digits(s, rest + 2, 2);
  const hour = digits(s, rest + 4, 2);
  const minute = digits(s, rest + 6, 2);
  const second = digits(s, rest + 8, 2);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59)
    throw new DerError(`bad time ${JSON.stringify(s)}`);
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const check = new Date(ms);
  if (check.getUTCDate() !== day) throw new DerError(`bad date ${JSON.stringify(s)}`);
  // Date.UTC maps years 0-99 to 1900-1999; a GeneralizedTime year below 100
  // is set explicitly.
  if (year < 100) {
    check.setUTCFullYear(year);
    return Math.floor(check.getTime() / 1000);
  }
  return Math.floor(ms / 1000);
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
