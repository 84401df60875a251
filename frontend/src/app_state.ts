// The dashboard's view state in the iframe's URL hash (shareable deep links) and sessionStorage
// (so a reload keeps the view). Steps stay exact decimal strings.

import { isStep } from './api';
import { VIEWS } from './view';
import type { AppState, ViewName } from './view';

const STORAGE_KEY = 'archviz.state';

export function parseState(s: string): Partial<AppState> {
  const p = new URLSearchParams(s.replace(/^#/, ''));
  const stp = (k: string) => {
    const v = p.get(k);
    return v != null && isStep(v) ? v : null;
  };
  const out: Partial<AppState> = {};
  const view = p.get('view');
  if (view && VIEWS.some((v) => v.name === view)) out.view = view as ViewName;
  if (p.has('run')) out.run = p.get('run');
  out.step = stp('step');
  if (p.has('layer')) out.layer = p.get('layer');
  out.fstep = stp('fstep');
  const ra = p.get('ra'), rb = p.get('rb'), sa = stp('sa'), sb = stp('sb');
  if (ra != null && rb != null && sa != null && sb != null) out.cmp = { runA: ra, stepA: sa, runB: rb, stepB: sb };
  if (p.has('sel')) out.selected = p.get('sel');
  return out;
}

export function serializeState(st: AppState): string {
  const p = new URLSearchParams();
  p.set('view', st.view);
  if (st.run != null) p.set('run', st.run);
  if (st.step != null) p.set('step', st.step);
  if (st.layer != null) p.set('layer', st.layer);
  if (st.fstep != null) p.set('fstep', st.fstep);
  if (st.cmp) {
    p.set('ra', st.cmp.runA); p.set('sa', st.cmp.stepA);
    p.set('rb', st.cmp.runB); p.set('sb', st.cmp.stepB);
  }
  if (st.selected != null) p.set('sel', st.selected);
  return p.toString();
}

export function defaultState(): AppState {
  return { view: 'table', run: null, step: null, layer: null, fstep: null, cmp: null, selected: null };
}

/** The state from the URL hash (a deep link), else the session's last state, else defaults. */
export function loadState(): AppState {
  const st = defaultState();
  let saved = location.hash.length > 1 ? location.hash : '';
  if (!saved) {
    try { saved = sessionStorage.getItem(STORAGE_KEY) || ''; } catch { /* storage disabled */ }
  }
  return { ...st, ...parseState(saved) };
}

export function saveState(st: AppState): void {
  const s = serializeState(st);
  try {
    // an absolute URL: a relative '#...' would resolve against <base href="plugin/archviz/">
    const u = new URL(location.href);
    u.hash = s;
    history.replaceState(history.state, '', u.href);
  } catch { /* sandboxed */ }
  try { sessionStorage.setItem(STORAGE_KEY, s); } catch { /* storage disabled */ }
}
