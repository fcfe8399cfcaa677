import { describe, expect, it } from 'vitest';
import { toAffect } from '../src/api';
import { EMOTION_POINTS, blinkFactor, expressionFor, mouthPath } from '../src/face';

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

describe('valence–arousal', () => {
  const at = (valence: number, arousal: number) => expressionFor('speaking', 'neutral', { valence, arousal });
  it('smiles more as valence rises, continuously', () => {
    const smiles = [-1, -0.5, 0, 0.5, 1].map((v) => at(v, 0).smile);
    for (let i = 1; i < smiles.length; i++) expect(smiles[i]!).toBeGreaterThan(smiles[i - 1]!);
    // a small step on the plane is a small step on the face: a glide, not a jump
    expect(Math.abs(at(0.51, 0).smile - at(0.5, 0).smile)).toBeLessThan(0.02);
  });
  it('opens the eyes and lifts the brows as arousal rises', () => {
    expect(at(0, 0.8).eyeOpen).toBeGreaterThan(at(0, -0.8).eyeOpen);
    expect(at(0, 0.8).browLiftL).toBeGreaterThan(at(0, -0.8).browLiftL);
  });
  it('raises the inner brows when low and unpleasant, lowers them when high and unpleasant', () => {
    expect(at(-0.7, -0.5).browTilt).toBeGreaterThan(0); // sad
    expect(at(-0.7, 0.8).browTilt).toBeLessThan(0); // angry
  });
  it('gives each Ekman preset its own face, at its own point', () => {
    const presets = ['neutral', 'happy', 'sad', 'angry', 'afraid', 'surprised', 'disgusted', 'thinking'] as const;
    const faces = presets.map((p) => JSON.stringify(expressionFor('speaking', p)));
    expect(new Set(faces).size).toBe(presets.length);
    // told only the label, the face sits at the label's point
    expect(expressionFor('speaking', 'sad')).toEqual(expressionFor('speaking', 'sad', EMOTION_POINTS.sad));
    // afraid and angry share a corner of the plane; the label tells them apart
    expect(expressionFor('speaking', 'afraid').browTilt).toBeGreaterThan(expressionFor('speaking', 'angry').browTilt);
  });
});

describe('toAffect', () => {
  it('reads the attribute, clamps it and refuses junk', () => {
    expect(toAffect('{"valence": 0.5, "arousal": -0.25, "at": 3.2}')).toEqual({ valence: 0.5, arousal: -0.25 });
    expect(toAffect('{"valence": 4, "arousal": -9}')).toEqual({ valence: 1, arousal: -1 });
    for (const bad of [undefined, '', 'nope', '[]', '{"valence": "x", "arousal": 0}', 'null']) {
      expect(toAffect(bad)).toBeNull();
    }
  });
});
