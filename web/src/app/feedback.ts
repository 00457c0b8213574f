// A distinct sound (WebAudio tones) and vibration pattern per outcome, so a
// guard knows the verdict without reading it.
import type { Outcome } from "../verify/index.js";

type Tone = [freq: number, ms: number];
const SOUNDS: Record<string, Tone[]> = {
  VALID: [[880, 90], [1320, 140]],
  EXPIRED: [[520, 180], [0, 60], [520, 180]],
  NOT_YET_VALID: [[520, 180], [0, 60], [620, 180]],
  STATUS_UNAVAILABLE: [[440, 300]],
  REVOKED: [[220, 160], [0, 50], [220, 160], [0, 50], [220, 160]],
  BAD_SIGNATURE: [[180, 500]],
  SIGNER_REVOKED: [[220, 160], [0, 50], [180, 300]],
  UNKNOWN_SIGNER: [[300, 160], [0, 50], [200, 300]],
  MALFORMED: [[300, 120], [0, 40], [300, 120]],
};
const VIBRATION: Record<string, number[]> = {
  VALID: [60],
  EXPIRED: [150, 80, 150],
  NOT_YET_VALID: [150, 80, 150],
  STATUS_UNAVAILABLE: [300],
  REVOKED: [400, 100, 400, 100, 400],
  BAD_SIGNATURE: [800],
  SIGNER_REVOKED: [400, 100, 400],
  UNKNOWN_SIGNER: [400, 100, 200],
  MALFORMED: [100, 60, 100],
};

let audio: AudioContext | null = null;

/** Browsers start audio only after a gesture: call from any tap. */
export function unlockAudio(): void {
  try {
    audio ??= new AudioContext();
    if (audio.state === "suspended") void audio.resume();
  } catch {
    audio = null;
  }
}

export function signal(outcome: Outcome): void {
  navigator.vibrate?.(VIBRATION[outcome] ?? [200]);
  if (audio === null || audio.state !== "running") return;
  let at = audio.currentTime + 0.01;
  for (const [freq, ms] of SOUNDS[outcome] ?? [[400, 200]]) {
    if (freq > 0) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = outcome === "VALID" ? "sine" : "square";
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.25, at);
      gain.gain.exponentialRampToValueAtTime(0.001, at + ms / 1000);
      osc.connect(gain).connect(audio.destination);
      osc.start(at);
      osc.stop(at + ms / 1000);
    }
    at += ms / 1000;
  }
}
