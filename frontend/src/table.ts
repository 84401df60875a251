// The layer table: one row per node, nested containers expandable with their subtree totals,
// every column sortable (sorted = flat list with full ids), a debounced search box, toggleable
// columns (remembered), CSV / Markdown export, exact numbers, nothing truncated. Rows are
// virtualised (only those near the viewport are in the DOM), so a 50k-node model stays fluid.
// Every model string is set as text.

import { indexArchitecture } from './arch_index';
import type { ArchIndex } from './arch_index';
import { button, h } from './dom';
import { fmtInt } from './format';
import { reachOf, reachSummary } from './gradient_overlay';
import { nodeDetails } from './node_details';
import { allColumns, loadShown, saveShown } from './table_columns';
import type { CellEnv, Column } from './table_columns';
import { downloadText, safeFileBase, toCSV, toMarkdown } from './table_export';
import { TableFold } from './table_fold';
import type { ArchNode, Architecture } from './types';
import { VirtualRows } from './virtual_rows';
import { ColourBy } from './common/signals_colour_by';
import type { Colouring, SignalsSource } from './common/signals_colour_by';
import { NO_VALUE_CSS } from './common/signals_scale';
import { signalsSection } from './common/signals_sparkline';

export interface TableOptions {
  filterLayers?: Set<string>;
  onShowFilters?: (nodeId: string) => void;
  onSelectNode?: (nodeId: string | null) => void;
  selected?: string | null;
  /** the run's signals: the "Colour by" control and the row details' sparklines */
  signals?: SignalsSource;
}

export interface TableHandle {
  destroy(): void;
  focusNode(id: string): void;
}

type SortDir = 'asc' | 'desc';
const SEARCH_DEBOUNCE_MS = 200;
const LINE_PX = 19, ROW_PAD_PX = 9;

/** Case-insensitive natural order ("block2" < "block10") with a plain string comparison. */
function sortKey(v: number | string | null): number | string | null {
  if (v == null || typeof v === 'number') return v;
  return v.toLowerCase().replace(/\d+/g, (d) => d.padStart(16, '0'));
}

/** The gradient reach summary above the table (null when the document has none). */
function reachSummaryLine(arch: Architecture): HTMLElement | null {
  const reach = reachOf(arch);
  const line = reachSummary(reach);
  if (!line) return null;
  return h('div', { class: 'av-reach-summary' + (reach?.status === 'unavailable' ? ' unavailable' : ''),
    attrs: { role: 'note' }, dataset: { testid: 'table-reach-summary' } }, line);
}

export function mountTable(container: HTMLElement, arch: Architecture, opts: TableOptions = {}): TableHandle {
  const t = new LayerTable(container, arch, opts);
  return { destroy: () => t.destroy(), focusNode: (id) => t.focusNode(id) };
}

class LayerTable {
  private readonly idx: ArchIndex;
  private readonly cols: Column[];
  private shown: Set<string>;
  private readonly expanded = new Set<string>();
  private readonly details = new Set<string>();
  private readonly hasContainers: boolean;
  private sortKey: string | null = null;
  private sortDir: SortDir = 'asc';
  private query = '';
  private selected: string | null;
  private entries: ArchNode[] = [];
  private readonly root: HTMLElement;
  private readonly thead = h('thead');
  private readonly tbody = h('tbody');
  private readonly table = h('table', { class: 'av-table', attrs: { 'aria-label': 'Layers' } });
  private readonly count = h('span', { class: 'count', attrs: { role: 'status' } });
  private readonly unsort: HTMLButtonElement;
  private readonly virt: VirtualRows;
  private readonly fold: TableFold;
  private searchTimer = 0;
  private colouring: Colouring | null = null;
  private colourBy: ColourBy | null = null;

  constructor(container: HTMLElement, private readonly arch: Architecture, private readonly opts: TableOptions) {
    this.idx = indexArchitecture(arch);
    this.cols = allColumns(arch);
    this.shown = loadShown(this.cols);
    this.selected = opts.selected ?? null;
    this.hasContainers = this.idx.order.some((n) => this.idx.isContainer(n.id));
    this.fold = new TableFold(arch, this.idx, this.expanded, this.tbody, () => this.refresh());
    const many = this.idx.order.length > 300;
    for (const n of this.idx.order) {
      if (this.idx.isContainer(n.id) && (!many || (this.idx.depth.get(n.id) || 0) === 0)) this.expanded.add(n.id);
    }
    this.unsort = button('Original order', () => this.sortBy(null), { title: 'back to the nesting order' });
    this.table.append(this.thead, this.tbody);
    this.root = h('div', { class: 'av-table-view' }, this.toolbar(), this.colourStrip(), reachSummaryLine(arch), this.table);
    container.appendChild(this.root);
    this.virt = new VirtualRows(this.tbody, {
      count: () => Math.max(1, this.entries.length),
      render: (i) => this.renderEntry(i),
      estimate: (i) => this.estimate(i),
    }, 1);
    this.renderHead();
    this.refresh();
  }

