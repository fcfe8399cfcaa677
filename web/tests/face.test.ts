import { describe, expect, it } from 'vitest';
import { blinkFactor, expressionFor, mouthPath } from '../src/face';

describe('expressionFor', () => {
  it('differs between listening, thinking and speaking', () => {
    const l = expressionFor('listening', 'neutral');
    const t = expressionFor('thinking', 'neutral');
    const s = expressionFor('speaking', 'neutral');
    expect(t.lookY).toBeLessThan(0); // eyes up while thinking
    expect(t.smile).toBeLessThan(l.smile);
    expect(JSON.stringify(l)).not.toEqual(JSON.stringify(s));
  });
  it('lets the emotion override the state', () => {
    expect(expressionFor('listening', 'happy').smile).toBeGreaterThan(0.8);
    expect(expressionFor('speaking', 'sad').smile).toBeLessThan(0);
    expect(expressionFor('listening', 'sad').browTilt).toBeGreaterThan(0);
    const surprised = expressionFor('listening', 'surprised');
    expect(surprised.eyeOpen).toBeGreaterThan(1);
    expect(surprised.restOpen).toBeGreaterThan(0);
  });
  it('looks sleepy while waiting for the agent', () => {
    expect(expressionFor('waiting', 'neutral').eyeOpen).toBeLessThan(0.7);
  });
});

describe('blinkFactor', () => {
  it('closes the eyes halfway through a blink only', () => {
    expect(blinkFactor(1000, 1000 - 80)).toBe(0);
    expect(blinkFactor(1000, 1000)).toBe(1);
    expect(blinkFactor(1000, 500)).toBe(1);
    expect(blinkFactor(1000, 2000)).toBe(1);
  });
});

describe('mouthPath', () => {
  const lowerLipY = (d: string) => Number(d.split('Q')[2]?.trim().split(' ')[1]);
  it('drops the lower lip as the mouth opens', () => {
    expect(lowerLipY(mouthPath(1, 0, 1))).toBeGreaterThan(lowerLipY(mouthPath(0, 0, 1)) + 20);
  });
  it('is a closed, finite path', () => {
    const d = mouthPath(0.5, -0.7, 0.8);
    expect(d.startsWith('M')).toBe(true);
    expect(d.endsWith('Z')).toBe(true);
    expect(d).not.toMatch(/NaN|Infinity/);
  });
});
