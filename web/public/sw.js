// The scanner's service worker: keeps the app shell (index.html and the
// hashed assets it names) so the app opens with the network down. The trust
// list and root are kept by the app itself (Cache Storage "tessera-data");
// /api/ requests are never answered from here.
const SHELL = "tessera-shell-v1";

/** Keeps index.html (the response given, or a fresh one) and every hashed
 *  asset it names that is not kept yet (assets never change). */
async function precache(given) {
  const cache = await caches.open(SHELL);
  const res = given ?? (await fetch("/", { cache: "no-store" }));
  if (!res.ok) return;
  const html = await res.clone().text();
  await cache.put("/", res);
  const wanted = new Set(["/manifest.webmanifest"]);
  for (const m of html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)) wanted.add(m[1]);
  const missing = [];
  for (const url of wanted) if (url === "/manifest.webmanifest" || !(await cache.match(url))) missing.push(url);
  await cache.addAll(missing);
  // Assets of an older build are no longer named: drop them.
  for (const req of await cache.keys()) {
    const path = new URL(req.url).pathname;
    if (path.startsWith("/assets/") && !wanted.has(path)) await cache.delete(req);
  }
}

self.addEventListener("install", (event) => {
  event.waitUntil(precache().then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const key of await caches.keys()) if (key.startsWith("tessera-shell-") && key !== SHELL) await caches.delete(key);
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin || url.pathname.startsWith("/api/")) return;
  if (event.request.mode === "navigate" || url.pathname === "/" || url.pathname === "/index.html") {
    // Network first, so a new build is picked up; the shell when offline.
    event.respondWith(
      (async () => {
        try {
          const res = await fetch(event.request, { signal: AbortSignal.timeout(3000) });
          // A new index.html may name new assets: keep them for next time.
          if (res.ok) precache(res.clone()).catch(() => undefined);
          return res;
        } catch {
          return (await caches.match("/")) ?? Response.error();
        }
      })(),
    );
    return;
  }
  // Hashed assets never change: cache first.
  event.respondWith(
    (async () => {
      const hit = await caches.match(event.request);
      if (hit) return hit;
      const res = await fetch(event.request);
      if (res.ok && url.pathname.startsWith("/assets/")) {
        const copy = res.clone();
        caches.open(SHELL).then((c) => c.put(event.request, copy)).catch(() => undefined);
      }
      return res;
    })(),
  );
});
