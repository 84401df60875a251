// Compare view: pick (run A, step) and (run B, step); the `diff` route says what was added,
// removed, changed and renamed; show its summary line, the totals' deltas (params, MACs per
// example), a unified table with the rows marked (text labels and colours; legend; changed fields
// listed), jump from change to change, and both graphs side by side.

import { errorMessage, fetchArchitecture, fetchDiff, latestStep, runOptions, stepOptions } from './api';
import { indexArchitecture } from './arch_index';
import { notesBox } from './app_header';
import { defaultSelection, diffRows } from './compare_rows';
import type { DiffRow } from './compare_rows';
import { diffTable } from './compare_table';
import { checkCompare } from './deep_links';
import { append, button, clear, errorBox, h, loading, select } from './dom';
import { fmtInt, fmtMacs, fmtSigned } from './format';
import { isOldMacs } from './common/schema_flags';
import type { Architecture, DiffResponse } from './types';
import type { CompareSel, MountLinkedGraphs, View, ViewContext } from './view';

export { defaultSelection, diffRows } from './compare_rows';
export type { ChangeKind, DiffRow } from './compare_rows';

let mode: 'table' | 'graph' = 'table';
let onlyChanges = false;

export interface CompareGraphs {
  /** show these layers (either may be null: only on one side) */
  focusPair(aId: string | null, bId: string | null): void;
  destroy(): void;
}

/**
 * The two graphs of a comparison, side by side. `match` maps each side's ids to the other's
 * (same layer); selecting a layer on one side shows its match on the other.
 */
export function mountCompareGraphs(box: HTMLElement, archA: Architecture, archB: Architecture, diff: DiffResponse,
                                   labels: { a: string; b: string },
                                   match: { aToB: Map<string, string>; bToA: Map<string, string> },
                                   mountLinkedGraphs: MountLinkedGraphs): CompareGraphs {
  const paneA = h('div', null, h('span', { class: 'side-label' }, labels.a));
  const paneB = h('div', null, h('span', { class: 'side-label' }, labels.b));
  box.appendChild(h('div', { class: 'av-graph-pair' }, paneA, paneB));
  // linked: one scale, scrolling aligned by matched layers, a selection shows its match
  const g = mountLinkedGraphs(paneA, paneB, archA, archB, diff, match.aToB, match.bToA);
  return {
    focusPair(aId, bId) { if (aId) g.a.focusNode(aId); if (bId) g.b.focusNode(bId); },
    destroy() { g.destroy(); },
  };
}

function legend(): HTMLElement {
  return h('div', { class: 'av-legend', attrs: { role: 'note', 'aria-label': 'legend' } }, 'Legend:',
    h('span', { class: 'mark added' }, 'added'), 'in B only',
    h('span', { class: 'mark removed' }, 'removed'), 'in A only',
    h('span', { class: 'mark changed' }, 'changed'), 'fields differ',
    h('span', { class: 'mark renamed' }, 'renamed'), 'matched by structure');
}

function delta(label: string, d: { a: number; b: number; delta: number } | undefined): HTMLElement | null {
  if (!d) return null;
  return h('span', null, label + ' ', h('b', null, fmtInt(d.a)), ' → ', h('b', null, fmtInt(d.b)),
    d.delta ? ' (' + fmtSigned(d.delta) + ')' : '');
}

/** "MACs per example a → b (+d)" from the two documents' model totals. */
function macsDelta(archA: Architecture, archB: Architecture): HTMLElement | null {
  const a = archA.model.macs, b = archB.model.macs;
  if (typeof a !== 'number' || typeof b !== 'number') return null;
  if (isOldMacs(archA) !== isOldMacs(archB)) {
    return h('span', { dataset: { total: 'macs-delta' }, title: 'one side uses the old MACs convention (schema 1)' }, 'MACs not comparable (old convention on one side)');
  }
  const ca = archA.model.macs_complete !== false, cb = archB.model.macs_complete !== false;
  return h('span', { dataset: { total: 'macs-delta' } }, (isOldMacs(archA) ? 'MACs (old convention) ' : 'MACs per example '),
    h('b', null, fmtMacs(a, ca)), ' → ', h('b', null, fmtMacs(b, cb)), a !== b && ca && cb ? ' (' + fmtSigned(b - a) + ')' : '');
}

