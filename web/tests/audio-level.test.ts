import { describe, expect, it } from 'vitest';
import { CEIL_DB, FLOOR_DB, levelToOpenness, rms, smoothMouth } from '../src/audio-level';

const dbToRms = (db: number) => 10 ** (db / 20);

describe('levelToOpenness', () => {
  it('keeps the mouth shut for silence and noise below the floor', () => {
    expect(levelToOpenness(0)).toBe(0);
    expect(levelToOpenness(Number.NaN)).toBe(0);
    expect(levelToOpenness(dbToRms(FLOOR_DB - 10))).toBe(0);
  });
  it('opens fully at the ceiling and never beyond', () => {
    expect(levelToOpenness(dbToRms(CEIL_DB))).toBeCloseTo(1);
    expect(levelToOpenness(1)).toBe(1);
  });
  it('is monotonic in loudness, linear in dB', () => {
    const mid = levelToOpenness(dbToRms((FLOOR_DB + CEIL_DB) / 2));
    expect(mid).toBeCloseTo(0.5);
    let prev = -1;
    for (let db = -70; db <= 0; db += 5) {
      const v = levelToOpenness(dbToRms(db));
      expect(v).toBeGreaterThanOrEqual(prev);
      prev = v;
    }
  });
});

describe('rms', () => {
  it('of a full-scale square wave is 1, of nothing is 0', () => {
    expect(rms([1, -1, 1, -1])).toBe(1);
    expect(rms([])).toBe(0);
  });
  it('of a sine is amplitude / sqrt(2)', () => {
    const s = Array.from({ length: 4800 }, (_, i) => 0.5 * Math.sin((2 * Math.PI * 440 * i) / 48000));
    expect(rms(s)).toBeCloseTo(0.5 / Math.SQRT2, 3);
  });
});

describe('smoothMouth', () => {
  it('opens faster than it closes', () => {
    const opened = smoothMouth(0, 1, 33);
    const closed = 1 - smoothMouth(1, 0, 33);
    expect(opened).toBeGreaterThan(closed);
    expect(opened).toBeGreaterThan(0.5);
  });
  it('converges and snaps tiny values to a shut mouth', () => {
    let v = 1;
    for (let i = 0; i < 100; i++) v = smoothMouth(v, 0, 33);
    expect(v).toBe(0);
    let w = 0;
    for (let i = 0; i < 100; i++) w = smoothMouth(w, 0.7, 33);
    expect(w).toBeCloseTo(0.7, 3);
  });
  it('does not move when no time passed', () => {
    expect(smoothMouth(0.4, 1, 0)).toBe(0.4);
  });
});
