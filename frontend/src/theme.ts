// The dashboard's ONE theme watcher (table, graph, every view). Inside TensorBoard the tab is a
// same-origin iframe: follow TensorBoard's own dark-mode class on the parent document (set from
// its setting, which may itself follow the browser). When the parent cannot be read (a notebook
// proxy on another origin), or is not a TensorBoard page, or we are not framed: follow
// prefers-color-scheme. The result is <html data-theme="light|dark">; views read currentTheme()
// or subscribe with onThemeChange().

export type Theme = 'light' | 'dark';

const DARK_CLASS = 'dark-mode';

/** TensorBoard's document when the parent is a readable TensorBoard page, else null. */
function tensorBoardDocument(): Document | null {
  try {
    if (!window.parent || window.parent === window) return null;
    const doc = window.parent.document;
    if (!doc || !doc.body) return null;
    const isTb = doc.querySelector('tb-webapp, tf-tensorboard, tb-dashboard-layout') != null
      || doc.body.classList.contains(DARK_CLASS) || doc.documentElement.classList.contains(DARK_CLASS);
    return isTb ? doc : null;
  } catch {
    return null; // cross-origin parent: fall back to the media query
  }
}

function mediaDark(): boolean {
  try {
    return !!window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches;
  } catch {
    return false;
  }
}

/** What the theme should be right now. */
export function detectTheme(): Theme {
  const doc = tensorBoardDocument();
  if (doc) {
    return doc.body.classList.contains(DARK_CLASS) || doc.documentElement.classList.contains(DARK_CLASS)
      ? 'dark' : 'light';
  }
  return mediaDark() ? 'dark' : 'light';
}

/** The theme applied to the page (detected when the watcher has not started yet). */
export function currentTheme(): Theme {
  const t = document.documentElement.dataset.theme;
  return t === 'dark' || t === 'light' ? t : detectTheme();
}

export function isDark(): boolean {
  return currentTheme() === 'dark';
}

const listeners = new Set<(t: Theme) => void>();
let started = false;

function apply(): void {
  const t = detectTheme();
  if (document.documentElement.dataset.theme !== t) {
    document.documentElement.dataset.theme = t;
    for (const cb of [...listeners]) {
      try { cb(t); } catch (e) { console.error(e); }
    }
  }
}

function start(): void {
  if (started) return;
  started = true;
  apply();
  const targets: Element[] = [];
  try {
    if (window.parent && window.parent !== window && window.parent.document?.body) {
      // observe the parent even before it is recognised as TensorBoard (its app boots later)
      targets.push(window.parent.document.body, window.parent.document.documentElement);
    }
  } catch { /* cross-origin */ }
  for (const t of targets) new MutationObserver(apply).observe(t, { attributes: true, attributeFilter: ['class'] });
  try {
    window.matchMedia?.('(prefers-color-scheme: dark)').addEventListener?.('change', apply);
  } catch { /* no media queries */ }
}

/** Call `cb` whenever the theme changes (starts the watcher if needed); returns an unsubscribe. */
export function onThemeChange(cb: (t: Theme) => void): () => void {
  start();
  listeners.add(cb);
  return () => { listeners.delete(cb); };
}

/** Start the one watcher (idempotent); `onChange` is subscribed. Returns a stop for `onChange`. */
export function watchTheme(onChange?: (t: Theme) => void): () => void {
  start();
  return onChange ? onThemeChange(onChange) : () => undefined;
}
