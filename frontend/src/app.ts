// The dashboard shell: run and step pickers, the model totals, the view switcher
// (Table | Graph | Filters | Compare | Timeline), empty / loading / error states, messages for
// deep links that name something the logs do not have, and the view state kept in the iframe's
// URL hash and sessionStorage so a reload keeps the view.

import { clearCaches, errorMessage, fetchArchitecture, fetchRuns, latestStep, runOptions, runSteps, stepOptions } from './api';
import { emptyState, notesBox, totalsLine } from './app_header';
import { prepareIndex, yieldToMain } from './arch_index';
import { defaultState, loadState, parseState, saveState } from './app_state';
import { mountCompareView } from './compare_view';
import { checkLayer, checkRunAndStep } from './deep_links';
import { append, button, clear, errorBox, h, loading, replaceChildren, select } from './dom';
import { mountFiltersView } from './filters_view';
import { mountGraphView, mountLinkedGraphs } from './graph/index';
import { mountLayeredView } from './layered_view';
import { installStyles } from './styles';
import { mountTable } from './table';
import { watchTheme } from './theme';
import { mountSignalsView } from './signals_view';
import { signalsSource } from './common/signals_colour_by';
import { mountTimeline } from './timeline';
import type { Architecture, RunsResponse, Step } from './types';
import { VIEWS } from './view';
import type { AppState, View, ViewContext } from './view';

/** Build the whole dashboard inside `root`. */
export function startApp(root: HTMLElement): void {
  installStyles();
  watchTheme();
  // the plugin page is a document of its own (and may be opened alone): give it a title and language
  if (!document.title) document.title = 'Arch Viz — TensorBoard';
  if (!document.documentElement.lang) document.documentElement.lang = 'en';
  clear(root);
  new Shell(root).start();
}

class Shell {
  private readonly state: AppState = loadState();
  private runs: RunsResponse | null = null;
  private runsKey = '';
  private view: View | null = null;
  private mountToken = 0;
  private lastView: AppState['view'] | null = null;
  private linkNotes: string[] = [];
  private pollTimer: number | undefined;
  private pickersKey = '';
  private readonly pickers = h('div', { class: 'av-bar' });
  private readonly totals = h('div', { class: 'av-totals' });
  private readonly runMsg = h('div');
  private readonly tabs = h('div', { class: 'av-tabs', attrs: { role: 'tablist', 'aria-label': 'Views' } });
  private readonly main = h('main', { class: 'av-main' });

  constructor(root: HTMLElement) {
    const header = h('header', { class: 'av-header' }, this.pickers, this.totals, this.runMsg, this.tabs);
    append(root, h('div', { class: 'av-app' }, header, this.main));
    if (typeof ResizeObserver !== 'undefined') {
      new ResizeObserver(() => {
        document.documentElement.style.setProperty('--av-header-h', header.offsetHeight + 'px');
      }).observe(header);
    }
  }

  start(): void {
    this.main.appendChild(loading('Loading runs…'));
    void this.refreshRuns(false);
    // a link followed inside the page (only the hash changes): show what it asks for
    window.addEventListener('hashchange', () => this.followLink());
  }

  private followLink(): void {
    Object.assign(this.state, defaultState(), parseState(location.hash));
    if (this.runs === null) return;
    this.linkNotes = checkRunAndStep(this.state, this.runs);
    if (this.state.run == null) this.state.run = runOptions(this.runs).map((o) => o.value).find((n) => runSteps(this.runs!, n).length > 0) ?? null;
    saveState(this.state);
    this.renderAll();
  }

  private ctxFor(arch: Architecture | null): ViewContext {
    return {
      runs: this.runs || {},
      state: this.state,
      arch,
      setState: (patch, remount) => this.setState(patch, remount),
      openFilters: (run, layer) => this.setState({ view: 'filters', run, layer, fstep: null }),
      openCompare: (sel) => this.setState({ view: 'compare', cmp: sel }),
      mountLinkedGraphs,
    };
  }

  setState(patch: Partial<AppState>, remount = true): void {
    const state = this.state;
    const prev = { ...state };
    Object.assign(state, patch);
    saveState(state);
    const changed = prev.view !== state.view || prev.run !== state.run || prev.step !== state.step
      || (state.view === 'filters' && (prev.layer !== state.layer || prev.fstep !== state.fstep))
      || (state.view === 'compare' && JSON.stringify(prev.cmp) !== JSON.stringify(state.cmp));
    if (remount && changed) {
      this.linkNotes = [];
      this.renderAll();
    }
  }

  private renderTabs(): void {
    clear(this.tabs);
    for (const v of VIEWS) {
      this.tabs.appendChild(button(v.label, () => this.setState({ view: v.name }), {
        attrs: { role: 'tab', 'aria-selected': String(this.state.view === v.name) }, dataset: { view: v.name },
      }));
    }
  }

