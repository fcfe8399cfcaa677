// Real-browser check of the demo page + widget, driven by tests/e2e/test_widget_browser.py.
//
//   node web/tests/browser.mjs '<json config>'
//
// Prints one JSON object per line on stdout: {"event":"connected",...} as soon as the widget
// joined a room (the Python side may then join it too), then {"event":"result",...} last.
// Uses the system Chromium (never downloads one) with a fake microphone playing a WAV file.

import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { chromium } from 'playwright-core';

const config = {
  chromium: '/usr/bin/chromium',
  viewport: { width: 375, height: 667 },
  character: 'tutor',
  subject: 'maths',
  level: 'beginner',
  // What to wait for after connecting:
  expectAgent: true, // an agent joins and publishes lk.agent.state
  expectCaptions: false, // captions of both sides appear
  expectMouth: false, // the mouth moves while the agent speaks
  expectEmotion: null, // a kyutai.emotion the face must show
  denyMicrophone: false, // no fake permission UI: the widget must explain the refusal
  expectLine: false, // every tutor is busy: the widget shows its place in line first
  expectCard: false, // a tool card (duplex mode) is shown
  lineScreenshot: null, // where to save a screenshot of that
  gallery: null, // a folder: drive the idle widget's face through its states, no room
  camera: false, // once the agent is there, turn on "Follow me": the eyes follow the fake camera
  expectListening: false, // the face nods while the (fake) microphone speaks to a listening agent
  timeoutMs: 60_000,
  ...JSON.parse(process.argv[2] ?? '{}'),
};

const emit = (event, data = {}) => process.stdout.write(`${JSON.stringify({ event, ...data })}\n`);
const log = (...args) => process.stderr.write(`[browser.mjs] ${args.join(' ')}\n`);

// Runs in the page: the widget's shadow root and the bits tests look at.
const probe = () => {
  const host = document.querySelector('.kyutai-widget');
  const root = host?.shadowRoot;
  const face = root?.querySelector('.kw-face');
  const captions = [...(root?.querySelectorAll('.kw-caption') ?? [])].map((li) => ({
    speaker: li.dataset.speaker,
    final: li.dataset.final === 'true',
    who: li.querySelector('.kw-who')?.textContent ?? '',
    text: li.querySelector('.kw-caption-text')?.textContent ?? '',
  }));
  const cards = [...(root?.querySelectorAll('.kw-card') ?? [])].map((li) => ({
    title: li.querySelector('.kw-card-title')?.textContent ?? '',
    body: li.querySelector('.kw-card-body')?.textContent ?? '',
  }));
  return {
    cards,
    state: host?.dataset.state ?? null,
    rootState: root?.querySelector('.kw-root')?.dataset.state ?? null,
    room: host?.dataset.room ?? null,
    identity: host?.dataset.identity ?? null,
    emotion: host?.dataset.emotion ?? 'neutral',
    mouth: Number(face?.getAttribute('data-mouth-open') ?? 'NaN'),
    expression: face?.dataset.expression ?? '',
    message: root?.querySelector('.kw-message:not([hidden])')?.textContent ?? '',
    captions,
  };
};

