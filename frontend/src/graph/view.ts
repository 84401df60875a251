// The graph view: state (expanded containers, folds, selection, trace, options), the derived
// model, layout (cached per scope, in a worker for big graphs) and drawing. The chrome is built by
// toolbar.ts, input by input.ts, search by search.ts, the viewport by viewport.ts.
import type { Architecture } from '../types';
import { h } from '../dom';
import { fmtInt, fmtShort } from '../format';
import { layerCount } from '../arch_index';
import { isDark, onThemeChange } from '../theme';
import { GraphModel, GNode, Visible } from './model';
import type { Direction, ScopeLayout } from './layout';
import { LATER_MIN_ITEMS, runLayout, warmWorker, workerState, WORKER_MIN_ITEMS } from './layout_client';
import { buildJob, compose, Geometry, SPACING } from './geometry';
import { BoxText, DEFAULT_LABELS, edgeLabel, groupTitle, LabelOpts, layoutBox, Measurer, nodeLines } from './labels';
import { Renderer } from './render';
import { chromeVars, installGraphCss } from './style';
import { DARK, LIGHT, Palette } from '../common/palette';
import type { Category } from '../common/categories';
import { Minimap } from './minimap';
import { DEFAULT_DERIVE, DeriveOpts, Derived, deriveArch, deriveSteps } from './derive';
import { nextTask, runSliced } from '../common/slices';
import { Marks, computeMarks, nodeStateOf, edgeStateOf } from './marks';
import { Viewport } from './viewport';
import { SearchBox } from './search';
import { btn, buildHelp, buildToolbar, fillLegend } from './toolbar';
import { bindKeys, bindPointer } from './input';
import { wrapColumns } from './columns';
import { showPanelFor } from './selection';
import { exportJson, exportPng, exportSvg } from './export';
import type { GraphViewOptions } from './options';
import { reachCounts, reachLegend, reachOf, reachSummary } from '../gradient_overlay';
import type { GradientReach } from '../gradient_overlay';
import { ColourBy } from '../common/signals_colour_by';
import type { Colouring, SignalsSource } from '../common/signals_colour_by';

const STORE = 'archviz.graph.';
let instances = 0;

export function load<T>(key: string, dflt: T): T {
  try {
    const v = window.localStorage.getItem(STORE + key);
    if (v == null) return dflt;
    const parsed = JSON.parse(v);
    if (typeof dflt === 'object' && dflt && typeof parsed === 'object' && parsed) return { ...dflt, ...parsed };
    return typeof parsed === typeof dflt ? parsed : dflt;
  } catch (_) { return dflt; }
}

export function save(key: string, v: unknown): void {
  try { window.localStorage.setItem(STORE + key, JSON.stringify(v)); } catch (_) { /* ignore */ }
}

export type TraceDir = 'up' | 'down' | 'both';

export class GraphView {
  doc: Document;
  win: Window;
  derived!: Derived;
  model!: GraphModel;
  torch: boolean;
  pal: Palette;
  labels: LabelOpts;
  dopts: DeriveOpts;
  dir: Direction;
  expanded = new Set<string>();
  pick = new Map<string, number>();          // fold id -> shown member (-1: all)
  cache = new Map<string, ScopeLayout>();
  texts = new Map<string, BoxText>();
  measurer = new Measurer();
  vis: Visible | null = null;
  geom: Geometry | null = null;
  seq = 0;
  destroyed = false;
  disposers: (() => void)[] = [];
  needsFit = true;
  selected: string | null = null;
  trace: { id: string; dir: TraceDir; set: Set<string> } | null = null;
  focusCat: Category | null = null;
  marks!: Marks;
  /** "Preparing the graph…" until the model is derived (then the view's root) */
  pending: HTMLElement | null = null;
  /** Colour by (common/signals_colour_by.ts): null = the layer type colours */
  colouring: Colouring | null = null;
  filterLayers: Set<string>;
  reach: GradientReach | null;
  markerBase: string;
  /** called after every change of the transform (linked compare panes) */
  onView: (() => void) | null = null;
  onLayout: (() => void) | null = null;
  /** replaces "Fit" (linked compare panes fit both at one scale) */
  fitOverride: (() => void) | null = null;