  private renderPickers(): void {
    const r = this.runs || {}, state = this.state;
    // the same pickers are kept across view switches: a run of 3,000 steps has a 3,000-option
    // step picker, whose layout alone is a long task
    const key = JSON.stringify([this.runsKey, state.run, state.step, state.view === 'filters', state.view === 'compare']);
    if (key === this.pickersKey && this.pickers.childElementCount) return;
    this.pickersKey = key;
    clear(this.pickers);
    // no runs: no empty dropdowns beside the empty-state text
    if (Object.keys(r).length && state.view !== 'compare') {
      const runSel = select(runOptions(r), state.run, (v) => this.setState({ run: v, step: null, layer: null, fstep: null, selected: null }),
        { attrs: { 'aria-label': 'Run' }, dataset: { picker: 'run' } });
      append(this.pickers, h('label', null, 'Run', runSel));
      if (state.view !== 'filters') {
        const opts = stepOptions(r, state.run);
        const stepSel = select(opts, state.step ?? latestStep(r, state.run), (v) => {
          this.setState({ step: v === latestStep(r, state.run) ? null : v });
        }, { attrs: { 'aria-label': 'Step' }, dataset: { picker: 'step' } });
        stepSel.disabled = opts.length === 0;
        append(this.pickers, h('label', { title: 'the training step at which the architecture was written' }, 'Step', stepSel));
      }
    }
    append(this.pickers, h('span', { class: 'av-spacer' }),
      button('↻ Reload', () => { clearCaches(); void this.refreshRuns(true); }, { title: 'read the logs again' }));
  }

  private renderRunMessages(): void {
    clear(this.runMsg);
    if (this.linkNotes.length) this.runMsg.appendChild(notesBox('This link asks for something the logs do not have:', this.linkNotes, 'warn', 'link'));
    const run = this.state.run;
    if (!this.runs || this.state.view === 'compare' || run == null) return;
    const errors = this.runs[run]?.errors || [];
    if (errors.length) this.runMsg.appendChild(notesBox('Some data of run “' + run + '” could not be read:', errors, 'warn', 'run-errors'));
  }

  private renderTotals(arch: Architecture | null, note?: string): void {
    clear(this.totals);
    if (this.state.view === 'compare') return;
    if (arch) append(this.totals, totalsLine(arch));
    else if (note) this.totals.appendChild(h('span', { class: 'stat' }, note));
  }

  private renderAll(): void {
    this.view?.destroy();
    this.view = null;
    const token = ++this.mountToken;
    clear(this.main);
    this.renderTabs();
    this.renderPickers();
    this.renderRunMessages();
    const r = this.runs || {}, state = this.state;
    const prevView = this.lastView;
    if (Object.keys(r).length === 0) {
      clear(this.tabs);
      this.renderTotals(null);
      this.main.appendChild(emptyState());
      return;
    }
    this.lastView = state.view;
    if (state.view === 'compare') {
      this.renderTotals(null);
      this.view = mountCompareView(this.main, this.ctxFor(null));
      return;
    }
    if (state.run == null || !r[state.run]) {
      this.renderTotals(null);
      this.main.appendChild(h('div', { class: 'av-msg info' }, 'Pick a run.'));
      return;
    }
    const step = state.step ?? latestStep(r, state.run);
    if (step == null) this.mountNoArchitecture(state.run);
    else if (state.view === 'timeline' || state.view === 'filters') this.mountPlain(state.run, step, token);
    else this.mountArchView(state.run, step, token, prevView);
  }

  /** A run that lists no architecture step (grids only, or unreadable). */
  private mountNoArchitecture(run: string): void {
    const info = this.runs![run];
    this.renderTotals(null);
    if (info.errors?.length || !(info.filter_layers || []).length) {
      this.main.appendChild(errorBox('No readable architecture in run “' + run + '”.',
        (info.errors || []).join(' ') || 'The run lists no steps.'));
    } else if (this.state.view !== 'filters') {
      this.main.appendChild(h('div', { class: 'av-msg info' },
        'Run “' + run + '” holds filter grids but no architecture: see the Filters tab.'));
    }
    if (this.state.view === 'timeline' || this.state.view === 'filters') this.mountPlainView();
  }

  /** Timeline and filters: the architecture is only needed for the header, fetched meanwhile. */
  private mountPlain(run: string, step: Step, token: number): void {
    this.renderTotals(null, 'Loading…');
    fetchArchitecture(run, step).then(prepareIndex).then((idx) => { if (token === this.mountToken) this.renderTotals(idx.arch); },
      () => { if (token === this.mountToken) this.renderTotals(null); });
    this.mountPlainView();
  }

