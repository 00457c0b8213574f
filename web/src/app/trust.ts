// The trust list and root an offline check uses, kept in Cache Storage so a
// check works with the network down. The root is pinned when first fetched
// from the station; the highest list sequence ever accepted is remembered in
// localStorage (tessera.maxSequence) and a lower one is refused (R1 against
// the app's memory as well as the list held); a list past its sunset is
// refused (L12) and nothing is checked against it.
import { type Cert, ListRefused, type TrustList, rootAnchor, verifyTrustList } from "../verify/index.js";

const DATA_CACHE = "tessera-data";
const LIST_KEY = "/data/trust-list";
const ROOT_KEY = "/data/root.der";
const MAX_SEQUENCE = "tessera.maxSequence";

export interface TrustState {
  list?: TrustList;
  root?: Cert;
  /** Why the station's list was refused (a reason code), if it was. */
  refused?: string;
  /** The held list passed its sunset. */
  sunset?: boolean;
}

async function cached(key: string): Promise<Uint8Array | null> {
  try {
    const cache = await caches.open(DATA_CACHE);
    const hit = await cache.match(key);
    return hit ? new Uint8Array(await hit.arrayBuffer()) : null;
  } catch {
    return null;
  }
}

async function keep(key: string, bytes: Uint8Array): Promise<void> {
  try {
    const cache = await caches.open(DATA_CACHE);
    await cache.put(key, new Response(bytes.slice().buffer, { headers: { "Content-Type": "application/octet-stream" } }));
  } catch {
    // Storage full or unavailable: the list still works until the page closes.
  }
}

async function download(path: string): Promise<Uint8Array | null> {
  try {
    const res = await fetch(path, { cache: "no-store", signal: AbortSignal.timeout(5000) });
    if (!res.ok) return null;
    return new Uint8Array(await res.arrayBuffer());
  } catch {
    return null;
  }
}

export const nowSeconds = (): bigint => BigInt(Math.floor(Date.now() / 1000));

export async function loadTrust(): Promise<TrustState> {
  const now = nowSeconds();
  let rootDer = await cached(ROOT_KEY);
  let rootFetched = false;
  if (rootDer === null) {
    rootDer = await download("/api/root.der");
    rootFetched = true;
  }
  if (rootDer === null) return {};
  let root: Cert;
  try {
    root = rootAnchor(rootDer);
  } catch {
    return { refused: "root" };
  }
  if (rootFetched) await keep(ROOT_KEY, rootDer);

  const state: TrustState = { root };
  const max = BigInt(localStorage.getItem(MAX_SEQUENCE) ?? "0");
  const heldBytes = await cached(LIST_KEY);
  if (heldBytes !== null) {
    try {
      state.list = verifyTrustList(heldBytes, root, now);
    } catch (e) {
      if (e instanceof ListRefused && e.reason === "sunset") state.sunset = true;
    }
  }
  const offered = await download("/api/trust-list");
  if (offered !== null) {
    try {
      const list = verifyTrustList(offered, root, now, state.list);
      if (list.sequence < max) throw new ListRefused("rollback", `${list.sequence} < remembered ${max}`);
      if (state.list === undefined || list.sequence > state.list.sequence) await keep(LIST_KEY, offered);
      if (list.sequence > max) localStorage.setItem(MAX_SEQUENCE, list.sequence.toString());
      state.list = list;
      state.sunset = false;
    } catch (e) {
      state.refused = e instanceof ListRefused ? e.reason : "list_malformed";
      if (state.refused === "sunset") state.sunset = true;
    }
  }
  if (state.list !== undefined && state.list.sequence < max) {
    state.list = undefined;
    state.refused = "rollback";
  }
  return state;
}
