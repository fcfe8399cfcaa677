// The widget: DOM in a shadow root, the LiveKit room, microphone, agent tracking, captions.

import {
  ParticipantKind,
  Room,
  RoomEvent,
  Track,
  createLocalAudioTrack,
  type LocalAudioTrack,
  type Participant,
  type RemoteParticipant,
  type RemoteTrack,
  type RemoteTrackPublication,
  type TextStreamReader,
} from 'livekit-client';

import {
  Emitter,
  isAgentState,
  toAffect,
  toEmotion,
  type Emotion,
  type EventName,
  type Listener,
  type TokenRequest,
  type TokenResponse,
  type WidgetErrorInfo,
  type WidgetOptions,
  type WidgetState,
} from './api';
import { AudioLevelMeter } from './audio-level';
import { CameraGaze } from './camera-gaze';
import { CaptionLog, TOPIC_TRANSCRIPTION, speakerOf, type Caption } from './captions';
import { ATTR_ERROR, TOPIC_TOOL, parseToolCard, type ToolCard } from './cards';
import { Face } from './face';
import { TOPIC_LINE, lineNotice } from './line';
import { checkEnvironment, describeMicError } from './mic';
import { CSS } from './styles';

export const ATTR_AGENT_STATE = 'lk.agent.state';
export const ATTR_EMOTION = 'kyutai.emotion';
export const ATTR_AFFECT = 'kyutai.affect';
const AGENT_WAIT_NOTICE_MS = 20_000;

const STATUS_TEXT: Record<WidgetState, string> = {
  idle: 'Press “Start talking” to begin',
  connecting: 'Connecting…',
  waiting: 'Waiting for the tutor to join…',
  initializing: 'The tutor is getting ready…',
  listening: 'Listening — go ahead and speak',
  thinking: 'Thinking…',
  speaking: 'Speaking',
  error: 'Not connected',
};

/** A participant is the agent when it says so (kind AGENT) or publishes an agent state. */
export function isAgentParticipant(p: Participant): boolean {
  return p.kind === ParticipantKind.AGENT || ATTR_AGENT_STATE in p.attributes;
}

class ConnectError extends Error {
  constructor(readonly info: WidgetErrorInfo) {
    super(info.message);
  }
}

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { class?: string; text?: string; attrs?: Record<string, string> } = {},
  parent?: Node,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.class) node.className = props.class;
  if (props.text) node.textContent = props.text;
  for (const [k, v] of Object.entries(props.attrs ?? {})) node.setAttribute(k, v);
  parent?.appendChild(node);
  return node;
}

export class Widget {
  /** The element the widget lives in (light DOM); carries data-state and data-room. */
  readonly host: HTMLElement;
  private readonly root: HTMLElement;
  private readonly statusEl: HTMLElement;
  private readonly titleEl: HTMLElement;
  private readonly messageEl: HTMLElement;
  private readonly connectBtn: HTMLButtonElement;
  private readonly muteBtn: HTMLButtonElement;
  private readonly cameraBtn: HTMLButtonElement;
  private readonly cameraGaze = new CameraGaze((target) => this.face.lookAt(target));
  private readonly captionList: HTMLOListElement;
  private readonly emptyEl: HTMLElement;
  private readonly announcer: HTMLElement;
  private readonly captionEls = new Map<string, HTMLLIElement>();
  /** The widget drives it while connected; a host may show its states while idle (a gallery). */
  readonly face = new Face();
  private readonly emitter = new Emitter();
  private readonly captions = new CaptionLog();

