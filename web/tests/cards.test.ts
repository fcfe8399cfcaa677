import { describe, expect, it } from 'vitest';

import { cardTitle, parseToolCard } from '../src/cards';

describe('parseToolCard', () => {
  it('reads a tool result', () => {
    const card = parseToolCard(
      JSON.stringify({
        call_id: 'c1',
        name: 'look_up_definition',
        arguments: { term: 'entropy' },
        output: 'A measure of disorder.',
        is_error: false,
      }),
    );
    expect(card).toEqual({
      id: 'c1',
      title: 'Course notes',
      detail: 'entropy',
      body: 'A measure of disorder.',
      isError: false,
    });
  });

  it('ignores what is not a card', () => {
    expect(parseToolCard('not json')).toBeNull();
    expect(parseToolCard('42')).toBeNull();
    expect(parseToolCard(JSON.stringify({ name: 'x', output: 'y' }))).toBeNull();
    expect(parseToolCard(JSON.stringify({ call_id: 'c', name: 'x', output: 3 }))).toBeNull();
  });

  it('shortens long outputs and flags errors', () => {
    const card = parseToolCard(JSON.stringify({ call_id: 'c', name: 'x', output: 'a'.repeat(2000), is_error: true }));
    expect(card?.body.length).toBe(600);
    expect(card?.body.endsWith('…')).toBe(true);
    expect(card?.isError).toBe(true);
    expect(card?.detail).toBe('');
  });
});

describe('cardTitle', () => {
  it('names known tools and de-snakes others', () => {
    expect(cardTitle('current_time')).toBe('The time');
    expect(cardTitle('learner_progress')).toBe('Learner progress');
    expect(cardTitle('__')).toBe('Tool');
  });
});
