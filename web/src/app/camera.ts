// The camera (rear one preferred) and the QR decoder (jsQR): one scan runs
// from its first video frame to the first frame in which a code is read.
import jsQR from "jsqr";

export async function openCamera(video: HTMLVideoElement): Promise<void> {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: false,
    video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } },
  });
  video.srcObject = stream;
  await video.play();
}

/** Decodes frames until a QR code is read, then calls `found` with its text
 *  and the time (performance.now()) of the scan's first frame. */
export class Scanner {
  private active = false;
  private firstFrame: number | null = null;
  private readonly canvas = document.createElement("canvas");
  private readonly ctx = this.canvas.getContext("2d", { willReadFrequently: true })!;

  constructor(
    private readonly video: HTMLVideoElement,
    private readonly found: (text: string, firstFrame: number) => void,
  ) {}

  start(): void {
    if (this.active) return;
    this.active = true;
    this.firstFrame = null;
    this.schedule();
  }

  stop(): void {
    this.active = false;
  }

  private schedule(): void {
    const v = this.video as HTMLVideoElement & { requestVideoFrameCallback?: (cb: () => void) => number };
    if (v.requestVideoFrameCallback) v.requestVideoFrameCallback(() => this.frame());
    else requestAnimationFrame(() => this.frame());
  }

  private frame(): void {
    if (!this.active) return;
    const w0 = this.video.videoWidth;
    const h0 = this.video.videoHeight;
    if (w0 === 0 || h0 === 0) return this.schedule();
    this.firstFrame ??= performance.now();
    // At most 800 pixels across: enough modules for a badge (about 45x45)
    // and a quarter of the work of a 1280x720 frame.
    const scale = Math.min(1, 800 / Math.max(w0, h0));
    const w = Math.round(w0 * scale);
    const h = Math.round(h0 * scale);
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    this.ctx.drawImage(this.video, 0, 0, w, h);
    const image = this.ctx.getImageData(0, 0, w, h);
    const code = jsQR(image.data, w, h, { inversionAttempts: "dontInvert" });
    if (code !== null && code.data !== "") {
      this.active = false;
      this.found(code.data, this.firstFrame);
      return;
    }
    this.schedule();
  }
}
