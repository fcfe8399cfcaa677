// The expressive face: an SVG whose mouth follows the agent's loudness shaped by visemes from
// its words, whose expression follows the agent's state, emotion and valence–arousal point, and
// which sways, nods while the user speaks, looks toward the pointer and blinks, so it never
// looks frozen. A pure renderer: it shows what it is told.

import { levelToOpenness, smoothMouth } from './audio-level';
import type { Affect, Emotion, WidgetState } from './api';
import { clamp } from './clamp';
import { type Pose, STILL, gaze, poseAt } from './motion';
import { LOUDNESS_ONLY, type MouthShape, SHAPES, VisemeTrack, blendShape } from './visemes';

/** The user's microphone openness above which they count as speaking (about -45 dBFS). */
const USER_SPEAKING = 0.15;
const USER_HANGOVER_MS = 400; // a breath between words is still speaking

const SVG_NS = 'http://www.w3.org/2000/svg';
const TICK_MS = 33; // ~30 fps: plenty for a mouth, cheap, and runs in headless browsers too

export interface Expression {
  eyeOpen: number; // 1 = normal, >1 wide
  browLiftL: number; // px up
  browLiftR: number;
  browTilt: number; // px: positive raises the inner ends (worried/sad), negative frowns
  smile: number; // -1 frown .. 1 grin
  mouthWidth: number; // scale of the mouth's width
  restOpen: number; // mouth opening with no sound (an "o" of surprise)
  lookX: number; // pupil offset, px
  lookY: number;
  blush: number; // 0..1
  tilt: number; // head rotation, degrees
}

const NEUTRAL: Expression = {
  eyeOpen: 1,
  browLiftL: 0,
  browLiftR: 0,
  browTilt: 0,
  smile: 0.2,
  mouthWidth: 1,
  restOpen: 0,
  lookX: 0,
  lookY: 0,
  blush: 0,
  tilt: 0,
};

/** Where each label sits on the valence–arousal plane (the agent's agent/face/affect.py):
 * a face told only a label glides to its point. */
export const EMOTION_POINTS: Record<Emotion, Affect> = {
  neutral: { valence: 0, arousal: 0 },
  happy: { valence: 0.75, arousal: 0.45 },
  sad: { valence: -0.65, arousal: -0.45 },
  angry: { valence: -0.7, arousal: 0.75 },
  afraid: { valence: -0.6, arousal: 0.6 },
  surprised: { valence: 0.15, arousal: 0.85 },
  disgusted: { valence: -0.75, arousal: 0.25 },
  thinking: { valence: 0, arousal: 0.15 },
  confused: { valence: -0.2, arousal: 0.3 },
};

/** Within the affect plane's range. */
function unit(x: number): number {
  return clamp(x, -1, 1);
}

/** The continuous part of affect: brows, eyes, mouth curve and blush as smooth functions of
 * the point, so a glide across the plane is a glide on the face. */
export function applyAffect(e: Expression, point: Affect): Expression {
  const v = unit(point.valence);
  const a = unit(point.arousal);
  const neg = Math.max(0, -v);
  const up = Math.max(0, a);
  const lift = 5 * up * (v >= 0 ? 1 : 0.4);
  return {
    ...e,
    smile: unit(e.smile + 0.9 * v),
    eyeOpen: e.eyeOpen * (1 + 0.3 * a) * (1 - 0.15 * Math.max(0, v)), // a smile squints
    browLiftL: e.browLiftL + lift,
    browLiftR: e.browLiftR + lift,
    // low-arousal unpleasantness raises the brows' inner ends (sad); high-arousal lowers them
    browTilt: e.browTilt + (7 * neg * (1 - a)) / 2 - 6 * neg * up,
    restOpen: e.restOpen + 0.35 * Math.max(0, (a - 0.6) / 0.4),
    lookY: e.lookY + 3 * neg * Math.max(0, -a), // downcast
    blush: Math.max(e.blush, 0.7 * Math.max(0, v) * (0.5 + 0.5 * up)),
  };
}