  root!: HTMLDivElement;
  canvas!: HTMLDivElement;
  panel!: HTMLDivElement;
  legend!: HTMLDivElement;
  help!: HTMLElement;
  status!: HTMLDivElement;
  dirBtn!: HTMLButtonElement;
  search!: SearchBox;
  renderer!: Renderer;
  vp!: Viewport;
  minimap!: Minimap;

  constructor(private container: HTMLElement, readonly arch: Architecture, readonly opts: GraphViewOptions) {
    const t0 = performance.now();
    this.doc = container.ownerDocument;
    this.win = this.doc.defaultView || window;
    warmWorker();
    this.markerBase = 'avg-m' + (++instances);
    this.torch = arch && arch.framework === 'torch';
    this.pal = isDark() ? DARK : LIGHT;
    this.labels = load<LabelOpts>('labels', { ...DEFAULT_LABELS });
    this.dopts = load<DeriveOpts>('derive', { ...DEFAULT_DERIVE });
    this.dir = load<Direction>('dir', 'TB') === 'LR' ? 'LR' : 'TB';
    this.filterLayers = opts.filterLayers || new Set();
    this.reach = reachOf(arch);
    installGraphCss(this.doc);
    this.pending = h('div', { class: 'avg-preparing', attrs: { 'data-testid': 'graph-preparing', role: 'status' } },
      'Preparing the graph…');
    container.appendChild(this.pending);
    void this.init(t0);
  }

  /** Derive the drawn model in short tasks (a 5,000-node model never blocks the page for long),
   *  then the chrome and the first layout: the overview (folds closed) is drawn first. */
  private async init(t0: number): Promise<void> {
    try {
      this.derived = await runSliced(deriveSteps(this.arch, this.dopts), 40, () => !this.destroyed);
      await nextTask();
      if (this.destroyed) return;
      this.setModel();
      this.expanded = this.model.defaultExpanded();
      this.marks = computeMarks(this.model, this.opts.diff, this.opts.side);
      await nextTask();
      if (this.destroyed) return;
      this.pending?.remove();
      this.pending = null;
      this.buildDom();
    } catch (e) {
      if (this.destroyed) return;
      if (this.pending) this.pending.textContent = 'The graph view failed: ' + String((e as Error)?.message || e);
      return;
    }
    this.root.setAttribute('data-model-ms', (performance.now() - t0).toFixed(1));
    this.root.setAttribute('data-mount-at', (performance.timeOrigin + t0).toFixed(1));
    void this.relayout({ fit: true });
  }

  /** The drawn model from the architecture and the view options (fold, groups, ops). */
  rebuildModel(): void {
    this.derived = deriveArch(this.arch, this.dopts);
    this.setModel();
  }

  private setModel(): void {
    this.model = new GraphModel(this.derived.arch, this.derived.folds);
    this.texts.clear();
    for (const id of [...this.expanded]) if (!this.model.nodes.has(id)) this.expanded.delete(id);
    if (this.root) this.reportModel();
  }

  private reportModel(): void {
    this.root.setAttribute('data-folds', String(this.derived.folds.size));
    this.root.setAttribute('data-name-groups', String(this.derived.nameGroups));
    this.root.setAttribute('data-merged-ops', String(this.derived.mergedOps));
  }

