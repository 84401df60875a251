// Compare view: pick (run A, step) and (run B, step); the `diff` route says what was added,
// removed, changed and renamed; show its summary line, the totals' deltas, a unified table with
// the rows marked and colour-coded (legend; changed fields listed), jump from change to change,
// and both graphs side by side (graph view with `diff` + `side`).

import { errorMessage, fetchArchitecture, fetchDiff, latestStep, runOptions, runSteps, stepOptions } from './api';
import type { CompareSel, View, ViewContext } from './view';
import { append, button, clear, errorBox, h, loading, select } from './dom';
import { fmtInt, fmtSigned, shapeLines as shapesText } from './format';
import { mountGraphView } from './graph/index';
import { indexArchitecture, shapeStyle, totalParams } from './arch_index';
import type { ArchIndex } from './arch_index';
import { fieldLines } from './diff_text';
import { nodeDetails, numCell } from './table';
import type { ArchNode, Architecture, DiffResponse, NodeChange, RunsResponse } from './types';

export type ChangeKind = 'added' | 'removed' | 'changed' | 'renamed' | 'same';

export interface DiffRow {
  kind: ChangeKind;
  renamed: boolean;
  a: ArchNode | null;
  b: ArchNode | null;
  depth: number;
  fields: Record<string, { a: unknown; b: unknown }>;
}

const KIND_LABEL: Record<Exclude<ChangeKind, 'same'>, string> = {
  added: 'added', removed: 'removed', changed: 'changed', renamed: 'renamed',
};

let mode: 'table' | 'graph' = 'table';
let onlyChanges = false;

/** A sensible first comparison: the last two steps of the current run, else two runs. */
export function defaultSelection(runs: RunsResponse, run: string | null): CompareSel | null {
  const names = runOptions(runs).map((o) => o.value).filter((r) => runSteps(runs, r).length > 0);
  if (!names.length) return null;
  const r = run && names.includes(run) ? run : names[0];
  const steps = runSteps(runs, r);
  if (steps.length >= 2) return { runA: r, stepA: steps[steps.length - 2], runB: r, stepB: steps[steps.length - 1] };
  const other = names.find((n) => n !== r);
  if (other) return { runA: r, stepA: steps[0], runB: other, stepB: latestStep(runs, other)! };
  return { runA: r, stepA: steps[0], runB: r, stepB: steps[0] };
}

/** Rows of the unified table: B's nesting order, removed A nodes placed after their A predecessor. */
export function diffRows(diff: DiffResponse, ia: ArchIndex, ib: ArchIndex): DiffRow[] {
  const added = new Set(diff.added || []);
  const removed = new Set(diff.removed || []);
  const changedByB = new Map<string, NodeChange>();
  for (const c of diff.changed || []) changedByB.set(c.id_b, c);
  const renamedB2A = new Map<string, string>();
  const renamedA = new Set<string>();
  for (const r of diff.renamed || []) { renamedB2A.set(r.id_b, r.id_a); renamedA.add(r.id_a); }
  for (const c of diff.changed || []) if (c.id_a !== c.id_b) renamedA.add(c.id_a);
  const matchA = (idB: string): string | null => {
    if (added.has(idB)) return null;
    const c = changedByB.get(idB);
    if (c) return c.id_a;
    const r = renamedB2A.get(idB);
    if (r) return r;
    return ia.byId.has(idB) && !removed.has(idB) && !renamedA.has(idB) ? idB : null;
  };
  // removed nodes, grouped by the matched A node that precedes them in A's order
  const anchored = new Map<string | null, ArchNode[]>();
  const matchedA = new Set<string>();
  for (const n of ib.order) { const a = matchA(n.id); if (a) matchedA.add(a); }
  let anchor: string | null = null;
  for (const n of ia.order) {
    if (removed.has(n.id) || !matchedA.has(n.id)) {
      if (!removed.has(n.id)) continue; // unmatched but not reported removed: not shown
      let l = anchored.get(anchor);
      if (!l) anchored.set(anchor, (l = []));
      l.push(n);
    } else {
      anchor = n.id;
    }
  }
  const rows: DiffRow[] = [];
  const pushRemoved = (key: string | null) => {
    for (const n of anchored.get(key) || []) {
      rows.push({ kind: 'removed', renamed: false, a: n, b: null, depth: ia.depth.get(n.id) || 0, fields: {} });
    }
    anchored.delete(key);
  };
  pushRemoved(null);
  for (const n of ib.order) {
    const aId = matchA(n.id);
    const a = aId ? ia.byId.get(aId) || null : null;
    const c = changedByB.get(n.id);
    const renamed = renamedB2A.has(n.id) || (!!c && c.id_a !== c.id_b);
    let kind: ChangeKind = 'same';
    if (added.has(n.id) || (!a && !c)) kind = 'added';
    else if (c && Object.keys(c.fields || {}).length) kind = 'changed';
    else if (renamed) kind = 'renamed';
    rows.push({ kind, renamed, a, b: n, depth: ib.depth.get(n.id) || 0, fields: c?.fields || {} });
    if (aId) pushRemoved(aId);
  }
  for (const key of [...anchored.keys()]) pushRemoved(key);
  return rows;
}

