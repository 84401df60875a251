// The dashboard shell: run and step pickers, the model totals, the view switcher
// (Table | Graph | Filters | Compare | Timeline), empty / loading / error states, and the view
// state kept in the iframe's URL hash and sessionStorage so a reload keeps the view.

import { clearCaches, errorMessage, fetchArchitecture, fetchRuns, isStep, latestStep, runOptions, runSteps, stepOptions } from './api';
import { append, button, clear, errorBox, h, loading, replaceChildren, select, snippet } from './dom';
import { fmtInt } from './format';
import { mountCompareView } from './compare_view';
import { mountFiltersView } from './filters_view';
import { mountGraphView } from './graph/index';
import { installStyles } from './styles';
import { mountTable } from './table';
import { watchTheme } from './theme';
import { mountTimeline } from './timeline';
import type { Architecture, RunsResponse } from './types';
import { VIEWS } from './view';
import type { AppState, CompareSel, View, ViewContext, ViewName } from './view';

// Transitional: the contract moved to view.ts; views import it from there.
export type { AppState, CompareSel, View, ViewContext, ViewName } from './view';

const STORAGE_KEY = 'archviz.state';

function parseState(s: string): Partial<AppState> {
  const p = new URLSearchParams(s.replace(/^#/, ''));
  const num = (k: string) => {
    const v = p.get(k);
    return v != null && /^-?\d+$/.test(v) ? parseInt(v, 10) : null;
  };
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
  out.fstep = num('fstep');
  const ra = p.get('ra'), rb = p.get('rb'), sa = stp('sa'), sb = stp('sb');
  if (ra != null && rb != null && sa != null && sb != null) out.cmp = { runA: ra, stepA: sa, runB: rb, stepB: sb };
  if (p.has('sel')) out.selected = p.get('sel');
  return out;
}

function serializeState(st: AppState): string {
  const p = new URLSearchParams();
  p.set('view', st.view);
  if (st.run != null) p.set('run', st.run);
  if (st.step != null) p.set('step', st.step);
  if (st.layer != null) p.set('layer', st.layer);
  if (st.fstep != null) p.set('fstep', String(st.fstep));
  if (st.cmp) {
    p.set('ra', st.cmp.runA); p.set('sa', st.cmp.stepA);
    p.set('rb', st.cmp.runB); p.set('sb', st.cmp.stepB);
  }
  if (st.selected != null) p.set('sel', st.selected);
  return p.toString();
}

function loadState(): AppState {
  const st: AppState = { view: 'table', run: null, step: null, layer: null, fstep: null, cmp: null, selected: null };
  let saved = location.hash.length > 1 ? location.hash : '';
  if (!saved) {
    try { saved = sessionStorage.getItem(STORAGE_KEY) || ''; } catch { /* storage disabled */ }
  }
  return { ...st, ...parseState(saved) };
}

function saveState(st: AppState): void {
  const s = serializeState(st);
  try {
    // an absolute URL: a relative '#...' would resolve against <base href="plugin/archviz/">
    const u = new URL(location.href);
    u.hash = s;
    history.replaceState(history.state, '', u.href);
  } catch { /* sandboxed */ }
  try { sessionStorage.setItem(STORAGE_KEY, s); } catch { /* storage disabled */ }
}

const KERAS_SNIPPET = `from tensorboard_archviz import ArchVizCallback

model.fit(x, y, epochs=5, callbacks=[ArchVizCallback(log_dir="logs")])`;
const TORCH_SNIPPET = `from torch.utils.tensorboard import SummaryWriter
from tensorboard_archviz import add_architecture

writer = SummaryWriter("logs/run1")
add_architecture(writer, model, example_input)`;

function emptyState(): HTMLElement {
  return h('div', { class: 'av-empty' },
    h('h2', null, 'No architectures yet — add ArchVizCallback() to model.fit(...)'),
    h('p', null, 'Keras: add the callback to fit(); the architecture is written when training starts and again whenever it changes.'),
    snippet(KERAS_SNIPPET),
    h('p', null, 'PyTorch: write it next to your other summaries.'),
    snippet(TORCH_SNIPPET),
    h('p', { class: 'muted' }, 'This page checks for new data every few seconds.'));
}

/** Build the whole dashboard inside `root`. */
export function startApp(root: HTMLElement): void {
  installStyles();
  watchTheme();
  clear(root);

  const state = loadState();
  let runs: RunsResponse | null = null;
  let runsKey = '';
  let view: View | null = null;
  let mountToken = 0;
  let lastView: ViewName | null = null;

  const pickers = h('div', { class: 'av-bar' });
  const totals = h('div', { class: 'av-totals' });
  const runMsg = h('div');
  const tabs = h('div', { class: 'av-tabs', attrs: { role: 'tablist' } });
  const header = h('header', { class: 'av-header' }, pickers, totals, runMsg, tabs);
  const main = h('main', { class: 'av-main' });
  append(root, h('div', { class: 'av-app' }, header, main));

  if (typeof ResizeObserver !== 'undefined') {
    new ResizeObserver(() => {
      document.documentElement.style.setProperty('--av-header-h', header.offsetHeight + 'px');
    }).observe(header);
  }

  const ctxFor = (arch: Architecture | null): ViewContext => ({
    runs: runs || {},
    state,
    arch,
    setState,
    openFilters(run, layer) { setState({ view: 'filters', run, layer, fstep: null }); },
    openCompare(sel) { setState({ view: 'compare', cmp: sel }); },
  });

  function setState(patch: Partial<AppState>, remount = true) {
    const prev = { ...state };
    Object.assign(state, patch);
    saveState(state);
    const changed = prev.view !== state.view || prev.run !== state.run || prev.step !== state.step
      || (state.view === 'filters' && (prev.layer !== state.layer || prev.fstep !== state.fstep))
      || (state.view === 'compare' && JSON.stringify(prev.cmp) !== JSON.stringify(state.cmp));
    if (remount && changed) renderAll();
  }

  function renderTabs() {
    clear(tabs);
    for (const v of VIEWS) {
      const b = button(v.label, () => setState({ view: v.name }), {
        attrs: { role: 'tab', 'aria-selected': String(state.view === v.name) }, dataset: { view: v.name },
      });
      tabs.appendChild(b);
    }
  }

  function renderPickers() {
    clear(pickers);
    const r = runs || {};
    const showRunStep = state.view !== 'compare';
    if (showRunStep) {
      const runSel = select(runOptions(r), state.run, (v) => setState({ run: v, step: null, layer: null, fstep: null, selected: null }),
        { attrs: { 'aria-label': 'Run' }, dataset: { picker: 'run' } });
      append(pickers, h('label', null, 'Run', runSel));
      if (state.view !== 'filters') {
        const opts = stepOptions(r, state.run);
        const cur = state.step ?? latestStep(r, state.run);
        const stepSel = select(opts, cur, (v) => {
          setState({ step: v === latestStep(r, state.run) ? null : v });
        }, { attrs: { 'aria-label': 'Step' }, dataset: { picker: 'step' } });
        stepSel.disabled = opts.length === 0;
        append(pickers, h('label', { title: 'the training step at which the architecture was written' }, 'Step', stepSel));
      }
    }
    append(pickers, h('span', { class: 'av-spacer' }),
      button('↻ Reload', () => { clearCaches(); void refreshRuns(true); }, { title: 'read the logs again' }));
  }

  function renderRunMessages() {
    clear(runMsg);
    if (!runs || state.view === 'compare' || state.run == null) return;
    const info = runs[state.run];
    if (info?.errors?.length) {
      runMsg.appendChild(h('div', { class: 'av-msg warn', attrs: { role: 'alert' } },
        h('span', { class: 'title' }, 'Some data of run “' + state.run + '” could not be read:'),
        info.errors.map((e) => h('div', null, e))));
    }
  }

  function renderTotals(arch: Architecture | null, note?: string) {
    clear(totals);
    if (state.view === 'compare') return;
    if (!arch) {
      if (note) totals.appendChild(h('span', { class: 'stat' }, note));
      return;
    }
    const m = arch.model;
    append(totals,
      h('span', { class: 'model-name', title: 'model name (class)' }, m.name, h('span', { class: 'stat' }, ' (' + m.class_name + ')')),
      h('span', { class: 'stat' }, 'Total params ', h('b', { dataset: { total: 'total' } }, fmtInt(m.total_params))),
      h('span', { class: 'stat' }, 'Trainable ', h('b', { dataset: { total: 'trainable' } }, fmtInt(m.trainable_params))),
      h('span', { class: 'stat' }, 'Non-trainable ', h('b', { dataset: { total: 'non_trainable' } }, fmtInt(m.non_trainable_params))),
      h('span', { class: 'stat' }, (arch.framework === 'torch' ? 'PyTorch ' : 'Keras ') + (arch.framework_version || '')),
      h('span', { class: 'stat' }, arch.nodes.length + ' layers'));
  }

  function renderAll() {
    view?.destroy();
    view = null;
    const token = ++mountToken;
    clear(main);
    renderTabs();
    renderPickers();
    renderRunMessages();
    const r = runs || {};
    if (Object.keys(r).length === 0) {
      clear(tabs);
      renderTotals(null);
      main.appendChild(emptyState());
      return;
    }
    const prevView = lastView;
    lastView = state.view;
    if (state.view === 'compare') {
      renderTotals(null);
      view = mountCompareView(main, ctxFor(null));
      return;
    }
    if (state.run == null || !r[state.run]) {
      renderTotals(null);
      main.appendChild(h('div', { class: 'av-msg info' }, 'Pick a run.'));
      return;
    }
    const run = state.run;
    const step = state.step ?? latestStep(r, run);
    if (step == null) {
      renderTotals(null);
      if (r[run].errors?.length || !(r[run].filter_layers || []).length) {
        main.appendChild(errorBox('No readable architecture in run “' + run + '”.',
          (r[run].errors || []).join(' ') || 'The run lists no steps.'));
      } else if (state.view !== 'filters') {
        main.appendChild(h('div', { class: 'av-msg info' },
          'Run “' + run + '” holds filter grids but no architecture: see the Filters tab.'));
      }
      if (state.view === 'timeline' || state.view === 'filters') mountPlain();
      return;
    }
    if (state.view === 'timeline' || state.view === 'filters') {
      // these views need the totals only for the header; fetch it in the background
      renderTotals(null, 'Loading…');
      fetchArchitecture(run, step).then((a) => { if (token === mountToken) renderTotals(a); },
        () => { if (token === mountToken) renderTotals(null); });
      mountPlain();
      return;
    }
    renderTotals(null, 'Loading…');
    main.appendChild(loading('Loading the architecture of “' + run + '” at step ' + step + '…'));
    fetchArchitecture(run, step).then((arch) => {
      if (token !== mountToken) return;
      clear(main);
      renderTotals(arch);
      const filterLayers = new Set(r[run].filter_layers || []);
      const common = {
        filterLayers,
        onShowFilters: (id: string) => setState({ view: 'filters', layer: id, fstep: null }),
        onSelectNode: (id: string | null) => { state.selected = id; saveState(state); },
      };
      if (state.view === 'graph') {
        const box = h('div', { class: 'av-graph-single' });
        main.appendChild(box);
        try {
          const g = mountGraphView(box, arch, { ...common, onSelectNode: (id: string) => common.onSelectNode(id) });
          if (state.selected && arch.nodes.some((n) => n.id === state.selected)) g.focusNode(state.selected);
          view = g;
        } catch (e) {
          replaceChildren(box, errorBox('The graph view failed.', errorMessage(e)));
        }
      } else {
        const t = mountTable(main, arch, { ...common, selected: state.selected });
        if (prevView === 'graph' && state.selected) t.focusNode(state.selected);
        view = t;
      }
    }, (e) => {
      if (token !== mountToken) return;
      clear(main);
      renderTotals(null);
      main.appendChild(errorBox('Could not load the architecture of “' + run + '” at step ' + step + '.', errorMessage(e)));
    });

    function mountPlain() {
      const ctx = ctxFor(null);
      view = state.view === 'timeline' ? mountTimeline(main, ctx) : mountFiltersView(main, ctx);
    }
  }

  let pollTimer: number | undefined;
  async function refreshRuns(force: boolean) {
    window.clearTimeout(pollTimer);
    try {
      const fresh = await fetchRuns();
      const key = JSON.stringify(fresh);
      const first = runs === null;
      if (force || key !== runsKey) {
        const wasEmpty = !runs || Object.keys(runs).length === 0;
        const before = runs && state.run != null ? JSON.stringify(runs[state.run]) : null;
        runs = fresh;
        runsKey = key;
        if (state.run == null || !runs[state.run]) {
          const names = runOptions(runs).map((o) => o.value);
          state.run = names.find((n) => runSteps(runs!, n).length > 0) ?? names[0] ?? null;
          state.step = null;
        }
        if (state.step != null && !runSteps(runs, state.run).includes(state.step)) state.step = null;
        saveState(state);
        // re-mount only when needed: first load, forced, or the data appeared; otherwise update pickers
        // (the current run's own data changed, e.g. a new step during training: show it)
        const after = state.run != null ? JSON.stringify(runs[state.run]) : null;
        if (first || force || wasEmpty || (before !== after && state.view !== 'compare')) renderAll();
        else { renderPickers(); renderRunMessages(); }
      }
    } catch (e) {
      if (runs === null || force) {
        clear(main);
        clear(tabs);
        main.appendChild(errorBox('Could not list the runs.', errorMessage(e)));
        renderPickers();
      }
    }
    const empty = !runs || Object.keys(runs).length === 0;
    pollTimer = window.setTimeout(() => {
      if (document.visibilityState !== 'hidden') void refreshRuns(false);
      else pollTimer = window.setTimeout(() => void refreshRuns(false), 30000);
    }, empty ? 5000 : 30000);
  }

  main.appendChild(loading('Loading runs…'));
  void refreshRuns(false);
}
