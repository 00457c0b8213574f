// The checkpoint scanner: camera -> QR text -> offline verification with the
// cached trust list and root -> the station's online check (when paired and
// reachable) -> a full-screen verdict. It stores no badge text and no
// verdict: only counters per outcome (tessera.counts), the device token
// (tessera.device), the highest list sequence (tessera.maxSequence) and the
// language.
import "./style.css";
import { openCamera, Scanner } from "./app/camera.js";
import { signal, unlockAudio } from "./app/feedback.js";
import { age, initialLang, setLang, t, type Lang } from "./app/i18n.js";
import { loadTrust, nowSeconds, type TrustState } from "./app/trust.js";
import { freshness, type Outcome, type Result, verifyText } from "./verify/index.js";

interface Online {
  outcome: Outcome;
  colour: string;
  valid_until: number;
  issuer_city: number;
  issuer_name: string;
  reason: string;
}
interface Timing {
  offline: boolean;
  ms: number;
}
declare global {
  interface Window {
    __tesseraTimings: Timing[];
  }
}
window.__tesseraTimings = [];

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const video = $<HTMLVideoElement>("camera");
const hint = $("hint");
const langSelect = $<HTMLSelectElement>("lang");

let trust: TrustState = {};
let station: { station: string; gateway: string } | null = null;
let lastVerdict: (() => void) | null = null;

// --- device pairing --------------------------------------------------------

function token(): string | null {
  try {
    const saved = JSON.parse(localStorage.getItem("tessera.device") ?? "null");
    return typeof saved?.token === "string" ? saved.token : null;
  } catch {
    return null;
  }
}

async function pairFromFragment(): Promise<void> {
  const match = /^#pair=([^&]+)/.exec(location.hash);
  if (match === null) return;
  history.replaceState(null, "", location.pathname + location.search);
  try {
    const res = await fetch("/api/pair", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: decodeURIComponent(match[1]) }),
    });
    if (!res.ok) throw new Error(String(res.status));
    const body = await res.json();
    if (typeof body.token !== "string") throw new Error("no token");
    localStorage.setItem("tessera.device", JSON.stringify({ device: body.device, token: body.token }));
  } catch {
    hint.textContent = t().pairFailed;
  }
}

async function refreshStation(): Promise<void> {
  const bearer = token();
  if (bearer === null) {
    station = null;
    return;
  }
  try {
    const res = await fetch("/api/station", { headers: { Authorization: `Bearer ${bearer}` }, signal: AbortSignal.timeout(4000) });
    station = res.ok ? await res.json() : null;
  } catch {
    station = null;
  }
}

// --- status bar ------------------------------------------------------------

function renderBar(): void {
  const s = t();
  const listState = $("list-state");
  const now = Number(nowSeconds());
  listState.className = "";
  if ((trust.sunset && trust.list === undefined) || (trust.list !== undefined && freshness(trust.list, nowSeconds()) === "sunset")) {
    listState.textContent = s.sunset;
    listState.className = "bad";
  } else if (trust.list === undefined) {
    listState.textContent = trust.refused ? s.listRefused(trust.refused) : s.noList;
    listState.className = "bad";
  } else {
    const l = trust.list;
    let text = s.list(l.sequence.toString(), age(now - Number(l.issuedAt)));
    if (freshness(l, nowSeconds()) === "stale") {
      text += ` · ${s.stale}`;
      listState.className = "warn";
    }
    if (trust.refused) text += ` · ${s.listRefused(trust.refused)}`;
    listState.textContent = text;
  }
  const st = $("station-state");
  st.textContent =
    station === null ? s.unpaired : s.paired(station.station) + (station.gateway === "connected" ? "" : ` · ${s.gatewayDown}`);
  renderCounts();
  langSelect.value = document.documentElement.lang.startsWith("zh") ? "zh" : "en";
}

function counts(): Record<string, number> {
  try {
    return JSON.parse(localStorage.getItem("tessera.counts") ?? "{}");
  } catch {
    return {};
  }
}

function count(outcome: Outcome): void {
  const c = counts();
  const day = new Date().toISOString().slice(0, 10);
  if (c.day !== (day as unknown)) for (const k of Object.keys(c)) delete c[k];
  (c as Record<string, unknown>).day = day;
  c[outcome] = (c[outcome] ?? 0) + 1;
  localStorage.setItem("tessera.counts", JSON.stringify(c));
}

function renderCounts(): void {
  const c = counts();
  const s = t();
  const parts = Object.entries(c)
    .filter(([k]) => k !== "day")
    .map(([k, n]) => `${s[k as Outcome] ?? k} ${n}`);
  $("counts").textContent = parts.length ? `${s.counts}: ${parts.join(" · ")}` : "";
}

// --- one scan ----------------------------------------------------------------

function offlineCheck(text: string): Result {
  const now = nowSeconds();
  if (trust.list === undefined) {
    return trust.sunset
      ? { outcome: "UNKNOWN_SIGNER", reason: "trust_list_sunset", detail: "the trust list passed its sunset" }
      : { outcome: "UNKNOWN_SIGNER", reason: "no_trust_list", detail: "no trust list held" };
  }
  return verifyText(text, trust.list, now);
}

