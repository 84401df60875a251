// The layer table's columns: what each shows (cell), how it sorts, how it exports (text), and
// which are shown (toggleable; the choice is remembered in localStorage).

import type { ArchIndex } from './arch_index';
import { shapeStyle, totalParams } from './arch_index';
import { append, h } from './dom';
import { fmtBytes, fmtInt, fmtNodeMacs, shapeLines, UNKNOWN } from './format';
import { nodeReach, reachOf, REACH_STATES } from './gradient_overlay';
import type { GradientReach } from './gradient_overlay';
import type { ArchNode, Architecture } from './types';
import { numCell } from './common/cells';
import { isOldMacs, macsLabel } from './common/schema_flags';

export interface CellEnv {
  idx: ArchIndex;
  /** the groups open in the tree (null: every row is visible — sorted or searching) */
  expanded: ReadonlySet<string> | null;
}

export interface Column {
  key: string;
  label: string;
  num?: boolean;
  title?: string;
  /** hidden unless the user turns it on */
  optional?: boolean;
  sortValue(n: ArchNode, env: CellEnv): number | string | null;
  /** the cell's text for CSV / Markdown (and the default cell) */
  text(n: ArchNode, env: CellEnv): string;
  /** a custom cell (defaults to the text) */
  cell?(n: ArchNode, env: CellEnv): HTMLElement;
}

const STORAGE_KEY = 'archviz.columns';

/** "3×3" for [3, 3], "3" for 3, "" when absent. */
function fmtWindow(v: unknown): string {
  if (v == null) return '';
  if (Array.isArray(v)) return v.map((x) => (Array.isArray(x) ? '(' + x.join(', ') + ')' : String(x))).join('×');
  return String(v);
}

function fmtPadding(v: unknown): string {
  if (v == null) return '';
  if (Array.isArray(v)) return v.map((x) => (Array.isArray(x) ? '(' + x.join(', ') + ')' : String(x))).join(', ');
  return String(v);
}

function cfg(n: ArchNode, ...keys: string[]): unknown {
  for (const k of keys) if (n.config && n.config[k] !== undefined) return n.config[k];
  return undefined;
}

export const kernelOf = (n: ArchNode) => fmtWindow(cfg(n, 'kernel_size', 'pool_size'));
export const strideOf = (n: ArchNode) => fmtWindow(cfg(n, 'stride', 'strides'));
export const paddingOf = (n: ArchNode) => fmtPadding(cfg(n, 'padding'));

/** The names in "Connected to": a source hidden in a collapsed group is named by that group. */
export function connectedTo(n: ArchNode, env: CellEnv): { id: string; label: string }[] {
  const out: { id: string; label: string }[] = [];
  const seen = new Set<string>();
  for (const s of env.idx.sources.get(n.id) || []) {
    let owner = s;
    if (env.expanded) {
      const anc = env.idx.ancestors(s);
      for (let i = anc.length - 1; i >= 0; i--) if (!env.expanded.has(anc[i])) { owner = anc[i]; break; }
    }
    if (owner === n.id || seen.has(owner)) continue;
    seen.add(owner);
    out.push({ id: owner, label: env.idx.label(owner) });
  }
  return out;
}

function sortKeyShape(n: ArchNode): number {
  const s = n.output_shapes?.[0];
  if (!s) return -1;
  return s.reduce<number>((acc, d) => acc * (d == null ? 1 : d), 1);
}

function textCell(cls: string, text: string, title?: string): HTMLElement {
  const td = h('td', { class: cls + (text === UNKNOWN || text === '' ? ' muted' : '') }, text || UNKNOWN);
  if (title) td.title = title;
  return td;
}

function shapeCell(lines: string[], reason?: unknown): HTMLElement {
  const td = h('td', { class: 'shape' });
  for (const s of lines) append(td, h('div', null, s));
  if (typeof reason === 'string') td.title = reason;
  return td;
}

function macsColumn(arch: Architecture): Column {
  const old = isOldMacs(arch);
  return {
    key: 'macs', label: macsLabel(arch), num: true,
    title: old ? String(arch.model.macs_convention) : 'multiply-accumulates per example (batch 1); — when unknown (hover for why)',
    sortValue: (n) => n.macs,
    text: (n) => fmtNodeMacs(n).text,
    cell: (n) => { const m = fmtNodeMacs(n); return numCell(n.macs, m.text, m.title); },
  };
}

/** The gradient reach badge of a node: the label as text (not only a colour), the state's colour
 * for both themes (CSS picks one), the parameters on hover. Empty for nodes without parameters. */
export function reachBadge(reach: GradientReach | null, id: string): HTMLElement | null {
  const m = nodeReach(reach, id, false);
  if (!m) return null;
  const dark = nodeReach(reach, id, true)!;
  const badge = h('span', { class: 'av-reach', title: m.title, dataset: { state: m.state } }, m.label);
  badge.style.setProperty('--reach-light', m.colour);
  badge.style.setProperty('--reach-dark', dark.colour);
  return badge;
}

