import { describe, expect, it } from 'vitest';
import { SHAPES, VisemeTrack, blendShape, estimateWordMs, lettersToVisemes, scheduleWord } from '../src/visemes';

describe('lettersToVisemes', () => {
  it('maps letters and digraphs to the few shapes that look different', () => {
    expect(lettersToVisemes('map')).toEqual(['closed', 'open', 'closed']);
    expect(lettersToVisemes('Two')).toEqual(['teeth', 'round']);
    expect(lettersToVisemes('three')).toEqual(['teeth', 'wide']); // th, (r), ee
    expect(lettersToVisemes('shoe')).toEqual(['round', 'wide']);
    expect(lettersToVisemes('Hello!')).toEqual(['wide', 'teeth', 'round']);
  });
  it('folds accents and ignores what is not a letter', () => {
    expect(lettersToVisemes('été')).toEqual(['wide', 'teeth', 'wide']);
    expect(lettersToVisemes('4,')).toEqual([]);
  });
});

describe('scheduleWord', () => {
  it('spreads a word over its duration, in order', () => {
    const keys = scheduleWord('map', 1000, 300);
    expect(keys.map((k) => k.at)).toEqual([1000, 1100, 1200]);
    expect(estimateWordMs('a')).toBe(120);
    expect(estimateWordMs('extraordinarily')).toBeLessThanOrEqual(900);
  });
});

describe('VisemeTrack', () => {
  it('shows each word as it is heard, then hands back to loudness', () => {
    const t = new VisemeTrack();
    expect(t.at(0)).toBeNull(); // no timings: loudness only
    t.push('map', 1000);
    expect(t.at(1000)).toBe('closed');
    expect(t.at(1000 + estimateWordMs('map') / 2)).toBe('open');
    expect(t.at(5000)).toBeNull();
  });
  it('lets the next word cut the previous one short', () => {
    const t = new VisemeTrack();
    t.push('wonderful', 0);
    t.push('map', 100);
    expect(t.at(100)).toBe('closed');
  });
  it('says several words of one delta one after the other', () => {
    const t = new VisemeTrack();
    t.push('oh map', 0);
    expect(t.at(0)).toBe('round');
    expect(t.at(estimateWordMs('oh'))).toBe('closed');
  });
});

describe('blendShape', () => {
  it('eases toward the target rather than snapping', () => {
    const mid = blendShape(SHAPES.closed, SHAPES.open, 20);
    expect(mid.open).toBeGreaterThan(SHAPES.closed.open);
    expect(mid.open).toBeLessThan(SHAPES.open.open);
    const done = blendShape(SHAPES.closed, SHAPES.open, 1000);
    expect(done.open).toBeCloseTo(SHAPES.open.open, 3);
  });
});