  // ---------------------------------------------------------------------------------- DOM
  private buildDom(): void {
    const root = h('div', { class: 'avg-root' + (this.opts.compact ? ' avg-compact' : ''), attrs: { 'data-testid': 'graph-view', 'data-render-complete': '0' } });
    root.tabIndex = -1;
    this.root = root;
    this.applyTheme();
    this.search = new SearchBox(this.win, {
      model: () => this.model, jump: (id) => this.jumpTo(id), changed: () => this.renderer.restyle(),
      focusRoot: () => this.root.focus(),
    }, root);
    const m = this.arch.model || ({} as Architecture['model']);
    const { bar, dirBtn } = buildToolbar(root, this.search.parts, {
      fit: () => this.fit(), expandAll: () => this.expandAll(), collapseAll: () => this.collapseAll(),
      toggleDir: () => this.toggleDir(), setLabel: (k, on) => this.setLabel(k, on), setDerive: (k, on) => this.setDerive(k, on),
      exportSvg: () => exportSvg(this), exportPng: () => { void exportPng(this); }, exportJson: () => exportJson(this),
      toggleHelp: () => this.toggleHelp(), labels: () => this.labels, derive: () => this.dopts,
      keras: this.arch.framework === 'keras', compact: !!this.opts.compact,
      info: {
        text: `${String(m.name ?? '')} · ${fmtInt(layerCount(this.arch))} layers · ${fmtShort(Number(m.total_params) || 0)} params`,
        title: `${fmtInt(Number(m.total_params) || 0)} parameters (${fmtInt(Number(m.trainable_params) || 0)} trainable)`,
      },
    }, this.disposers);
    this.dirBtn = dirBtn;
    this.updateDirBtn();
    root.appendChild(bar);
    if (this.opts.signals) root.appendChild(this.buildColourBy(this.opts.signals));
    const reachLine = reachSummary(this.reach);
    if (reachLine) {
      root.appendChild(h('div', { class: 'avg-reach-summary' + (this.reach?.status === 'unavailable' ? ' avg-unavailable' : ''),
        attrs: { 'data-testid': 'graph-reach-summary', role: 'note' } }, reachLine));
    }
    if (this.model.problems.length) {
      root.appendChild(h('div', { class: 'avg-warn' }, `${this.model.problems.length} problem(s) in this architecture: ${this.model.problems.slice(0, 3).join('; ')}`));
    }
    root.appendChild(this.buildMain());
    this.help = buildHelp(() => this.toggleHelp(false));
    root.appendChild(this.help);
    this.container.appendChild(root);
    this.buildCanvas();
    this.reportModel();
  }

  /** The "Colour by" strip: a change recolours the boxes in view (restyle), never lays out again. */
  private buildColourBy(src: SignalsSource): HTMLElement {
    const cb = new ColourBy({ source: src, arch: this.arch, onChange: (c) => {
      const sameMetric = c && this.colouring && c.metric.key === this.colouring.metric.key && c.scale.kind === this.colouring.scale.kind;
      this.colouring = c;
      this.root.setAttribute('data-colour-by', c ? c.metric.key : 'type');
      if (c?.step != null) this.root.setAttribute('data-colour-step', c.step); else this.root.removeAttribute('data-colour-step');
      if (!this.renderer) return;   // the first call comes before the canvas exists
      const t0 = performance.now();
      if (sameMetric) this.renderer.recolour(); else this.renderer.restyle();
      this.root.setAttribute('data-recolour-ms', (performance.now() - t0).toFixed(1));
      if (this.selected) this.showPanel();   // the sparklines mark the step shown
    } });
    this.disposers.push(() => cb.destroy());
    return h('div', { class: 'avg-colour-bar', attrs: { 'data-testid': 'graph-colour-by' } }, cb.el, cb.legendBox);
  }

  private buildMain(): HTMLElement {
    this.canvas = h('div', { class: 'avg-canvas', attrs: { 'data-testid': 'graph-canvas', 'aria-label': 'Model graph; press ? for keyboard shortcuts' } });
    this.canvas.tabIndex = 0;
    this.status = h('div', { class: 'avg-status', attrs: { 'data-testid': 'graph-status' } });
    this.legend = h('div', { class: 'avg-legend', attrs: { 'data-testid': 'graph-legend' } });
    const zoom = h('div', { class: 'avg-zoom' },
      btn('+', 'Zoom in (+)', 'graph-zoom-in', () => this.vp.zoomBy(1.25)),
      btn('−', 'Zoom out (−)', 'graph-zoom-out', () => this.vp.zoomBy(0.8)),
      btn('⤢', 'Fit to screen (F)', 'graph-zoom-fit', () => this.fit()));
    this.canvas.append(this.status, this.legend, zoom);
    this.panel = h('div', { class: 'avg-panel', attrs: { 'data-testid': 'graph-detail' } });
    return h('div', { class: 'avg-main' }, this.canvas, this.panel);
  }