// The face alone (the idle widget's), driven as an agent would: presets, a valence–arousal
// glide, listening nods with and without reduced motion, visemes with a silent gap. Waits on
// the face's own `data-settled` and on sample counts, never on fixed sleeps.
async function faceGallery(page, dir, checks) {
  mkdirSync(dir, { recursive: true });
  const face = page.locator('.kw-face');
  const drive = (fn, arg) =>
    page.evaluate(
      ([src, a]) => new Function('face', 'arg', src)(window.KyutaiWidget.instances[0].face, a),
      [fn, arg],
    );
  const settled = () =>
    page.waitForFunction(() => {
      const el = window.__kwFace();
      return el.dataset.settled === 'true';
    }, undefined, { timeout: 10_000, polling: 50 });
  // Samples of the face's data attributes, ~30 Hz: start, then collect once `n` are in.
  const startSampling = () =>
    page.evaluate(() => {
      const el = window.__kwFace();
      window.__kwSamples = [];
      window.__kwSampler = setInterval(() => {
        const [open, width] = (el.getAttribute('data-mouth') ?? '0 1').split(' ').map(Number);
        const [dy, rot, brow] = (el.dataset.pose ?? '0 0 0').split(' ').map(Number);
        window.__kwSamples.push({
          t: performance.now(), viseme: el.dataset.viseme, open, width, dy, rot, brow,
          smile: Number(el.dataset.smile), loud: Number(el.getAttribute('data-mouth-open')),
          user: el.dataset.userSpeaking === 'true',
        });
      }, 33);
    });
  const collect = async (n) => {
    await page.waitForFunction((k) => window.__kwSamples.length >= k, n, { timeout: 15_000, polling: 50 });
    return page.evaluate(() => {
      clearInterval(window.__kwSampler);
      return window.__kwSamples;
    });
  };
  const sample = async (n) => {
    await startSampling();
    return collect(n);
  };

  // The system setting, as the widget hears of it (a media query change event).
  const reducedMotion = async (reduce) => {
    await page.emulateMedia({ reducedMotion: reduce ? 'reduce' : 'no-preference' });
    const tick = await page.waitForFunction((r) => {
      const el = window.__kwFace();
      return el.dataset.reducedMotion === String(r) && Number(el.dataset.tick);
    }, reduce, { timeout: 5_000, polling: 20 });
    // the next frame's pose reflects it
    await page.waitForFunction((t) => {
      const el = window.__kwFace();
      return Number(el.dataset.tick) > t;
    }, await tick.jsonValue(), { timeout: 5_000, polling: 20 });
  };

  // Stills without sway for the pictures; nods and sway are checked further down.
  await reducedMotion(true);
  const presets = ['neutral', 'happy', 'sad', 'angry', 'afraid', 'surprised', 'disgusted', 'thinking'];
  checks.presets = [];
  for (const p of presets) {
    await drive('face.setState("speaking"); face.setAffect(null); face.setEmotion(arg);', p);
    await settled();
    const file = join(dir, `face-${p}.png`);
    await face.screenshot({ path: file });
    checks.presets.push({ emotion: p, file, expression: await face.getAttribute('data-expression') });
  }

  // happy -> calm: the point slides down the arousal axis, the face with it
  checks.glide = [];
  for (let i = 0; i <= 4; i++) {
    const point = { valence: 0.75 - 0.075 * i, arousal: 0.45 - 0.225 * i };
    await drive('face.setEmotion("happy"); face.setAffect(arg);', point);
    await settled();
    const file = join(dir, `face-glide-${i}.png`);
    await face.screenshot({ path: file });
    checks.glide.push({ point, file, affect: await face.getAttribute('data-affect'), smile: Number(await face.getAttribute('data-smile')) });
  }
  // one jump on the plane (happy -> sad) is a glide on the face: many small steps
  await drive('face.setEmotion("happy"); face.setAffect({ valence: 0.75, arousal: 0.45 });');
  await settled();
  await startSampling();
  await drive('face.setEmotion("sad"); face.setAffect({ valence: -0.65, arousal: -0.45 });');
  const jump = await collect(20);
  checks.jump = jump.map((s) => s.smile);

  // listening: a loud microphone while the agent listens -> nods; reduced motion -> none
  await reducedMotion(false);
  await drive('face.setAffect(null); face.setEmotion("neutral"); face.setState("listening"); face.setUserLevelSource(() => 0.05);');
  checks.listening = await sample(60);
  await reducedMotion(true);
  checks.listeningReduced = await sample(45);
  await reducedMotion(false);
  await drive('face.setUserLevelSource(null); face.setState("idle");');
  checks.idle = await sample(45);

  // visemes: words heard while the voice is loud, then a 300 ms silence inside the speech
  await startSampling();
  await drive(`
    face.setState("speaking");
    const t0 = performance.now();
    face.setLevelSource(() => { const t = performance.now() - t0; return t > 700 && t < 1000 ? 0 : 0.1; });
    face.heard("Two plus two is four, well done, map that");
    window.__kwT0 = t0;`);
  const speech = await collect(50);
  const t0 = await page.evaluate(() => window.__kwT0);
  checks.speech = speech.map((s) => ({ ...s, t: s.t - t0 }));
  await drive('face.setLevelSource(null); face.setState("idle");');
}

