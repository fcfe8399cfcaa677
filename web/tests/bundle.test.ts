// The bundle is public: it must carry no LiveKit secret, API key or dev credential.
// Run after `npm run build` (CI does: npm run build && npm test).
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';

const BUNDLE = fileURLToPath(new URL('../../tokens/static/widget.js', import.meta.url));

describe('built widget.js', () => {
  it('exists (run `npm run build` first)', () => {
    expect(existsSync(BUNDLE), `${BUNDLE} is missing: run npm run build`).toBe(true);
  });

  const text = existsSync(BUNDLE) ? readFileSync(BUNDLE, 'utf8') : '';

  it.each([
    'LIVEKIT_API_SECRET',
    'LIVEKIT_API_KEY',
    'TOKEN_API_KEYS',
    'devkey',
    'api_secret',
    'apiSecret',
  ])('does not contain %s', (needle) => {
    expect(text.toLowerCase()).not.toContain(needle.toLowerCase());
  });

  it('has no quoted "secret"-like value, signed JWT or LiveKit API key', () => {
    expect(text).not.toMatch(/["'`]secret["'`]/i);
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}/); // a JWT
    expect(text).not.toMatch(/\bAPI[A-Za-z0-9]{12}\b/); // LiveKit cloud key shape
    expect(text).not.toMatch(/Bearer [A-Za-z0-9._-]{16,}/);
  });

  it('does not contain the values of secrets present in the environment', () => {
    const values = [process.env.LIVEKIT_API_SECRET, process.env.LIVEKIT_API_KEY, ...(process.env.TOKEN_API_KEYS ?? '').split(',')]
      .map((v) => v?.trim())
      .filter((v): v is string => !!v && v.length >= 6);
    for (const value of values) expect(text.includes(value)).toBe(false);
  });

  it('is one classic script exposing window.KyutaiWidget', () => {
    expect(text).toContain('KyutaiWidget');
    expect(text).not.toMatch(/^\s*(import|export)\s/m);
    const gzip = gzipSync(Buffer.from(text)).length;
    console.log(`widget.js: ${text.length} bytes, ${gzip} bytes gzip`);
    expect(gzip).toBeLessThan(400_000);
  });
});
