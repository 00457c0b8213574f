// Runs tessera's conformance vectors (conformance/vectors.json) through the
// TypeScript offline verifier in src/verify, as docs/PROTOCOL.md
// ("Conformance suite") tells an implementer to, and names every vector
// that disagrees.
//
//   npm run conformance [-- --vectors DIR] [--verbose]
//
// Exit status: 0 when every vector agrees, 1 when any disagrees, 2 for
// unreadable vectors. The last line is "N passed, M failed".
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ListRefused, freshness, rootAnchor, verifyEnvelope, verifyText, verifyTrustList } from "../src/verify/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const verbose = args.includes("--verbose");
const at = args.indexOf("--vectors");
const dir = at >= 0 ? resolve(args[at + 1]) : resolve(here, "..", "..", "conformance");

let vectors: any;
try {
  // A list's sequence is a uint64 (up to 2^64 - 1), beyond a JS number:
  // read those values as strings before JSON.parse rounds them.
  const text = readFileSync(join(dir, "vectors.json"), "utf8").replace(/("sequence":\s*)(\d+)/g, '$1"$2"');
  vectors = JSON.parse(text);
} catch (e) {
  console.error(`error: cannot read ${dir}/vectors.json: ${(e as Error).message}`);
  process.exit(2);
}
if (vectors.format !== "tessera-conformance/1") {
  console.error(`error: unknown vectors format ${JSON.stringify(vectors.format)}`);
  process.exit(2);
}

const cache = new Map<string, Uint8Array>();
const file = (name: string): Uint8Array => {
  if (!cache.has(name)) cache.set(name, new Uint8Array(readFileSync(join(dir, name))));
  return cache.get(name)!;
};
const fromHex = (h: string) => new Uint8Array(h.match(/../g)?.map((x) => parseInt(x, 16)) ?? []);

function badgeResult(v: any): Record<string, unknown> {
  const root = rootAnchor(file(v.root));
  const trust = verifyTrustList(file(v.trust_list), root, BigInt(v.trust_list_accepted_at));
  const now = BigInt(v.now);
  const r = "text" in v ? verifyText(v.text, trust, now) : verifyEnvelope(fromHex(v.envelope_hex), trust, now);
  const got: Record<string, unknown> = { outcome: r.outcome, reason: r.reason };
  if (r.outcome === "VALID") Object.assign(got, { colour: r.colour, valid_until: Number(r.validUntil), issuer_city: r.issuerCity });
  return got;
}

function listResult(v: any): Record<string, unknown> {
  const root = rootAnchor(file(v.root));
  const now = BigInt(v.now);
  const held = "held" in v ? verifyTrustList(file(v.held), root, now) : undefined;
  try {
    const list = verifyTrustList(file(v.candidate), root, now, held);
    return { accepted: true, reason: "accepted", sequence: String(list.sequence), freshness: freshness(list, now) };
  } catch (e) {
    if (e instanceof ListRefused) return { accepted: false, reason: e.reason };
    throw e;
  }
}

const canonical = (o: Record<string, unknown>) => JSON.stringify(Object.keys(o).sort().map((k) => [k, o[k]]));
let passed = 0;
let failed = 0;
for (const [kind, check] of [
  ["badge_vectors", badgeResult],
  ["trust_list_vectors", listResult],
] as const) {
  for (const v of vectors[kind]) {
    let got: Record<string, unknown>;
    try {
      got = check(v);
    } catch (e) {
      got = { error: `${(e as Error).name}: ${(e as Error).message}` };
    }
    if (canonical(got) === canonical(v.expected)) {
      passed++;
      if (verbose) console.log(`ok    ${v.id}`);
    } else {
      failed++;
      console.log(`FAIL  ${v.id} (${v.rule}: ${v.description})`);
      console.log(`        expected ${canonical(v.expected)}`);
      console.log(`        got      ${canonical(got)}`);
    }
  }
}
// Every list under lists/ must have been read by some vector: a list no
// vector names would be a list this runner never checked.
for (const name of readdirSync(join(dir, "lists")).sort()) {
  if (!cache.has(`lists/${name}`)) {
    failed++;
    console.log(`FAIL  lists/${name}: no vector reads it`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
