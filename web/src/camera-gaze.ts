// Opt-in camera gaze: the face's eyes follow the user. Frames are read into a tiny canvas in
// this browser and reduced to one point (where the picture moves); no frame is sent, stored
// or published, and the camera stops when the user turns it off or the widget disconnects.

export const GRID_W = 32;
export const GRID_H = 24;
const SAMPLE_MS = 100;

/** Where the picture moved between two grey frames (GRID_W × GRID_H, 0..255), as a point in
 * [-1, 1]² seen from the face (mirrored: the user on the left of the camera is on the face's
 * right); null when too little moved to tell. */
export function motionCentroid(prev: ArrayLike<number>, cur: ArrayLike<number>, w = GRID_W, h = GRID_H): { x: number; y: number } | null {
  let sum = 0;
  let sx = 0;
  let sy = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const d = Math.abs((cur[i] ?? 0) - (prev[i] ?? 0));
      if (d < 12) continue; // sensor noise
      sum += d;
      sx += d * x;
      sy += d * y;
    }
  }
  if (sum < 12 * w * h * 0.01) return null; // under ~1% of the picture moved
  const cx = sx / sum / (w - 1);
  const cy = sy / sum / (h - 1);
  return { x: -(cx - 0.5) * 2, y: (cy - 0.5) * 2 };
}

/** RGBA pixels → grey levels. */
export function toGrey(rgba: ArrayLike<number>): Uint8ClampedArray {
  const out = new Uint8ClampedArray(rgba.length / 4);
  for (let i = 0; i < out.length; i++) {
    out[i] = 0.299 * (rgba[4 * i] ?? 0) + 0.587 * (rgba[4 * i + 1] ?? 0) + 0.114 * (rgba[4 * i + 2] ?? 0);
  }
  return out;
}

export class CameraGaze {
  private stream: MediaStream | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private prev: Uint8ClampedArray | null = null;

  constructor(private readonly onTarget: (target: { x: number; y: number } | null) => void) {}

  get active(): boolean {
    return this.stream !== null;
  }

  /** Asks for the camera (the browser's own permission prompt); throws if refused. */
  async start(): Promise<void> {
    if (this.stream) return;
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 160, height: 120 }, audio: false });
    this.stream = stream;
    const video = document.createElement('video');
    video.muted = true;
    video.playsInline = true;
    video.srcObject = stream;
    await video.play().catch(() => undefined);
    const canvas = document.createElement('canvas');
    canvas.width = GRID_W;
    canvas.height = GRID_H;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    this.timer = setInterval(() => {
      if (!ctx || video.readyState < 2) return;
      ctx.drawImage(video, 0, 0, GRID_W, GRID_H);
      const grey = toGrey(ctx.getImageData(0, 0, GRID_W, GRID_H).data);
      if (this.prev) {
        const target = motionCentroid(this.prev, grey);
        if (target) this.onTarget(target);
      }
      this.prev = grey;
    }, SAMPLE_MS);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.stream = null;
    this.prev = null;
    this.onTarget(null);
  }
}