function totalsDelta(diff: DiffResponse, archA: Architecture, archB: Architecture): HTMLElement {
  const t = diff.totals;
  return h('div', { class: 'av-totals-delta' },
    delta('Total params', t?.total_params), delta('Trainable', t?.trainable_params), delta('Non-trainable', t?.non_trainable_params),
    macsDelta(archA, archB),
    (diff.edges_added?.length || diff.edges_removed?.length)
      ? h('span', null, `Connections: +${diff.edges_added?.length || 0} / −${diff.edges_removed?.length || 0}`) : null);
}

export function mountCompareView(container: HTMLElement, ctx: ViewContext): View {
  const v = new CompareView(container, ctx);
  return { destroy: () => v.destroy() };
}

class CompareView {
  private readonly root = h('div', { class: 'av-compare' });
  private readonly body = h('div');
  private destroyed = false;
  private cleanup: (() => void)[] = [];
  private jumpBy: (d: number) => void = () => {};
  private readonly onKey = (e: KeyboardEvent) => {
    const t = e.target as HTMLElement | null;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'SELECT' || t.tagName === 'TEXTAREA')) return;
    if (e.key === 'n') this.jumpBy(1);
    else if (e.key === 'p') this.jumpBy(-1);
  };

  constructor(container: HTMLElement, private readonly ctx: ViewContext) {
    container.appendChild(this.root);
    document.addEventListener('keydown', this.onKey);
    const runs = ctx.runs;
    let sel = ctx.state.cmp;
    const notes = sel ? checkCompare(sel, runs) : [];
    if (notes.length) {
      this.root.appendChild(notesBox('This link asks for something the logs do not have:', notes, 'warn', 'link'));
      sel = null;
    }
    if (!sel) sel = defaultSelection(runs, ctx.state.run);
    if (!sel) {
      this.root.appendChild(h('div', { class: 'av-msg info' }, 'Nothing to compare yet.'));
      return;
    }
    const cur = sel;
    if (JSON.stringify(ctx.state.cmp) !== JSON.stringify(cur) && !notes.length) ctx.setState({ cmp: cur }, false);
    this.root.append(this.pickers(cur), this.body);
    this.load(cur);
  }

  private pickers(cur: CompareSel): HTMLElement {
    const runs = this.ctx.runs;
    const side = (which: 'A' | 'B') => {
      const runKey = which === 'A' ? 'runA' : 'runB';
      const stepKey = which === 'A' ? 'stepA' : 'stepB';
      const runSel = select(runOptions(runs), cur[runKey], (v) => {
        this.ctx.setState({ cmp: { ...cur, [runKey]: v, [stepKey]: latestStep(runs, v)! } });
      }, { attrs: { 'aria-label': 'Run ' + which }, dataset: { picker: 'run' + which } });
      const stepSel = select(stepOptions(runs, cur[runKey]), cur[stepKey], (v) => {
        this.ctx.setState({ cmp: { ...cur, [stepKey]: v } });
      }, { attrs: { 'aria-label': 'Step ' + which }, dataset: { picker: 'step' + which } });
      return h('fieldset', null, h('legend', null, which), runSel, stepSel);
    };
    const swap = button('⇄ Swap', () => this.ctx.setState({ cmp: { runA: cur.runB, stepA: cur.stepB, runB: cur.runA, stepB: cur.stepA } }),
      { title: 'swap A and B' });
    return h('div', { class: 'av-pickers' }, side('A'), swap, side('B'));
  }

  private load(cur: CompareSel): void {
    this.body.appendChild(loading('Comparing…'));
    Promise.all([
      fetchDiff(cur.runA, cur.stepA, cur.runB, cur.stepB),
      fetchArchitecture(cur.runA, cur.stepA),
      fetchArchitecture(cur.runB, cur.stepB),
    ]).then(([diff, archA, archB]) => {
      if (this.destroyed) return;
      clear(this.body);
      this.renderResult(cur, diff, archA, archB);
    }, (e) => {
      if (this.destroyed) return;
      clear(this.body);
      this.body.appendChild(errorBox(`Could not compare “${cur.runA}” step ${cur.stepA} with “${cur.runB}” step ${cur.stepB}.`, errorMessage(e)));
    });
  }

  private renderResult(cur: CompareSel, diff: DiffResponse, archA: Architecture, archB: Architecture): void {
    const ia = indexArchitecture(archA), ib = indexArchitecture(archB);
    const rows = diffRows(diff, ia, ib);
    append(this.body,
      h('div', { class: 'av-summary', dataset: { role: 'summary' } }, diff.summary || 'No differences'),
      totalsDelta(diff, archA, archB));
    const changes = rows.map((r, i) => (r.kind !== 'same' ? i : -1)).filter((i) => i >= 0);
    let at = -1;
    const pos = h('span', { class: 'count', dataset: { role: 'position' }, attrs: { role: 'status' } });
    const prevB = button('◀ Previous change', () => this.jumpBy(-1), { dataset: { action: 'prev-change' }, title: 'previous change (p)' });
    const nextB = button('Next change ▶', () => this.jumpBy(1), { dataset: { action: 'next-change' }, title: 'next change (n)' });
    const only = h('input', { attrs: { type: 'checkbox' }, dataset: { action: 'only-changes' } });
    only.checked = onlyChanges;
    const onlyLabel = h('label', null, only, ' Only changes');
    const modeBtns = h('span', { class: 'av-tabs', attrs: { role: 'tablist', 'aria-label': 'Compare as' } });
    const content = h('div');
    append(this.body, h('div', { class: 'av-toolbar' }, modeBtns, prevB, nextB, pos, onlyLabel, h('span', { class: 'av-spacer' }), legend()), content);
    const updatePos = () => {
      pos.textContent = changes.length === 0 ? 'no changes'
        : at < 0 ? `${changes.length} change${changes.length === 1 ? '' : 's'}` : `change ${at + 1} of ${changes.length}`;
      prevB.disabled = nextB.disabled = changes.length === 0;
    };
    const match = { aToB: new Map<string, string>(), bToA: new Map<string, string>() };
    for (const r of rows) if (r.a && r.b) { match.aToB.set(r.a.id, r.b.id); match.bToA.set(r.b.id, r.a.id); }
    let show: (r: DiffRow, i: number) => void = () => {};
    this.jumpBy = (d) => {
      if (!changes.length) return;
      at = at < 0 ? (d > 0 ? 0 : changes.length - 1) : (at + d + changes.length) % changes.length;
      updatePos();
      show(rows[changes[at]], changes[at]);
    };
    const renderMode = () => {
      this.cleanup.forEach((f) => f());
      this.cleanup = [];
      clear(content);
      clear(modeBtns);
      for (const m of ['table', 'graph'] as const) {
        modeBtns.appendChild(button(m === 'table' ? 'Table' : 'Graphs', () => { mode = m; renderMode(); },
          { attrs: { role: 'tab', 'aria-selected': String(mode === m) }, dataset: { mode: m } }));
      }
      onlyLabel.style.display = mode === 'table' ? '' : 'none';
      show = mode === 'table' ? this.showTable(content, rows, ia, ib, only, () => (at < 0 ? -1 : changes[at]))
        : this.showGraphs(content, cur, diff, archA, archB, match);
      updatePos();
    };
    renderMode();
  }

  private showTable(content: HTMLElement, rows: DiffRow[], ia: ReturnType<typeof indexArchitecture>,
                    ib: ReturnType<typeof indexArchitecture>, only: HTMLInputElement, current: () => number) {
    const t = diffTable(rows, ia, ib, { onlyChanges: () => onlyChanges, current });
    only.onchange = () => { onlyChanges = only.checked; t.render(); };
    content.appendChild(t.table);
    return (_r: DiffRow, i: number) => {
      for (const tr of t.trs) tr?.classList.remove('current');
      const tr = t.trs[i];
      if (tr) { tr.classList.add('current'); tr.scrollIntoView({ block: 'center' }); }
    };
  }

  private showGraphs(content: HTMLElement, cur: CompareSel, diff: DiffResponse, archA: Architecture, archB: Architecture,
                     match: { aToB: Map<string, string>; bToA: Map<string, string> }) {
    try {
      const g = mountCompareGraphs(content, archA, archB, diff,
        { a: `A: ${cur.runA} · step ${cur.stepA}`, b: `B: ${cur.runB} · step ${cur.stepB}` }, match,
        this.ctx.mountLinkedGraphs);
      this.cleanup.push(() => g.destroy());
      return (r: DiffRow) => g.focusPair(r.a?.id ?? null, r.b?.id ?? null);
    } catch (e) {
      clear(content);
      content.appendChild(errorBox('The graph view failed.', errorMessage(e)));
      return () => {};
    }
  }

  destroy(): void {
    this.destroyed = true;
    document.removeEventListener('keydown', this.onKey);
    this.cleanup.forEach((f) => f());
    this.root.remove();
  }
}
