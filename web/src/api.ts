// Public types of the widget and the tiny event emitter behind `instance.on(...)`.

import type { Caption } from './captions';
import type { ToolCard } from './cards';
import { clamp } from './clamp';

/** What the widget shows; also written to `data-state` on the widget root. */
export type WidgetState =
  | 'idle' // not connected
  | 'connecting' // microphone + token + room join in progress
  | 'waiting' // in the room, no agent yet
  | 'initializing'
  | 'listening'
  | 'thinking'
  | 'speaking'
  | 'error';

export const AGENT_STATES = ['initializing', 'listening', 'thinking', 'speaking'] as const;
export type AgentState = (typeof AGENT_STATES)[number];

// The face contract (README, "The face"): `kyutai.emotion` is one of these; `confused` is kept
// for agents written before the Ekman set.
export const EMOTIONS = [
  'neutral',
  'happy',
  'sad',
  'angry',
  'afraid',
  'surprised',
  'disgusted',
  'thinking',
  'confused',
] as const;
export type Emotion = (typeof EMOTIONS)[number];

/** A point on the valence–arousal plane, each in [-1, 1] (`kyutai.affect`). */
export interface Affect {
  valence: number;
  arousal: number;
}

export interface TokenRequest {
  character?: string;
  subject?: string;
  level?: string;
  language?: string;
  voice?: string;
  name?: string;
}

/** The part of the token service's answer the widget needs. */
export interface TokenResponse {
  server_url: string;
  token: string;
  room?: string;
  identity?: string;
}

export interface WidgetOptions extends TokenRequest {
  /** URL of `POST /v1/token` (relative URLs resolve against the page). */
  tokenEndpoint?: string;
  /** Replaces the fetch to `tokenEndpoint`, e.g. to call your own backend with credentials. */
  fetchToken?: (request: TokenRequest) => Promise<TokenResponse>;
  /** Title shown above the face. */
  title?: string;
  /** How the agent is labelled in captions until it tells its own name. */
  agentLabel?: string;
  /** Offer a "Follow me" button: the face's eyes follow the user through the camera, which is
   * only opened when the user presses it; no frame leaves the browser. Off by default. */
  camera?: boolean;
}

export interface ConnectedInfo {
  room: string;
  identity: string;
  serverUrl: string;
}

export interface WidgetErrorInfo {
  code: 'insecure-context' | 'mic-denied' | 'mic-missing' | 'mic-busy' | 'mic-failed' | 'token' | 'connect' | 'busy';
  message: string;
}

export interface WidgetEvents {
  state: { state: WidgetState; emotion: Emotion };
  caption: Caption;
  tool: ToolCard;
  connected: ConnectedInfo;
  disconnected: { reason?: string };
  error: WidgetErrorInfo;
}

export type EventName = keyof WidgetEvents;
export type Listener<K extends EventName> = (payload: WidgetEvents[K]) => void;

export class Emitter {
  private listeners = new Map<EventName, Set<(payload: never) => void>>();

  /** Subscribe; returns the unsubscribe function. */
  on<K extends EventName>(event: K, cb: Listener<K>): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(cb as (payload: never) => void);
    return () => set?.delete(cb as (payload: never) => void);
  }

  emit<K extends EventName>(event: K, payload: WidgetEvents[K]): void {
    for (const cb of this.listeners.get(event) ?? []) {
      try {
        (cb as Listener<K>)(payload);
      } catch (err) {
        // A host page's listener must never break the widget.
        console.error('[kyutai-widget] listener failed', err);
      }
    }
  }
}

export function isAgentState(value: string | undefined): value is AgentState {
  return (AGENT_STATES as readonly string[]).includes(value ?? '');
}

/** `kyutai.affect` ({"valence": v, "arousal": a, ...}) as a clamped point; null if absent or bad. */
export function toAffect(value: string | undefined): Affect | null {
  if (!value) return null;
  try {
    const o: unknown = JSON.parse(value);
    if (typeof o !== 'object' || o === null) return null;
    const { valence, arousal } = o as Record<string, unknown>;
    if (typeof valence !== 'number' || typeof arousal !== 'number') return null;
    if (!Number.isFinite(valence) || !Number.isFinite(arousal)) return null;
    return { valence: clamp(valence, -1, 1), arousal: clamp(arousal, -1, 1) };
  } catch {
    return null;
  }
}

export function toEmotion(value: string | undefined): Emotion {
  const v = (value ?? '').trim().toLowerCase();
  return (EMOTIONS as readonly string[]).includes(v) ? (v as Emotion) : 'neutral';
}
