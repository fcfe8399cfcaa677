// Visemes: the few mouth shapes that look different, from the agent's words as they are heard.
// The agent's `lk.transcription` deltas arrive in step with its audio (the agent's transcript
// synchroniser releases each word as it is played), so a word's arrival is its start on the
// audio clock; its letters are spread over an estimated duration, cut short by the next word.
// The shape only scales and widens the mouth: loudness still opens it, so silence closes it.
import { clamp } from './clamp';

export type Viseme = 'open' | 'wide' | 'round' | 'closed' | 'teeth';

export interface MouthShape {
  open: number; // scales the loudness openness: 0 lips together .. 1 as loud as it is
  width: number; // scales the mouth's width
}

export const SHAPES: Record<Viseme, MouthShape> = {
  open: { open: 1, width: 1 }, // a
  wide: { open: 0.5, width: 1.22 }, // e, i
  round: { open: 0.72, width: 0.62 }, // o, u, w, sh
  closed: { open: 0.04, width: 0.95 }, // m, b, p
  teeth: { open: 0.28, width: 1.08 }, // f, v, th, s, t, d, n, l
};
/** No timings: loudness alone drives the mouth. */
export const LOUDNESS_ONLY: MouthShape = { open: 1, width: 1 };

const DIGRAPHS: Record<string, Viseme> = {
  th: 'teeth',
  sh: 'round',
  ch: 'round',
  oo: 'round',
  ou: 'round',
  qu: 'round',
  ee: 'wide',
  ea: 'wide',
  ph: 'teeth',
};
const LETTERS: Record<string, Viseme> = {
  a: 'open',
  e: 'wide',
  i: 'wide',
  y: 'wide',
  o: 'round',
  u: 'round',
  w: 'round',
  m: 'closed',
  b: 'closed',
  p: 'closed',
  f: 'teeth',
  v: 'teeth',
  s: 'teeth',
  z: 'teeth',
  t: 'teeth',
  d: 'teeth',
  n: 'teeth',
  l: 'teeth',
};
// c, g, h, j, k, q, r, x: shaped by their neighbours (coarticulation), so they add no key.

/** A word's visemes in order, repeats merged ("hello" → wide, teeth, round). */
export function lettersToVisemes(word: string): Viseme[] {
  const letters = word
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z]/g, '');
  const out: Viseme[] = [];
  for (let i = 0; i < letters.length; ) {
    const pair = DIGRAPHS[letters.slice(i, i + 2)];
    const v = pair ?? LETTERS[letters[i] ?? ''];
    i += pair ? 2 : 1;
    if (v && out[out.length - 1] !== v) out.push(v);
  }
  return out;
}

/** How long a word takes to say, roughly (espeak-like speech: ~65 ms a letter). */
export function estimateWordMs(word: string): number {
  const n = word.replace(/[^\p{L}\p{N}]/gu, '').length;
  return clamp(65 * n, 120, 900);
}

export interface Key {
  viseme: Viseme;
  at: number; // ms, on the caller's clock
}

/** Keys for `word` said from `startMs`, evenly over `durationMs`. */
export function scheduleWord(word: string, startMs: number, durationMs = estimateWordMs(word)): Key[] {
  const vs = lettersToVisemes(word);
  return vs.map((viseme, i) => ({ viseme, at: startMs + (i * durationMs) / vs.length }));
}

/** One step of coarticulation: the shape eases toward the target (~40 ms), so visemes blend
 * into each other rather than snap. */
export function blendShape(current: MouthShape, target: MouthShape, dtMs: number): MouthShape {
  const k = 1 - Math.exp(-Math.max(0, dtMs) / 40);
  return {
    open: current.open + (target.open - current.open) * k,
    width: current.width + (target.width - current.width) * k,
  };
}

/** The words heard so far, as a viseme timeline. */
export class VisemeTrack {
  private keys: Key[] = [];
  private speechEnd = -Infinity; // when the last scheduled word should be over
  /** After the last word, how long its shape may linger before loudness alone takes over. */
  static readonly LINGER_MS = 300;

  /** Words that started being heard at `nowMs`, said one after the other. */
  push(text: string, nowMs: number): void {
    const words = text.split(/\s+/).filter((w) => /\p{L}/u.test(w));
    if (words.length === 0) return;
    // a new word cuts the previous one short: it is being heard now
    this.keys = this.keys.filter((k) => k.at < nowMs);
    let t = nowMs;
    for (const word of words) {
      const d = estimateWordMs(word);
      this.keys.push(...scheduleWord(word, t, d));
      t += d;
    }
    this.speechEnd = t;
    // keep the timeline short: of the keys already past, only the current one matters
    let current = 0;
    while (current + 1 < this.keys.length && (this.keys[current + 1]?.at ?? Infinity) <= nowMs) current++;
    this.keys = this.keys.slice(current);
  }

  /** The viseme to show at `nowMs`, or null when no word is being said (loudness only). */
  at(nowMs: number): Viseme | null {
    if (nowMs > this.speechEnd + VisemeTrack.LINGER_MS) return null;
    let current: Viseme | null = null;
    for (const k of this.keys) {
      if (k.at > nowMs) break;
      current = k.viseme;
    }
    return current;
  }

  clear(): void {
    this.keys = [];
    this.speechEnd = -Infinity;
  }
}
