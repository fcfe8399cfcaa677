// Caption merging for `lk.transcription` text streams (pure: no DOM, no LiveKit).
//
// Two senders shapes must merge into one line per segment:
//  - user speech (sent by the agent on the user's behalf): one short stream per interim
//    result, each carrying the FULL text so far, sharing `lk.segment_id`; the last one has
//    `lk.transcription_final: "true"`.
//  - agent speech: ONE stream per segment whose chunks are deltas; the final flag arrives
//    in the stream trailer (merged into the stream's attributes when it closes).
// So: a caption is keyed by segment id (stream id when absent); its text is the text of
// the latest stream for that segment, accumulated chunk by chunk.

export const TOPIC_TRANSCRIPTION = 'lk.transcription';
export const ATTR_FINAL = 'lk.transcription_final';
export const ATTR_SEGMENT_ID = 'lk.segment_id';
export const ATTR_TRACK_ID = 'lk.transcribed_track_id';

export type Speaker = 'user' | 'agent';

export interface Caption {
  id: string;
  speaker: Speaker;
  identity: string;
  /** Who said it, as shown ("You", the agent's name). */
  label: string;
  text: string;
  final: boolean;
}

export interface StreamStart {
  streamId: string;
  attributes: Record<string, string>;
  speaker: Speaker;
  identity: string;
  label: string;
}

interface OpenStream {
  captionId: string;
  text: string;
  seq: number; // opening order: only the newest stream of a segment may set its text
}

export function isFinal(attributes: Record<string, string> | undefined): boolean {
  return (attributes?.[ATTR_FINAL] ?? '').toLowerCase() === 'true';
}

/** Who a transcription belongs to: the sender identity, or the transcribed track's owner. */
export function speakerOf(
  senderIdentity: string,
  attributes: Record<string, string>,
  localIdentity: string,
  localTrackSids: ReadonlySet<string>,
): Speaker {
  if (senderIdentity === localIdentity) return 'user';
  const track = attributes[ATTR_TRACK_ID];
  if (track && localTrackSids.has(track)) return 'user';
  return 'agent';
}

export class CaptionLog {
  private captions = new Map<string, Caption>(); // insertion order = display order
  private streams = new Map<string, OpenStream>();
  private latest = new Map<string, number>(); // caption id -> seq of its newest stream
  private seq = 0;

  constructor(private readonly maxCaptions = 40) {}

  /** A stream starts: returns the caption it feeds (new, or the segment's existing one). */
  open(start: StreamStart): Caption {
    const captionId = start.attributes[ATTR_SEGMENT_ID] || start.streamId;
    let caption = this.captions.get(captionId);
    if (!caption) {
      caption = {
        id: captionId,
        speaker: start.speaker,
        identity: start.identity,
        label: start.label,
        text: '',
        final: false,
      };
      this.captions.set(captionId, caption);
      this.trim();
    }
    caption.final = isFinal(start.attributes);
    const seq = ++this.seq;
    this.latest.set(captionId, seq);
    this.streams.set(start.streamId, { captionId, text: '', seq });
    return { ...caption };
  }

  /** A chunk (a delta) arrived on an open stream. */
  append(streamId: string, delta: string): Caption | undefined {
    const stream = this.streams.get(streamId);
    const caption = stream && this.captions.get(stream.captionId);
    if (!stream || !caption) return undefined;
    stream.text += delta;
    if (this.latest.get(caption.id) !== stream.seq) return { ...caption };
    // Keep showing the previous interim until the new stream has said something.
    if (stream.text.trim()) caption.text = stream.text.trim();
    return { ...caption };
  }

  /** The stream ended; `attributes` are the final ones (header merged with the trailer). */
  close(streamId: string, attributes: Record<string, string> | undefined): Caption | undefined {
    const stream = this.streams.get(streamId);
    this.streams.delete(streamId);
    const caption = stream && this.captions.get(stream.captionId);
    if (!stream || !caption) return undefined;
    if (this.latest.get(caption.id) !== stream.seq) return { ...caption };
    caption.text = stream.text.trim() || caption.text;
    caption.final = caption.final || isFinal(attributes);
    if (caption.final && !caption.text) {
      this.captions.delete(caption.id); // an empty final result: nothing was said
      this.latest.delete(caption.id);
    }
    return { ...caption };
  }

  list(): Caption[] {
    return [...this.captions.values()].filter((c) => c.text).map((c) => ({ ...c }));
  }

  clear(): void {
    this.captions.clear();
    this.streams.clear();
    this.latest.clear();
  }

  private trim(): void {
    while (this.captions.size > this.maxCaptions) {
      const oldest = this.captions.keys().next().value as string;
      this.captions.delete(oldest);
      this.latest.delete(oldest);
    }
  }
}