  private buildCanvas(): void {
    this.renderer = new Renderer(this.doc, this.canvas, {
      palette: () => this.pal, nodeState: (b) => this.nodeState(b), edgeState: (e) => this.edgeState(e),
      edgeLabels: () => this.labels.edgeShapes,
    }, this.markerBase);
    this.canvas.insertBefore(this.renderer.svg, this.canvas.firstChild);
    this.vp = new Viewport(this.renderer);
    this.vp.onChange = () => this.onView?.();
    this.vp.insets = () => this.fitInsets();
    this.minimap = new Minimap(this.doc, () => this.pal, (wx, wy) => {
      const { w, h: hh } = this.renderer.size();
      const k = this.renderer.t.k;
      this.vp.set(w / 2 - wx * k, hh / 2 - wy * k, k);
    });
    this.canvas.appendChild(this.minimap.el);
    this.renderer.onUpdate = () => {
      this.root.setAttribute('data-render-mode', this.renderer.mode);
      this.root.setAttribute('data-zoom', this.renderer.t.k.toFixed(3));
      this.minimap.draw(this.renderer.worldRect(0));
    };
    this.buildLegend();
    this.bindInput();
    const ro = new ResizeObserver(() => {
      if (this.needsFit && this.geom && this.renderer.size().w > 0) this.fit();
      else this.renderer.schedule();
    });
    ro.observe(this.canvas);
    this.disposers.push(() => ro.disconnect());
    this.disposers.push(onThemeChange(() => this.themeChanged()));
  }

  private bindInput(): void {
    bindPointer(this.canvas, {
      vp: this.vp, renderer: this.renderer, toggleGroup: (id) => this.toggleGroup(id),
      foldStep: (id, d) => this.foldStep(id, d), select: (id, n) => this.select(id, n),
      isGroup: (id) => !!this.model.nodes.get(id)?.isGroup, fit: () => this.fit(),
    });
    const sel = (): string => this.selected!;
    this.disposers.push(bindKeys(this.doc, {
      root: this.root, destroyed: () => this.destroyed, selected: () => this.selected,
      walk: (k) => this.walk(k),
      actions: {
        fit: () => this.fit(), search: () => this.search.focus(), help: () => this.toggleHelp(),
        escape: () => this.escape(), zoomIn: () => this.vp.zoomBy(1.25), zoomOut: () => this.vp.zoomBy(0.8),
        zoom100: () => this.vp.zoomTo100(), expandAll: () => this.expandAll(), collapseAll: () => this.collapseAll(),
        'sel:toggle': () => this.toggleGroup(sel()), 'sel:up': () => this.setTrace(sel(), 'up'),
        'sel:down': () => this.setTrace(sel(), 'down'), 'sel:both': () => this.setTrace(sel(), 'both'),
        dir: () => this.toggleDir(), next: () => this.search.step(1), prev: () => this.search.step(-1),
        foldPrev: () => this.foldStepSelected(-1), foldNext: () => this.foldStepSelected(1),
      },
    }, this.vp));
  }

  private themeChanged(): void {
    const p = isDark() ? DARK : LIGHT;
    if (p === this.pal) return;
    this.pal = p;
    this.applyTheme();
    this.buildLegend();
    this.minimap.invalidate();
    this.renderer.restyle();
    if (this.selected) this.showPanel();
  }

  applyTheme(): void {
    const vars = chromeVars(this.pal);
    for (const k in vars) this.root.style.setProperty(k, vars[k]);
    this.root.classList.toggle('avg-dark', this.pal.dark);
    this.root.setAttribute('data-theme', this.pal.dark ? 'dark' : 'light');
  }

  buildLegend(): void {
    fillLegend(this.legend, {
      model: this.model, pal: this.pal, focusCat: this.focusCat, side: this.opts.diff && this.opts.side ? this.opts.side : null,
      reach: reachLegend(reachCounts(this.reach, this.model.list.map((g) => g.id)), this.pal.dark),
      onFocus: (c) => { this.focusCat = c; this.buildLegend(); this.renderer.restyle(); },
    });
  }

  private updateDirBtn(): void {
    this.dirBtn.textContent = this.dir === 'TB' ? '↓ Top-down' : '→ Left-right';
    if (this.opts.compact) this.dirBtn.textContent = this.dir === 'TB' ? '↓' : '→';
  }

