import { describe, expect, it } from 'vitest';
import { NOD_MS, STILL, gaze, listeningNod, poseAt, sway } from '../src/motion';

describe('sway', () => {
  it('moves slowly and stays small', () => {
    let max = 0;
    for (let t = 0; t < 20000; t += 50) max = Math.max(max, Math.abs(sway(t).rot));
    expect(max).toBeGreaterThan(0.5);
    expect(max).toBeLessThan(1.8);
    expect(Math.abs(sway(1000).rot - sway(1033).rot)).toBeLessThan(0.1); // no jerks at 30 fps
  });
});

describe('listeningNod', () => {
  it('nods down while the user speaks and says mm-hm now and then', () => {
    expect(listeningNod(1000, 1000).dy).toBe(0);
    expect(listeningNod(1000 + NOD_MS / 4, 1000).dy).toBeGreaterThan(2);
    let brow = 0;
    for (let t = 0; t < 6000; t += 20) brow = Math.max(brow, listeningNod(t, 0).brow);
    expect(brow).toBeGreaterThan(2);
  });
});

describe('poseAt', () => {
  it('is still with reduced motion, whatever happens', () => {
    expect(poseAt(1234, { userSpeakingSince: 0, reducedMotion: true })).toEqual(STILL);
  });
  it('adds nods only while the user speaks', () => {
    const t = 5000 + NOD_MS / 4;
    const quiet = poseAt(t, { userSpeakingSince: null, reducedMotion: false });
    const heard = poseAt(t, { userSpeakingSince: 5000, reducedMotion: false });
    expect(heard.dy).toBeGreaterThan(quiet.dy + 2);
  });
});

describe('gaze', () => {
  it('looks at the viewer by default and turns toward a point, within reach', () => {
    expect(gaze(null)).toEqual({ x: 0, y: 0 });
    const right = gaze({ x: 3, y: 0 });
    expect(right.x).toBeGreaterThan(3.5);
    expect(right.x).toBeLessThanOrEqual(4);
    expect(gaze({ x: -0.2, y: 0.2 }).x).toBeLessThan(0);
  });
});
