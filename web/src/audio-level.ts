// Agent audio level -> how open the mouth is. The maths is pure (unit-tested); the meter
// wraps a Web Audio AnalyserNode on the agent's MediaStream.
import { clamp } from './clamp';

/** Below this the mouth stays shut (line noise, comfort noise, reverb tails). */
export const FLOOR_DB = -50;
/** At or above this the mouth is fully open (loud speech peaks around -10 dBFS). */
export const CEIL_DB = -18;

/** Root mean square of time-domain samples in [-1, 1]. */
export function rms(samples: ArrayLike<number>): number {
  if (samples.length === 0) return 0;
  let sum = 0;
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i] ?? 0;
    sum += s * s;
  }
  return Math.sqrt(sum / samples.length);
}

/** Loudness in dBFS -> openness 0..1. Speech loudness is logarithmic, so map dB linearly. */
export function levelToOpenness(rmsLevel: number): number {
  if (!(rmsLevel > 0)) return 0;
  const db = 20 * Math.log10(rmsLevel);
  const t = (db - FLOOR_DB) / (CEIL_DB - FLOOR_DB);
  return clamp(t, 0, 1);
}

/**
 * One smoothing step towards `target`: fast to open (syllable onsets must show), slower to
 * close (so the mouth does not flicker between analyser frames). `dtMs` keeps the speed
 * independent of the frame rate.
 */
export function smoothMouth(previous: number, target: number, dtMs: number): number {
  const tau = target > previous ? 35 : 90; // ms
  const k = 1 - Math.exp(-Math.max(0, dtMs) / tau);
  const next = previous + (target - previous) * k;
  return next < 0.005 ? 0 : Math.min(1, next);
}

/** Samples a MediaStreamTrack's loudness on demand. */
export class AudioLevelMeter {
  private readonly source: MediaStreamAudioSourceNode;
  private readonly analyser: AnalyserNode;
  private readonly buffer: Float32Array<ArrayBuffer>;

  constructor(
    context: AudioContext,
    track: MediaStreamTrack,
  ) {
    // The analyser is deliberately not connected to the destination: playback goes through
    // the <audio> element (Chrome only feeds remote WebRTC audio to Web Audio while such an
    // element plays it), and AnalyserNode is pulled even without an output.
    this.source = context.createMediaStreamSource(new MediaStream([track]));
    this.analyser = context.createAnalyser();
    this.analyser.fftSize = 1024; // ~21 ms at 48 kHz: about one syllable's attack
    this.analyser.smoothingTimeConstant = 0;
    this.buffer = new Float32Array(this.analyser.fftSize);
    this.source.connect(this.analyser);
  }

  /** Current RMS level in [0, 1]. */
  level(): number {
    this.analyser.getFloatTimeDomainData(this.buffer);
    return rms(this.buffer);
  }

  dispose(): void {
    this.source.disconnect();
    this.analyser.disconnect();
  }
}
