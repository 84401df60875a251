// The graph view of the Arch Viz tab: layered layout (dagre, in a worker for big graphs),
// collapsible containers, pan / zoom / fit, search, detail panel, trace, keyboard shortcuts,
// SVG / PNG / JSON export, colours by layer type, light and dark themes, compare-mode marks.
//
// Entry point: mountGraphView(container, arch, opts). Strings from the model are always set as
// text (textContent / setAttribute), never parsed as HTML.
import type { Architecture, DiffResponse, NodeChange } from '../types';
import { GraphModel, GNode, Visible } from './model';
import type { Direction, ScopeLayout } from './layout';
import { LATER_MIN_ITEMS, runLayout, warmWorker, workerState, WORKER_MIN_ITEMS } from './layout_client';
import { buildJob, compose, Geometry, SPACING } from './geometry';
import {
  BoxText, DEFAULT_LABELS, edgeLabel, fmtInt, fmtShort, groupTitle, LABEL_NAMES, LabelOpts,
  layoutBox, Measurer, nodeLines,
} from './labels';
import { Renderer } from './render';
import type { DiffMark, EdgePath, EdgeState, NodeBox, NodeState } from './draw';
import { diffColor } from './draw';
import {
  CATEGORY_LABELS, Category, chromeVars, DARK, injectCss, isDarkMode, LIGHT, Palette, watchTheme,
} from './style';
import { renderPanel } from './panel';
import { Minimap } from './minimap';
import { buildSvg, download, fileBase, svgText, svgToPng } from './export';

export interface GraphViewOptions {
  onSelectNode?: (id: string) => void;
  onShowFilters?: (nodeId: string) => void;
  filterLayers?: Set<string>;
  diff?: DiffResponse;
  side?: 'a' | 'b';
}

export interface GraphViewHandle {
  destroy(): void;
  focusNode(id: string): void;
}

// Start the layout worker as soon as the dashboard loads: its script loads and warms up while the
// dashboard fetches the runs and the architecture.
try { warmWorker(); } catch (_) { /* laid out on the main thread then */ }

export function mountGraphView(container: HTMLElement, arch: Architecture, opts: GraphViewOptions = {}): GraphViewHandle {
  const view = new GraphView(container, arch, opts);
  return { destroy: () => view.destroy(), focusNode: (id: string) => view.focusNode(id) };
}

const STORE = 'archviz.graph.';
let instances = 0;

function load<T>(key: string, dflt: T): T {
  try {
    const v = window.localStorage.getItem(STORE + key);
    if (v == null) return dflt;
    const parsed = JSON.parse(v);
    if (typeof dflt === 'object' && dflt && typeof parsed === 'object' && parsed) return { ...dflt, ...parsed };
    return typeof parsed === typeof dflt ? parsed : dflt;
  } catch (_) { return dflt; }
}

function save(key: string, v: unknown): void {
  try { window.localStorage.setItem(STORE + key, JSON.stringify(v)); } catch (_) { /* ignore */ }
}

type TraceDir = 'up' | 'down' | 'both';

class GraphView {
  private doc: Document;
  private win: Window;
  private model: GraphModel;
  private torch: boolean;
  private pal: Palette;
  private labels: LabelOpts;
  private dir: Direction;
  private expanded: Set<string>;
  private cache = new Map<string, ScopeLayout>();
  private texts = new Map<string, BoxText>();
  private measurer = new Measurer();
  private vis: Visible | null = null;
  private geom: Geometry | null = null;
  private seq = 0;
  private destroyed = false;
  private disposers: (() => void)[] = [];
  private needsFit = true;

  private selected: string | null = null;
  private matches: GNode[] = [];
  private matchIds = new Set<string>();
  private matchIdx = -1;
  private trace: { id: string; dir: TraceDir; set: Set<string> } | null = null;
  private focusCat: Category | null = null;
  private diffMarks = new Map<string, DiffMark>();
  private changes = new Map<string, NodeChange>();
  private diffEdges = new Map<string, 'added' | 'removed'>();
  private filterLayers: Set<string>;

  // DOM
  private root!: HTMLDivElement;
  private canvas!: HTMLDivElement;
  private panel!: HTMLDivElement;
  private legend!: HTMLDivElement;
  private help!: HTMLDivElement;
  private status!: HTMLDivElement;
  private search!: HTMLInputElement;
  private results!: HTMLDivElement;
  private count!: HTMLSpanElement;
  private dirBtn!: HTMLButtonElement;
  private renderer!: Renderer;
  private minimap!: Minimap;
  private markerBase: string;

  constructor(private container: HTMLElement, private arch: Architecture, private opts: GraphViewOptions) {
    const t0 = performance.now();
    this.doc = container.ownerDocument;
    this.win = this.doc.defaultView || window;
    warmWorker();
    this.markerBase = 'avg-m' + (++instances);
    this.model = new GraphModel(arch);
    this.torch = arch && arch.framework === 'torch';
    this.pal = isDarkMode() ? DARK : LIGHT;
    this.labels = load<LabelOpts>('labels', { ...DEFAULT_LABELS });
    this.dir = load<Direction>('dir', 'TB') === 'LR' ? 'LR' : 'TB';
    this.expanded = this.model.defaultExpanded();
    this.filterLayers = opts.filterLayers || new Set();
    this.computeDiff();
    injectCss(this.doc);
    this.buildDom();
    this.root.setAttribute('data-model-ms', (performance.now() - t0).toFixed(1));
    this.root.setAttribute('data-mount-at', (performance.timeOrigin + t0).toFixed(1));
    void this.relayout({ fit: true });
  }

