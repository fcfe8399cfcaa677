/**
 * Tool cards (text streams on topic `kyutai.tool`, sent by the agent in duplex mode): one JSON
 * object per tool result, `{"call_id", "name", "arguments", "output", "is_error"}`.
 * Pure: the widget renders what this returns.
 */

export const TOPIC_TOOL = 'kyutai.tool';
export const ATTR_ERROR = 'kyutai.error';

export interface ToolCard {
  id: string;
  title: string;
  detail: string;
  body: string;
  isError: boolean;
}

const TITLES: Record<string, string> = {
  current_time: 'The time',
  look_up_definition: 'Course notes',
  end_call: 'Goodbye',
};

const MAX_BODY = 600;

/** A tool name as a title: known ones by name, others de-snaked ("learner_progress" → "Learner progress"). */
export function cardTitle(name: string): string {
  const known = TITLES[name];
  if (known) return known;
  const words = name.replace(/[_-]+/g, ' ').trim();
  return words ? words.charAt(0).toUpperCase() + words.slice(1) : 'Tool';
}

export function parseToolCard(text: string): ToolCard | null {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return null; // not ours to read: ignore rather than break the widget
  }
  if (typeof msg !== 'object' || msg === null) return null;
  const { call_id, name, arguments: args, output, is_error } = msg as Record<string, unknown>;
  if (typeof call_id !== 'string' || typeof name !== 'string' || typeof output !== 'string') return null;
  const detail =
    typeof args === 'object' && args !== null
      ? Object.values(args as Record<string, unknown>)
          .filter((v) => typeof v === 'string' || typeof v === 'number')
          .join(', ')
      : '';
  const body = output.length > MAX_BODY ? `${output.slice(0, MAX_BODY - 1)}…` : output;
  return { id: call_id, title: cardTitle(name), detail, body, isError: is_error === true };
}