  // ----------------------------------------------------------------------------- states
  palette(): Palette { return this.pal; }
  edgeLabels(): boolean { return this.labels.edgeShapes; }
  nodeState(b: Parameters<typeof nodeStateOf>[1]) { return nodeStateOf(this, b); }
  edgeState(e: Parameters<typeof edgeStateOf>[1]) { return edgeStateOf(this, e); }

  // ----------------------------------------------------------------------------- layout
  boxText(g: GNode): BoxText {
    let t = this.texts.get(g.id);
    if (!t) {
      const extra = (g.isGroup ? 24 : 0) + (this.marks.diff.has(g.id) ? 16 : 0) + (this.filterLayers.has(g.id) ? 16 : 0);
      t = layoutBox(nodeLines(g, this.labels, this.torch), this.measurer, extra);
      if (g.isGroup) t = { ...t, w: t.w + 4, h: t.h + 4 };
      this.texts.set(g.id, t);
    }
    return t;
  }

  status_(msg: string | null): void {
    this.status.textContent = msg || '';
    this.status.classList.toggle('avg-open', !!msg);
  }

  /** Recompute the visible graph, lay it out (cached per scope), draw. */
  async relayout(o: { fit?: boolean; anchor?: string; center?: string } = {}): Promise<void> {
    const seq = ++this.seq;
    const t0 = performance.now();
    this.root.setAttribute('data-render-complete', '0');
    const vis = this.model.visible(this.expanded, this.pick);
    const sizer = {
      box: (g: GNode) => { const t = this.boxText(g); return { w: t.w, h: t.h }; },
      groupMinW: (g: GNode) => Math.min(900, Math.ceil(this.measurer.width(groupTitle(g, this.pick), true)) + (g.fold ? 120 : 44)),
    };
    const spacing = this.dir === 'LR' && this.labels.edgeShapes ? { ...SPACING, rank: 120 } : SPACING;
    const { job, keyOf } = buildJob(vis, this.dir, sizer, this.cache, seq, spacing);
    this.root.setAttribute('data-prepare-ms', (performance.now() - t0).toFixed(1));
    const items = job.scopes.reduce((s, sc) => s + sc.n, 0);
    const slow = this.win.setTimeout(() => this.status_(`Laying out ${fmtInt(items)} nodes…`), 120);
    const anchorBefore = o.anchor ? this.vp.screenOf(o.anchor) : null;
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
    let geom = compose(vis, keyOf, this.cache, this.dir, (g) => this.boxText(g), (g) => groupTitle(g, this.pick),
      (ve) => edgeLabel(ve, this.torch));
    const size = this.renderer.size();
    const ins = this.fitInsets();
    if (size.w > 0 && size.h > 0) geom = wrapColumns(geom, vis, Math.max(1, size.w - ins.left - ins.right), size.h);
    this.vis = vis;
    this.geom = geom;
    this.report(result.ms, t1 - t0, inWorker, items, vis);
    this.place(geom, o, anchorBefore);
    this.root.setAttribute('data-compose-ms', (performance.now() - t1).toFixed(1));
    this.root.setAttribute('data-rendered-nodes', String(this.renderer.renderedNodeCount()));
    this.markComplete(seq, t0);
  }

  private report(ms: number, wait: number, inWorker: boolean, items: number, vis: Visible): void {
    const r = this.root;
    r.setAttribute('data-layout-ms', ms.toFixed(1));
    r.setAttribute('data-layout-wait-ms', wait.toFixed(1));
    r.setAttribute('data-layout-where', inWorker && workerState() === 'ok' ? 'worker' : 'main');
    r.setAttribute('data-layout-items', String(items));
    r.setAttribute('data-visible-nodes', String(vis.items.length));
    r.setAttribute('data-visible-groups', String(vis.groups.length));
    r.setAttribute('data-total-nodes', String(Array.isArray(this.arch.nodes) ? this.arch.nodes.length : 0));
    r.setAttribute('data-direction', this.dir);
    r.setAttribute('data-expanded', String(this.expanded.size));
  }