  private toolbar(): HTMLElement {
    const search = h('input', { attrs: { type: 'search', placeholder: 'Search layers (name, type, activation)', 'aria-label': 'Search layers' } });
    search.addEventListener('input', () => {
      window.clearTimeout(this.searchTimer);
      this.searchTimer = window.setTimeout(() => { this.query = search.value.trim().toLowerCase(); this.refresh(); }, SEARCH_DEBOUNCE_MS);
    });
    const expandAll = button('Expand all', () => {
      for (const n of this.idx.order) if (this.idx.isContainer(n.id)) this.expanded.add(n.id);
      for (const id of this.fold.ids()) this.expanded.add(id);
      this.refresh();
    });
    const collapseAll = button('Collapse all', () => { this.expanded.clear(); this.refresh(); });
    const base = safeFileBase(String(this.arch.model?.name || 'model'));
    const exportCsv = button('Export CSV', () => this.exportAs('csv', base), { dataset: { action: 'export-csv' }, title: 'the rows (all layers, the shown columns) as CSV' });
    const exportMd = button('Export Markdown', () => this.exportAs('md', base), { dataset: { action: 'export-md' }, title: 'the rows (all layers, the shown columns) as a Markdown table' });
    return h('div', { class: 'av-toolbar' }, search, this.hasContainers ? [expandAll, collapseAll] : null, this.unsort, this.fold.control(),
      this.columnMenu(), exportCsv, exportMd, this.count);
  }

  /** Colour by: a swatch and the value in each layer's name cell (common/signals_colour_by.ts). */
  private colourStrip(): HTMLElement | null {
    if (!this.opts.signals) return null;
    this.colourBy = new ColourBy({ source: this.opts.signals, arch: this.arch, onChange: (c) => {
      this.colouring = c;
      if (this.virt) this.refresh();   // the first call comes before the rows exist
    } });
    return h('div', { class: 'av-toolbar avs-table-colour', dataset: { testid: 'table-colour-by' } }, this.colourBy.el, this.colourBy.legendBox);
  }

  private colourMark(n: ArchNode, cell: HTMLElement): void {
    const c = this.colouring;
    if (!c) return;
    const p = c.paint(n.id), text = c.text(n.id);
    cell.appendChild(h('span', { class: 'avs-cell-sw', title: c.metric.label + ': ' + text, dataset: { paint: p.kind, fill: p.fill },
      style: { background: p.kind === 'none' ? NO_VALUE_CSS : p.fill } }));
    cell.appendChild(h('span', { class: 'avs-cell-val muted', dataset: { colourValue: text } }, text));
  }

  private columnMenu(): HTMLElement {
    const list = h('div', { class: 'av-col-list', attrs: { role: 'group', 'aria-label': 'Columns to show' } });
    for (const c of this.cols) {
      if (c.key === 'name') continue;
      const box = h('input', { attrs: { type: 'checkbox' }, dataset: { colToggle: c.key } });
      box.checked = this.shown.has(c.key);
      box.addEventListener('change', () => {
        if (box.checked) this.shown.add(c.key); else this.shown.delete(c.key);
        if (!box.checked && this.sortKey === c.key) this.sortKey = null;
        saveShown(this.cols, this.shown);
        this.renderHead();
        this.refresh();
      });
      list.appendChild(h('label', null, box, ' ' + c.label));
    }
    return h('details', { class: 'av-col-menu' }, h('summary', null, 'Columns'), list);
  }

  private visibleCols(): Column[] {
    return this.cols.filter((c) => this.shown.has(c.key));
  }

  private sortBy(key: string | null): void {
    const c = this.cols.find((x) => x.key === key);
    if (!c) this.sortKey = null;
    else if (this.sortKey !== c.key) { this.sortKey = c.key; this.sortDir = c.num ? 'desc' : 'asc'; }
    else if (this.sortDir === (c.num ? 'desc' : 'asc')) this.sortDir = c.num ? 'asc' : 'desc';
    else this.sortKey = null;
    this.renderHead();
    this.refresh();
  }

  private renderHead(): void {
    const tr = h('tr', { attrs: { 'aria-rowindex': '1' } });
    for (const c of this.visibleCols()) {
      const active = this.sortKey === c.key;
      const sortLabel = h('button', { class: 'sort', attrs: { type: 'button' } }, c.label,
        h('span', { class: 'arrow', attrs: { 'aria-hidden': 'true' } }, active ? (this.sortDir === 'asc' ? '▲' : '▼') : ''));
      const th = h('th', {
        class: 'sortable' + (c.num ? ' num' : ''), title: (c.title ? c.title + ' — ' : '') + 'click to sort',
        attrs: { scope: 'col', 'aria-sort': active ? (this.sortDir === 'asc' ? 'ascending' : 'descending') : 'none' },
        dataset: { col: c.key },
      }, sortLabel);
      th.addEventListener('click', () => this.sortBy(c.key));
      tr.appendChild(th);
    }
    this.thead.replaceChildren(tr);
    this.unsort.disabled = this.sortKey === null;
  }