/** What a label adds that the plane cannot say (angry and afraid sit close on it). */
function applyLabel(e: Expression, emotion: Emotion): Expression {
  switch (emotion) {
    case 'surprised':
      return { ...e, eyeOpen: Math.max(e.eyeOpen, 1.3), mouthWidth: 0.6, restOpen: Math.max(e.restOpen, 0.35) };
    case 'thinking':
      return { ...e, browLiftL: e.browLiftL + 4, mouthWidth: 0.7, lookX: 5, lookY: -6 };
    case 'confused':
      return { ...e, browLiftL: 7, browLiftR: -1, browTilt: -3, mouthWidth: 0.8, tilt: 6 };
    case 'afraid':
      return { ...e, browTilt: e.browTilt + 7, eyeOpen: e.eyeOpen * 1.15, mouthWidth: 0.8 };
    case 'angry':
      return { ...e, browTilt: Math.min(e.browTilt, -5), eyeOpen: e.eyeOpen * 0.85, mouthWidth: 0.85 };
    case 'disgusted':
      return { ...e, browLiftL: e.browLiftL - 2, browLiftR: e.browLiftR + 4, mouthWidth: 0.75, tilt: -3 };
    case 'sad':
      return { ...e, tilt: 0 };
    default:
      return e;
  }
}

/** The target expression for a state, an emotion and a valence–arousal point (the label's own
 * point when the agent sends none): state first, then the point, then the label's shapes. */
export function expressionFor(state: WidgetState, emotion: Emotion, affect: Affect | null = null): Expression {
  const e: Expression = { ...NEUTRAL };
  switch (state) {
    case 'idle':
    case 'error':
      Object.assign(e, { eyeOpen: 0.85, smile: 0.15 });
      break;
    case 'connecting':
    case 'waiting':
    case 'initializing':
      Object.assign(e, { eyeOpen: 0.5, smile: 0.05, lookY: 2 }); // waking up
      break;
    case 'listening':
      Object.assign(e, { browLiftL: 3, browLiftR: 3, smile: 0.35, tilt: -4 }); // attentive
      break;
    case 'thinking':
      Object.assign(e, { browLiftL: 6, browLiftR: 1, smile: 0, mouthWidth: 0.7, lookX: 5, lookY: -6, tilt: 3 });
      break;
    case 'speaking':
      Object.assign(e, { browLiftL: 2, browLiftR: 2, smile: 0.3 });
      break;
  }
  return applyLabel(applyAffect(e, affect ?? EMOTION_POINTS[emotion]), emotion);
}

/** Blink envelope: 1 = eyes open, dips to ~0 over a 160 ms blink starting at `start`. */
export function blinkFactor(now: number, start: number): number {
  const t = now - start;
  if (t < 0 || t > 160) return 1;
  return Math.abs(t - 80) / 80;
}

/** SVG path of the mouth: corners rise with `smile`, the lower lip drops with `open`. */
export function mouthPath(open: number, smile: number, widthScale: number): string {
  const cx = 100;
  const cy = 138;
  const half = 24 * widthScale * (1 - 0.25 * open); // an open mouth rounds up a little
  const corner = cy - smile * 8;
  const upper = cy + smile * 4 - open * 3; // lips' midpoints
  const lower = cy + smile * 6 + open * 28;
  // A quadratic curve passes through its midpoint when the control point is 2*mid - ends.
  const cu = 2 * upper - corner;
  const cl = 2 * lower - corner;
  const f = (n: number) => n.toFixed(1);
  return `M${f(cx - half)} ${f(corner)} Q${cx} ${f(cu)} ${f(cx + half)} ${f(corner)} Q${cx} ${f(cl)} ${f(cx - half)} ${f(corner)}Z`;
}

function el<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>,
  parent?: Element,
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  parent?.appendChild(node);
  return node;
}

function lerp(a: number, b: number, k: number): number {
  return a + (b - a) * k;
}

export class Face {
  readonly element: SVGSVGElement;
  private readonly head: SVGGElement;
  private readonly eyes: SVGEllipseElement[] = [];
  private readonly glints: SVGCircleElement[] = [];
  private readonly brows: SVGPathElement[] = [];
  private readonly cheeks: SVGCircleElement[] = [];
  private readonly mouth: SVGPathElement;