  /** Keep the view steady (the anchor stays where it was on screen), or fit, or centre. */
  private place(geom: Geometry, o: { fit?: boolean; anchor?: string; center?: string }, anchorBefore: { x: number; y: number } | null): void {
    if (o.fit || (this.needsFit && !o.anchor && !o.center)) {
      this.renderer.geom = geom;
      if (this.renderer.size().w > 0) this.fit();
    } else if (anchorBefore && geom.byId.has(o.anchor!)) {
      this.vp.keep(geom, o.anchor!, anchorBefore);
    }
    this.minimap.setGeometry(geom);
    this.renderer.setGeometry(geom);
    if (o.center) this.vp.centerOn(o.center);
    if (this.selected && !geom.byId.has(this.selected)) this.select(null);
    this.onLayout?.();
  }

  /** "complete": laid out, drawn, and one frame presented. */
  private markComplete(seq: number, t0: number): void {
    this.win.requestAnimationFrame(() => {
      this.win.setTimeout(() => {
        if (seq !== this.seq || this.destroyed) return;
        this.root.setAttribute('data-render-ms', (performance.now() - t0).toFixed(1));
        this.root.setAttribute('data-complete-at', (performance.timeOrigin + performance.now()).toFixed(1));
        this.root.setAttribute('data-render-complete', '1');
      }, 0);
    });
  }

  // --------------------------------------------------------------------------- viewport
  /** "Fit" keeps the legend's column clear (it sits over the canvas's bottom-left corner), so that
   *  no box is drawn under it. */
  fitInsets(): { left: number; right: number } {
    const lg = this.legend;
    if (!lg || !lg.isConnected || !lg.childElementCount) return { left: 0, right: 0 };
    const r = lg.getBoundingClientRect();
    if (r.width <= 0 || r.height <= 0) return { left: 0, right: 0 };
    const c = this.canvas.getBoundingClientRect();
    return { left: Math.max(0, Math.ceil(r.right - c.left) + 6), right: 0 };
  }

  fit(): void {
    if (this.fitOverride) { this.fitOverride(); return; }
    this.needsFit = !this.vp.fit();
  }

  /** Shift+arrows: move the selection to an input (up / left) or an output (down / right). */
  private walk(key: string): void {
    const id = this.selected!;
    const back = this.dir === 'TB' ? key === 'ArrowUp' : key === 'ArrowLeft';
    const fwd = this.dir === 'TB' ? key === 'ArrowDown' : key === 'ArrowRight';
    if (!back && !fwd) return;
    const ve = this.geom?.edges.map((e) => e.ve) || [];
    const next = back ? ve.find((e) => e.t.id === id)?.s : ve.find((e) => e.s.id === id)?.t;
    if (next) { this.select(next.id, true); this.vp.centerOn(next.id, this.renderer.t.k); }
  }

  escape(): void {
    if (this.help.classList.contains('avg-open')) { this.toggleHelp(false); return; }
    if (this.root.querySelector('.avg-menu-pop.avg-open')) {
      this.root.querySelectorAll('.avg-menu-pop.avg-open').forEach((e) => e.classList.remove('avg-open'));
      return;
    }
    if (this.trace) { this.setTrace(null); return; }
    if (this.search.active) { this.search.clear(); return; }
    if (this.focusCat) { this.focusCat = null; this.buildLegend(); this.renderer.restyle(); return; }
    if (this.selected) this.select(null);
  }

  toggleHelp(open?: boolean): void {
    const o = open ?? !this.help.classList.contains('avg-open');
    this.help.classList.toggle('avg-open', o);
  }

  // --------------------------------------------------------------------- expand / collapse
  toggleGroup(id: string): void {
    const g = this.model.nodes.get(id);
    if (!g || !g.isGroup) return;
    if (this.expanded.has(id)) this.expanded.delete(id);
    else {
      this.expanded.add(id);
      // a fold opened from the overview shows its copy opened, not one more closed box
      if (g.fold && !this.model.shownChildren(g, this.pick).some((c) => this.expanded.has(c.id))) {
        for (const c of this.model.openInside(g, this.pick)) this.expanded.add(c);
      }
    }
    void this.relayout({ anchor: id });
    if (this.selected === id) this.showPanel();
  }

  /** Show another copy of a fold (d = ±1), or every copy ('all'), or one again (from 'all'). */
  foldStep(id: string, d: number | 'all'): void {
    const g = this.model.nodes.get(id);
    if (!g || !g.fold) return;
    const cur = this.pick.get(id) ?? 0;
    const n = g.children.length;
    const next = d === 'all' ? (cur < 0 ? 0 : -1) : cur < 0 ? 0 : (cur + d + n) % n;
    this.setFoldPick(id, next);
  }