  private env(): CellEnv {
    return { idx: this.idx, expanded: this.sortKey || this.query ? null : this.expanded };
  }

  private haystack: Map<string, string> | null = null;

  /** Whether a node matches the search (name, id, type or activation; case-insensitive). */
  private matches(n: ArchNode): boolean {
    const q = this.query;
    if (!q) return true;
    if (!this.haystack) {
      this.haystack = new Map();
      for (const m of this.idx.order) {
        this.haystack.set(m.id, [m.name, m.id, m.class_name, m.activation || ''].join('\u0000').toLowerCase());
      }
    }
    return (this.haystack.get(n.id) || '').includes(q);
  }

  private sortedEntries(): ArchNode[] {
    const col = this.cols.find((c) => c.key === this.sortKey)!;
    const env = this.env();
    const sign = this.sortDir === 'asc' ? 1 : -1;
    const nodes = this.idx.order.filter((n) => this.matches(n));   // in model order: ties keep it
    const keys = nodes.map((n) => sortKey(col.sortValue(n, env)));
    const order = Array.from(nodes.keys());
    order.sort((x, y) => {
      const a = keys[x], b = keys[y];
      if (a == null || b == null) return a == null && b == null ? x - y : a == null ? 1 : -1; // nulls last
      const c = typeof a === 'number' && typeof b === 'number' ? a - b : a < b ? -1 : a > b ? 1 : 0;
      return c === 0 ? x - y : c * sign;
    });
    return order.map((i) => nodes[i]);
  }

  private computeEntries(): ArchNode[] {
    if (this.sortKey) return this.sortedEntries();
    if (this.query) {
      const keep = new Set<string>();
      for (const n of this.idx.order) {
        if (!this.matches(n)) continue;
        keep.add(n.id);
        for (const a of this.idx.ancestors(n.id)) keep.add(a);
      }
      return this.fold.active() ? this.fold.searchEntries(keep) : this.idx.order.filter((n) => keep.has(n.id));
    }
    if (this.fold.active()) return this.fold.treeEntries();
    return this.idx.order.filter((n) => this.idx.ancestors(n.id).every((a) => this.expanded.has(a)));
  }

  private refresh(): void {
    this.entries = this.computeEntries();
    const ncols = this.visibleCols().length;
    this.table.setAttribute('aria-rowcount', String(this.entries.length + 1));
    this.virt.setColspan(ncols);
    this.virt.reset();
    const total = this.idx.order.length;
    const rowsWord = (k: number) => fmtInt(k) + (k === 1 ? ' row' : ' rows');
    this.count.textContent = this.query
      ? `${fmtInt(this.entries.filter((n) => this.matches(n)).length)} of ${rowsWord(total)} match`
      : rowsWord(total) + (this.sortKey ? ' (sorted, flat)' : '');
  }

  private estimate(i: number): number {
    const n = this.entries[i];
    if (!n) return 30;
    const lines = Math.max(1, n.output_shapes?.length || 0, this.idx.sources.get(n.id)?.length || 0);
    const det = this.details.has(n.id) ? (Object.keys(n.config || {}).length + 6) * LINE_PX : 0;
    return ROW_PAD_PX + LINE_PX * lines + det;
  }

  private renderEntry(i: number): HTMLElement[] {
    const ncols = this.visibleCols().length;
    const n = this.entries[i];
    if (!n) {
      return [h('tr', null, h('td', { attrs: { colspan: String(ncols) }, class: 'muted' },
        this.idx.order.length === 0 ? 'This architecture has no layers.' : 'No layer matches the search.'))];
    }
    const tr = this.row(n, i);
    if (!this.details.has(n.id)) return [tr];
    return [tr, h('tr', { class: 'details', dataset: { detailsFor: n.id } },
      h('td', { attrs: { colspan: String(ncols) } }, nodeDetails(n, this.idx),
        this.opts.signals ? signalsSection(this.opts.signals.run, n.id, this.opts.signals.hasSignals, this.colouring?.stepIndex ?? -1) : null))];
  }

