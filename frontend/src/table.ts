// The layer table: one row per node, nested containers expandable with their subtree totals,
// every column sortable (sorted = flat list with full paths), a search box, exact numbers,
// nothing truncated. Every model string is set as text.

import type { ArchNode, Architecture } from './types';
import { append, button, clear, h } from './dom';
import { fmtInt, fmtShape, fmtValue, shapeLines } from './format';
import type { ShapeStyle } from './format';
import { indexArchitecture, shapeStyle, totalParams } from './arch_index';
import type { ArchIndex } from './arch_index';

export function numCell(v: number | null | undefined): HTMLElement {
  const td = h('td', { class: 'num' }, fmtInt(v));
  if (v === 0) td.classList.add('zero');
  if (v == null) td.classList.add('muted');
  return td;
}

export function shapeCell(n: ArchNode, style: ShapeStyle): HTMLElement {
  const td = h('td', { class: 'shape' });
  for (const s of shapeLines(n.output_shapes, style)) append(td, h('div', null, s));
  if (n.output_shapes == null && typeof n.reason === 'string') td.title = n.reason;
  return td;
}

function sortKeyShape(n: ArchNode): number {
  const s = n.output_shapes?.[0];
  if (!s) return -1;
  return s.reduce<number>((acc, d) => acc * (d == null ? 1 : d), 1);
}

/** The details of a node: id, shapes, dtype, config, weights, ... as a definition list. */
export function nodeDetails(n: ArchNode, idx: ArchIndex): HTMLElement {
  const style = shapeStyle(idx.arch);
  const dl = h('dl', { class: 'av-details' });
  const row = (k: string, v: Node | string) => append(dl, h('dt', null, k), h('dd', null, v));
  row('id', h('span', { class: 'mono' }, n.id));
  if (n.input_shapes !== undefined) row('input shapes', shapeLines(n.input_shapes, style).join('  '));
  row('output shapes', shapeLines(n.output_shapes, style).join('  '));
  if (n.reason) row('note', String(n.reason));
  if (n.dtype) row('dtype', n.dtype + (n.dtype_policy && n.dtype_policy !== n.dtype ? ' (policy ' + String(n.dtype_policy) + ')' : ''));
  if (typeof n.calls === 'number' && n.calls > 1) row('calls', String(n.calls) + ' (shared; params counted once)');
  const cfg = n.config || {};
  for (const k of Object.keys(cfg)) row(k, h('span', { class: 'mono' }, fmtValue(cfg[k])));
  if (Array.isArray(n.weights) && n.weights.length) {
    row('weights', h('div', null, n.weights.map((w) =>
      h('div', { class: 'mono' }, `${w.name}  ${fmtShape(w.shape, style)}${w.trainable ? '' : '  (non-trainable)'}`))));
  }
  if (Array.isArray(n.buffers) && n.buffers.length) {
    row('buffers', h('div', null, n.buffers.map((b) =>
      h('div', { class: 'mono' }, `${b.name}  ${fmtShape(b.shape, style)}`))));
  }
  return dl;
}

// ---------------------------------------------------------------------------------------------
// the table view

export interface TableOptions {
  filterLayers?: Set<string>;
  onShowFilters?: (nodeId: string) => void;
  onSelectNode?: (nodeId: string | null) => void;
  selected?: string | null;
}

export interface TableHandle {
  destroy(): void;
  focusNode(id: string): void;
}

interface Column {
  key: string;
  label: string;
  num?: boolean;
  title?: string;
  sortValue(n: ArchNode): number | string | null;
}

type SortDir = 'asc' | 'desc';

