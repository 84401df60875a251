// Light/dark theme. Inside TensorBoard the tab is a same-origin iframe: follow the parent's
// <body class="dark-mode"> (TensorBoard sets it from its own setting, which may itself follow
// the browser). Standalone (or if the parent cannot be read) follow prefers-color-scheme.

export type Theme = 'light' | 'dark';

function parentBody(): HTMLElement | null {
  try {
    if (window.parent && window.parent !== window && window.parent.document?.body) {
      return window.parent.document.body;
    }
  } catch {
    // cross-origin parent (e.g. some notebook proxies): fall back to the media query
  }
  return null;
}

export function currentTheme(): Theme {
  const body = parentBody();
  if (body) return body.classList.contains('dark-mode') ? 'dark' : 'light';
  return window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches
    ? 'dark' : 'light';
}

/** Apply the theme to <html data-theme=...> now and whenever it changes; returns a stop function. */
export function watchTheme(onChange?: (t: Theme) => void): () => void {
  const apply = () => {
    const t = currentTheme();
    if (document.documentElement.dataset.theme !== t) {
      document.documentElement.dataset.theme = t;
      onChange?.(t);
    }
  };
  apply();
  const stops: (() => void)[] = [];
  const body = parentBody();
  if (body) {
    const obs = new MutationObserver(apply);
    obs.observe(body, { attributes: true, attributeFilter: ['class'] });
    stops.push(() => obs.disconnect());
  }
  if (window.matchMedia) {
    const mq = window.matchMedia('(prefers-color-scheme: dark)');
    mq.addEventListener?.('change', apply);
    stops.push(() => mq.removeEventListener?.('change', apply));
  }
  return () => stops.forEach((s) => s());
}