async function onlineCheck(text: string): Promise<Online | null> {
  const bearer = token();
  if (bearer === null || !navigator.onLine) return null;
  try {
    const res = await fetch("/api/verify", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${bearer}` },
      body: JSON.stringify({ qr_text: text }),
      signal: AbortSignal.timeout(3000),
    });
    if (!res.ok) return null;
    const v = (await res.json()) as Online;
    if (typeof v.outcome !== "string") return null;
    v.colour = typeof v.colour === "string" ? v.colour.toUpperCase() : "";
    if (typeof v.valid_until !== "number") v.valid_until = 0;
    return v;
  } catch {
    return null;
  }
}

function fmtTime(unix: number): string {
  const d = new Date(unix * 1000);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

function showVerdict(offline: Result, online: Online | null): void {
  const s = t();
  const outcome = online?.outcome ?? offline.outcome;
  const colour = online?.colour || offline.colour || "";
  const validUntil = online?.valid_until || (offline.validUntil !== undefined ? Number(offline.validUntil) : 0);
  const el = document.createElement("section");
  el.id = "verdict";
  el.setAttribute("role", "alert");
  el.dataset.outcome = outcome;
  el.dataset.online = online === null ? "not-asked" : "asked";
  el.className =
    `o-${outcome}` + (outcome === "VALID" ? ` c-${colour || "GREEN"}` : "") + (online === null ? " not-asked" : "");
  const add = (tag: string, cls: string, text: string) => {
    const e = document.createElement(tag);
    e.className = cls;
    e.textContent = text;
    el.append(e);
  };
  add("div", "mark", outcome === "VALID" ? "✓" : "✕");
  add("h1", "word", s[outcome] ?? outcome);
  if (outcome === "VALID" && colour) add("div", "colour", s[colour as "GREEN"] ?? colour);
  if (offline.maskedName || offline.idTail) {
    const holder = document.createElement("div");
    holder.className = "holder";
    for (const [label, value] of [
      [s.holder, offline.maskedName || "—"],
      [s.idTail, offline.idTail || "—"],
    ]) {
      const part = document.createElement("span");
      part.textContent = `${label} `;
      const b = document.createElement("b");
      b.textContent = value;
      part.append(b);
      holder.append(part);
    }
    el.append(holder);
  }
  if (validUntil > 0) add("div", "until", `${s.validUntil}: ${fmtTime(validUntil)}`);
  const issuer = online?.issuer_name || offline.issuerName;
  if (issuer) add("div", "issuer", `${s.issuer}: ${issuer}`);
  // An offline verdict must not read like a checked one at a glance: the
  // status line becomes an amber banner and the screen gets an amber frame.
  add("div", online === null ? "online not-asked" : "online", online === null ? s.statusNotAsked : s.statusAsked);
  if (outcome !== "VALID") add("div", "reason", `${s.reason}: ${online?.reason ?? offline.reason}`);
  const next = document.createElement("button");
  next.id = "next";
  next.textContent = s.next;
  el.append(next);
  el.addEventListener("click", () => nextScan());
  document.getElementById("verdict")?.remove();
  document.body.append(el);
}

let scanner: Scanner;

async function onCode(text: string, firstFrame: number): Promise<void> {
  const offline = offlineCheck(text);
  const online = await onlineCheck(text);
  const outcome = online?.outcome ?? offline.outcome;
  lastVerdict = () => showVerdict(offline, online);
  lastVerdict();
  signal(outcome);
  count(outcome);
  // Painted: after the next frame is rendered.
  requestAnimationFrame(() =>
    setTimeout(() => {
      window.__tesseraTimings.push({ offline: online === null, ms: performance.now() - firstFrame });
    }, 0),
  );
}

function nextScan(): void {
  unlockAudio();
  document.getElementById("verdict")?.remove();
  lastVerdict = null;
  renderBar();
  scanner.start();
}

// --- start -------------------------------------------------------------------

async function refreshAll(): Promise<void> {
  trust = await loadTrust();
  await refreshStation();
  renderBar();
}

async function main(): Promise<void> {
  setLang(initialLang());
  langSelect.value = initialLang();
  langSelect.addEventListener("change", () => {
    setLang(langSelect.value as Lang);
    hint.textContent = t().point;
    renderBar();
    lastVerdict?.();
  });
  document.addEventListener("pointerdown", unlockAudio, { passive: true });
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(() => undefined);
  hint.textContent = t().point;
  await pairFromFragment();
  await refreshAll();
  setInterval(() => void refreshAll(), 5 * 60_000);
  window.addEventListener("online", () => void refreshAll());
  scanner = new Scanner(video, (text, first) => void onCode(text, first));
  try {
    await openCamera(video);
    scanner.start();
  } catch (e) {
    hint.textContent = t().noCamera + (e as Error).message;
  }
}

void main();