  // ---------------------------------------------------------------------------------- DOM
  private h<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, txt?: string): HTMLElementTagNameMap[K] {
    const e = this.doc.createElement(tag);
    if (cls) e.className = cls;
    if (txt !== undefined) e.textContent = txt;
    return e;
  }

  private btn(label: string, title: string, testid: string, fn: () => void): HTMLButtonElement {
    const b = this.h('button', 'avg-btn', label);
    b.type = 'button';
    b.title = title;
    b.setAttribute('data-testid', testid);
    b.addEventListener('click', (ev) => { ev.stopPropagation(); fn(); });
    return b;
  }

  private buildDom(): void {
    const root = this.h('div', 'avg-root');
    this.root = root;
    root.setAttribute('data-testid', 'graph-view');
    root.setAttribute('data-render-complete', '0');
    root.tabIndex = -1;
    this.applyTheme();

    // toolbar
    const bar = this.h('div', 'avg-toolbar');
    const sWrap = this.h('div', 'avg-search');
    this.search = this.h('input');
    this.search.type = 'search';
    this.search.placeholder = 'Search name or type  ( / )';
    this.search.setAttribute('data-testid', 'graph-search');
    this.search.setAttribute('aria-label', 'Search layers by name or type');
    this.count = this.h('span', 'avg-count');
    this.count.setAttribute('data-testid', 'graph-search-count');
    this.results = this.h('div', 'avg-results');
    this.results.setAttribute('data-testid', 'graph-search-results');
    sWrap.append(this.search, this.results);
    const prev = this.btn('‹', 'Previous match (Shift+Enter)', 'graph-search-prev', () => this.step(-1));
    const next = this.btn('›', 'Next match (Enter)', 'graph-search-next', () => this.step(1));
    bar.append(sWrap, prev, next, this.count, this.sep());
    let timer = 0;
    this.search.addEventListener('input', () => {
      this.win.clearTimeout(timer);
      timer = this.win.setTimeout(() => this.runSearch(), this.model.list.length > 3000 ? 150 : 40);
    });
    this.search.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') { ev.preventDefault(); this.win.clearTimeout(timer); if (this.search.value.trim() !== this.lastQuery) this.runSearch(); this.step(ev.shiftKey ? -1 : 1); }
      else if (ev.key === 'Escape') { ev.preventDefault(); this.clearSearch(); this.root.focus(); }
      else if (ev.key === 'ArrowDown') { ev.preventDefault(); this.step(1); }
      else if (ev.key === 'ArrowUp') { ev.preventDefault(); this.step(-1); }
    });
    this.search.addEventListener('focus', () => { if (this.matches.length) this.results.classList.add('avg-open'); });
    this.search.addEventListener('blur', () => this.win.setTimeout(() => this.results.classList.remove('avg-open'), 200));

    bar.append(
      this.btn('Fit', 'Fit to screen (F)', 'graph-fit', () => this.fit()),
      this.btn('Expand all', 'Expand every container (Shift+E)', 'graph-expand-all', () => this.expandAll()),
      this.btn('Collapse all', 'Collapse every container (Shift+C)', 'graph-collapse-all', () => this.collapseAll()),
    );
    this.dirBtn = this.btn('', 'Direction: top-to-bottom or left-to-right (L)', 'graph-direction', () => this.toggleDir());
    this.updateDirBtn();
    bar.append(this.dirBtn);
    bar.append(this.menu('Labels ▾', 'graph-labels', (pop) => {
      for (const [key, name] of LABEL_NAMES) {
        const lab = this.h('label');
        const cb = this.h('input');
        cb.type = 'checkbox';
        cb.checked = this.labels[key];
        cb.setAttribute('data-label', key);
        cb.addEventListener('change', () => this.setLabel(key, cb.checked));
        lab.append(cb, this.doc.createTextNode(name));
        pop.appendChild(lab);
      }
    }));
    bar.append(this.menu('Export ▾', 'graph-export', (pop) => {
      pop.append(
        this.btn('SVG (current view)', 'Download the graph as SVG', 'graph-export-svg', () => this.exportSvg()),
        this.btn('PNG (current view)', 'Download the graph as PNG', 'graph-export-png', () => { void this.exportPng(); }),
        this.btn('Architecture JSON', 'Download the architecture as JSON', 'graph-export-json', () => this.exportJson()),
      );
    }));
    bar.append(this.btn('?', 'Keyboard shortcuts (?)', 'graph-help', () => this.toggleHelp()));
    const info = this.h('span', 'avg-count');
    const m = this.arch.model || ({} as Architecture['model']);
    const layers = this.model.list.filter((g) => !g.isGroup).length;
    info.textContent = `${String(m.name ?? '')} · ${fmtInt(layers)} layers · ${fmtShort(Number(m.total_params) || 0)} params`;
    info.title = `${fmtInt(Number(m.total_params) || 0)} parameters (${fmtInt(Number(m.trainable_params) || 0)} trainable)`;
    info.style.marginLeft = 'auto';
    info.setAttribute('data-testid', 'graph-info');
    bar.append(info);
    root.appendChild(bar);
    if (this.model.problems.length) {
      const w = this.h('div', 'avg-warn', `${this.model.problems.length} problem(s) in this architecture: ${this.model.problems.slice(0, 3).join('; ')}`);
      root.appendChild(w);
    }

    // main area
    const main = this.h('div', 'avg-main');
    this.canvas = this.h('div', 'avg-canvas');
    this.canvas.tabIndex = 0;
    this.canvas.setAttribute('data-testid', 'graph-canvas');
    this.canvas.setAttribute('aria-label', 'Model graph; press ? for keyboard shortcuts');
    this.status = this.h('div', 'avg-status');
    this.status.setAttribute('data-testid', 'graph-status');
    this.canvas.appendChild(this.status);
    this.legend = this.h('div', 'avg-legend');
    this.legend.setAttribute('data-testid', 'graph-legend');
    this.canvas.appendChild(this.legend);
    const zoom = this.h('div', 'avg-zoom');
    zoom.append(
      this.btn('+', 'Zoom in (+)', 'graph-zoom-in', () => this.zoomBy(1.25)),
      this.btn('−', 'Zoom out (−)', 'graph-zoom-out', () => this.zoomBy(0.8)),
      this.btn('⤢', 'Fit to screen (F)', 'graph-zoom-fit', () => this.fit()),
    );
    this.canvas.appendChild(zoom);
    this.panel = this.h('div', 'avg-panel');
    this.panel.setAttribute('data-testid', 'graph-detail');
    main.append(this.canvas, this.panel);
    root.appendChild(main);

    // help overlay
    this.help = this.h('div', 'avg-help');
    this.help.setAttribute('data-testid', 'graph-help-overlay');
    const hb = this.h('div');
    hb.appendChild(this.h('h3', undefined, 'Keyboard shortcuts'));
    const tbl = this.h('table');
    const keys: [string, string][] = [
      ['F', 'fit the graph to the screen'], ['/', 'search by name or type'],
      ['Enter / Shift+Enter', 'next / previous match'], ['Esc', 'clear search, trace, selection; close'],
      ['+ / −, 0', 'zoom in / out, 100 %'], ['← ↑ → ↓', 'pan'],
      ['Shift+↑ / Shift+↓', 'select an input / an output of the selected node'],
      ['E', 'expand / collapse the selected container'], ['Shift+E / Shift+C', 'expand all / collapse all'],
      ['U / D / T', 'trace inputs / outputs / both of the selection'], ['L', 'top-to-bottom / left-to-right'],
      ['?', 'this help'],
    ];
    for (const [k, d] of keys) {
      const tr = this.h('tr');
      const tk = this.h('td'); tk.appendChild(this.h('kbd', undefined, k));
      tr.append(tk, this.h('td', undefined, d));
      tbl.appendChild(tr);
    }
    hb.appendChild(tbl);
    hb.appendChild(this.h('p', 'avg-count', 'Drag to pan, wheel to zoom, click a node for details, double-click a container to expand or collapse it.'));
    this.help.appendChild(hb);
    this.help.addEventListener('click', () => this.toggleHelp(false));
    root.appendChild(this.help);

    this.container.appendChild(root);
    this.renderer = new Renderer(this.doc, this.canvas, {
      palette: () => this.pal,
      nodeState: (b) => this.nodeState(b),
      edgeState: (e) => this.edgeState(e),
      edgeLabels: () => this.labels.edgeShapes,
    }, this.markerBase);
    // put the svg beneath the overlays
    this.canvas.insertBefore(this.renderer.svg, this.canvas.firstChild);
    this.minimap = new Minimap(this.doc, () => this.pal, (wx, wy) => {
      const { w, h } = this.renderer.size();
      const k = this.renderer.t.k;
      this.renderer.setTransform(w / 2 - wx * k, h / 2 - wy * k, k);
    });
    this.canvas.appendChild(this.minimap.el);
    this.renderer.onUpdate = () => {
      this.root.setAttribute('data-render-mode', this.renderer.mode);
      this.root.setAttribute('data-zoom', this.renderer.t.k.toFixed(3));
      this.minimap.draw(this.renderer.worldRect(0));
    };
    this.buildLegend();
    this.bindPointer();
    this.bindKeys();
    const ro = new ResizeObserver(() => {
      if (this.needsFit && this.geom && this.renderer.size().w > 0) this.initialView();
      else this.renderer.schedule();
    });
    ro.observe(this.canvas);
    this.disposers.push(() => ro.disconnect());
    this.disposers.push(watchTheme(() => {
      const p = isDarkMode() ? DARK : LIGHT;
      if (p === this.pal) return;
      this.pal = p;
      this.applyTheme();
      this.buildLegend();
      this.minimap.invalidate();
      this.renderer.restyle();
      if (this.selected) this.showPanel();
    }));
  }

  private sep(): HTMLElement { return this.h('span', 'avg-sep'); }

  private menu(label: string, testid: string, fill: (pop: HTMLElement) => void): HTMLElement {
    const wrap = this.h('div', 'avg-menu');
    const pop = this.h('div', 'avg-menu-pop');
    pop.setAttribute('data-testid', testid + '-menu');
    const b = this.btn(label, label.replace(' ▾', ''), testid, () => {
      const open = !pop.classList.contains('avg-open');
      this.root.querySelectorAll('.avg-menu-pop.avg-open').forEach((e) => e.classList.remove('avg-open'));
      pop.classList.toggle('avg-open', open);
    });
    fill(pop);
    pop.addEventListener('click', (ev) => ev.stopPropagation());
    const close = (): void => pop.classList.remove('avg-open');
    this.doc.addEventListener('click', close);
    this.disposers.push(() => this.doc.removeEventListener('click', close));
    wrap.append(b, pop);
    return wrap;
  }

  private applyTheme(): void {
    const vars = chromeVars(this.pal);
    for (const k in vars) this.root.style.setProperty(k, vars[k]);
    this.root.classList.toggle('avg-dark', this.pal.dark);
    this.root.setAttribute('data-theme', this.pal.dark ? 'dark' : 'light');
  }

  private buildLegend(): void {
    const lg = this.legend;
    const wasClosed = lg.classList.contains('avg-closed');
    lg.textContent = '';
    const title = this.h('div', 'avg-lt');
    title.append(this.h('span', undefined, 'Layer types'), this.h('span', undefined, wasClosed ? '▸' : '▾'));
    title.addEventListener('click', () => { lg.classList.toggle('avg-closed'); this.buildLegend(); });
    lg.appendChild(title);
    const counts = new Map<Category, number>();
    for (const g of this.model.list) counts.set(g.cat, (counts.get(g.cat) || 0) + 1);
    const cats = (Object.keys(CATEGORY_LABELS) as Category[]).filter((c) => counts.get(c));
    for (const c of cats) {
      const li = this.h('div', 'avg-li');
      li.setAttribute('data-cat', c);
      li.setAttribute('aria-pressed', String(this.focusCat === c));
      const sw = this.h('span', 'avg-sw');
      sw.style.background = this.pal.cat[c];
      li.append(sw, this.doc.createTextNode(`${CATEGORY_LABELS[c]} (${counts.get(c)})`));
      li.title = 'Highlight this layer type';
      li.addEventListener('click', () => {
        this.focusCat = this.focusCat === c ? null : c;
        this.buildLegend();
        this.renderer.restyle();
      });
      lg.appendChild(li);
    }
    if (this.opts.diff && this.opts.side) {
      const marks: [DiffMark, string][] = this.opts.side === 'a'
        ? [['removed', 'only in A (removed)'], ['changed', 'changed'], ['renamed', 'renamed'], ['inside', 'contains changes']]
        : [['added', 'only in B (added)'], ['changed', 'changed'], ['renamed', 'renamed'], ['inside', 'contains changes']];
      const t2 = this.h('div', 'avg-lt', 'Compare');
      t2.style.marginTop = '6px';
      lg.appendChild(t2);
      for (const [mk, txt] of marks) {
        const li = this.h('div', 'avg-li');
        const sw = this.h('span', 'avg-sw');
        sw.style.background = 'transparent';
        sw.style.border = `2px ${mk === 'inside' ? 'dashed' : 'solid'} ${diffColor(this.pal, mk)}`;
        li.append(sw, this.doc.createTextNode(txt));
        lg.appendChild(li);
      }
    }
  }

  private updateDirBtn(): void {
    this.dirBtn.textContent = this.dir === 'TB' ? '↓ Top-down' : '→ Left-right';
  }

  // ------------------------------------------------------------------------------- diff
  private computeDiff(): void {
    const d = this.opts.diff; const side = this.opts.side;
    if (!d || !side) return;
    const mark = (id: string, m: DiffMark): void => { if (this.model.nodes.has(id)) this.diffMarks.set(id, m); };
    if (side === 'a') for (const id of d.removed || []) mark(id, 'removed');
    else for (const id of d.added || []) mark(id, 'added');
    for (const c of d.changed || []) {
      const id = side === 'a' ? c.id_a : c.id_b;
      if (!this.diffMarks.has(id)) mark(id, 'changed');
      this.changes.set(id, c);
    }
    for (const r of d.renamed || []) {
      const id = side === 'a' ? r.id_a : r.id_b;
      if (!this.diffMarks.has(id)) mark(id, 'renamed');
    }
    const es = side === 'a' ? d.edges_removed : d.edges_added;
    for (const e of es || []) this.diffEdges.set(e.source + '\u0000' + e.target, side === 'a' ? 'removed' : 'added');
    // containers holding a changed node say so when collapsed
    for (const id of [...this.diffMarks.keys()]) {
      const g = this.model.nodes.get(id);
      for (let p = g ? g.parent : null; p; p = p.parent) if (!this.diffMarks.has(p.id)) this.diffMarks.set(p.id, 'inside');
    }
  }

  // ----------------------------------------------------------------------------- states
  private nodeState(b: NodeBox): NodeState {
    const g = b.g;
    let diff = this.diffMarks.get(g.id) || null;
    if (diff === 'inside' && b.open) diff = null;
    return {
      selected: this.selected === g.id,
      match: this.matchIds.has(g.id) || (!b.open && g.isGroup && this.hiddenMatch(g)),
      dim: (this.trace !== null && !this.trace.set.has(g.id)) || (this.focusCat !== null && g.cat !== this.focusCat && !b.open),
      traced: this.trace !== null && this.trace.set.has(g.id) && this.trace.id !== g.id && !b.open,
      diff,
      filters: this.filterLayers.has(g.id),
    };
  }

  private matchRepsFor: [Visible | null, Set<string> | null] = [null, null];
  private matchRepsSet = new Set<string>();

  /** Is a search match hidden inside this collapsed container? */
  private hiddenMatch(g: GNode): boolean {
    if (!this.matchIds.size || !this.vis) return false;
    if (this.matchRepsFor[0] !== this.vis || this.matchRepsFor[1] !== this.matchIds) {
      this.matchRepsSet = new Set();
      for (const id of this.matchIds) { const r = this.vis.rep.get(id); if (r) this.matchRepsSet.add(r.id); }
      this.matchRepsFor = [this.vis, this.matchIds];
    }
    return this.matchRepsSet.has(g.id);
  }

  private edgeState(e: EdgePath): EdgeState {
    let hi = false; let dim = false;
    if (this.trace) {
      const s = this.trace.set;
      hi = e.ve.edges.some((x) => s.has(x.s.id) && s.has(x.t.id));
      dim = !hi;
    } else if (this.selected) {
      hi = e.ve.s.id === this.selected || e.ve.t.id === this.selected;
    }
    let diff: 'added' | 'removed' | null = null;
    if (this.diffEdges.size) {
      for (const x of e.ve.edges) {
        const d = this.diffEdges.get(x.s.id + '\u0000' + x.t.id);
        if (d) { diff = d; break; }
      }
    }
    if (this.focusCat && !hi) dim = true;
    return { hi, dim, diff };
  }

  // ----------------------------------------------------------------------------- layout
  private boxText(g: GNode): BoxText {
    let t = this.texts.get(g.id);
    if (!t) {
      const extra = (g.isGroup ? 24 : 0) + (this.diffMarks.has(g.id) ? 16 : 0) + (this.filterLayers.has(g.id) ? 16 : 0);
      t = layoutBox(nodeLines(g, this.labels, this.torch), this.measurer, extra);
      if (g.isGroup) t = { ...t, w: t.w + 4, h: t.h + 4 };
      this.texts.set(g.id, t);
    }
    return t;
  }

  private status_(msg: string | null): void {
    this.status.textContent = msg || '';
    this.status.classList.toggle('avg-open', !!msg);
  }

  /** Recompute the visible graph, lay it out (cached per scope), draw. */
  private async relayout(o: { fit?: boolean; anchor?: string; center?: string } = {}): Promise<void> {
    const seq = ++this.seq;
    const t0 = performance.now();
    this.root.setAttribute('data-render-complete', '0');
    const vis = this.model.visible(this.expanded);
    const sizer = {
      box: (g: GNode) => { const t = this.boxText(g); return { w: t.w, h: t.h }; },
      groupMinW: (g: GNode) => Math.min(900, Math.ceil(this.measurer.width(groupTitle(g), true)) + 44),
    };
    // left-to-right, the tensor shapes sit between the ranks: give them room
    const spacing = this.dir === 'LR' && this.labels.edgeShapes ? { ...SPACING, rank: 120 } : SPACING;
    const { job, keyOf } = buildJob(vis, this.dir, sizer, this.cache, seq, spacing);
    this.root.setAttribute('data-prepare-ms', (performance.now() - t0).toFixed(1));
    const items = job.scopes.reduce((s, sc) => s + sc.n, 0);
    const slow = this.win.setTimeout(() => this.status_(`Laying out ${fmtInt(items)} nodes…`), 120);
    const anchorBefore = o.anchor ? this.screenBox(o.anchor) : null;
    const inWorker = items >= (this.geom ? LATER_MIN_ITEMS : WORKER_MIN_ITEMS);
    let result;
    try {
      result = await runLayout(job, inWorker);
    } catch (e) {
      this.win.clearTimeout(slow);
      this.status_('Layout failed: ' + String((e as Error)?.message || e));
      return;
    }
    this.win.clearTimeout(slow);
    if (this.destroyed || seq !== this.seq) return;
    this.status_(null);
    for (const s of result.scopes) this.cache.set(s.key, s);
    if (this.cache.size > 20000) this.cache.clear();
    const t1 = performance.now();
    const geom = compose(vis, keyOf, this.cache, this.dir, (g) => this.boxText(g), groupTitle,
      (ve) => edgeLabel(ve, this.torch));
    this.vis = vis;
    this.geom = geom;
    this.root.setAttribute('data-layout-ms', result.ms.toFixed(1));
    this.root.setAttribute('data-layout-wait-ms', (t1 - t0).toFixed(1));
    this.root.setAttribute('data-layout-where', inWorker && workerState() === 'ok' ? 'worker' : 'main');
    this.root.setAttribute('data-layout-items', String(items));
    this.root.setAttribute('data-visible-nodes', String(vis.items.length));
    this.root.setAttribute('data-visible-groups', String(vis.groups.length));
    this.root.setAttribute('data-total-nodes', String(this.model.list.length));
    this.root.setAttribute('data-direction', this.dir);
    // keep the view steady: the anchor stays where it was on screen
    if (o.fit || (this.needsFit && !o.anchor && !o.center)) {
      this.renderer.geom = geom;
      if (this.renderer.size().w > 0) this.initialView(o.fit && !this.needsFit);
    } else if (anchorBefore && geom.byId.has(o.anchor!)) {
      const b = geom.byId.get(o.anchor!)!;
      const k = this.renderer.t.k;
      this.renderer.setTransform(anchorBefore.x - b.x * k, anchorBefore.y - b.y * k, k);
    }
    this.minimap.setGeometry(geom);
    this.renderer.setGeometry(geom);
    if (o.center) this.centerOn(o.center);
    if (this.selected && !geom.byId.has(this.selected)) this.select(null);
    this.root.setAttribute('data-compose-ms', (performance.now() - t1).toFixed(1));
    this.root.setAttribute('data-rendered-nodes', String(this.renderer.renderedNodeCount()));
    // "complete": laid out, drawn, and one frame presented
    this.win.requestAnimationFrame(() => {
      this.win.setTimeout(() => {
        if (seq !== this.seq || this.destroyed) return;
        this.root.setAttribute('data-render-ms', (performance.now() - t0).toFixed(1));
        // epoch milliseconds, comparable across frames (benchmarks)
        this.root.setAttribute('data-complete-at', (performance.timeOrigin + performance.now()).toFixed(1));
        this.root.setAttribute('data-render-complete', '1');
      }, 0);
    });
  }

  private screenBox(id: string): { x: number; y: number } | null {
    const b = this.geom?.byId.get(id);
    if (!b) return null;
    const t = this.renderer.t;
    return { x: b.x * t.k + t.x, y: b.y * t.k + t.y };
  }

  // --------------------------------------------------------------------------- viewport
  private initialView(forceFit = false): void {
    const g = this.geom;
    if (!g) return;
    const { w, h } = this.renderer.size();
    if (w <= 0 || h <= 0) { this.needsFit = true; return; }
    this.needsFit = false;
    const fitK = Math.min(w / g.w, h / g.h, 1.2);
    if (forceFit || fitK >= 0.55) { this.fit(); return; }
    // A tall (or long) graph: start readable at its inputs, like a document.
    const tb = this.dir === 'TB';
    const k = Math.max(0.55, Math.min(1, tb ? w / g.w : h / g.h));
    const first = this.model.roots.length ? g.byId.get(this.vis!.rep.get(this.firstInput())!.id) : null;
    if (tb) {
      const cx = g.w * k <= w ? (w - g.w * k) / 2 : first ? w / 2 - (first.x + first.w / 2) * k : 0;
      this.renderer.setTransform(cx, 8, k);
    } else {
      const cy = g.h * k <= h ? (h - g.h * k) / 2 : first ? h / 2 - (first.y + first.h / 2) * k : 0;
      this.renderer.setTransform(8, cy, k);
    }
  }

  private firstInput(): string {
    const ins = Array.isArray(this.arch.inputs) ? this.arch.inputs.filter((i) => this.model.nodes.has(i)) : [];
    return ins[0] || this.model.roots[0].id;
  }

  fit(): void {
    const g = this.geom;
    if (!g) return;
    const { w, h } = this.renderer.size();
    if (w <= 0 || h <= 0) { this.needsFit = true; return; }
    this.needsFit = false;
    const k = Math.max(0.01, Math.min(w / g.w, h / g.h, 1.2));
    this.renderer.setTransform((w - g.w * k) / 2, (h - g.h * k) / 2, k);
  }

  private zoomBy(f: number, sx?: number, sy?: number): void {
    const { w, h } = this.renderer.size();
    const t = this.renderer.t;
    const k = Math.max(0.01, Math.min(4, t.k * f));
    const px = sx ?? w / 2; const py = sy ?? h / 2;
    const wx = (px - t.x) / t.k; const wy = (py - t.y) / t.k;
    this.renderer.setTransform(px - wx * k, py - wy * k, k);
  }

  private panBy(dx: number, dy: number): void {
    const t = this.renderer.t;
    this.renderer.setTransform(t.x + dx, t.y + dy, t.k);
  }

  private centerOn(id: string, minK = 0.8): void {
    const b = this.geom?.byId.get(id);
    if (!b) return;
    const { w, h } = this.renderer.size();
    let k = this.renderer.t.k;
    if (k < minK) k = Math.min(1, Math.max(minK, k));
    // a big open group: fit it instead
    if (b.w * k > w * 0.9 || b.h * k > h * 0.9) k = Math.max(0.05, Math.min(w * 0.9 / b.w, h * 0.9 / b.h, k));
    this.renderer.setTransform(w / 2 - (b.x + b.w / 2) * k, h / 2 - (b.y + b.h / 2) * k, k);
  }

  // ------------------------------------------------------------------------- interaction
  private bindPointer(): void {
    const c = this.canvas;
    let drag: { x: number; y: number; tx: number; ty: number; moved: boolean; id: number } | null = null;
    let suppressClick = false;
    c.addEventListener('pointerdown', (ev) => {
      if (ev.button !== 0) return;
      const target = ev.target as Element;
      if (target.closest('.avg-legend,.avg-zoom,.avg-status,.avg-minimap')) return;
      const t = this.renderer.t;
      drag = { x: ev.clientX, y: ev.clientY, tx: t.x, ty: t.y, moved: false, id: ev.pointerId };
      suppressClick = false;
    });
    c.addEventListener('pointermove', (ev) => {
      if (!drag || ev.pointerId !== drag.id) return;
      const dx = ev.clientX - drag.x; const dy = ev.clientY - drag.y;
      if (!drag.moved && Math.abs(dx) + Math.abs(dy) > 4) {
        drag.moved = true;
        c.classList.add('avg-dragging');
        try { c.setPointerCapture(ev.pointerId); } catch (_) { /* ignore */ }
      }
      if (drag.moved) this.renderer.setTransform(drag.tx + dx, drag.ty + dy, this.renderer.t.k);
    });
    const end = (ev: PointerEvent): void => {
      if (!drag || ev.pointerId !== drag.id) return;
      suppressClick = drag.moved;
      drag = null;
      c.classList.remove('avg-dragging');
    };
    c.addEventListener('pointerup', end);
    c.addEventListener('pointercancel', end);
    c.addEventListener('wheel', (ev) => {
      ev.preventDefault();
      const rect = c.getBoundingClientRect();
      let dy = ev.deltaY;
      if (ev.deltaMode === 1) dy *= 16; else if (ev.deltaMode === 2) dy *= 400;
      if (ev.ctrlKey || ev.metaKey || !ev.shiftKey) {
        this.zoomBy(Math.exp(-dy * (ev.ctrlKey ? 0.01 : 0.0015)), ev.clientX - rect.left, ev.clientY - rect.top);
      } else {
        this.panBy(-ev.deltaX, -dy);
      }
    }, { passive: false });
    c.addEventListener('click', (ev) => {
      if (suppressClick) { suppressClick = false; return; }
      const target = ev.target as Element;
      if (target.closest('.avg-legend,.avg-zoom,.avg-status')) return;
      c.focus({ preventScroll: true });
      const tg = target.closest('[data-toggle]');
      if (tg) { this.toggleGroup(tg.getAttribute('data-toggle')!); return; }
      const id = this.pick(ev);
      this.select(id, true);
    });
    c.addEventListener('dblclick', (ev) => {
      const target = ev.target as Element;
      if (target.closest('.avg-legend,.avg-zoom,[data-toggle]')) return;
      const id = this.pick(ev);
      const g = id ? this.model.nodes.get(id) : null;
      if (g && g.isGroup) this.toggleGroup(g.id);
      else if (!id) this.fit();
    });
  }

  /** The node under the pointer: from the DOM in detail mode, by geometry in overview. */
  private pick(ev: MouseEvent): string | null {
    const target = ev.target as Element;
    const hit = target.closest('.avg-node,.avg-group-head');
    if (hit) return hit.getAttribute('data-id');
    if (target.closest('.avg-group')) return null;
    if (this.renderer.mode === 'overview') {
      const rect = this.canvas.getBoundingClientRect();
      const [wx, wy] = this.renderer.toWorld(ev.clientX - rect.left, ev.clientY - rect.top);
      const b = this.renderer.hit(wx, wy);
      return b ? b.g.id : null;
    }
    return null;
  }

  private visibleNow(): boolean {
    return this.root.isConnected && this.root.getClientRects().length > 0;
  }

  private bindKeys(): void {
    const onKey = (ev: KeyboardEvent): void => {
      if (this.destroyed || !this.visibleNow()) return;
      const t = ev.target as HTMLElement | null;
      const inField = !!t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable);
      if (inField) return;
      // not when another graph view (compare mode) has the focus
      const active = this.doc.activeElement;
      if (active && active.closest('.avg-root') && !this.root.contains(active)) return;
      if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
      const k = ev.key;
      const step = ev.shiftKey ? 200 : 60;
      let handled = true;
      if (k === 'f' || k === 'F') this.fit();
      else if (k === '/') { this.search.focus(); this.search.select(); }
      else if (k === '?') this.toggleHelp();
      else if (k === 'Escape') this.escape();
      else if (k === '+' || k === '=') this.zoomBy(1.25);
      else if (k === '-' || k === '_') this.zoomBy(0.8);
      else if (k === '0') this.zoomTo100();
      else if (ev.shiftKey && (k === 'ArrowDown' || k === 'ArrowUp' || k === 'ArrowLeft' || k === 'ArrowRight') && this.selected) this.walk(k);
      else if (k === 'ArrowLeft') this.panBy(step, 0);
      else if (k === 'ArrowRight') this.panBy(-step, 0);
      else if (k === 'ArrowUp') this.panBy(0, step);
      else if (k === 'ArrowDown') this.panBy(0, -step);
      else if (k === 'E') this.expandAll();
      else if (k === 'C') this.collapseAll();
      else if (k === 'e' && this.selected) this.toggleGroup(this.selected);
      else if ((k === 'u' || k === 'U') && this.selected) this.setTrace(this.selected, 'up');
      else if ((k === 'd' || k === 'D') && this.selected) this.setTrace(this.selected, 'down');
      else if ((k === 't' || k === 'T') && this.selected) this.setTrace(this.selected, 'both');
      else if (k === 'l' || k === 'L') this.toggleDir();
      else if (k === 'n') this.step(1);
      else if (k === 'N') this.step(-1);
      else handled = false;
      if (handled) { ev.preventDefault(); ev.stopPropagation(); }
    };
    this.doc.addEventListener('keydown', onKey);
    this.disposers.push(() => this.doc.removeEventListener('keydown', onKey));
  }

  private zoomTo100(): void {
    const { w, h } = this.renderer.size();
    const t = this.renderer.t;
    this.zoomBy(1 / t.k, w / 2, h / 2);
  }

  /** Shift+arrows: move the selection to an input (up / left) or an output (down / right). */
  private walk(key: string): void {
    const id = this.selected!;
    const back = this.dir === 'TB' ? key === 'ArrowUp' : key === 'ArrowLeft';
    const fwd = this.dir === 'TB' ? key === 'ArrowDown' : key === 'ArrowRight';
    if (!back && !fwd) return;
    const ve = this.geom?.edges.map((e) => e.ve) || [];
    const next = back ? ve.find((e) => e.t.id === id)?.s : ve.find((e) => e.s.id === id)?.t;
    if (next) { this.select(next.id, true); this.centerOn(next.id, this.renderer.t.k); }
  }

  private escape(): void {
    if (this.help.classList.contains('avg-open')) { this.toggleHelp(false); return; }
    if (this.root.querySelector('.avg-menu-pop.avg-open')) {
      this.root.querySelectorAll('.avg-menu-pop.avg-open').forEach((e) => e.classList.remove('avg-open'));
      return;
    }
    if (this.matches.length || this.search.value) { this.clearSearch(); return; }
    if (this.trace) { this.setTrace(null); return; }
    if (this.focusCat) { this.focusCat = null; this.buildLegend(); this.renderer.restyle(); return; }
    if (this.selected) { this.select(null); }
  }

  private toggleHelp(open?: boolean): void {
    const o = open ?? !this.help.classList.contains('avg-open');
    this.help.classList.toggle('avg-open', o);
  }

  // --------------------------------------------------------------------- expand / collapse
  private toggleGroup(id: string): void {
    const g = this.model.nodes.get(id);
    if (!g || !g.isGroup) return;
    if (this.expanded.has(id)) this.expanded.delete(id); else this.expanded.add(id);
    this.root.setAttribute('data-expanded', String(this.expanded.size));
    void this.relayout({ anchor: id });
    if (this.selected === id) this.showPanel();
  }

  private expandAll(): void {
    for (const g of this.model.list) if (g.isGroup) this.expanded.add(g.id);
    void this.relayout({ fit: true });
  }

  private collapseAll(): void {
    this.expanded.clear();
    void this.relayout({ fit: true });
  }

  private toggleDir(): void {
    this.dir = this.dir === 'TB' ? 'LR' : 'TB';
    save('dir', this.dir);
    this.updateDirBtn();
    this.needsFit = true;
    void this.relayout({ fit: false });
  }

  private setLabel(key: keyof LabelOpts, on: boolean): void {
    this.labels = { ...this.labels, [key]: on };
    save('labels', this.labels);
    this.texts.clear();
    if (key === 'edgeShapes' && this.dir === 'TB') { this.renderer.restyle(); return; }
    void this.relayout({ anchor: this.selected || undefined });
  }

  /** Expand the containers that hide a node. Returns true when a new layout is needed. */
  private reveal(id: string): boolean {
    const g = this.model.nodes.get(id);
    if (!g) return false;
    let changed = false;
    for (const a of this.model.ancestors(g)) if (!this.expanded.has(a.id)) { this.expanded.add(a.id); changed = true; }
    return changed;
  }

  // ------------------------------------------------------------------------- selection
  private select(id: string | null, notify = false): void {
    if (id === this.selected) { if (id) this.showPanel(); return; }
    this.selected = id;
    this.root.setAttribute('data-selected', id || '');
    this.showPanel();
    this.renderer.restyle();
    if (id && notify && this.opts.onSelectNode) {
      try { this.opts.onSelectNode(id); } catch (e) { console.error(e); }
    }
  }

  private showPanel(): void {
    const id = this.selected;
    const g = id ? this.model.nodes.get(id) : null;
    if (!g) { this.panel.classList.remove('avg-open'); this.panel.textContent = ''; this.renderer.schedule(); return; }
    renderPanel(this.panel, g, {
      model: this.model, torch: this.torch, palette: this.pal, expanded: this.expanded.has(g.id),
      diff: this.diffMarks.get(g.id) || null, change: this.changes.get(g.id) || null,
      hasFilters: this.filterLayers.has(g.id),
      traceDir: this.trace && this.trace.id === g.id ? this.trace.dir : null,
    }, {
      jump: (x) => this.jumpTo(x),
      toggle: (x) => this.toggleGroup(x),
      trace: (x, d) => this.setTrace(this.trace && this.trace.id === x && this.trace.dir === d ? null : x, d),
      center: (x) => this.centerOn(x),
      close: () => this.select(null),
      showFilters: this.opts.onShowFilters ? (x) => {
        try { this.opts.onShowFilters!(x); } catch (e) { console.error(e); }
      } : null,
    });
    this.panel.classList.add('avg-open');
    this.renderer.schedule();
  }

  private setTrace(id: string | null, dir: TraceDir = 'both'): void {
    if (!id) this.trace = null;
    else {
      const set = dir === 'up' ? this.model.trace(id, -1) : dir === 'down' ? this.model.trace(id, 1)
        : new Set([...this.model.trace(id, -1), ...this.model.trace(id, 1)]);
      // containers of traced nodes stay lit
      for (const x of [...set]) {
        const g = this.model.nodes.get(x);
        for (let p = g ? g.parent : null; p && !set.has(p.id); p = p.parent) set.add(p.id);
      }
      this.trace = { id, dir, set };
    }
    this.root.setAttribute('data-trace', this.trace ? `${this.trace.dir}:${this.trace.set.size}` : '');
    this.renderer.restyle();
    this.showPanel();
  }

  /** Reveal, centre and select a node. */
  private jumpTo(id: string): void {
    if (!this.model.nodes.has(id)) return;
    if (this.reveal(id)) {
      this.selected = id;
      this.root.setAttribute('data-selected', id);
      this.showPanel();   // first, so that centring uses the canvas width left beside the panel
      void this.relayout({ center: id }).then(() => this.notifySelect(id));
      return;
    }
    this.centerOn(id);
    this.select(id, true);
  }

  private notifySelect(id: string): void {
    if (this.opts.onSelectNode) { try { this.opts.onSelectNode(id); } catch (e) { console.error(e); } }
  }

  focusNode(id: string): void {
    if (this.destroyed) return;
    if (!this.geom) { void Promise.resolve().then(() => this.waitAndFocus(id)); return; }
    this.jumpTo(id);
  }

  private waitAndFocus(id: string, tries = 0): void {
    if (this.destroyed) return;
    if (this.geom) this.jumpTo(id);
    else if (tries < 200) this.win.setTimeout(() => this.waitAndFocus(id, tries + 1), 25);
  }

  // ----------------------------------------------------------------------------- search
  private lastQuery = '';

  private runSearch(): void {
    const q = this.search.value.trim();
    this.lastQuery = q;
    this.matches = this.model.search(q);
    this.matchIds = new Set(this.matches.map((g) => g.id));
    this.matchIdx = -1;
    this.results.textContent = '';
    this.root.setAttribute('data-matches', String(this.matches.length));
    if (!q) { this.count.textContent = ''; this.results.classList.remove('avg-open'); this.renderer.restyle(); return; }
    this.count.textContent = this.matches.length ? `${this.matches.length} found` : 'no match';
    const shown = this.matches.slice(0, 200);
    shown.forEach((g, i) => {
      const row = this.h('div');
      row.setAttribute('role', 'option');
      row.setAttribute('data-id', g.id);
      row.appendChild(this.doc.createTextNode(String(g.raw.name ?? g.id)));
      row.appendChild(this.h('span', 'avg-type', String(g.raw.class_name ?? '')));
      row.title = g.id;
      row.addEventListener('mousedown', (ev) => { ev.preventDefault(); this.matchIdx = i; this.gotoMatch(); });
      this.results.appendChild(row);
    });
    if (this.matches.length > shown.length) this.results.appendChild(this.h('div', 'avg-type', `… ${this.matches.length - shown.length} more (Enter to step through)`));
    this.results.classList.toggle('avg-open', this.matches.length > 0 && this.doc.activeElement === this.search);
    this.renderer.restyle();
  }

  private step(d: number): void {
    if (!this.matches.length) return;
    this.matchIdx = (this.matchIdx + d + this.matches.length) % this.matches.length;
    this.gotoMatch();
  }

  private gotoMatch(): void {
    const g = this.matches[this.matchIdx];
    if (!g) return;
    this.count.textContent = `${this.matchIdx + 1} / ${this.matches.length}`;
    this.results.querySelectorAll('[aria-selected]').forEach((e) => e.removeAttribute('aria-selected'));
    const row = this.results.children[this.matchIdx] as HTMLElement | undefined;
    if (row) { row.setAttribute('aria-selected', 'true'); row.scrollIntoView({ block: 'nearest' }); }
    this.jumpTo(g.id);
  }

  private clearSearch(): void {
    this.search.value = '';
    this.lastQuery = '';
    this.matches = [];
    this.matchIds = new Set();
    this.matchIdx = -1;
    this.count.textContent = '';
    this.results.textContent = '';
    this.results.classList.remove('avg-open');
    this.root.setAttribute('data-matches', '0');
    this.renderer.restyle();
  }

  // ----------------------------------------------------------------------------- export
  private exportHost() {
    return {
      palette: () => this.pal,
      nodeState: (b: NodeBox) => this.nodeState(b),
      edgeState: (e: EdgePath) => this.edgeState(e),
      edgeLabels: () => this.labels.edgeShapes,
    };
  }

  private baseName(): string {
    return fileBase(String(this.arch.model?.name ?? 'model'));
  }

  private exportSvg(): void {
    if (!this.geom) return;
    const svg = buildSvg(this.doc, this.geom, this.exportHost(), String(this.arch.model?.name ?? 'model'));
    download(this.doc, new Blob([svgText(svg)], { type: 'image/svg+xml' }), this.baseName() + '.svg');
  }

  private async exportPng(): Promise<void> {
    if (!this.geom) return;
    const g = this.geom;
    const svg = buildSvg(this.doc, g, this.exportHost(), String(this.arch.model?.name ?? 'model'));
    this.status_('Rendering PNG…');
    try {
      const blob = await svgToPng(this.doc, svgText(svg), g.w, g.h, this.pal.bg);
      download(this.doc, blob, this.baseName() + '.png');
      this.status_(null);
    } catch (e) {
      this.status_('PNG export failed: ' + String((e as Error)?.message || e));
    }
  }

  private exportJson(): void {
    download(this.doc, new Blob([JSON.stringify(this.arch, null, 2)], { type: 'application/json' }), this.baseName() + '.architecture.json');
  }

  // ---------------------------------------------------------------------------- teardown
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.seq++;
    this.renderer.cancel();
    for (const d of this.disposers) { try { d(); } catch (_) { /* ignore */ } }
    this.root.remove();
  }
}