  private options: WidgetOptions;
  private state: WidgetState = 'idle';
  private emotion: Emotion = 'neutral';
  private room: Room | null = null;
  private mic: LocalAudioTrack | null = null;
  private audioContext: AudioContext | null = null;
  private meter: { sid: string; meter: AudioLevelMeter } | null = null;
  private userMeter: AudioLevelMeter | null = null;
  private readonly lifeCleanup: (() => void)[] = [];
  private readonly audioEls = new Map<string, HTMLMediaElement>();
  private agent: RemoteParticipant | null = null;
  private attempt = 0; // bumped by every connect/disconnect: stale async steps bail out
  private agentWaitTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(container: Element, options: WidgetOptions = {}) {
    this.options = { ...options };
    this.host = h('div', { class: 'kyutai-widget' });
    container.appendChild(this.host);
    const shadow = this.host.attachShadow({ mode: 'open' }); // open: tests and hosts can inspect
    h('style', { text: CSS }, shadow);

    this.root = h('div', { class: 'kw-root', attrs: { part: 'root' } }, shadow);
    const header = h('div', { class: 'kw-header' }, this.root);
    this.titleEl = h('span', { class: 'kw-title' }, header);
    this.statusEl = h('span', { class: 'kw-status', attrs: { role: 'status', 'aria-live': 'polite' } }, header);

    const stage = h('div', { class: 'kw-stage' }, this.root);
    stage.appendChild(this.face.element);

    this.messageEl = h('p', { class: 'kw-message', attrs: { role: 'alert' } }, this.root);
    this.messageEl.hidden = true;

    const controls = h('div', { class: 'kw-controls' }, this.root);
    this.connectBtn = h('button', { class: 'kw-button kw-connect', attrs: { type: 'button' } }, controls);
    this.connectBtn.addEventListener('click', () => this.toggle());
    this.muteBtn = h(
      'button',
      { class: 'kw-button kw-secondary kw-mute', text: 'Mute', attrs: { type: 'button', 'aria-pressed': 'false' } },
      controls,
    );
    this.muteBtn.hidden = true;
    this.muteBtn.addEventListener('click', () => void this.toggleMute());
    this.cameraBtn = h(
      'button',
      {
        class: 'kw-button kw-secondary kw-camera',
        text: 'Follow me',
        attrs: { type: 'button', 'aria-pressed': 'false', title: 'The face looks at you through your camera. The picture never leaves this browser.' },
      },
      controls,
    );
    this.cameraBtn.hidden = !this.options.camera;
    this.cameraBtn.addEventListener('click', () => void this.toggleCamera());

    const captionsSection = h('section', { class: 'kw-captions', attrs: { 'aria-label': 'Captions' } }, this.root);
    h('h2', { class: 'kw-captions-title', text: 'Captions' }, captionsSection);
    this.emptyEl = h('p', { class: 'kw-empty', text: 'What you and the tutor say will appear here.' }, captionsSection);
    // The visible log is not live (interim results would be read out word by word);
    // finished sentences go to the hidden announcer instead.
    this.captionList = h('ol', { class: 'kw-caption-list', attrs: { role: 'log', 'aria-live': 'off', tabindex: '0' } }, captionsSection);
    this.captionList.setAttribute('aria-label', 'Conversation captions');
    this.announcer = h('div', { class: 'kw-sr', attrs: { 'aria-live': 'polite', 'aria-atomic': 'true' } }, this.root);

    this.applyTitle();
    this.setState('idle');
    this.startLife();
    this.face.start();
  }

  /** Reduced motion from the system setting, gaze toward the pointer. */
  private startLife(): void {
    const media = window.matchMedia?.('(prefers-reduced-motion: reduce)');
    if (media) {
      const apply = () => this.face.setReducedMotion(media.matches);
      apply();
      media.addEventListener?.('change', apply);
      this.lifeCleanup.push(() => media.removeEventListener?.('change', apply));
    }
    const onMove = (ev: PointerEvent) => {
      if (this.cameraGaze.active) return; // the camera leads while it is on
      const r = this.face.element.getBoundingClientRect();
      if (!r.width) return;
      this.face.lookAt({ x: (ev.clientX - (r.left + r.width / 2)) / r.width, y: (ev.clientY - (r.top + r.height / 2)) / r.height });
    };
    const onLeave = () => this.face.lookAt(null);
    document.addEventListener('pointermove', onMove);
    document.documentElement.addEventListener('pointerleave', onLeave);
    this.lifeCleanup.push(() => {
      document.removeEventListener('pointermove', onMove);
      document.documentElement.removeEventListener('pointerleave', onLeave);
    });
  }

