/**
 * The dispatcher's word to a room waiting for an agent (data messages on topic `kyutai.line`):
 * `{"state": "waiting", "position": 2, "waited_s": 4.5}` or `{"state": "given_up"}`.
 * Pure: the widget shows what this returns.
 */

export const TOPIC_LINE = 'kyutai.line';

export interface LineNotice {
  text: string;
  givenUp: boolean;
}

export function lineNotice(payload: Uint8Array | string): LineNotice | null {
  let msg: unknown;
  try {
    msg = JSON.parse(typeof payload === 'string' ? payload : new TextDecoder().decode(payload));
  } catch {
    return null; // not ours to read: ignore rather than break the widget
  }
  if (typeof msg !== 'object' || msg === null) return null;
  const { state, position } = msg as { state?: unknown; position?: unknown };
  if (state === 'given_up') {
    return { text: 'No tutor could join: they are all busy. Please try again later.', givenUp: true };
  }
  if (state !== 'waiting' || typeof position !== 'number' || !Number.isInteger(position) || position < 1) return null;
  const where = position === 1 ? 'you are next in line' : `you are number ${position} in line`;
  return { text: `All tutors are busy — ${where}. The conversation starts by itself.`, givenUp: false };
}
