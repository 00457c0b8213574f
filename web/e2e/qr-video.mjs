#!/usr/bin/env node
// Renders the QR code of TEXT into a Y4M video (640x480, 10 frames a second,
// 4 seconds, 4:2:0) for Chromium's fake camera
// (--use-file-for-fake-video-capture), which loops it.
//
//   node e2e/qr-video.mjs TEXT OUT.y4m [--seconds N]
import { writeFileSync } from "node:fs";
import QRCode from "qrcode";

const [text, out, ...rest] = process.argv.slice(2);
if (!text || !out) {
  console.error("usage: qr-video.mjs TEXT OUT.y4m [--seconds N]");
  process.exit(2);
}
const at = rest.indexOf("--seconds");
const seconds = at >= 0 ? Number(rest[at + 1]) : 4;
const W = 640;
const H = 480;
const FPS = 10;

// Medium error correction, as a badge is printed; a 4-module quiet zone.
const qr = QRCode.create(text, { errorCorrectionLevel: "M" });
const n = qr.modules.size;
const quiet = 4;
const scale = Math.floor((H - 40) / (n + 2 * quiet));
const side = scale * (n + 2 * quiet);
const x0 = Math.floor((W - side) / 2);
const y0 = Math.floor((H - side) / 2);

const y = new Uint8Array(W * H).fill(235); // white background (video range)
for (let r = 0; r < n; r++) {
  for (let c = 0; c < n; c++) {
    if (!qr.modules.get(r, c)) continue;
    const top = y0 + (r + quiet) * scale;
    const left = x0 + (c + quiet) * scale;
    for (let dy = 0; dy < scale; dy++) y.fill(16, (top + dy) * W + left, (top + dy) * W + left + scale);
  }
}
const chroma = new Uint8Array((W / 2) * (H / 2)).fill(128);
const frame = Buffer.concat([Buffer.from("FRAME\n"), y, chroma, chroma]);
const header = Buffer.from(`YUV4MPEG2 W${W} H${H} F${FPS}:1 Ip A1:1 C420jpeg\n`);
const frames = Math.max(1, Math.round(seconds * FPS));
writeFileSync(out, Buffer.concat([header, ...Array(frames).fill(frame)]));