  // --- public API ------------------------------------------------------------------------

  on<K extends EventName>(event: K, cb: Listener<K>): () => void {
    return this.emitter.on(event, cb);
  }

  getState(): WidgetState {
    return this.state;
  }

  /** The current room name (also in `data-room`), or null when not connected. */
  get roomName(): string | null {
    return this.room?.name || null;
  }

  /** Change options (character, subject…); they apply to the next connect(). */
  setOptions(options: Partial<WidgetOptions>): void {
    this.options = { ...this.options, ...options };
    this.applyTitle();
    this.cameraBtn.hidden = !this.options.camera;
    if (!this.options.camera) this.stopCamera();
  }

  getCaptions(): Caption[] {
    return this.captions.list();
  }

  async connect(): Promise<void> {
    if (this.room || this.state === 'connecting') return;
    const attempt = ++this.attempt;
    this.showMessage(null);
    this.captions.clear();
    this.renderCaptions();
    this.setState('connecting');
    try {
      await this.doConnect(attempt);
    } catch (err) {
      if (attempt !== this.attempt) return; // cancelled meanwhile: not an error
      const info =
        err instanceof ConnectError ? err.info : { code: 'connect' as const, message: `Could not connect: ${String((err as Error)?.message ?? err)}` };
      await this.teardown();
      this.fail(info);
    }
  }

  async disconnect(): Promise<void> {
    this.attempt++;
    const wasConnected = this.room !== null;
    await this.teardown();
    this.setState('idle');
    if (wasConnected) this.emitter.emit('disconnected', { reason: 'user' });
  }

  /** Disconnect and remove the widget from the page. */
  async destroy(): Promise<void> {
    await this.disconnect();
    this.face.stop();
    for (const undo of this.lifeCleanup.splice(0)) undo();
    this.host.remove();
  }

  // --- connecting ------------------------------------------------------------------------

  private async doConnect(attempt: number): Promise<void> {
    const envProblem = checkEnvironment({
      isSecureContext: window.isSecureContext,
      hasGetUserMedia: typeof navigator.mediaDevices?.getUserMedia === 'function',
    });
    if (envProblem) throw new ConnectError(envProblem);

    // Created inside the click: browsers only let a user gesture start audio.
    const Ctx = window.AudioContext ?? (window as unknown as { webkitAudioContext?: typeof AudioContext }).webkitAudioContext;
    this.audioContext = Ctx ? new Ctx() : null;
    void this.audioContext?.resume().catch(() => undefined);

    // Microphone first: no point minting a token (and dispatching an agent) without one.
    let mic: LocalAudioTrack;
    try {
      mic = await createLocalAudioTrack({ echoCancellation: true, noiseSuppression: true, autoGainControl: true });
    } catch (err) {
      throw new ConnectError(describeMicError(err));
    }
    if (attempt !== this.attempt) {
      mic.stop();
      return;
    }
    this.mic = mic;

    const grant = await this.fetchToken();
    if (attempt !== this.attempt) return;

    const room = new Room({ adaptiveStream: false, dynacast: false, disconnectOnPageLeave: true });
    this.room = room;
    this.bindRoom(room);
    try {
      await room.connect(grant.server_url, grant.token);
    } catch (err) {
      throw new ConnectError({ code: 'connect', message: `Could not reach the voice server (${(err as Error)?.message ?? err}).` });
    }
    if (attempt !== this.attempt) return;
    await room.localParticipant.publishTrack(mic, { source: Track.Source.Microphone });
    this.attachUserMeter(mic);
    void room.startAudio().catch(() => undefined);
    if (attempt !== this.attempt) return;

    this.host.dataset.room = room.name;
    this.host.dataset.identity = room.localParticipant.identity;
    this.muteBtn.hidden = false;
    this.setState('waiting');
    this.emitter.emit('connected', { room: room.name, identity: room.localParticipant.identity, serverUrl: grant.server_url });
    for (const p of room.remoteParticipants.values()) this.considerAgent(p);
    if (!this.agent) {
      this.agentWaitTimer = setTimeout(() => {
        if (this.room && !this.agent) {
          this.showMessage('The tutor has not joined yet. It may be busy; keep waiting or try again later.', 'info');
        }
      }, AGENT_WAIT_NOTICE_MS);
    }
  }