  setFoldPick(id: string, k: number): void {
    const g = this.model.nodes.get(id);
    const cur = this.pick.get(id) ?? 0;
    if (g && k >= 0 && cur >= 0 && g.children[k]) this.mirror(g.children[cur], g.children[k]);
    this.pick.set(id, k);
    this.expanded.add(id);
    void this.relayout({ anchor: id });
    if (this.selected === id) this.showPanel();
  }

  /** The copy shown next is opened as the one shown before was (same structure). */
  private mirror(from: GNode | undefined, to: GNode): void {
    if (!from || !this.expanded.has(from.id)) return;
    this.expanded.add(to.id);
    from.children.forEach((c, i) => { if (to.children[i]) this.mirror(c, to.children[i]); });
  }

  private foldStepSelected(d: number): void {
    for (let g = this.selected ? this.model.nodes.get(this.selected) : null; g; g = g.parent) {
      if (g.fold) { this.foldStep(g.id, d); return; }
    }
  }

  expandAll(): void {
    for (const g of this.model.list) if (g.isGroup) this.expanded.add(g.id);
    for (const f of this.model.folds.keys()) this.pick.set(f, -1);
    void this.relayout({ fit: true });
  }

  collapseAll(): void {
    this.expanded.clear();
    this.pick.clear();
    if (this.trace) this.setTrace(null);
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

  setDerive(key: keyof DeriveOpts, on: boolean): void {
    this.dopts = { ...this.dopts, [key]: on };
    save('derive', this.dopts);
    const before = new Set(this.expanded);
    this.rebuildModel();
    // new synthetic containers start collapsed past the budget; the others keep their state
    const dflt = this.model.defaultExpanded();
    for (const g of this.model.list) if (g.isGroup && !before.has(g.id) && dflt.has(g.id)) this.expanded.add(g.id);
    this.marks = computeMarks(this.model, this.opts.diff, this.opts.side);
    if (this.selected && !this.model.nodes.has(this.selected)) this.selected = null;
    this.buildLegend();
    void this.relayout({ fit: true });
  }

  /** Expand the containers (and pick the fold copies) that hide a node. True when it changed. */
  reveal(id: string): boolean {
    const g = this.model.nodes.get(id);
    if (!g) return false;
    let changed = false;
    let child: GNode = g;
    for (const a of this.model.ancestors(g)) {
      if (!this.expanded.has(a.id)) { this.expanded.add(a.id); changed = true; }
      if (a.fold) {
        const k = a.children.indexOf(child);
        const cur = this.pick.get(a.id) ?? 0;
        if (cur >= 0 && cur !== k) { this.pick.set(a.id, k); changed = true; }
      }
      child = a;
    }
    return changed;
  }

  // ------------------------------------------------------------------------- selection
  select(id: string | null, notify = false): void {
    if (id === this.selected) { if (id) this.showPanel(); return; }
    this.selected = id;
    this.root.setAttribute('data-selected', id || '');
    this.showPanel();
    this.renderer.restyle();
    if (id && notify) this.notifySelect(id);
  }

  showPanel(): void {
    showPanelFor(this);
    this.renderer.schedule();
  }

  setTrace(id: string | null, dir: TraceDir = 'both'): void {
    if (!id) this.trace = null;
    else {
      const set = dir === 'up' ? this.model.trace(id, -1) : dir === 'down' ? this.model.trace(id, 1)
        : new Set([...this.model.trace(id, -1), ...this.model.trace(id, 1)]);
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
  jumpTo(id: string): void {
    if (!this.model.nodes.has(id)) return;
    if (this.reveal(id)) {
      this.selected = id;
      this.root.setAttribute('data-selected', id);
      this.showPanel();   // first, so that centring uses the canvas width left beside the panel
      void this.relayout({ center: id }).then(() => this.notifySelect(id));
      return;
    }
    this.vp.centerOn(id);
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

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.seq++;
    this.renderer?.cancel();
    for (const d of this.disposers) { try { d(); } catch (_) { /* ignore */ } }
    this.pending?.remove();
    this.root?.remove();
  }
}
