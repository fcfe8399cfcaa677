// Microphone problems -> messages a learner can act on (pure, unit-tested).

import type { WidgetErrorInfo } from './api';

export interface MediaEnvironment {
  isSecureContext: boolean;
  hasGetUserMedia: boolean;
}

/** Refuse early where no browser would ever grant a microphone. */
export function checkEnvironment(env: MediaEnvironment): WidgetErrorInfo | null {
  if (!env.isSecureContext) {
    return {
      code: 'insecure-context',
      message:
        'The microphone only works on a secure page (https:// or localhost). Open this page over HTTPS to talk.',
    };
  }
  if (!env.hasGetUserMedia) {
    return {
      code: 'mic-failed',
      message: 'This browser cannot record audio. Try a recent Chrome, Firefox, Safari or Edge.',
    };
  }
  return null;
}

/** A getUserMedia / createLocalAudioTrack failure, by DOMException name. */
export function describeMicError(err: unknown): WidgetErrorInfo {
  const name = (err as { name?: unknown } | null)?.name;
  switch (name) {
    case 'NotAllowedError':
    case 'PermissionDeniedError':
    case 'SecurityError':
      return {
        code: 'mic-denied',
        message:
          'Microphone access was blocked. Allow the microphone for this site (the icon in the address bar), then press Start again.',
      };
    case 'NotFoundError':
    case 'DevicesNotFoundError':
    case 'OverconstrainedError':
      return {
        code: 'mic-missing',
        message: 'No microphone was found. Plug in or enable a microphone, then press Start again.',
      };
    case 'NotReadableError':
    case 'TrackStartError':
    case 'AbortError':
      return {
        code: 'mic-busy',
        message:
          'The microphone is busy or blocked by the system. Close other apps using it, check system privacy settings, then try again.',
      };
    default:
      return {
        code: 'mic-failed',
        message: `Could not start the microphone${err instanceof Error && err.message ? `: ${err.message}` : '.'}`,
      };
  }
}