  private state: WidgetState = 'idle';
  private emotion: Emotion = 'neutral';
  private affect: Affect | null = null;
  private current: Expression = expressionFor('idle', 'neutral');
  private target: Expression = this.current;
  private mouthOpen = 0;
  private levelSource: (() => number) | null = null;
  private userLevelSource: (() => number) | null = null;
  private readonly visemes = new VisemeTrack();
  private shape: MouthShape = LOUDNESS_ONLY;
  private userSpeakingSince: number | null = null;
  private userLoudAt = -Infinity;
  private reducedMotion = false;
  private gazeTarget: { x: number; y: number } | null = null;
  private pose: Pose = STILL;
  private ticks = 0;
  private timer: ReturnType<typeof setInterval> | null = null;
  private last = 0;
  private blinkAt = 0;
  private nextBlink = 0;

  constructor() {
    this.element = el('svg', {
      viewBox: '0 0 200 200',
      class: 'kw-face',
      role: 'img',
      'data-mouth-open': '0',
    });
    this.head = el('g', { class: 'kw-head' }, this.element);
    el('circle', { cx: 100, cy: 104, r: 86, class: 'kw-skin' }, this.head);
    for (const x of [58, 142]) {
      this.cheeks.push(el('circle', { cx: x, cy: 124, r: 13, class: 'kw-cheek', opacity: 0 }, this.head));
    }
    for (const x of [70, 130]) {
      this.eyes.push(el('ellipse', { cx: x, cy: 92, rx: 9, ry: 13, class: 'kw-eye' }, this.head));
      this.glints.push(el('circle', { cx: x + 3, cy: 87, r: 3, class: 'kw-glint' }, this.head));
      this.brows.push(el('path', { d: '', class: 'kw-brow' }, this.head));
    }
    this.mouth = el('path', { d: mouthPath(0, 0.2, 1), class: 'kw-mouth' }, this.head);
    this.render(performance.now());
  }

  /** Where loudness comes from (the agent's audio meter), or null while there is none. */
  setLevelSource(source: (() => number) | null): void {
    this.levelSource = source;
  }

  /** Where the user's microphone loudness comes from, for listening nods. */
  setUserLevelSource(source: (() => number) | null): void {
    this.userLevelSource = source;
    if (!source) this.userSpeakingSince = null;
  }

  /** Agent words as they are heard (aligned captions): they shape the mouth. */
  heard(text: string): void {
    this.visemes.push(text, performance.now());
  }

  /** `prefers-reduced-motion`: no sway, no nods (blinks and the mouth stay). */
  setReducedMotion(reduced: boolean): void {
    this.reducedMotion = reduced;
    this.element.dataset.reducedMotion = String(reduced);
  }

  /** A point to look toward, relative to the face's centre in face widths; null: the viewer. */
  lookAt(target: { x: number; y: number } | null): void {
    this.gazeTarget = target;
  }

  setState(state: WidgetState): void {
    this.state = state;
    this.retarget();
  }

  setEmotion(emotion: Emotion): void {
    this.emotion = emotion;
    this.retarget();
  }

  /** The agent's valence–arousal point; null to use the emotion's own. */
  setAffect(affect: Affect | null): void {
    this.affect = affect;
    this.retarget();
  }