  private row(n: ArchNode, i: number): HTMLElement {
    if (this.fold.isFold(n.id)) return this.fold.row(n.id, i, this.visibleCols(), this.env(), !!this.query);
    const flat = this.sortKey !== null;
    const tr = h('tr', { class: 'row', dataset: { id: n.id }, attrs: { tabindex: '0', 'aria-rowindex': String(i + 2) } });
    if (this.idx.isContainer(n.id)) tr.classList.add('container');
    if (n.id === this.selected) tr.classList.add('selected');
    const env = this.env();
    for (const c of this.visibleCols()) {
      const td = c.key === 'name' ? this.nameCell(n, flat) : c.cell ? c.cell(n, env) : h('td', null, c.text(n, env));
      td.dataset.col = c.key;
      tr.appendChild(td);
    }
    const toggle = () => {
      if (this.details.has(n.id)) this.details.delete(n.id); else this.details.add(n.id);
      this.selected = n.id;
      this.opts.onSelectNode?.(n.id);
      for (const el of this.tbody.querySelectorAll('tr.row.selected')) el.classList.remove('selected');
      this.virt.refresh(i);
      this.tbody.querySelector<HTMLElement>(`tr.row[data-id="${CSS.escape(n.id)}"]`)?.focus({ preventScroll: true });
    };
    tr.addEventListener('click', toggle);
    tr.addEventListener('keydown', (e) => {
      if (e.target === tr && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); toggle(); }
    });
    return tr;
  }

  private nameCell(n: ArchNode, flat: boolean): HTMLElement {
    const cell = h('div', { class: 'cell' });
    if (!flat) cell.style.paddingLeft = this.fold.depth(n.id) * 18 + 'px';
    const isC = this.idx.isContainer(n.id);
    if (!flat && isC && !this.query) {
      const open = this.expanded.has(n.id);
      cell.appendChild(button(open ? '▾' : '▸', (e) => {
        e.stopPropagation();
        if (this.expanded.has(n.id)) this.expanded.delete(n.id); else this.expanded.add(n.id);
        this.refresh();
        this.tbody.querySelector<HTMLElement>(`tr.row[data-id="${CSS.escape(n.id)}"] button.twisty`)?.focus({ preventScroll: true });
      }, { class: 'twisty', title: open ? 'collapse' : 'expand', attrs: { 'aria-expanded': String(open), 'aria-label': (open ? 'collapse ' : 'expand ') + n.id } }));
    } else if (!flat && this.hasContainers) {
      cell.appendChild(h('span', { class: 'twisty-pad' }));
    }
    const nm = h('span', { class: 'nm' });
    const prefix = flat && n.id !== n.name && n.id.endsWith(n.name) ? n.id.slice(0, n.id.length - n.name.length) : '';
    if (prefix) nm.appendChild(h('span', { class: 'path-prefix' }, prefix));
    nm.appendChild(document.createTextNode(flat && !prefix ? n.id : n.name));
    cell.appendChild(nm);
    this.badges(n, cell, isC);
    this.colourMark(n, cell);
    return h('td', { class: 'name' }, cell);
  }

  private badges(n: ArchNode, cell: HTMLElement, isC: boolean): void {
    if (isC) {
      const kids = this.idx.children.get(n.id)?.length || 0;
      cell.appendChild(h('span', { class: 'badge', title: 'container: its params are the sum over its subtree' }, kids + (kids === 1 ? ' child' : ' children')));
    }
    if (typeof n.calls === 'number' && n.calls > 1) {
      cell.appendChild(h('span', { class: 'badge', title: 'shared layer: called ' + n.calls + ' times, params counted once' }, '×' + n.calls));
    }
    if (this.opts.filterLayers?.has(n.id) && this.opts.onShowFilters) {
      cell.appendChild(button('filters', (e) => { e.stopPropagation(); this.opts.onShowFilters!(n.id); },
        { class: 'pill', title: 'show what the filters of ' + n.name + ' respond to', dataset: { action: 'filters' } }));
    }
  }

  private exportAs(kind: 'csv' | 'md', base: string): void {
    const shown = new Set(this.entries);
    const nodes = this.sortKey ? this.entries : this.idx.order.filter((n) => !this.query || shown.has(n));
    const env: CellEnv = { idx: this.idx, expanded: null };
    if (kind === 'csv') downloadText(toCSV(this.visibleCols(), nodes, env), base + '_layers.csv', 'text/csv');
    else downloadText(toMarkdown(this.visibleCols(), nodes, env), base + '_layers.md', 'text/markdown');
  }

  focusNode(id: string): void {
    if (!this.idx.byId.has(id)) return;
    for (const a of this.idx.ancestors(id)) this.expanded.add(a);
    this.fold.reveal(id);
    this.selected = id;
    this.refresh();
    this.virt.scrollTo(this.entries.findIndex((n) => n.id === id));
  }

  destroy(): void {
    window.clearTimeout(this.searchTimer);
    this.colourBy?.destroy();
    this.virt.destroy();
    this.root.remove();
  }
}