/** The Gradient column, when the document carries gradient reach (written with gradient_reach=True). */
function reachColumn(arch: Architecture): Column | null {
  const reach = reachOf(arch);
  if (!reach || reach.status !== 'ok') return null;
  return {
    key: 'gradient', label: 'Gradient', title: 'whether the loss reaches the parameters (hover a badge for each parameter)',
    sortValue: (n) => { const m = nodeReach(reach, n.id); return m ? REACH_STATES.indexOf(m.state) : null; },
    text: (n) => nodeReach(reach, n.id)?.label ?? '',
    cell: (n) => h('td', { class: 'reach' }, reachBadge(reach, n.id)),
  };
}

/** Every column of the table for an architecture, in display order. */
export function allColumns(arch: Architecture): Column[] {
  const style = shapeStyle(arch);
  const outShapes = (n: ArchNode) => shapeLines(n.output_shapes, style);
  const inShapes = (n: ArchNode) => shapeLines(n.input_shapes, style);
  const cols: (Column | null)[] = [
    { key: 'name', label: 'Layer', sortValue: (n) => n.id, text: (n) => n.id },
    { key: 'type', label: 'Type', sortValue: (n) => n.class_name, text: (n) => n.class_name },
    { key: 'in_shape', label: 'Input shape', optional: true, sortValue: (n) => inShapes(n).join(' '),
      text: (n) => inShapes(n).join(' '), cell: (n) => shapeCell(inShapes(n)) },
    { key: 'shape', label: 'Output shape', sortValue: sortKeyShape, text: (n) => outShapes(n).join(' '),
      cell: (n) => shapeCell(outShapes(n), n.output_shapes == null ? n.reason : undefined) },
    { key: 'kernel', label: 'Kernel', optional: true, sortValue: kernelOf, text: kernelOf, cell: (n) => textCell('mono', kernelOf(n)) },
    { key: 'stride', label: 'Stride', optional: true, sortValue: strideOf, text: strideOf, cell: (n) => textCell('mono', strideOf(n)) },
    { key: 'padding', label: 'Padding', optional: true, sortValue: paddingOf, text: paddingOf, cell: (n) => textCell('mono', paddingOf(n)) },
    { key: 'params', label: 'Params', num: true, sortValue: totalParams, text: (n) => fmtInt(totalParams(n)),
      title: 'trainable + non-trainable (a container: its whole subtree)', cell: (n) => numCell(totalParams(n)) },
    { key: 'trainable', label: 'Trainable', num: true, sortValue: (n) => n.params?.trainable ?? 0,
      text: (n) => fmtInt(n.params?.trainable ?? 0), cell: (n) => numCell(n.params?.trainable ?? 0) },
    { key: 'non_trainable', label: 'Non-trainable', num: true, sortValue: (n) => n.params?.non_trainable ?? 0,
      text: (n) => fmtInt(n.params?.non_trainable ?? 0), cell: (n) => numCell(n.params?.non_trainable ?? 0) },
    { key: 'param_bytes', label: 'Param memory', num: true, title: 'bytes of the parameters (dtype-aware)',
      sortValue: (n) => n.memory?.params_bytes ?? null, text: (n) => fmtBytes(n.memory?.params_bytes),
      cell: (n) => numCell(n.memory?.params_bytes, fmtBytes(n.memory?.params_bytes), exactBytes(n.memory?.params_bytes)) },
    { key: 'output_bytes', label: 'Output memory', num: true, title: 'bytes of the outputs for one example (dtype-aware)',
      sortValue: (n) => n.memory?.output_bytes ?? null, text: (n) => fmtBytes(n.memory?.output_bytes),
      cell: (n) => numCell(n.memory?.output_bytes, fmtBytes(n.memory?.output_bytes), exactBytes(n.memory?.output_bytes)) },
    { key: 'activation', label: 'Activation', sortValue: (n) => n.activation || '', text: (n) => n.activation || '',
      cell: (n) => textCell('act', n.activation || '') },
    macsColumn(arch),
    { key: 'conn', label: 'Connected to', sortValue: (n, env) => connectedTo(n, env).map((c) => c.label).join(', '), text: (n, env) => connectedTo(n, env).map((c) => c.label).join(', '),
      cell: (n, env) => h('td', { class: 'conn' }, connectedTo(n, env).map((c) => h('div', { title: c.id }, c.label))) },
    reachColumn(arch),
  ];
  return cols.filter((c): c is Column => c != null);
}

function exactBytes(v: number | null | undefined): string | undefined {
  return v == null ? undefined : fmtInt(v) + ' bytes';
}

/** The keys of the columns to show (remembered choice, else the non-optional ones). */
export function loadShown(cols: Column[]): Set<string> {
  try {
    const raw = localStorage.getItem(STORAGE_KEY);
    if (raw) {
      const saved = JSON.parse(raw) as Record<string, boolean>;
      return new Set(cols.filter((c) => c.key === 'name' || (saved[c.key] ?? !c.optional)).map((c) => c.key));
    }
  } catch { /* storage disabled or not JSON */ }
  return new Set(cols.filter((c) => !c.optional).map((c) => c.key));
}

export function saveShown(cols: Column[], shown: Set<string>): void {
  const out: Record<string, boolean> = {};
  for (const c of cols) out[c.key] = shown.has(c.key);
  try { localStorage.setItem(STORAGE_KEY, JSON.stringify(out)); } catch { /* storage disabled */ }
}