  start(): void {
    if (this.timer !== null) return;
    this.last = performance.now();
    this.nextBlink = this.last + 1500;
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private retarget(): void {
    this.target = expressionFor(this.state, this.emotion, this.affect);
    this.element.dataset.settled = 'false'; // until the next ticks glide there
    this.element.dataset.expression = `${this.state} ${this.emotion}`;
    const p = this.affect ?? EMOTION_POINTS[this.emotion];
    this.element.dataset.affect = `${p.valence.toFixed(2)} ${p.arousal.toFixed(2)}`;
    this.element.setAttribute('aria-label', `Tutor face: ${this.state}, ${this.emotion}`);
  }

  private tick(): void {
    const now = performance.now();
    const dt = Math.min(200, now - this.last);
    this.last = now;
    let level = 0;
    try {
      level = this.levelSource ? this.levelSource() : 0;
    } catch {
      level = 0; // the track went away between two ticks
    }
    this.mouthOpen = smoothMouth(this.mouthOpen, levelToOpenness(level), dt);
    const viseme = this.visemes.at(now);
    this.shape = blendShape(this.shape, viseme ? SHAPES[viseme] : LOUDNESS_ONLY, dt);
    this.element.dataset.viseme = viseme ?? 'none';
    this.trackUser(now);
    const nodding = this.state === 'listening' ? this.userSpeakingSince : null;
    this.pose = poseAt(now, { userSpeakingSince: nodding, reducedMotion: this.reducedMotion });
    this.element.dataset.pose = `${this.pose.dy.toFixed(2)} ${this.pose.rot.toFixed(2)} ${this.pose.brow.toFixed(2)}`;
    this.element.dataset.userSpeaking = String(this.userSpeakingSince !== null);
    this.element.dataset.tick = String(++this.ticks); // lets a test wait for the next frame
    const k = 1 - Math.exp(-dt / 120); // expressions glide over ~a third of a second
    const next = { ...this.current };
    let gap = 0;
    for (const key of Object.keys(next) as (keyof Expression)[]) {
      next[key] = lerp(this.current[key], this.target[key], k);
      gap = Math.max(gap, Math.abs(next[key] - this.target[key]));
    }
    this.current = next;
    this.element.dataset.settled = String(gap < 0.01); // the expression reached its target
    if (now >= this.nextBlink) {
      this.blinkAt = now;
      // Irregular gaps look alive; now and then a double blink.
      this.nextBlink = now + (Math.random() < 0.15 ? 260 : 2200 + Math.random() * 3800);
    }
    this.render(now);
  }

  private trackUser(now: number): void {
    let level = 0;
    try {
      level = this.userLevelSource ? this.userLevelSource() : 0;
    } catch {
      level = 0;
    }
    if (levelToOpenness(level) > USER_SPEAKING) {
      this.userLoudAt = now;
      this.userSpeakingSince ??= now;
    } else if (now - this.userLoudAt > USER_HANGOVER_MS) {
      this.userSpeakingSince = null;
    }
  }

  private render(now: number): void {
    const c = this.current;
    const g = gaze(this.gazeTarget);
    this.element.dataset.gaze = `${g.x.toFixed(2)} ${g.y.toFixed(2)}`;
    const p = this.pose;
    const e: Expression = {
      ...c,
      lookX: c.lookX + g.x,
      lookY: c.lookY + g.y,
      browLiftL: c.browLiftL + p.brow,
      browLiftR: c.browLiftR + p.brow,
      smile: c.smile + p.smile,
    };
    const eyeScale = Math.max(0.06, e.eyeOpen * blinkFactor(now, this.blinkAt));
    this.eyes.forEach((eye, i) => {
      const x = (i === 0 ? 70 : 130) + e.lookX;
      eye.setAttribute('cx', x.toFixed(1));
      eye.setAttribute('cy', (92 + e.lookY).toFixed(1));
      eye.setAttribute('ry', (13 * eyeScale).toFixed(1));
      const glint = this.glints[i];
      glint?.setAttribute('cx', (x + 3).toFixed(1));
      glint?.setAttribute('cy', (87 + e.lookY * 1.1).toFixed(1));
      glint?.setAttribute('opacity', eyeScale > 0.5 ? '1' : '0');
    });
    this.brows.forEach((brow, i) => {
      const left = i === 0;
      const x = left ? 70 : 130;
      const y = 70 - (left ? e.browLiftL : e.browLiftR);
      const inner = y - e.browTilt; // the end nearest the nose
      const outer = y + e.browTilt * 0.4;
      const [x1, y1, x2, y2] = left ? [x - 14, outer, x + 14, inner] : [x - 14, inner, x + 14, outer];
      brow.setAttribute('d', `M${x1} ${y1.toFixed(1)} Q${x} ${(Math.min(y1, y2) - 4).toFixed(1)} ${x2} ${y2.toFixed(1)}`);
    });
    for (const cheek of this.cheeks) cheek.setAttribute('opacity', e.blush.toFixed(2));
    // loudness opens the mouth (silence closes it); the viseme scales and widens it
    const open = clamp(this.mouthOpen * this.shape.open, e.restOpen, 1);
    const width = e.mouthWidth * this.shape.width;
    this.mouth.setAttribute('d', mouthPath(open, e.smile * (1 - open * 0.6), width));
    this.head.setAttribute(
      'transform',
      `translate(0 ${p.dy.toFixed(2)}) rotate(${(e.tilt + p.rot).toFixed(2)} 100 110)`,
    );
    this.element.setAttribute('data-mouth-open', this.mouthOpen.toFixed(3));
    this.element.setAttribute('data-mouth', `${open.toFixed(3)} ${width.toFixed(3)}`);
    this.element.dataset.smile = e.smile.toFixed(3);
  }
}
