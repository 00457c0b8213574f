// The QR text form, T1 to T6 of docs/PROTOCOL.md ("QR text form").
export const TEXT_PREFIX = "TB1:";
const BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
export const MAX_ENVELOPE_LEN = 512;
/** T2: 4 + 3 * ceil(512 / 2). */
export const MAX_TEXT_CHARS = TEXT_PREFIX.length + Math.ceil(MAX_ENVELOPE_LEN / 2) * 3;
const TRIMMED = new Set(["\t", "\n", "\r", " "]);

export class TextRefused extends Error {
  constructor(
    public reason: string,
    public detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}

/** T1 to T6: the envelope bytes a badge text carries. */
export function textToEnvelope(input: string): Uint8Array {
  // Unicode scalar values, not UTF-16 code units (T2 counts characters).
  let chars = Array.from(input);
  let start = 0;
  let end = chars.length;
  while (start < end && TRIMMED.has(chars[start])) start++; // T1
  while (end > start && TRIMMED.has(chars[end - 1])) end--;
  chars = chars.slice(start, end);
  if (chars.length > MAX_TEXT_CHARS) throw new TextRefused("text_too_long", `${chars.length} characters`); // T2
  const text = chars.join("");
  if (!text.startsWith(TEXT_PREFIX)) {
    // T3
    const colon = text.indexOf(":");
    if (colon >= 0) {
      const version = Array.from(text.slice(0, colon));
      if (version[0] === "T" && version[1] === "B" && version.length <= 6)
        throw new TextRefused("text_unsupported_version", `${version.join("")}:`);
    }
    throw new TextRefused("text_missing_prefix", "it must start with TB1:");
  }
  const body = chars.slice(TEXT_PREFIX.length);
  const values = body.map((ch, i) => {
    const v = ch.length === 1 ? BASE45.indexOf(ch) : -1;
    if (v < 0) throw new TextRefused("text_invalid_character", `${JSON.stringify(ch)} at ${TEXT_PREFIX.length + i}`); // T4
    return v;
  });
  if (values.length % 3 === 1) throw new TextRefused("text_dangling_character", `${values.length} characters`); // T5
  const out = new Uint8Array(Math.floor(values.length / 3) * 2 + (values.length % 3 === 2 ? 1 : 0));
  let o = 0;
  for (let i = 0; i < values.length; i += 3) {
    if (i + 3 <= values.length) {
      const n = values[i] + values[i + 1] * 45 + values[i + 2] * 45 * 45;
      if (n > 0xffff) throw new TextRefused("text_value_out_of_range", `group at ${i}`); // T6
      out[o++] = n >> 8;
      out[o++] = n & 0xff;
    } else {
      const n = values[i] + values[i + 1] * 45;
      if (n > 0xff) throw new TextRefused("text_value_out_of_range", `group at ${i}`);
      out[o++] = n;
    }
  }
  return out;
}

/** The QR text of envelope bytes (RFC 9285 base45 after "TB1:"). */
export function envelopeToText(envelope: Uint8Array): string {
  let s = TEXT_PREFIX;
  for (let i = 0; i + 1 < envelope.length; i += 2) {
    let n = envelope[i] * 256 + envelope[i + 1];
    for (let k = 0; k < 3; k++) {
      s += BASE45[n % 45];
      n = Math.floor(n / 45);
    }
  }
  if (envelope.length % 2) {
    let n = envelope[envelope.length - 1];
    for (let k = 0; k < 2; k++) {
      s += BASE45[n % 45];
      n = Math.floor(n / 45);
    }
  }
  return s;
}
