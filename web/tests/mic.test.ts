import { describe, expect, it } from 'vitest';
import { checkEnvironment, describeMicError } from '../src/mic';
import { toEmotion, isAgentState } from '../src/api';

const err = (name: string) => Object.assign(new Error('x'), { name });

describe('microphone messages', () => {
  it('refuses insecure pages before asking', () => {
    expect(checkEnvironment({ isSecureContext: false, hasGetUserMedia: false })?.code).toBe('insecure-context');
    expect(checkEnvironment({ isSecureContext: true, hasGetUserMedia: false })?.code).toBe('mic-failed');
    expect(checkEnvironment({ isSecureContext: true, hasGetUserMedia: true })).toBeNull();
  });
  it('classifies getUserMedia failures', () => {
    expect(describeMicError(err('NotAllowedError')).code).toBe('mic-denied');
    expect(describeMicError(err('SecurityError')).code).toBe('mic-denied');
    expect(describeMicError(err('NotFoundError')).code).toBe('mic-missing');
    expect(describeMicError(err('NotReadableError')).code).toBe('mic-busy');
    expect(describeMicError('weird').code).toBe('mic-failed');
    expect(describeMicError(err('NotAllowedError')).message).toMatch(/allow/i);
  });
});

describe('agent attributes', () => {
  it('accepts known emotions only', () => {
    expect(toEmotion(' Happy ')).toBe('happy');
    expect(toEmotion('furious')).toBe('neutral');
    expect(toEmotion(undefined)).toBe('neutral');
  });
  it('recognises agent states', () => {
    expect(isAgentState('speaking')).toBe(true);
    expect(isAgentState('away')).toBe(false);
    expect(isAgentState(undefined)).toBe(false);
  });
});
