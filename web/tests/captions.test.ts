import { describe, expect, it } from 'vitest';
import { ATTR_FINAL, ATTR_SEGMENT_ID, ATTR_TRACK_ID, CaptionLog, isFinal, speakerOf } from '../src/captions';

const agent = { speaker: 'agent' as const, identity: 'agent-1', label: 'Tutor' };
const user = { speaker: 'user' as const, identity: 'me', label: 'You' };

describe('CaptionLog', () => {
  it('merges the agent delta stream and takes the final flag from the trailer', () => {
    const log = new CaptionLog();
    log.open({ ...agent, streamId: 's1', attributes: { [ATTR_SEGMENT_ID]: 'SG_a', [ATTR_FINAL]: 'false' } });
    log.append('s1', 'Hello');
    const mid = log.append('s1', ' there,');
    expect(mid).toMatchObject({ text: 'Hello there,', final: false });
    log.append('s1', ' student.');
    const done = log.close('s1', { [ATTR_SEGMENT_ID]: 'SG_a', [ATTR_FINAL]: 'true' });
    expect(done).toMatchObject({ id: 'SG_a', text: 'Hello there, student.', final: true, speaker: 'agent' });
    expect(log.list()).toHaveLength(1);
  });

  it('replaces user interims (full text per stream) within one segment', () => {
    const log = new CaptionLog();
    const interim = (id: string, text: string, final: boolean) => {
      log.open({ ...user, streamId: id, attributes: { [ATTR_SEGMENT_ID]: 'SG_u', [ATTR_FINAL]: String(final) } });
      log.append(id, text);
      return log.close(id, { [ATTR_SEGMENT_ID]: 'SG_u', [ATTR_FINAL]: String(final) });
    };
    interim('a', 'what is', false);
    expect(log.list()[0]).toMatchObject({ text: 'what is', final: false });
    interim('b', 'what is two plus', false);
    const last = interim('c', 'What is two plus two?', true);
    expect(last).toMatchObject({ text: 'What is two plus two?', final: true });
    expect(log.list()).toHaveLength(1);
  });

  it('keeps the previous interim visible until the next stream says something', () => {
    const log = new CaptionLog();
    log.open({ ...user, streamId: 'a', attributes: { [ATTR_SEGMENT_ID]: 'S' } });
    log.append('a', 'hello');
    log.close('a', {});
    const reopened = log.open({ ...user, streamId: 'b', attributes: { [ATTR_SEGMENT_ID]: 'S' } });
    expect(reopened.text).toBe('hello');
  });

  it('ignores a stale stream of a segment that a newer stream superseded', () => {
    const log = new CaptionLog();
    log.open({ ...user, streamId: 'old', attributes: { [ATTR_SEGMENT_ID]: 'S' } });
    log.open({ ...user, streamId: 'new', attributes: { [ATTR_SEGMENT_ID]: 'S' } });
    log.append('new', 'newest text');
    log.append('old', 'older');
    log.close('old', {});
    expect(log.list()[0]?.text).toBe('newest text');
  });

  it('orders both sides by when they started and drops empty finals', () => {
    const log = new CaptionLog();
    log.open({ ...user, streamId: 'u', attributes: { [ATTR_SEGMENT_ID]: 'U1' } });
    log.append('u', 'hi');
    log.open({ ...agent, streamId: 'g', attributes: { [ATTR_SEGMENT_ID]: 'G1' } });
    log.append('g', 'hello!');
    log.open({ ...user, streamId: 'e', attributes: { [ATTR_SEGMENT_ID]: 'U2', [ATTR_FINAL]: 'true' } });
    log.close('e', { [ATTR_FINAL]: 'true' });
    expect(log.list().map((c) => [c.speaker, c.text])).toEqual([
      ['user', 'hi'],
      ['agent', 'hello!'],
    ]);
  });

  it('falls back to the stream id without a segment id, and bounds its size', () => {
    const log = new CaptionLog(3);
    for (let i = 0; i < 5; i++) {
      log.open({ ...agent, streamId: `s${i}`, attributes: {} });
      log.append(`s${i}`, `line ${i}`);
    }
    expect(log.list().map((c) => c.text)).toEqual(['line 2', 'line 3', 'line 4']);
  });
});

describe('speakerOf / isFinal', () => {
  it('attributes by sender identity, then by transcribed track', () => {
    const mine = new Set(['TR_mic']);
    expect(speakerOf('me', {}, 'me', mine)).toBe('user');
    expect(speakerOf('agent-x', { [ATTR_TRACK_ID]: 'TR_mic' }, 'me', mine)).toBe('user');
    expect(speakerOf('agent-x', { [ATTR_TRACK_ID]: 'TR_agent' }, 'me', mine)).toBe('agent');
    expect(speakerOf('agent-x', {}, 'me', mine)).toBe('agent');
  });
  it('reads the final flag case-insensitively', () => {
    expect(isFinal({ [ATTR_FINAL]: 'TRUE' })).toBe(true);
    expect(isFinal({ [ATTR_FINAL]: 'false' })).toBe(false);
    expect(isFinal(undefined)).toBe(false);
  });
});
