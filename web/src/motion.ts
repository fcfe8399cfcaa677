// Life between words: idle sway, listening nods with an "mm-hm" brow lift, and gaze. Pure
// functions of time (ms) so they are tested without a browser; the face adds them to its pose.

const TAU = 2 * Math.PI;

export interface Pose {
  dy: number; // head offset, px (positive: down, a nod)
  rot: number; // head rotation, degrees
  brow: number; // extra brow lift, px (the "mm-hm")
  smile: number; // extra smile
}

export const STILL: Pose = { dy: 0, rot: 0, brow: 0, smile: 0 };

/** A slow, irregular sway (two incommensurate periods), never more than ~1.7°. */
export function sway(t: number): Pose {
  return {
    dy: 0.8 * Math.sin((TAU * t) / 4100),
    rot: 1.2 * Math.sin((TAU * t) / 6000) + 0.5 * Math.sin((TAU * t) / 2300 + 1),
    brow: 0,
    smile: 0,
  };
}

export const NOD_MS = 1100;
export const MMHM_EVERY_MS = 2600;

/** Nodding while the user speaks, `t - since` ms into their speech: small downward nods, and
 * every few seconds an "mm-hm" (brows up, a smile) that fades over half a second. */
export function listeningNod(t: number, since: number): Pose {
  const dt = Math.max(0, t - since);
  const phase = (dt % MMHM_EVERY_MS) / 500;
  const mmhm = dt >= MMHM_EVERY_MS / 2 && phase < 1 ? Math.sin(Math.PI * phase) : 0;
  return {
    dy: 2.6 * Math.max(0, Math.sin((TAU * dt) / NOD_MS)),
    rot: 0,
    brow: 3 * mmhm,
    smile: 0.15 * mmhm,
  };
}

/** The pose at `t`: sway always (unless reduced motion), nods while the user speaks. */
export function poseAt(
  t: number,
  opts: { userSpeakingSince: number | null; reducedMotion: boolean },
): Pose {
  if (opts.reducedMotion) return STILL;
  const base = sway(t);
  if (opts.userSpeakingSince === null) return base;
  const nod = listeningNod(t, opts.userSpeakingSince);
  return { dy: base.dy + nod.dy, rot: base.rot, brow: nod.brow, smile: nod.smile };
}

/** Pupil offset (px, within ±`reach`) toward a point given relative to the face's centre in
 * face widths; null looks at the viewer (centre). */
export function gaze(target: { x: number; y: number } | null, reach = 4): { x: number; y: number } {
  if (!target) return { x: 0, y: 0 };
  // saturates about a face width away (tanh stays within ±1): the eyes turn, they do not roll
  return { x: reach * Math.tanh(target.x), y: reach * Math.tanh(target.y) };
}