  private mountPlainView(): void {
    const ctx = this.ctxFor(null);
    this.view = this.state.view === 'timeline' ? mountTimeline(this.main, ctx) : mountFiltersView(this.main, ctx);
  }

  private mountArchView(run: string, step: Step, token: number, prevView: AppState['view'] | null): void {
    this.renderTotals(null, 'Loading…');
    this.main.appendChild(loading('Loading the architecture of “' + run + '” at step ' + step + '…'));
    fetchArchitecture(run, step).then(async (arch) => {
      await prepareIndex(arch); // in short tasks: a 50k-node model never blocks the page
      if (token !== this.mountToken) return;
      clear(this.main);
      this.renderTotals(arch);
      this.checkSelected(arch, run, step);
      await yieldToMain();            // the header first, the view in a task of its own
      if (token !== this.mountToken) return;
      this.showArchitecture(arch, run, prevView);
    }, (e) => {
      if (token !== this.mountToken) return;
      clear(this.main);
      this.renderTotals(null);
      this.main.appendChild(errorBox('Could not load the architecture of “' + run + '” at step ' + step + '.', errorMessage(e)));
    });
  }

  private checkSelected(arch: Architecture, run: string, step: Step): void {
    const sel = this.state.selected;
    const note = sel == null ? null : checkLayer(sel, arch, `run “${run}” at step ${step}`);
    if (!note) return;
    this.state.selected = null;
    saveState(this.state);
    this.linkNotes = [...this.linkNotes, note];
    this.renderRunMessages();
  }

  private showArchitecture(arch: Architecture, run: string, prevView: AppState['view'] | null): void {
    const state = this.state;
    const common = {
      filterLayers: new Set(this.runs![run].filter_layers || []),
      onShowFilters: (id: string) => this.setState({ view: 'filters', layer: id, fstep: null }),
      onSelectNode: (id: string | null) => { state.selected = id; saveState(state); },
      signals: signalsSource(this.runs!, run, state.step),   // Colour by and sparklines
    };
    if (state.view === 'graph') {
      const box = h('div', { class: 'av-graph-single' });
      this.main.appendChild(box);
      try {
        const g = mountGraphView(box, arch, { ...common, onSelectNode: (id: string) => common.onSelectNode(id) });
        if (state.selected && arch.nodes.some((n) => n.id === state.selected)) g.focusNode(state.selected);
        this.view = g;
      } catch (e) {
        replaceChildren(box, errorBox('The graph view failed.', errorMessage(e)));
      }
      return;
    }
    if (state.view === 'layered') { this.view = mountLayeredView(this.main, this.ctxFor(arch)); return; }
    if (state.view === 'signals') { this.view = mountSignalsView(this.main, this.ctxFor(arch)); return; }
    const t = mountTable(this.main, arch, { ...common, selected: state.selected });
    if ((prevView === 'graph' || prevView === 'layered' || prevView === null) && state.selected) t.focusNode(state.selected);
    this.view = t;
  }

  /** Apply a fresh runs listing; re-mount only when needed (first load, forced, data appeared). */
  private applyRuns(fresh: RunsResponse, force: boolean): void {
    const key = JSON.stringify(fresh);
    if (!force && key === this.runsKey) return;
    const first = this.runs === null;
    const wasEmpty = !this.runs || Object.keys(this.runs).length === 0;
    const state = this.state;
    const before = this.runs && state.run != null ? JSON.stringify(this.runs[state.run]) : null;
    this.runs = fresh;
    this.runsKey = key;
    const notes = checkRunAndStep(state, fresh);
    if (first && Object.keys(fresh).length) this.linkNotes = notes;
    if (state.run == null) state.run = runOptions(fresh).map((o) => o.value).find((n) => runSteps(fresh, n).length > 0) ?? runOptions(fresh)[0]?.value ?? null;
    saveState(state);
    const after = state.run != null ? JSON.stringify(fresh[state.run]) : null;
    if (first || force || wasEmpty || (before !== after && state.view !== 'compare')) this.renderAll();
    else { this.renderPickers(); this.renderRunMessages(); }
  }

  async refreshRuns(force: boolean): Promise<void> {
    window.clearTimeout(this.pollTimer);
    try {
      this.applyRuns(await fetchRuns(), force);
    } catch (e) {
      if (this.runs === null || force) {
        clear(this.main);
        clear(this.tabs);
        this.main.appendChild(errorBox('Could not list the runs.', errorMessage(e)));
        this.renderPickers();
      }
    }
    const empty = !this.runs || Object.keys(this.runs).length === 0;
    this.pollTimer = window.setTimeout(() => {
      if (document.visibilityState !== 'hidden') void this.refreshRuns(false);
      else this.pollTimer = window.setTimeout(() => void this.refreshRuns(false), 30000);
    }, empty ? 5000 : 30000);
  }
}
