import { describe, expect, it } from 'vitest';
import { lineNotice } from '../src/line';

describe('lineNotice', () => {
  it('says the place in line', () => {
    expect(lineNotice('{"state":"waiting","position":2,"waited_s":3}')?.text).toContain('number 2 in line');
    expect(lineNotice('{"state":"waiting","position":1}')?.text).toContain('next in line');
    expect(lineNotice(new TextEncoder().encode('{"state":"waiting","position":3}'))?.givenUp).toBe(false);
  });

  it('says when the wait is given up', () => {
    const notice = lineNotice('{"state":"given_up","waited_s":300}');
    expect(notice?.givenUp).toBe(true);
    expect(notice?.text).toContain('try again');
  });

  it('ignores what is not a line message', () => {
    expect(lineNotice('not json')).toBeNull();
    expect(lineNotice('{"state":"waiting","position":0}')).toBeNull();
    expect(lineNotice('{"state":"waiting","position":"2"}')).toBeNull();
    expect(lineNotice('[1,2]')).toBeNull();
    expect(lineNotice('null')).toBeNull();
  });
});
