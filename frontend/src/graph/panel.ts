// The detail panel of the selected node (Netron-like): identity, shapes, parameters, weights,
// MACs, connections, config, compare-mode changes, and a "Show filters" button. Text only.
import type { NodeChange } from '../types';
import type { GNode, GraphModel } from './model';
import { fmtInt, fmtNodeMacsLine, fmtShape, fmtShapes } from '../format';
import { h } from '../dom';
import { CATEGORY_LABELS } from '../common/categories';
import type { Palette } from '../common/palette';
import type { DiffMark } from './draw';
import { diffColor } from './draw';
import { signalsSection } from '../common/signals_sparkline';
import type { SignalsSource } from '../common/signals_colour_by';

export interface PanelActions {
  jump(id: string): void;
  toggle(id: string): void;
  trace(id: string, dir: 'up' | 'down' | 'both'): void;
  center(id: string): void;
  close(): void;
  pickFold(id: string, k: number): void;
  showFilters: ((id: string) => void) | null;
}

export interface PanelContext {
  model: GraphModel;
  torch: boolean;
  palette: Palette;
  expanded: boolean;
  diff: DiffMark | null;
  change: NodeChange | null;
  hasFilters: boolean;
  traceDir: 'up' | 'down' | 'both' | null;
  foldPick: number | null;   // a fold: the copy shown (-1: all)
  signals?: SignalsSource;   // the run's signals: sparklines over steps
  signalsMark?: number;      // the step index Colour by shows (-1: none)
}


function kv(doc: Document, table: HTMLTableElement, k: string, v: string | HTMLElement, mono = false): void {
  const tr = h('tr');
  tr.appendChild(h('th', null, k));
  const td = h('td', { class: mono ? 'avg-mono' : undefined });
  if (typeof v === 'string') td.textContent = v; else td.appendChild(v);
  tr.appendChild(td);
  table.appendChild(tr);
}

function safeJson(v: unknown): string {
  try {
    const s = JSON.stringify(v, null, 2);
    return s === undefined ? String(v) : s;
  } catch (_) {
    return String(v);
  }
}

export function renderPanel(panel: HTMLElement, g: GNode, ctx: PanelContext, act: PanelActions): void {
  const doc = panel.ownerDocument;
  panel.textContent = '';
  header(panel, g, ctx, act);
  actions(panel, g, ctx, act);
  if (g.fold) foldPicker(panel, g, ctx, act);
  facts(panel, g, ctx);
  if (ctx.signals && !g.isGroup) {
    const sec = signalsSection(ctx.signals.run, g.id, ctx.signals.hasSignals, ctx.signalsMark ?? -1);
    if (sec) panel.appendChild(sec);
  }
  shapes(panel, g, ctx);
  weights(panel, g, ctx);
  if (ctx.change && ctx.change.fields && Object.keys(ctx.change.fields).length) {
    panel.appendChild(h('h4', null, 'Changed (A → B)'));
    const tc = h('table');
    for (const [f, v] of Object.entries(ctx.change.fields)) kv(doc, tc, f, safeJson(v?.a) + '  →  ' + safeJson(v?.b), true);
    panel.appendChild(tc);
  }
  connections(panel, g, ctx, act);
  const cfg = g.raw.config;
  if (cfg && typeof cfg === 'object' && Object.keys(cfg).length) {
    panel.appendChild(h('h4', null, 'Config'));
    const pre = h('pre', null, safeJson(cfg));
    pre.setAttribute('data-testid', 'graph-detail-config');
    panel.appendChild(pre);
  }
  const shapesText = fmtShapes(g.raw.output_shapes, ctx.torch);
  panel.setAttribute('data-node-id', g.id);
  panel.setAttribute('aria-label', 'Details of ' + String(g.raw.name ?? g.id) + (shapesText ? ' ' + shapesText : ''));
}