function legend(): HTMLElement {
  return h('div', { class: 'av-legend', attrs: { 'aria-label': 'legend' } }, 'Legend:',
    h('span', { class: 'mark added' }, 'added'), 'in B only',
    h('span', { class: 'mark removed' }, 'removed'), 'in A only',
    h('span', { class: 'mark changed' }, 'changed'), 'fields differ',
    h('span', { class: 'mark renamed' }, 'renamed'), 'matched by structure');
}

export function mountCompareView(container: HTMLElement, ctx: ViewContext): View {
  const runs = ctx.runs;
  let sel = ctx.state.cmp;
  const valid = (s: CompareSel | null) => !!s && !!runs[s.runA] && !!runs[s.runB]
    && runSteps(runs, s.runA).includes(s.stepA) && runSteps(runs, s.runB).includes(s.stepB);
  if (!valid(sel)) sel = defaultSelection(runs, ctx.state.run);
  const root = h('div', { class: 'av-compare' });
  container.appendChild(root);
  let destroyed = false;
  let cleanup: (() => void)[] = [];
  const onKey = (e: KeyboardEvent) => {
    const t = e.target as HTMLElement | null;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'SELECT' || t.tagName === 'TEXTAREA')) return;
    if (e.key === 'n') jump(1);
    else if (e.key === 'p') jump(-1);
  };
  document.addEventListener('keydown', onKey);
  let jump: (d: number) => void = () => {};

  if (!sel) {
    root.appendChild(h('div', { class: 'av-msg info' }, 'Nothing to compare yet.'));
    return { destroy() { document.removeEventListener('keydown', onKey); root.remove(); } };
  }
  const cur: CompareSel = sel;
  if (JSON.stringify(ctx.state.cmp) !== JSON.stringify(cur)) ctx.setState({ cmp: cur }, false);

  // -- pickers
  const side = (which: 'A' | 'B') => {
    const runKey = which === 'A' ? 'runA' : 'runB';
    const stepKey = which === 'A' ? 'stepA' : 'stepB';
    const runSel = select(runOptions(runs), cur[runKey], (v) => {
      ctx.setState({ cmp: { ...cur, [runKey]: v, [stepKey]: latestStep(runs, v)! } });
    }, { attrs: { 'aria-label': 'Run ' + which }, dataset: { picker: 'run' + which } });
    const stepSel = select(stepOptions(runs, cur[runKey]), cur[stepKey], (v) => {
      ctx.setState({ cmp: { ...cur, [stepKey]: v } });
    }, { attrs: { 'aria-label': 'Step ' + which }, dataset: { picker: 'step' + which } });
    return h('fieldset', null, h('legend', null, which), runSel, stepSel);
  };
  const swap = button('⇄ Swap', () => ctx.setState({ cmp: { runA: cur.runB, stepA: cur.stepB, runB: cur.runA, stepB: cur.stepA } }),
    { title: 'swap A and B' });
  append(root, h('div', { class: 'av-pickers' }, side('A'), swap, side('B')));
  const body = h('div');
  root.appendChild(body);
  body.appendChild(loading('Comparing…'));

  Promise.all([
    fetchDiff(cur.runA, cur.stepA, cur.runB, cur.stepB),
    fetchArchitecture(cur.runA, cur.stepA),
    fetchArchitecture(cur.runB, cur.stepB),
  ]).then(([diff, archA, archB]) => {
    if (destroyed) return;
    clear(body);
    renderResult(diff, archA, archB);
  }, (e) => {
    if (destroyed) return;
    clear(body);
    body.appendChild(errorBox(`Could not compare “${cur.runA}” step ${cur.stepA} with “${cur.runB}” step ${cur.stepB}.`, errorMessage(e)));
  });

  function renderResult(diff: DiffResponse, archA: Architecture, archB: Architecture) {
    const ia = indexArchitecture(archA), ib = indexArchitecture(archB);
    const rows = diffRows(diff, ia, ib);
    const t = diff.totals;
    const delta = (label: string, key: 'total_params' | 'trainable_params' | 'non_trainable_params') => {
      const d = t?.[key];
      if (!d) return null;
      return h('span', null, label + ' ', h('b', null, fmtInt(d.a)), ' → ', h('b', null, fmtInt(d.b)),
        d.delta ? ' (' + fmtSigned(d.delta) + ')' : '');
    };
    append(body,
      h('div', { class: 'av-summary', dataset: { role: 'summary' } }, diff.summary || 'No differences'),
      h('div', { class: 'av-totals-delta' },
        delta('Total params', 'total_params'), delta('Trainable', 'trainable_params'), delta('Non-trainable', 'non_trainable_params'),
        (diff.edges_added?.length || diff.edges_removed?.length)
          ? h('span', null, `Connections: +${diff.edges_added?.length || 0} / −${diff.edges_removed?.length || 0}`) : null));

    const changes = rows.map((r, i) => (r.kind !== 'same' ? i : -1)).filter((i) => i >= 0);
    let at = -1;
    const pos = h('span', { class: 'count', dataset: { role: 'position' } });
    const prevB = button('◀ Previous change', () => jump(-1), { dataset: { action: 'prev-change' }, title: 'previous change (p)' });
    const nextB = button('Next change ▶', () => jump(1), { dataset: { action: 'next-change' }, title: 'next change (n)' });
    const only = h('input', { attrs: { type: 'checkbox' }, dataset: { action: 'only-changes' } });
    only.checked = onlyChanges;
    const modeBtns = h('span', { class: 'av-tabs', attrs: { role: 'tablist' } });
    const toolbar = h('div', { class: 'av-toolbar' }, modeBtns, prevB, nextB, pos,
      h('label', null, only, ' Only changes'), h('span', { class: 'av-spacer' }), legend());
    const content = h('div');
    append(body, toolbar, content);
    const updatePos = () => {
      pos.textContent = changes.length === 0 ? 'no changes'
        : at < 0 ? `${changes.length} change${changes.length === 1 ? '' : 's'}` : `change ${at + 1} of ${changes.length}`;
      prevB.disabled = nextB.disabled = changes.length === 0;
    };

    let trs: (HTMLElement | null)[] = [];
    let graphs: { a: ReturnType<typeof mountGraphView>; b: ReturnType<typeof mountGraphView> } | null = null;
    const aToB = new Map<string, string>(), bToA = new Map<string, string>();
    for (const r of rows) if (r.a && r.b) { aToB.set(r.a.id, r.b.id); bToA.set(r.b.id, r.a.id); }

    jump = (d: number) => {
      if (!changes.length) return;
      at = at < 0 ? (d > 0 ? 0 : changes.length - 1) : (at + d + changes.length) % changes.length;
      updatePos();
      const r = rows[changes[at]];
      if (mode === 'table') {
        for (const tr of trs) tr?.classList.remove('current');
        const tr = trs[changes[at]];
        if (tr) { tr.classList.add('current'); tr.scrollIntoView({ block: 'center' }); }
      } else if (graphs) {
        if (r.a) graphs.a.focusNode(r.a.id);
        if (r.b) graphs.b.focusNode(r.b.id);
      }
    };

    function renderMode() {
      cleanup.forEach((f) => f());
      cleanup = [];
      graphs = null;
      clear(content);
      clear(modeBtns);
      for (const m of ['table', 'graph'] as const) {
        modeBtns.appendChild(button(m === 'table' ? 'Table' : 'Graphs', () => { mode = m; renderMode(); },
          { attrs: { role: 'tab', 'aria-selected': String(mode === m) }, dataset: { mode: m } }));
      }
      only.parentElement!.style.display = mode === 'table' ? '' : 'none';
      if (mode === 'table') renderTable();
      else renderGraphs();
      updatePos();
    }

    function renderGraphs() {
      const paneA = h('div', null, h('span', { class: 'side-label' }, `A: ${cur.runA} · step ${cur.stepA}`));
      const paneB = h('div', null, h('span', { class: 'side-label' }, `B: ${cur.runB} · step ${cur.stepB}`));
      content.appendChild(h('div', { class: 'av-graph-pair' }, paneA, paneB));
      try {
        const a = mountGraphView(paneA, archA, { diff, side: 'a', onSelectNode: (id) => { const o = aToB.get(id); if (o) graphs?.b.focusNode(o); } });
        const b = mountGraphView(paneB, archB, { diff, side: 'b', onSelectNode: (id) => { const o = bToA.get(id); if (o) graphs?.a.focusNode(o); } });
        graphs = { a, b };
        cleanup.push(() => { a.destroy(); b.destroy(); });
      } catch (e) {
        clear(content);
        content.appendChild(errorBox('The graph view failed.', errorMessage(e)));
      }
    }

    function renderTable() {
      const styleA = shapeStyle(archA), styleB = shapeStyle(archB);
      const table = h('table', { class: 'av-table av-diff-table', attrs: { 'aria-label': 'Differences' } });
      const head = h('tr');
      for (const [label, num] of [['', false], ['Layer', false], ['Type', false], ['Output shape', false], ['Params', true],
        ['Trainable', true], ['Non-trainable', true], ['What changed', false]] as [string, boolean][]) {
        head.appendChild(h('th', { class: num ? 'num' : '' }, label));
      }
      append(table, h('thead', null, head));
      const tbody = h('tbody');
      table.appendChild(tbody);
      trs = rows.map(() => null);
      const details = new Set<number>();

      const both = (a: string | null, b: string | null, cls = ''): HTMLElement => {
        const td = h('td', { class: cls });
        if (a != null && b != null && a !== b) append(td, h('div', { class: 'was' }, a), h('div', null, b));
        else td.appendChild(h('div', null, (b ?? a) || ''));
        return td;
      };
      const bothNum = (a: number | null, b: number | null): HTMLElement => {
        if (a != null && b != null && a !== b) {
          return h('td', { class: 'num' }, h('div', { class: 'was' }, fmtInt(a)), h('div', null, fmtInt(b)),
            h('div', { class: 'muted' }, fmtSigned(b - a)));
        }
        return numCell(b ?? a);
      };

      const render = () => {
        clear(tbody);
        const frag = document.createDocumentFragment();
        rows.forEach((r, i) => {
          trs[i] = null;
          if (onlyChanges && r.kind === 'same') return;
          const a = r.a, b = r.b, n = (b || a)!;
          const tr = h('tr', { class: 'row d-' + r.kind, dataset: { id: n.id, change: r.kind } });
          if (changes[at] === i) tr.classList.add('current');
          const markCell = h('td', { class: 'mark-cell' });
          if (r.kind !== 'same') markCell.appendChild(h('span', { class: 'mark ' + r.kind }, KIND_LABEL[r.kind]));
          if (r.renamed && r.kind !== 'renamed') markCell.appendChild(h('span', { class: 'mark renamed' }, 'renamed'));
          const name = h('td', { class: 'name' });
          const cell = h('div', { class: 'cell' });
          cell.style.paddingLeft = r.depth * 18 + 'px';
          if (a && b && a.name !== b.name) append(cell, h('span', { class: 'nm' }, h('span', { class: 'was' }, a.name), ' → ', b.name));
          else cell.appendChild(h('span', { class: 'nm' }, n.name));
          name.appendChild(cell);
          const fieldsTd = h('td', { class: 'fields' });
          for (const [k, x, y] of fieldLines(r.fields)) {
            fieldsTd.appendChild(h('div', null, h('span', { class: 'k' }, k + ': '), x + ' → ' + y));
          }
          if (r.kind === 'added') fieldsTd.appendChild(h('div', { class: 'muted' }, 'only in B'));
          if (r.kind === 'removed') fieldsTd.appendChild(h('div', { class: 'muted' }, 'only in A'));
          if (r.kind === 'renamed') fieldsTd.appendChild(h('div', { class: 'muted' }, `id ${a?.id} → ${b?.id}`));
          append(tr, markCell, name,
            both(a?.class_name ?? null, b?.class_name ?? null),
            both(a ? shapesText(a.output_shapes, styleA).join('\n') : null, b ? shapesText(b.output_shapes, styleB).join('\n') : null, 'shape'),
            bothNum(a ? totalParams(a) : null, b ? totalParams(b) : null),
            bothNum(a ? a.params?.trainable ?? 0 : null, b ? b.params?.trainable ?? 0 : null),
            bothNum(a ? a.params?.non_trainable ?? 0 : null, b ? b.params?.non_trainable ?? 0 : null),
            fieldsTd);
          tr.addEventListener('click', () => { if (details.has(i)) details.delete(i); else details.add(i); render(); });
          trs[i] = tr;
          frag.appendChild(tr);
          if (details.has(i)) {
            const cells = h('td', { attrs: { colspan: '8' } });
            if (a) append(cells, h('div', { class: 'muted' }, 'A'), nodeDetails(a, ia));
            if (b) append(cells, h('div', { class: 'muted' }, 'B'), nodeDetails(b, ib));
            frag.appendChild(h('tr', { class: 'details' }, cells));
          }
        });
        tbody.appendChild(frag);
        if (!tbody.firstChild) tbody.appendChild(h('tr', null, h('td', { attrs: { colspan: '8' }, class: 'muted' }, 'No differences.')));
      };
      only.onchange = () => { onlyChanges = only.checked; render(); };
      render();
      content.appendChild(table);
    }

    renderMode();
  }

  return {
    destroy() {
      destroyed = true;
      document.removeEventListener('keydown', onKey);
      cleanup.forEach((f) => f());
      root.remove();
    },
  };
}