  private async fetchToken(): Promise<TokenResponse> {
    const request: TokenRequest = {};
    for (const key of ['character', 'subject', 'level', 'language', 'voice', 'name'] as const) {
      const value = this.options[key];
      if (value) request[key] = value;
    }
    if (this.options.fetchToken) {
      try {
        return await this.options.fetchToken(request);
      } catch (err) {
        throw new ConnectError({ code: 'token', message: `Could not get a session: ${(err as Error)?.message ?? err}` });
      }
    }
    const endpoint = this.options.tokenEndpoint ?? '/v1/token';
    let response: Response;
    try {
      response = await fetch(endpoint, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(request),
        credentials: 'same-origin',
      });
    } catch {
      throw new ConnectError({ code: 'token', message: 'Could not reach the session service. Check your connection and try again.' });
    }
    if (!response.ok) {
      throw new ConnectError({ code: 'token', message: await describeTokenRefusal(response) });
    }
    const body = (await response.json()) as Partial<TokenResponse>;
    if (typeof body.server_url !== 'string' || typeof body.token !== 'string') {
      throw new ConnectError({ code: 'token', message: 'The session service sent an unexpected answer.' });
    }
    return body as TokenResponse;
  }

  private bindRoom(room: Room): void {
    room
      .on(RoomEvent.ParticipantConnected, (p) => this.considerAgent(p))
      .on(RoomEvent.ParticipantAttributesChanged, (_changed, p) => {
        if (p === room.localParticipant) return;
        const remote = p as RemoteParticipant;
        if (remote === this.agent) this.applyAgentAttributes();
        else this.considerAgent(remote);
      })
      .on(RoomEvent.ParticipantDisconnected, (p) => {
        if (p !== this.agent) return;
        this.agent = null;
        this.dropMeter();
        this.setEmotion('neutral');
        this.face.setAffect(null);
        this.setState('waiting');
        this.showMessage('The tutor left the conversation.', 'info');
      })
      .on(RoomEvent.DataReceived, (payload, _p, _kind, topic) => {
        // The dispatcher's word while no tutor is free: the place in line, or that it gave up.
        if (topic !== TOPIC_LINE || this.agent || room !== this.room) return;
        const notice = lineNotice(payload);
        if (!notice) return;
        if (this.agentWaitTimer !== null) clearTimeout(this.agentWaitTimer);
        this.agentWaitTimer = null;
        if (notice.givenUp) {
          void this.teardown().then(() => this.fail({ code: 'busy', message: notice.text }));
          return;
        }
        this.showMessage(notice.text, 'info');
      })
      .on(RoomEvent.TrackSubscribed, (track, pub, p) => this.onTrackSubscribed(track, pub, p))
      .on(RoomEvent.TrackUnsubscribed, (track) => this.onTrackUnsubscribed(track))
      .on(RoomEvent.AudioPlaybackStatusChanged, () => {
        if (!room.canPlaybackAudio) {
          this.showMessage('Your browser paused the tutor’s voice. Press any button in the widget to hear it.', 'info');
        }
      })
      .on(RoomEvent.Disconnected, (reason) => {
        if (room !== this.room) return;
        void this.teardown().then(() => {
          this.setState('idle');
          this.emitter.emit('disconnected', { reason: reason === undefined ? undefined : String(reason) });
        });
      });
    room.registerTextStreamHandler(TOPIC_TRANSCRIPTION, (reader, info) => {
      void this.readCaption(room, reader, info.identity);
    });
    room.registerTextStreamHandler(TOPIC_TOOL, (reader) => {
      void reader.readAll().then(
        (text) => {
          const card = room === this.room ? parseToolCard(text) : null;
          if (card) this.showCard(card);
        },
        (err: unknown) => console.warn('[kyutai-widget] tool card stream failed', err),
      );
    });
  }

  /** A tool result (duplex mode) as a card in the caption log. */
  private showCard(card: ToolCard): void {
    const li = h('li', { class: 'kw-card', attrs: { 'data-tool-id': card.id } });
    li.dataset.error = String(card.isError);
    h('span', { class: 'kw-card-title', text: card.detail ? `${card.title}: ${card.detail}` : card.title }, li);
    h('span', { class: 'kw-card-body', text: card.body }, li);
    this.captionList.appendChild(li);
    this.emptyEl.hidden = true;
    this.captionList.scrollTop = this.captionList.scrollHeight;
    this.emitter.emit('tool', card);
  }

  private async teardown(): Promise<void> {
    if (this.agentWaitTimer !== null) clearTimeout(this.agentWaitTimer);
    this.agentWaitTimer = null;
    const room = this.room;
    this.room = null;
    this.agent = null;
    this.dropMeter();
    for (const el of this.audioEls.values()) el.remove();
    this.audioEls.clear();
    this.stopCamera(); // the camera is never left open behind the user's back
    this.userMeter?.dispose();
    this.userMeter = null;
    this.face.setUserLevelSource(null);
    this.mic?.stop();
    this.mic = null;
    this.muteBtn.hidden = true;
    this.muteBtn.setAttribute('aria-pressed', 'false');
    this.muteBtn.textContent = 'Mute';
    delete this.host.dataset.room;
    delete this.host.dataset.identity;
    this.setEmotion('neutral');
    this.face.setAffect(null);
    const ctx = this.audioContext;
    this.audioContext = null;
    await Promise.allSettled([room?.disconnect(), ctx?.close()]);
  }

  // --- the agent -------------------------------------------------------------------------

  private considerAgent(p: RemoteParticipant): void {
    if (this.agent || !isAgentParticipant(p)) return;
    this.agent = p;
    if (this.agentWaitTimer !== null) clearTimeout(this.agentWaitTimer);
    if (this.messageEl.dataset.kind === 'info') this.showMessage(null);
    this.applyAgentAttributes();
    // Its audio may have been subscribed before it announced itself as the agent.
    for (const pub of p.audioTrackPublications.values()) {
      if (pub.track) this.attachMeter(pub.track);
    }
  }

  private applyAgentAttributes(): void {
    const attrs = this.agent?.attributes ?? {};
    const agentState = attrs[ATTR_AGENT_STATE];
    this.setState(isAgentState(agentState) ? agentState : 'initializing');
    this.setEmotion(toEmotion(attrs[ATTR_EMOTION]));
    this.face.setAffect(toAffect(attrs[ATTR_AFFECT]));
    // The agent says why it is about to leave (a model it cannot reach).
    if (attrs[ATTR_ERROR]) this.showMessage(attrs[ATTR_ERROR]);
  }

  private onTrackSubscribed(track: RemoteTrack, _pub: RemoteTrackPublication, p: RemoteParticipant): void {
    if (track.kind !== Track.Kind.Audio) return;
    // Play every remote voice (in practice: the agent's). The element also keeps Chrome
    // feeding the remote stream into Web Audio, which the level meter needs.
    const audio = track.attach();
    audio.setAttribute('data-participant', p.identity);
    this.root.appendChild(audio);
    if (track.sid) this.audioEls.set(track.sid, audio);
    if (p === this.agent || isAgentParticipant(p)) {
      this.considerAgent(p);
      if (p === this.agent) this.attachMeter(track);
    }
  }

  private onTrackUnsubscribed(track: RemoteTrack): void {
    const sid = track.sid ?? '';
    const el = this.audioEls.get(sid);
    if (el) {
      track.detach(el);
      el.remove();
      this.audioEls.delete(sid);
    }
    if (this.meter?.sid === sid) this.dropMeter();
  }

  private attachMeter(track: RemoteTrack): void {
    const ctx = this.audioContext;
    const sid = track.sid ?? '';
    if (!ctx || this.meter?.sid === sid || track.kind !== Track.Kind.Audio) return;
    this.dropMeter();
    try {
      const meter = new AudioLevelMeter(ctx, track.mediaStreamTrack);
      this.meter = { sid, meter };
      this.face.setLevelSource(() => meter.level());
    } catch (err) {
      console.warn('[kyutai-widget] no audio level for the face', err);
    }
  }

  /** The user's loudness, for the face's listening nods; nothing leaves the browser. */
  private attachUserMeter(mic: LocalAudioTrack): void {
    const ctx = this.audioContext;
    if (!ctx) return;
    try {
      const meter = new AudioLevelMeter(ctx, mic.mediaStreamTrack);
      this.userMeter = meter;
      this.face.setUserLevelSource(() => (mic.isMuted ? 0 : meter.level()));
    } catch (err) {
      console.warn('[kyutai-widget] no microphone level for the face', err);
    }
  }

  private dropMeter(): void {
    this.meter?.meter.dispose();
    this.meter = null;
    this.face.setLevelSource(null);
  }

  private agentLabel(identity: string): string {
    const p = this.room?.remoteParticipants.get(identity);
    return this.options.agentLabel || p?.name || this.options.title || 'Tutor';
  }

  // --- captions --------------------------------------------------------------------------

  private async readCaption(room: Room, reader: TextStreamReader, identity: string): Promise<void> {
    const localIdentity = room.localParticipant.identity;
    const localTracks = new Set(room.localParticipant.trackPublications.keys());
    const attributes = reader.info.attributes ?? {};
    const speaker = speakerOf(identity, attributes, localIdentity, localTracks);
    const streamId = reader.info.id;
    this.publishCaption(
      this.captions.open({ streamId, attributes, speaker, identity, label: speaker === 'user' ? 'You' : this.agentLabel(identity) }),
    );
    try {
      for await (const chunk of reader) {
        if (room !== this.room) return;
        const caption = this.captions.append(streamId, chunk);
        if (caption) this.publishCaption(caption);
        // the agent's words arrive as they are played: they shape the mouth
        if (speaker !== 'user') this.face.heard(chunk);
      }
    } catch (err) {
      console.warn('[kyutai-widget] transcription stream failed', err);
    }
    if (room !== this.room) return;
    // Trailer attributes (the agent's final flag) are merged in once the stream ends.
    const caption = this.captions.close(streamId, reader.info.attributes);
    if (!caption) return;
    this.publishCaption(caption);
    if (caption.final && caption.text) this.announcer.textContent = `${caption.label}: ${caption.text}`;
  }

  private publishCaption(caption: Caption): void {
    this.renderCaptions();
    if (caption.text) this.emitter.emit('caption', caption);
  }

  private renderCaptions(): void {
    const list = this.captions.list();
    const keep = new Set(list.map((c) => c.id));
    for (const [id, el] of this.captionEls) {
      if (!keep.has(id)) {
        el.remove();
        this.captionEls.delete(id);
      }
    }
    const stick = this.captionList.scrollHeight - this.captionList.scrollTop - this.captionList.clientHeight < 40;
    for (const c of list) {
      let li = this.captionEls.get(c.id);
      if (!li) {
        li = h('li', { class: 'kw-caption' });
        h('span', { class: 'kw-who' }, li);
        h('span', { class: 'kw-caption-text' }, li);
        this.captionList.appendChild(li);
        this.captionEls.set(c.id, li);
      }
      li.dataset.speaker = c.speaker;
      li.dataset.final = String(c.final);
      li.dataset.identity = c.identity;
      const [who, text] = li.children;
      if (who) who.textContent = c.label;
      if (text) text.textContent = c.text;
    }
    this.emptyEl.hidden = list.length > 0;
    if (stick) this.captionList.scrollTop = this.captionList.scrollHeight;
  }

  // --- UI state --------------------------------------------------------------------------

  private toggle(): void {
    // Any click is a user gesture: a good moment to unblock paused audio.
    void this.room?.startAudio().catch(() => undefined);
    if (this.state === 'idle' || this.state === 'error') void this.connect();
    else void this.disconnect();
  }

  private async toggleCamera(): Promise<void> {
    if (this.cameraGaze.active) {
      this.cameraGaze.stop();
    } else {
      try {
        this.face.lookAt(null); // from the pointer's last place to the camera's first
        await this.cameraGaze.start();
        this.showMessage('The face follows you through your camera; the picture never leaves this browser.', 'info');
      } catch (err) {
        this.cameraGaze.stop();
        this.showMessage(`The camera is not available (${(err as Error)?.message ?? err}); the face follows the pointer.`, 'info');
      }
    }
    this.showCameraState();
  }

  private stopCamera(): void {
    this.cameraGaze.stop();
    this.showCameraState();
  }

  private showCameraState(): void {
    this.cameraBtn.setAttribute('aria-pressed', String(this.cameraGaze.active));
    this.cameraBtn.textContent = this.cameraGaze.active ? 'Stop following' : 'Follow me';
  }

  private async toggleMute(): Promise<void> {
    void this.room?.startAudio().catch(() => undefined);
    const mic = this.mic;
    if (!mic) return;
    if (mic.isMuted) await mic.unmute();
    else await mic.mute();
    this.muteBtn.setAttribute('aria-pressed', String(mic.isMuted));
    this.muteBtn.textContent = mic.isMuted ? 'Unmute' : 'Mute';
  }

  private fail(info: WidgetErrorInfo): void {
    this.showMessage(info.message);
    this.setState('error');
    this.emitter.emit('error', info);
  }

  private showMessage(text: string | null, kind: 'error' | 'info' = 'error'): void {
    this.messageEl.hidden = !text;
    this.messageEl.textContent = text ?? '';
    // role=alert interrupts a screen reader: only for real errors.
    this.messageEl.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    if (text) this.messageEl.dataset.kind = kind;
    else delete this.messageEl.dataset.kind;
  }

  private applyTitle(): void {
    const subject = this.options.subject ? ` · ${this.options.subject}` : '';
    this.titleEl.textContent = (this.options.title || 'Voice tutor') + subject;
  }

  private setState(state: WidgetState): void {
    const changed = state !== this.state || !this.root.dataset.state;
    this.state = state;
    this.root.dataset.state = state;
    this.host.dataset.state = state;
    this.statusEl.textContent = STATUS_TEXT[state];
    this.face.setState(state);
    const active = state !== 'idle' && state !== 'error';
    this.connectBtn.textContent = state === 'connecting' ? 'Cancel' : active ? 'End conversation' : 'Start talking';
    this.connectBtn.dataset.variant = active ? 'end' : 'start';
    if (changed) this.emitter.emit('state', { state, emotion: this.emotion });
  }

  private setEmotion(emotion: Emotion): void {
    if (emotion === this.emotion) return;
    this.emotion = emotion;
    this.host.dataset.emotion = emotion;
    this.face.setEmotion(emotion);
    this.emitter.emit('state', { state: this.state, emotion });
  }
}

/** A readable reason from the token service's refusal (FastAPI `detail`). */
async function describeTokenRefusal(response: Response): Promise<string> {
  let detail = '';
  try {
    const body = (await response.json()) as { detail?: unknown };
    if (typeof body.detail === 'string') detail = body.detail;
    else if (Array.isArray(body.detail)) {
      detail = body.detail.map((d: { msg?: string }) => d?.msg ?? '').filter(Boolean).join('; ');
    }
  } catch {
    // not JSON: fall through to the status text
  }
  if (response.status === 429) {
    const retry = response.headers.get('Retry-After');
    return `Too many conversations were started from here. Try again${retry ? ` in ${retry} s` : ' in a minute'}.`;
  }
  return `The session service refused (${response.status})${detail ? `: ${detail}` : '.'}`;
}
