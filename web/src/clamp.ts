/** `x` held within [lo, hi]; a NaN stays NaN, so callers that cannot take one check first. */
export function clamp(x: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, x));
}