function header(panel: HTMLElement, g: GNode, ctx: PanelContext, act: PanelActions): void {
  const doc = panel.ownerDocument;
  const r = g.raw;
  const close = h('button', { class: 'avg-btn avg-close' }, '✕');
  close.title = 'Close (Esc)';
  close.setAttribute('data-testid', 'graph-detail-close');
  close.onclick = () => act.close();
  panel.appendChild(close);
  const title = h('h3', null, String(r.name ?? g.id) + (g.fold ? ' × ' + g.children.length : ''));
  title.setAttribute('data-testid', 'graph-detail-title');
  panel.appendChild(title);
  const sub = h('div', { class: 'avg-sub' });
  const badge = h('span', { class: 'avg-badge' }, CATEGORY_LABELS[g.cat]);
  badge.style.background = ctx.palette.cat[g.cat];
  sub.appendChild(badge);
  if (ctx.diff) {
    const d = h('span', { class: 'avg-badge' }, ctx.diff === 'inside' ? 'contains changes' : ctx.diff);
    d.style.background = diffColor(ctx.palette, ctx.diff);
    sub.appendChild(d);
  }
  sub.appendChild(doc.createTextNode(String(r.class_name ?? '')));
  panel.appendChild(sub);
  if (g.id !== r.name && !r.synthetic) panel.appendChild(h('div', { class: 'avg-sub avg-mono' }, 'id: ' + g.id));
  const anc = ctx.model.ancestors(g).reverse();
  if (!anc.length) return;
  const bc = h('div', { class: 'avg-sub' });
  bc.appendChild(doc.createTextNode('in '));
  anc.forEach((a, i) => {
    if (i) bc.appendChild(doc.createTextNode(' › '));
    const l = h('span', { class: 'avg-link' }, String(a.raw.name ?? a.id));
    l.onclick = () => act.jump(a.id);
    bc.appendChild(l);
  });
  panel.appendChild(bc);
}

function actions(panel: HTMLElement, g: GNode, ctx: PanelContext, act: PanelActions): void {
  const doc = panel.ownerDocument;
  const bar = h('div', { class: 'avg-actions' });
  const abtn = (label: string, testid: string, fn: () => void, pressed?: boolean): void => {
    const b = h('button', { class: 'avg-btn' }, label);
    b.setAttribute('data-testid', testid);
    if (pressed !== undefined) b.setAttribute('aria-pressed', String(pressed));
    b.onclick = fn;
    bar.appendChild(b);
  };
  abtn('Center', 'graph-detail-center', () => act.center(g.id));
  abtn('Trace inputs', 'graph-trace-up', () => act.trace(g.id, 'up'), ctx.traceDir === 'up');
  abtn('Trace outputs', 'graph-trace-down', () => act.trace(g.id, 'down'), ctx.traceDir === 'down');
  if (g.isGroup) abtn(ctx.expanded ? 'Collapse' : 'Expand', 'graph-detail-toggle', () => act.toggle(g.id));
  if (ctx.hasFilters && act.showFilters) {
    const fn = act.showFilters;
    abtn('Show filters', 'graph-show-filters', () => fn(g.id));
  }
  panel.appendChild(bar);
}

/** Which copy of a folded block is drawn when it is expanded; or all of them. */
function foldPicker(panel: HTMLElement, g: GNode, ctx: PanelContext, act: PanelActions): void {
  const doc = panel.ownerDocument;
  const sel = h('select');
  sel.setAttribute('data-testid', 'graph-fold-pick');
  g.children.forEach((c, i) => {
    const o = h('option', null, `#${i + 1}  ${String(c.raw.name ?? c.id)}`);
    o.value = String(i);
    sel.appendChild(o);
  });
  const all = h('option', null, `all ${g.children.length} copies`);
  all.value = '-1';
  sel.appendChild(all);
  sel.value = String(ctx.foldPick ?? 0);
  sel.onchange = () => act.pickFold(g.id, Number(sel.value));
  const row = h('div', { class: 'avg-actions' });
  row.append(doc.createTextNode('Show copy '), sel);
  panel.appendChild(row);
}

function facts(panel: HTMLElement, g: GNode, ctx: PanelContext): void {
  const doc = panel.ownerDocument;
  const r = g.raw;
  const t = h('table');
  kv(doc, t, 'type', String(r.class_name ?? ''));
  if (r.activation) kv(doc, t, 'activation', String(r.activation));
  if (r.dtype) kv(doc, t, 'dtype', String(r.dtype));
  if (typeof r.dtype_policy === 'string') kv(doc, t, 'dtype policy', r.dtype_policy);
  const total = g.trainable + g.nonTrainable;
  if (g.fold) {
    const one = g.children[0];
    kv(doc, t, 'copies', fmtInt(g.children.length));
    kv(doc, t, 'params (one copy)', fmtInt(one.trainable + one.nonTrainable));
  }
  kv(doc, t, g.isGroup ? (g.fold ? 'params (all copies)' : 'params (subtree)') : 'params', fmtInt(total));
  kv(doc, t, 'trainable', fmtInt(g.trainable));
  kv(doc, t, 'non-trainable', fmtInt(g.nonTrainable));
  macsRows(doc, t, g);
  if (typeof r.calls === 'number' && r.calls > 1) kv(doc, t, 'calls', String(r.calls) + ' (shared)');
  if (g.isGroup) kv(doc, t, 'layers inside', fmtInt(g.layerCount));
  if (typeof r.reason === 'string') kv(doc, t, 'note', r.reason);
  panel.appendChild(t);
}

