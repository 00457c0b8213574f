// The scanner's service worker: keeps the app shell (index.html and the
// hashed assets it names) so the app opens with the network down. The trust
// list and root are kept by the app itself (Cache Storage "tessera-data");
// /api/ requests are never answered from here.
const SHELL = "tessera-shell-v1";

async function precache() {
  const cache = await caches.open(SHELL);
  const res = await fetch("/", { cache: "no-store" });
  if (!res.ok) return;
  const html = await res.clone().text();
  await cache.put("/", res);
  const assets = new Set(["/manifest.webmanifest"]);
  for (const m of html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)) assets.add(m[1]);
  await cache.addAll([...assets]);
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
          if (res.ok) {
            const copy = res.clone();
            caches.open(SHELL).then((c) => c.put("/", copy)).catch(() => undefined);
            // A new index.html names new assets: fetch them for next time.
            precache().catch(() => undefined);
          }
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