export function mountTable(container: HTMLElement, arch: Architecture, opts: TableOptions = {}): TableHandle {
  const idx = indexArchitecture(arch);
  const style = shapeStyle(arch);
  const filterLayers = opts.filterLayers || new Set<string>();
  const columns: Column[] = [
    { key: 'name', label: 'Layer', sortValue: (n) => idx.path.get(n.id) || n.name },
    { key: 'type', label: 'Type', sortValue: (n) => n.class_name },
    { key: 'shape', label: 'Output shape', sortValue: sortKeyShape },
    { key: 'params', label: 'Params', num: true, sortValue: totalParams,
      title: 'trainable + non-trainable (a container: its whole subtree)' },
    { key: 'trainable', label: 'Trainable', num: true, sortValue: (n) => n.params?.trainable ?? 0 },
    { key: 'non_trainable', label: 'Non-trainable', num: true, sortValue: (n) => n.params?.non_trainable ?? 0 },
    { key: 'activation', label: 'Activation', sortValue: (n) => n.activation || '' },
    { key: 'macs', label: 'MACs', num: true, sortValue: (n) => n.macs,
      title: 'multiply-accumulates for one example' },
    { key: 'conn', label: 'Connected to', sortValue: (n) => (idx.sources.get(n.id) || []).map(idx.label).join(', ') },
  ];

  const hasContainers = idx.order.some((n) => idx.isContainer(n.id));
  const many = idx.order.length > 300;
  const expanded = new Set<string>();
  for (const n of idx.order) {
    if (idx.isContainer(n.id) && (!many || (idx.depth.get(n.id) || 0) === 0)) expanded.add(n.id);
  }
  const details = new Set<string>();
  let sortKey: string | null = null;
  let sortDir: SortDir = 'asc';
  let queryText = '';
  let selected: string | null = opts.selected ?? null;

  // -- toolbar
  const search = h('input', { attrs: { type: 'search', placeholder: 'Search layers (name, type, activation)', 'aria-label': 'Search layers' } });
  search.addEventListener('input', () => { queryText = search.value.trim().toLowerCase(); renderBody(); });
  const count = h('span', { class: 'count' });
  const expandAll = button('Expand all', () => { for (const n of idx.order) if (idx.isContainer(n.id)) expanded.add(n.id); renderBody(); });
  const collapseAll = button('Collapse all', () => { expanded.clear(); renderBody(); });
  const unsort = button('Original order', () => { sortKey = null; renderHead(); renderBody(); }, { title: 'back to the nesting order' });
  const toolbar = h('div', { class: 'av-toolbar' }, search, hasContainers ? [expandAll, collapseAll] : null, unsort, count);

  const table = h('table', { class: 'av-table', attrs: { 'aria-label': 'Layers' } });
  const thead = h('thead');
  const tbody = h('tbody');
  append(table, thead, tbody);
  const root = h('div', { class: 'av-table-view' }, toolbar, table);
  container.appendChild(root);

  function renderHead() {
    clear(thead);
    const tr = h('tr');
    for (const c of columns) {
      const active = sortKey === c.key;
      const th = h('th', {
        class: 'sortable' + (c.num ? ' num' : ''), title: (c.title ? c.title + ' — ' : '') + 'click to sort',
        attrs: { 'aria-sort': active ? (sortDir === 'asc' ? 'ascending' : 'descending') : 'none', tabindex: '0', role: 'columnheader' },
        dataset: { col: c.key },
      }, c.label, h('span', { class: 'arrow' }, active ? (sortDir === 'asc' ? '▲' : '▼') : ''));
      const toggle = () => {
        if (sortKey !== c.key) { sortKey = c.key; sortDir = c.num ? 'desc' : 'asc'; }
        else if (sortDir === (c.num ? 'desc' : 'asc')) sortDir = c.num ? 'asc' : 'desc';
        else sortKey = null;
        renderHead();
        renderBody();
      };
      th.addEventListener('click', toggle);
      th.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); toggle(); } });
      tr.appendChild(th);
    }
    thead.appendChild(tr);
    unsort.disabled = sortKey === null;
  }

  function matches(n: ArchNode): boolean {
    if (!queryText) return true;
    return n.name.toLowerCase().includes(queryText) || n.id.toLowerCase().includes(queryText)
      || n.class_name.toLowerCase().includes(queryText)
      || (n.activation || '').toLowerCase().includes(queryText);
  }

  function visibleNodes(): ArchNode[] {
    if (sortKey) {
      const col = columns.find((c) => c.key === sortKey)!;
      const rows = idx.order.filter(matches);
      const sign = sortDir === 'asc' ? 1 : -1;
      const pos = new Map(idx.order.map((n, i) => [n.id, i]));
      return rows.map((n) => [n, col.sortValue(n)] as const).sort((x, y) => {
        const a = x[1], b = y[1];
        if (a == null && b == null) return pos.get(x[0].id)! - pos.get(y[0].id)!;
        if (a == null) return 1; // nulls last in both directions
        if (b == null) return -1;
        let c = typeof a === 'number' && typeof b === 'number' ? a - b : String(a).localeCompare(String(b), undefined, { numeric: true });
        if (c === 0) return pos.get(x[0].id)! - pos.get(y[0].id)!;
        return c * sign;
      }).map((x) => x[0]);
    }
    if (queryText) {
      const keep = new Set<string>();
      for (const n of idx.order) {
        if (matches(n)) {
          keep.add(n.id);
          for (const a of idx.ancestors(n.id)) keep.add(a);
        }
      }
      return idx.order.filter((n) => keep.has(n.id));
    }
    return idx.order.filter((n) => idx.ancestors(n.id).every((a) => expanded.has(a)));
  }

  function nameCell(n: ArchNode, flat: boolean): HTMLElement {
    const td = h('td', { class: 'name' });
    const cell = h('div', { class: 'cell' });
    if (!flat) cell.style.paddingLeft = (idx.depth.get(n.id) || 0) * 18 + 'px';
    const isC = idx.isContainer(n.id);
    if (!flat && isC && !queryText) {
      const open = expanded.has(n.id);
      const tw = button(open ? '▾' : '▸', (e) => {
        e.stopPropagation();
        if (expanded.has(n.id)) expanded.delete(n.id); else expanded.add(n.id);
        renderBody();
      }, { class: 'twisty', title: open ? 'collapse' : 'expand', attrs: { 'aria-expanded': String(open), 'aria-label': (open ? 'collapse ' : 'expand ') + n.name } });
      cell.appendChild(tw);
    } else if (!flat && hasContainers) {
      cell.appendChild(h('span', { class: 'twisty-pad' }));
    }
    const nm = h('span', { class: 'nm' });
    if (flat) {
      const p = idx.path.get(n.id) || n.name;
      const prefix = p.slice(0, p.length - n.name.length);
      if (prefix) nm.appendChild(h('span', { class: 'path-prefix' }, prefix));
    }
    nm.appendChild(document.createTextNode(n.name));
    cell.appendChild(nm);
    if (isC) {
      const kids = idx.children.get(n.id)?.length || 0;
      cell.appendChild(h('span', { class: 'badge', title: 'container: its params are the sum over its subtree' }, kids + (kids === 1 ? ' child' : ' children')));
    }
    if (typeof n.calls === 'number' && n.calls > 1) cell.appendChild(h('span', { class: 'badge', title: 'shared layer: called ' + n.calls + ' times, params counted once' }, '×' + n.calls));
    if (filterLayers.has(n.id) && opts.onShowFilters) {
      cell.appendChild(button('filters', (e) => { e.stopPropagation(); opts.onShowFilters!(n.id); },
        { class: 'pill', title: 'show what the filters of ' + n.name + ' respond to', dataset: { action: 'filters' } }));
    }
    td.appendChild(cell);
    return td;
  }

  function row(n: ArchNode, flat: boolean): HTMLElement[] {
    const tr = h('tr', { class: 'row', dataset: { id: n.id } });
    if (idx.isContainer(n.id)) tr.classList.add('container');
    if (n.id === selected) tr.classList.add('selected');
    const conn = h('td', { class: 'conn' });
    for (const s of idx.sources.get(n.id) || []) conn.appendChild(h('div', { title: s }, idx.label(s)));
    append(tr,
      nameCell(n, flat),
      h('td', { class: 'type' }, n.class_name),
      shapeCell(n, style),
      numCell(totalParams(n)),
      numCell(n.params?.trainable ?? 0),
      numCell(n.params?.non_trainable ?? 0),
      h('td', { class: 'act' + (n.activation ? '' : ' muted') }, n.activation || '—'),
      numCell(n.macs),
      conn);
    tr.addEventListener('click', () => {
      if (details.has(n.id)) details.delete(n.id); else details.add(n.id);
      selected = n.id;
      opts.onSelectNode?.(n.id);
      renderBody();
    });
    const out: HTMLElement[] = [tr];
    if (details.has(n.id)) {
      out.push(h('tr', { class: 'details', dataset: { detailsFor: n.id } },
        h('td', { attrs: { colspan: String(columns.length) } }, nodeDetails(n, idx))));
    }
    return out;
  }

  function renderBody() {
    const nodes = visibleNodes();
    const flat = sortKey !== null;
    const frag = document.createDocumentFragment();
    for (const n of nodes) for (const r of row(n, flat)) frag.appendChild(r);
    clear(tbody);
    tbody.appendChild(frag);
    const total = idx.order.length;
    count.textContent = queryText
      ? `${nodes.filter(matches).length} of ${fmtInt(total)} layers match`
      : `${fmtInt(total)} layers` + (flat ? ' (sorted, flat)' : '');
    if (nodes.length === 0) {
      tbody.appendChild(h('tr', null, h('td', { attrs: { colspan: String(columns.length) }, class: 'muted' },
        total === 0 ? 'This architecture has no layers.' : 'No layer matches the search.')));
    }
  }

  renderHead();
  renderBody();

  return {
    destroy() { root.remove(); },
    focusNode(id: string) {
      if (!idx.byId.has(id)) return;
      for (const a of idx.ancestors(id)) expanded.add(a);
      selected = id;
      renderBody();
      const tr = tbody.querySelector<HTMLElement>(`tr.row[data-id="${CSS.escape(id)}"]`);
      tr?.scrollIntoView({ block: 'center' });
    },
  };
}