async function main() {
  const result = { ok: false, checks: {}, states: [], mouthSamples: [] };
  const profile = mkdtempSync(join(tmpdir(), 'kw-chromium-'));
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--use-fake-device-for-media-stream',
    '--autoplay-policy=no-user-gesture-required',
  ];
  if (!config.denyMicrophone) args.push('--use-fake-ui-for-media-stream');
  if (config.wav) args.push(`--use-file-for-fake-audio-capture=${config.wav}%noloop`);
  // launchPersistentContext: the only way Playwright accepts our own --user-data-dir.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: config.chromium,
    headless: true,
    args,
    viewport: config.viewport,
    permissions: config.denyMicrophone ? [] : ['microphone', 'camera'],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  // in the page: the widget's face element, for the checks that read its data attributes
  await context.addInitScript(() => {
    window.__kwFace = () => document.querySelector('.kyutai-widget').shadowRoot.querySelector('.kw-face');
  });
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning' || config.verbose) log(`console.${m.type()}:`, m.text());
  });
  page.on('pageerror', (e) => log('pageerror:', e.message));

  const deadline = Date.now() + config.timeoutMs;
  const left = () => Math.max(1000, deadline - Date.now());
  const snapshot = () => page.evaluate(probe);
  async function waitFor(what, predicate, timeout = left()) {
    const until = Date.now() + timeout;
    let last;
    while (Date.now() < until) {
      last = await snapshot();
      if (last.state && result.states.at(-1) !== last.state) result.states.push(last.state);
      if (predicate(last)) return last;
      await page.waitForTimeout(100);
    }
    throw new Error(`timed out waiting for ${what}; last seen: ${JSON.stringify(last)}`);
  }

  try {
    await page.goto(config.url, { waitUntil: 'load' });
    await page.waitForSelector('body[data-ready="true"]', { timeout: 15_000 });
    const first = await snapshot();
    if (first.state !== 'idle' || first.rootState !== 'idle') throw new Error(`widget not idle at load: ${JSON.stringify(first)}`);
    if (config.gallery) {
      await faceGallery(page, config.gallery, result.checks);
      result.ok = true;
      return;
    }

    // Phone-sized screen: nothing may stick out sideways.
    const overflow = await page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      innerWidth: window.innerWidth,
      widgetRight: document.querySelector('.kyutai-widget')?.getBoundingClientRect().right ?? 0,
    }));
    result.checks.overflow = overflow;
    if (overflow.scrollWidth > overflow.innerWidth || overflow.widgetRight > overflow.innerWidth) {
      throw new Error(`horizontal overflow at ${config.viewport.width}px: ${JSON.stringify(overflow)}`);
    }

    // Pick the character the way a visitor would.
    await page.selectOption('#character', config.character);
    if (config.subject) await page.selectOption('#subject', config.subject);
    if (config.level) await page.selectOption('#level', config.level);

    // Keyboard only: Tab until the widget's connect button has focus, then Enter.
    await page.evaluate(() => document.activeElement instanceof HTMLElement && document.activeElement.blur());
    let tabs = 0;
    let focused = null;
    for (; tabs < 20; tabs++) {
      await page.keyboard.press('Tab');
      focused = await page.evaluate(() => {
        let el = document.activeElement;
        while (el?.shadowRoot?.activeElement) el = el.shadowRoot.activeElement;
        if (!el) return null;
        const style = getComputedStyle(el);
        return { tag: el.tagName, cls: el.className, text: el.textContent, outline: style.outlineStyle, outlineWidth: style.outlineWidth };
      });
      if (focused?.cls?.includes('kw-connect')) break;
    }
    result.checks.keyboard = { tabs: tabs + 1, focused };
    if (!focused?.cls?.includes('kw-connect')) throw new Error(`Tab never reached the connect button (last: ${JSON.stringify(focused)})`);
    if (focused.tag !== 'BUTTON') throw new Error('the connect control is not a real <button>');
    if (focused.outline === 'none') throw new Error('the focused connect button shows no focus outline');
    await page.keyboard.press('Enter');

    if (config.denyMicrophone) {
      const s = await waitFor('the microphone refusal', (x) => x.state === 'error');
      result.checks.refusal = { message: s.message, room: s.room };
      if (config.screenshot) await page.screenshot({ path: config.screenshot, fullPage: true });
      result.final = s;
      result.ok = true;
      return;
    }

    const connected = await waitFor('the widget to join a room', (s) => !!s.room && s.state !== 'connecting');
    emit('connected', { room: connected.room, identity: connected.identity });
    log(`connected to ${connected.room} as ${connected.identity}`);

    // Sample the mouth continuously from now on (the page's own clock, ~20 Hz).
    await page.evaluate(() => {
      window.__kwMouth = [];
      window.__kwVisemes = [];
      window.__kwNods = [];
      const face = window.__kwFace();
      setInterval(() => {
        window.__kwMouth.push(Number(face.getAttribute('data-mouth-open')));
        window.__kwVisemes.push(face.dataset.viseme ?? 'none');
        const dy = Number((face.dataset.pose ?? '0').split(' ')[0]);
        window.__kwNods.push({ user: face.dataset.userSpeaking === 'true', dy, expression: face.dataset.expression });
      }, 50);
    });

    if (config.expectLine) {
      const s = await waitFor('the place in line', (x) => /in line/.test(x.message) && x.state === 'waiting');
      result.checks.line = s.message;
      if (config.lineScreenshot) {
        mkdirSync(dirname(config.lineScreenshot), { recursive: true });
        await page.screenshot({ path: config.lineScreenshot, fullPage: true });
      }
      emit('waiting', { message: s.message });
    }

    if (config.expectAgent) {
      const s = await waitFor('the agent (lk.agent.state)', (x) => ['initializing', 'listening', 'thinking', 'speaking'].includes(x.state));
      result.checks.agentState = s.state;
      await waitFor('the agent to be ready', (x) => ['listening', 'thinking', 'speaking'].includes(x.state));
    }
    if (config.expectListening) {
      // the fake microphone's words, measured in the page, make the listening face nod
      await page.waitForFunction(
        () => window.__kwNods.some((n) => n.user && n.dy > 1.5 && n.expression.startsWith('listening')),
        undefined,
        { timeout: left(), polling: 100 },
      );
      const nods = await page.evaluate(() => window.__kwNods);
      const heard = nods.filter((n) => n.user);
      result.checks.listening = { samples: nods.length, userSpeaking: heard.length, maxNod: Math.max(...heard.map((n) => n.dy)) };
    }
    if (config.camera) {
      // Chromium's fake camera shows a moving picture: the eyes must leave the centre
      await page.evaluate(() => window.KyutaiWidget.instances[0].setOptions({ camera: true }));
      // a click without moving the pointer: the gaze seen next is the camera's, not the mouse's
      await page.locator('.kw-camera').dispatchEvent('click');
      const gazeOf = () =>
        page.evaluate(() => window.__kwFace().dataset.gaze ?? '0.00 0.00');
      await page.waitForFunction(() => {
        const el = window.__kwFace();
        return (el.dataset.gaze ?? '0.00 0.00') !== '0.00 0.00';
      }, undefined, { timeout: left(), polling: 50 });
      result.checks.camera = { gaze: await gazeOf(), pressed: await page.locator('.kw-camera').getAttribute('aria-pressed') };
      emit('camera', result.checks.camera);
    }
    if (config.expectCaptions) {
      const s = await waitFor('final captions of both sides', (x) =>
        x.captions.some((c) => c.speaker === 'user' && c.final && c.text) && x.captions.some((c) => c.speaker === 'agent' && c.final && c.text),
      );
      result.checks.captions = s.captions;
    }
    if (config.expectCard) {
      const s = await waitFor('a tool card', (x) => x.cards.length > 0);
      result.checks.cards = s.cards;
    }
    if (config.expectEmotion) {
      const s = await waitFor(`emotion ${config.expectEmotion}`, (x) => x.emotion === config.expectEmotion && x.expression.endsWith(config.expectEmotion));
      result.checks.expression = s.expression;
    }
    if (config.expectMouth) {
      // Moving = opened wide at least once AND took many different values (not stuck open),
      // in at least three viseme shapes from the words.
      await page.waitForFunction(() => {
        const m = window.__kwMouth;
        const shapes = new Set(window.__kwVisemes.filter((v) => v !== 'none')).size;
        return m.length > 20 && Math.max(...m) >= 0.3 && new Set(m.map((v) => v.toFixed(2))).size >= 8 && m.some((v) => v < 0.1) && shapes >= 3;
      }, undefined, { timeout: left(), polling: 100 });
      const samples = await page.evaluate(() => window.__kwMouth);
      result.mouthSamples = samples.filter((_, i) => i % 4 === 0).slice(-120);
      const visemes = await page.evaluate(() => [...new Set(window.__kwVisemes)]);
      result.checks.mouth = { max: Math.max(...samples), distinct: new Set(samples.map((v) => v.toFixed(2))).size, n: samples.length, visemes };
    }

    if (config.screenshot) {
      mkdirSync(dirname(config.screenshot), { recursive: true });
      await page.screenshot({ path: config.screenshot, fullPage: true });
      await page.locator('.kyutai-widget').screenshot({ path: config.screenshot.replace(/\.png$/, '-widget.png') });
    }
    result.final = await snapshot();

    // The same focused button ends the conversation from the keyboard.
    const stillFocused = await page.evaluate(() => document.querySelector('.kyutai-widget').shadowRoot.activeElement?.className ?? '');
    if (!stillFocused.includes('kw-connect')) await page.locator('.kw-connect').focus();
    await page.keyboard.press('Enter');
    await waitFor('the widget to disconnect', (x) => x.state === 'idle' && !x.room, 15_000);
    result.checks.disconnected = true;
    result.ok = true;
  } catch (err) {
    result.error = String(err?.stack ?? err);
    try {
      result.final = await snapshot();
      if (config.screenshot) await page.screenshot({ path: config.screenshot.replace(/\.png$/, '-failure.png'), fullPage: true });
    } catch {
      // the page is gone; the error says why
    }
  } finally {
    await context.close().catch(() => undefined);
    rmSync(profile, { recursive: true, force: true });
    emit('result', result);
    process.exitCode = result.ok ? 0 : 1;
  }
}

main().catch((err) => {
  emit('result', { ok: false, error: String(err?.stack ?? err) });
  process.exitCode = 2;
});
