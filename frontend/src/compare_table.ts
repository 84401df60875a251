// The compare view's unified table: one row per layer of A and B, marked with a text label
// (added / removed / changed / renamed — never colour alone), both values where they differ,
// per-example MACs, and the changed fields; a click opens both layers' details.

import { shapeStyle, totalParams } from './arch_index';
import type { ArchIndex } from './arch_index';
import { KIND_LABEL } from './compare_rows';
import type { DiffRow } from './compare_rows';
import { fieldLines } from './diff_text';
import { append, h } from './dom';
import { fmtInt, fmtMacs, fmtSigned, shapeLines } from './format';
import { nodeDetails } from './node_details';
import { numCell } from './common/cells';
import { isOldMacs } from './common/schema_flags';

export interface DiffTable {
  table: HTMLElement;
  /** the <tr> of each row (null when hidden by "only changes") */
  trs: (HTMLElement | null)[];
  render(): void;
}

export interface DiffTableOptions {
  onlyChanges(): boolean;
  /** index (into rows) of the current change, -1 for none */
  current(): number;
}

const COLS = 9;

function both(a: string | null, b: string | null, cls = ''): HTMLElement {
  const td = h('td', { class: cls });
  if (a != null && b != null && a !== b) append(td, h('div', { class: 'was', title: 'in A' }, a), h('div', null, b));
  else td.appendChild(h('div', null, (b ?? a) || ''));
  return td;
}

function bothNum(a: number | null | undefined, b: number | null | undefined, fmt = fmtInt): HTMLElement {
  if (a != null && b != null && a !== b) {
    return h('td', { class: 'num' }, h('div', { class: 'was', title: 'in A' }, fmt(a)),
      h('div', null, fmt(b)), h('div', { class: 'muted' }, fmtSigned(b - a)));
  }
  const v = b !== undefined ? b : a;
  return numCell(v, fmt(v));
}

function nameCell(r: DiffRow): HTMLElement {
  const a = r.a, b = r.b, n = (b || a)!;
  const cell = h('div', { class: 'cell' });
  cell.style.paddingLeft = r.depth * 18 + 'px';
  if (a && b && a.name !== b.name) append(cell, h('span', { class: 'nm' }, h('span', { class: 'was' }, a.name), ' → ', b.name));
  else cell.appendChild(h('span', { class: 'nm' }, n.name));
  return h('td', { class: 'name' }, cell);
}

function fieldsCell(r: DiffRow): HTMLElement {
  const td = h('td', { class: 'fields' });
  for (const [k, x, y] of fieldLines(r.fields)) td.appendChild(h('div', null, h('span', { class: 'k' }, k + ': '), x + ' → ' + y));
  if (r.kind === 'added') td.appendChild(h('div', { class: 'muted' }, 'only in B'));
  if (r.kind === 'removed') td.appendChild(h('div', { class: 'muted' }, 'only in A'));
  if (r.kind === 'renamed') td.appendChild(h('div', { class: 'muted' }, `id ${r.a?.id} → ${r.b?.id}`));
  return td;
}

function markCell(r: DiffRow): HTMLElement {
  const td = h('td', { class: 'mark-cell' });
  if (r.kind !== 'same') td.appendChild(h('span', { class: 'mark ' + r.kind }, KIND_LABEL[r.kind]));
  if (r.renamed && r.kind !== 'renamed') td.appendChild(h('span', { class: 'mark renamed' }, 'renamed'));
  return td;
}

function head(old: boolean): HTMLElement {
  const tr = h('tr');
  const cols: [string, boolean, string?][] = [['Change', false], ['Layer', false], ['Type', false], ['Output shape', false],
    ['Params', true], ['Trainable', true], ['Non-trainable', true],
    [old ? 'MACs (old convention)' : 'MACs', true, 'multiply-accumulates per example'], ['What changed', false]];
  for (const [label, num, title] of cols) {
    tr.appendChild(h('th', { class: num ? 'num' : '', title, attrs: { scope: 'col' } },
      label === 'Change' ? h('span', { class: 'av-sr-only' }, label) : label));
  }
  return h('thead', null, tr);
}

export function diffTable(rows: DiffRow[], ia: ArchIndex, ib: ArchIndex, opts: DiffTableOptions): DiffTable {
  const styleA = shapeStyle(ia.arch), styleB = shapeStyle(ib.arch);
  const table = h('table', { class: 'av-table av-diff-table', attrs: { 'aria-label': 'Differences' } });
  const tbody = h('tbody');
  append(table, head(isOldMacs(ia.arch) || isOldMacs(ib.arch)), tbody);
  const trs: (HTMLElement | null)[] = rows.map(() => null);
  const details = new Set<number>();
  const rowTrs = (r: DiffRow, i: number): HTMLElement[] => {
    const a = r.a, b = r.b, n = (b || a)!;
    const tr = h('tr', { class: 'row d-' + r.kind, dataset: { id: n.id, change: r.kind }, attrs: { tabindex: '0' } });
    if (opts.current() === i) tr.classList.add('current');
    append(tr, markCell(r), nameCell(r),
      both(a?.class_name ?? null, b?.class_name ?? null),
      both(a ? shapeLines(a.output_shapes, styleA).join('\n') : null, b ? shapeLines(b.output_shapes, styleB).join('\n') : null, 'shape'),
      bothNum(a ? totalParams(a) : null, b ? totalParams(b) : null),
      bothNum(a ? a.params?.trainable ?? 0 : null, b ? b.params?.trainable ?? 0 : null),
      bothNum(a ? a.params?.non_trainable ?? 0 : null, b ? b.params?.non_trainable ?? 0 : null),
      bothNum(a ? a.macs : undefined, b ? b.macs : undefined, (v) => fmtMacs(v)),
      fieldsCell(r));
    const toggle = () => { if (details.has(i)) details.delete(i); else details.add(i); render(); };
    tr.addEventListener('click', toggle);
    tr.addEventListener('keydown', (e) => { if (e.target === tr && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); toggle(); } });
    trs[i] = tr;
    if (!details.has(i)) return [tr];
    const cells = h('td', { attrs: { colspan: String(COLS) } });
    if (a) append(cells, h('div', { class: 'muted' }, 'A'), nodeDetails(a, ia));
    if (b) append(cells, h('div', { class: 'muted' }, 'B'), nodeDetails(b, ib));
    return [tr, h('tr', { class: 'details' }, cells)];
  };
  const render = () => {
    const frag = document.createDocumentFragment();
    rows.forEach((r, i) => {
      trs[i] = null;
      if (opts.onlyChanges() && r.kind === 'same') return;
      for (const tr of rowTrs(r, i)) frag.appendChild(tr);
    });
    tbody.replaceChildren(frag);
    if (!tbody.firstChild) tbody.appendChild(h('tr', null, h('td', { attrs: { colspan: String(COLS) }, class: 'muted' }, 'No differences.')));
  };
  render();
  return { table, trs, render };
}
