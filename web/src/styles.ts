// Styles live inside the widget's shadow root: nothing leaks out, and `all: initial` on the
// host stops the page's inherited fonts/colours from leaking in.

export const CSS = `
:host {
  all: initial;
  display: block;
  width: 100%;
  max-width: 440px;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  font-size: 16px;
  line-height: 1.45;
  color: #16181d;
  -webkit-text-size-adjust: 100%;
}
*, *::before, *::after { box-sizing: border-box; }
[hidden] { display: none !important; }
.kw-root {
  --kw-accent: #2f4bd1;
  --kw-accent-dark: #1f3399;
  --kw-danger: #b3261e;
  display: flex;
  flex-direction: column;
  gap: 12px;
  width: 100%;
  padding: 16px;
  border-radius: 18px;
  background: #ffffff;
  border: 1px solid #d5d9e2;
  box-shadow: 0 6px 24px rgba(20, 30, 60, 0.10);
  overflow: hidden;
}
.kw-header { display: flex; align-items: baseline; justify-content: space-between; gap: 8px; flex-wrap: wrap; }
.kw-title { font-weight: 700; font-size: 1.05em; overflow-wrap: anywhere; }
.kw-status { font-size: 0.95em; color: #3d4350; }
.kw-status::before {
  content: ""; display: inline-block; width: 9px; height: 9px; margin-right: 6px; border-radius: 50%;
  background: #9aa1ad; vertical-align: 1px;
}
.kw-root[data-state="listening"] .kw-status::before { background: #1f8f4e; }
.kw-root[data-state="thinking"] .kw-status::before { background: #c77c02; }
.kw-root[data-state="speaking"] .kw-status::before { background: var(--kw-accent); }
.kw-root[data-state="error"] .kw-status::before { background: var(--kw-danger); }

.kw-stage { display: flex; justify-content: center; }
.kw-face {
  width: min(190px, 48vw);
  height: auto;
  aspect-ratio: 1;
  display: block;
  animation: kw-breathe 4.5s ease-in-out infinite;
}
.kw-skin { fill: #ffd9a8; stroke: #e2b27a; stroke-width: 3; }
.kw-root[data-state="idle"] .kw-skin, .kw-root[data-state="error"] .kw-skin { fill: #f3dcc0; }
.kw-eye { fill: #2a2230; }
.kw-glint { fill: #ffffff; }
.kw-brow { fill: none; stroke: #6b4a2f; stroke-width: 5; stroke-linecap: round; }
.kw-cheek { fill: #f28b8b; }
.kw-mouth { fill: #7a2030; stroke: #5a1622; stroke-width: 4; stroke-linejoin: round; }
@keyframes kw-breathe { 0%, 100% { transform: translateY(0); } 50% { transform: translateY(-3px); } }
@media (prefers-reduced-motion: reduce) { .kw-face { animation: none; } }

.kw-message {
  margin: 0; padding: 10px 12px; border-radius: 10px;
  background: #fdecea; color: #7a1711; border: 1px solid #f2b8b5; font-size: 0.95em;
}
.kw-message[data-kind="info"] { background: #eef2ff; color: #1f2a66; border-color: #c5cdf5; }

.kw-controls { display: flex; gap: 8px; flex-wrap: wrap; }
.kw-button {
  flex: 1 1 auto;
  min-height: 44px;
  padding: 10px 16px;
  border-radius: 999px;
  border: 2px solid var(--kw-accent);
  background: var(--kw-accent);
  color: #ffffff;
  font: inherit;
  font-weight: 650;
  cursor: pointer;
}
.kw-button:hover { background: var(--kw-accent-dark); border-color: var(--kw-accent-dark); }
.kw-button:focus-visible { outline: 3px solid #f5b400; outline-offset: 3px; }
.kw-button[data-variant="end"] { background: #ffffff; color: var(--kw-danger); border-color: var(--kw-danger); }
.kw-button[data-variant="end"]:hover { background: #fdecea; }
.kw-button.kw-secondary { flex: 0 0 auto; background: #ffffff; color: var(--kw-accent-dark); }
.kw-button.kw-secondary[aria-pressed="true"] { background: #fff4d6; color: #6b4a00; border-color: #c79100; }

.kw-captions { border-top: 1px solid #e3e6ec; padding-top: 10px; }
.kw-captions-title { margin: 0 0 6px; font-size: 0.85em; font-weight: 650; color: #4a5060; text-transform: uppercase; letter-spacing: 0.04em; }
.kw-caption-list {
  list-style: none; margin: 0; padding: 0;
  display: flex; flex-direction: column; gap: 8px;
  max-height: min(40vh, 280px); overflow-y: auto; overscroll-behavior: contain;
}
.kw-empty { color: #5b6170; font-size: 0.95em; }
.kw-caption {
  max-width: 92%; padding: 8px 12px; border-radius: 14px;
  font-size: 1.05em; overflow-wrap: anywhere;
}
.kw-caption[data-speaker="agent"] { align-self: flex-start; background: #eef1ff; color: #111626; border-bottom-left-radius: 4px; }
.kw-caption[data-speaker="user"] { align-self: flex-end; background: #f0f1f3; color: #16181d; border-bottom-right-radius: 4px; }
.kw-caption[data-final="false"] .kw-caption-text { font-style: italic; color: #3d4350; }
.kw-card { align-self: stretch; display: flex; flex-direction: column; gap: 2px; padding: 8px 10px; border: 1px solid #c9d0e8; border-radius: 8px; background: #fbfcff; }
.kw-card[data-error="true"] { border-color: #e0b4b4; background: #fff8f8; }
.kw-card-title { font-weight: 600; font-size: 0.85em; color: #2c3350; }
.kw-card-body { color: #16181d; }
.kw-who { display: block; font-size: 0.78em; font-weight: 700; color: #3d4350; }
.kw-sr {
  position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px;
  overflow: hidden; clip: rect(0, 0, 0, 0); white-space: nowrap; border: 0;
}
@media (max-width: 400px) {
  .kw-root { padding: 12px; border-radius: 14px; }
  .kw-caption { max-width: 100%; }
}
`;
