// Demo page logic: the character picker (fed by GET /v1/characters) drives the widget
// through its JS API. The widget itself is mounted by its <script> tag.
(function () {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const widget = window.KyutaiWidget && window.KyutaiWidget.instances[0];
  const pickerError = $('picker-error');
  if (!widget) {
    pickerError.textContent = 'The widget did not load (is widget.js built? run `npm ci && npm run build` in web/).';
    pickerError.hidden = false;
    return;
  }

  const selects = ['character', 'language', 'subject', 'level'].map($);
  let catalog = null;

  function fill(select, values, selected, labels) {
    select.replaceChildren(
      ...values.map((v) => {
        const option = document.createElement('option');
        option.value = v;
        option.textContent = labels ? labels(v) : v;
        option.selected = v === selected;
        return option;
      }),
    );
  }

  function current() {
    return catalog.characters.find((c) => c.id === $('character').value) || catalog.characters[0];
  }

  // Show the fields the chosen character takes, then hand the choice to the widget.
  function refresh(keepChoices) {
    const c = current();
    $('character-description').textContent = c.description;
    const langs = c.languages && c.languages.length ? c.languages : [c.language];
    fill($('language'), langs, keepChoices ? $('language').value : c.language,
      (v) => ({ en: 'English', fr: 'Français' })[v] || v);
    $('language-field').hidden = langs.length < 2;
    $('subject-field').hidden = $('level-field').hidden = !c.takes_subject;
    if (c.takes_subject) {
      fill($('subject'), c.subjects, keepChoices ? $('subject').value : c.subjects[0]);
      fill($('level'), c.levels, keepChoices ? $('level').value : c.levels[0]);
    }
    widget.setOptions({
      character: c.id,
      title: c.name,
      language: langs.length > 1 ? $('language').value : undefined,
      subject: c.takes_subject ? $('subject').value : undefined,
      level: c.takes_subject ? $('level').value : undefined,
    });
  }

  fetch('/v1/characters')
    .then((r) => {
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      return r.json();
    })
    .then((data) => {
      catalog = data;
      const initial = data.characters.some((c) => c.id === 'tutor') ? 'tutor' : data.default;
      // Duplex characters (Moshi) listen while they speak: say so in the picker.
      fill($('character'), data.characters.map((c) => c.id), initial, (id) => {
        const c = data.characters.find((x) => x.id === id);
        return c.mode === 'duplex' ? `${c.name} (full duplex)` : c.name;
      });
      $('character').disabled = false;
      // Keep the script tag's subject/level as the initial choice when offered.
      refresh(false);
      for (const key of ['subject', 'level']) {
        const wanted = document.querySelector('script[data-target="#tutor-widget"]').dataset[key];
        if (wanted && [...$(key).options].some((o) => o.value === wanted)) $(key).value = wanted;
      }
      refresh(true);
      document.body.dataset.ready = 'true';
    })
    .catch((err) => {
      pickerError.textContent = `Could not load the characters (${err.message}).`;
      pickerError.hidden = false;
    });

  $('character').addEventListener('change', () => refresh(false));
  for (const id of ['language', 'subject', 'level']) $(id).addEventListener('change', () => refresh(true));

  // A conversation keeps its character: lock the picker while one is running.
  const log = $('event-log');
  function logEvent(name, detail) {
    const li = document.createElement('li');
    li.textContent = `${name} ${JSON.stringify(detail)}`;
    log.appendChild(li);
    while (log.children.length > 50) log.firstChild.remove();
  }
  widget.on('state', (e) => {
    const busy = e.state !== 'idle' && e.state !== 'error';
    for (const s of selects) s.disabled = busy || !catalog;
    logEvent('state', e);
  });
  widget.on('connected', (e) => logEvent('connected', e));
  widget.on('disconnected', (e) => logEvent('disconnected', e));
  widget.on('error', (e) => logEvent('error', e));
  widget.on('caption', (e) => { if (e.final) logEvent('caption', { who: e.label, text: e.text }); });
})();