/** MACs per example as the server computed them (a container's is its subtree's sum); a folded
 * run of blocks, drawn by the view, shows one copy's. */
function macsRows(doc: Document, t: HTMLTableElement, g: GNode): void {
  const src = g.fold ? g.children[0]?.raw : g.raw.synthetic ? null : g.raw;
  if (!src) return;
  kv(doc, t, g.fold ? 'MACs (one copy)' : g.isGroup ? 'MACs (subtree)' : 'MACs', fmtNodeMacsLine(src));
}

function shapes(panel: HTMLElement, g: GNode, ctx: PanelContext): void {
  const doc = panel.ownerDocument;
  const r = g.raw;
  panel.appendChild(h('h4', null, 'Shapes'));
  const ts = h('table');
  const ins = Array.isArray(r.input_shapes) ? r.input_shapes : [];
  const outs = Array.isArray(r.output_shapes) ? r.output_shapes : [];
  if (!ins.length && !outs.length) kv(doc, ts, 'shapes', 'unknown');
  ins.forEach((s, i) => kv(doc, ts, ins.length > 1 ? `input ${i}` : 'input', fmtShape(s, ctx.torch), true));
  outs.forEach((s, i) => kv(doc, ts, outs.length > 1 ? `output ${i}` : 'output', fmtShape(s, ctx.torch), true));
  panel.appendChild(ts);
}

function weights(panel: HTMLElement, g: GNode, ctx: PanelContext): void {
  const doc = panel.ownerDocument;
  const ws = Array.isArray(g.raw.weights) ? g.raw.weights : [];
  const buffers = Array.isArray(g.raw.buffers) ? g.raw.buffers : [];
  if (!ws.length && !buffers.length) return;
  panel.appendChild(h('h4', null, 'Weights'));
  const tw = h('table');
  tw.setAttribute('data-testid', 'graph-detail-weights');
  const head = h('tr');
  for (const c of ['name', 'shape', 'count']) head.appendChild(h('th', null, c));
  tw.appendChild(head);
  const row = (name: string, shape: unknown, note: string): void => {
    const tr = h('tr');
    tr.appendChild(h('td', { class: 'avg-mono' }, name + note));
    const shp = Array.isArray(shape) ? shape as (number | null)[] : null;
    tr.appendChild(h('td', { class: 'avg-mono' }, shp ? fmtShape(shp, ctx.torch) : '?'));
    const n = shp && shp.every((d) => typeof d === 'number') ? shp.reduce((a: number, d) => a * (d as number), 1) : null;
    tr.appendChild(h('td', { class: 'avg-mono' }, n == null ? '?' : fmtInt(n)));
    tw.appendChild(tr);
  };
  for (const w of ws) row(String(w?.name ?? ''), w?.shape, w?.trainable === false ? ' (NT)' : '');
  for (const b of buffers) row(String(b?.name ?? ''), b?.shape, ' (buffer)');
  panel.appendChild(tw);
}

function connections(panel: HTMLElement, g: GNode, ctx: PanelContext, act: PanelActions): void {
  const doc = panel.ownerDocument;
  const conn = (label: string, list: { other: GNode; shape: (number | null)[] | null }[]): void => {
    if (!list.length) return;
    panel.appendChild(h('h4', null, `${label} (${list.length})`));
    const tc = h('table');
    for (const c of list.slice(0, 200)) {
      const l = h('span', { class: 'avg-link' }, String(c.other.raw.name ?? c.other.id));
      l.onclick = () => act.jump(c.other.id);
      kv(doc, tc, c.shape ? fmtShape(c.shape, ctx.torch) : '', l);
    }
    panel.appendChild(tc);
  };
  conn('Inputs', (ctx.model.inE.get(g.id) || []).map((e) => ({ other: e.s, shape: e.shape })));
  conn('Outputs', (ctx.model.outE.get(g.id) || []).map((e) => ({ other: e.t, shape: e.shape })));
  if (!g.isGroup) return;
  panel.appendChild(h('h4', null, `Children (${g.children.length})`));
  const tc = h('table');
  for (const c of g.children.slice(0, 300)) {
    const l = h('span', { class: 'avg-link' }, String(c.raw.name ?? c.id));
    l.onclick = () => act.jump(c.id);
    kv(doc, tc, String(c.raw.class_name ?? ''), l);
  }
  panel.appendChild(tc);
}
