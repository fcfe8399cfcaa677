import { describe, expect, it } from 'vitest';
import { GRID_H, GRID_W, motionCentroid, toGrey } from '../src/camera-gaze';

const frame = (blob: { x: number; y: number } | null) => {
  const f = new Uint8ClampedArray(GRID_W * GRID_H).fill(40);
  if (blob) {
    for (let y = blob.y - 2; y <= blob.y + 2; y++) for (let x = blob.x - 2; x <= blob.x + 2; x++) f[y * GRID_W + x] = 220;
  }
  return f;
};

describe('motionCentroid', () => {
  it('points where the picture moved, mirrored like a mirror', () => {
    const left = motionCentroid(frame(null), frame({ x: 4, y: 12 }));
    expect(left).not.toBeNull();
    expect(left!.x).toBeGreaterThan(0.5); // the user's left of the camera is the face's right
    const low = motionCentroid(frame(null), frame({ x: 16, y: 20 }));
    expect(low!.y).toBeGreaterThan(0.5);
  });
  it('tells nothing when nothing moved, or only noise', () => {
    expect(motionCentroid(frame(null), frame(null))).toBeNull();
    const noisy = frame(null).map((v, i) => v + (i % 2 ? 5 : -5));
    expect(motionCentroid(frame(null), noisy)).toBeNull();
  });
});

describe('toGrey', () => {
  it('weighs the channels like luma', () => {
    expect([...toGrey([255, 0, 0, 255, 0, 255, 0, 255, 255, 255, 255, 255])]).toEqual([76, 150, 255]);
  });
});
