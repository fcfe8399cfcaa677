// Entry point of the bundle: `window.KyutaiWidget` and auto-mount from the <script> tag.
//
//   <script src="/widget/widget.js" data-token-endpoint="/v1/token" data-character="tutor"
//           data-subject="maths" data-level="beginner" [data-target="#where"]></script>

import type { WidgetOptions } from './api';
import { Face } from './face';
import { Widget } from './widget';

declare const __WIDGET_VERSION__: string;

export interface KyutaiWidgetApi {
  version: string;
  /** Mount a widget inside `target` (an element or a CSS selector); returns its instance. */
  mount(target: Element | string, options?: WidgetOptions): Widget;
  /** Every widget mounted on this page, in mounting order. */
  instances: Widget[];
  /** The face alone, for a front end that drives it from its own state (README, "The face"). */
  Face: typeof Face;
}

declare global {
  interface Window {
    KyutaiWidget?: KyutaiWidgetApi;
  }
}

const mounted = new WeakMap<Element, Widget>();

function mount(target: Element | string, options: WidgetOptions = {}): Widget {
  const el = typeof target === 'string' ? document.querySelector(target) : target;
  if (!el) throw new Error(`KyutaiWidget.mount: no element matches ${String(target)}`);
  const existing = mounted.get(el);
  if (existing) {
    existing.setOptions(options);
    return existing;
  }
  const widget = new Widget(el, options);
  mounted.set(el, widget);
  api.instances.push(widget);
  el.dispatchEvent(new CustomEvent('kyutai-widget:mounted', { detail: widget, bubbles: true }));
  return widget;
}

/** Options from the script tag's data-* attributes (only those that are set). */
export function optionsFromDataset(data: DOMStringMap): WidgetOptions {
  const options: WidgetOptions = {};
  const keys = ['tokenEndpoint', 'character', 'subject', 'level', 'language', 'voice', 'name', 'title', 'agentLabel'] as const;
  for (const key of keys) {
    const value = data[key]?.trim();
    if (value) options[key] = value;
  }
  if (data.camera?.trim() === 'true') options.camera = true;
  return options;
}

const api: KyutaiWidgetApi = window.KyutaiWidget ?? { version: __WIDGET_VERSION__, mount, instances: [], Face };
window.KyutaiWidget = api;

function autoMount(script: HTMLScriptElement): void {
  if (script.dataset.autoMount === 'false') return;
  const options = optionsFromDataset(script.dataset);
  const selector = script.dataset.target;
  const place = (): void => {
    if (selector) {
      const target = document.querySelector(selector);
      if (!target) {
        console.error(`[kyutai-widget] data-target "${selector}" matches no element`);
        return;
      }
      api.mount(target, options);
    } else {
      // Next to the script tag, in a container of our own.
      const container = document.createElement('div');
      script.insertAdjacentElement('afterend', container);
      api.mount(container, options);
    }
  };
  if (selector && !document.querySelector(selector) && document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', place, { once: true });
  } else {
    place();
  }
}

// currentScript is only set while a classic script first runs: read it now.
const current = document.currentScript;
if (current instanceof HTMLScriptElement) autoMount(current);
