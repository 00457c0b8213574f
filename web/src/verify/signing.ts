// Signing input (docs/PROTOCOL.md, "Signing input"):
// context || u32_big_endian(len(payload)) || payload.
export const BADGE_CONTEXT = new TextEncoder().encode("tessera/badge/v1");
export const TRUST_LIST_CONTEXT = new TextEncoder().encode("tessera/trust-list/v1");

export function signingInput(context: Uint8Array, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(context.length + 4 + payload.length);
  out.set(context, 0);
  new DataView(out.buffer).setUint32(context.length, payload.length, false);
  out.set(payload, context.length + 4);
  return out;
}
