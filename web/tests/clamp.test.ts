import { describe, expect, it } from 'vitest';
import { clamp } from '../src/clamp';

describe('clamp', () => {
  it('keeps a value inside the range as it is', () => {
    expect(clamp(0.25, -1, 1)).toBe(0.25);
  });
  it('holds a value outside the range at the nearer end', () => {
    expect(clamp(-3, -1, 1)).toBe(-1);
    expect(clamp(7, 120, 900)).toBe(120);
    expect(clamp(1e9, 120, 900)).toBe(900);
    expect(clamp(Number.POSITIVE_INFINITY, 0, 1)).toBe(1);
  });
});
