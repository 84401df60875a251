// The live SVG: pan / zoom transform, and only what is in the viewport is in the DOM.
// Zoomed in ("detail"), each box in view is its own <g> with text; zoomed far out or with very many
// boxes in view ("overview"), all boxes of a colour are one <path> and all edges another, so a
// 5,000-node graph costs a dozen elements.
import type { Geometry } from './geometry';
import { drawEdge, drawGroup, drawMarkers, drawNode, el, EdgePath, EdgeState, NodeBox, NodeState, repaintNode } from './draw';
import type { Category } from '../common/categories';
import type { Palette } from '../common/palette';
import { FONT_FAMILY } from '../common/palette';
import { drawLabels } from './lod';
import { svgFill } from '../common/signals_scale';

export interface RenderHost {
  palette(): Palette;
  nodeState(b: NodeBox): NodeState;
  edgeState(e: EdgePath): EdgeState;
  edgeLabels(): boolean;
}

// No text is ever drawn smaller than MIN_TEXT px on screen: the boxes' 12 px text from zoom 0.75,
// the edges' 10 px labels from 0.9; below, the overview draws boxes as coloured bars and a
// screen-space layer labels them (names, and a group's count and params) at 10-11 px.
export const MIN_TEXT = 9;
export const DETAIL_SCALE = MIN_TEXT / 12;     // below this zoom: boxes without text, labels on top
export const OVERVIEW_SCALE = 0.3;             // below this zoom: batched overview
export const OVERVIEW_COUNT = 1500;            // or when more boxes than this are in view

export type RenderMode = 'detail' | 'compact' | 'overview';
type Rect = { x0: number; y0: number; x1: number; y1: number };

function inRect(b: { x: number; y: number; w: number; h: number }, r: Rect): boolean {
  return b.x <= r.x1 && b.x + b.w >= r.x0 && b.y <= r.y1 && b.y + b.h >= r.y0;
}
const LABEL_SCALE = MIN_TEXT / 10;             // edge labels from this zoom

export class Renderer {
  readonly svg: SVGSVGElement;
  private defs: SVGDefsElement;
  private vp: SVGGElement;
  private gGroups: SVGGElement;
  private gEdges: SVGGElement;
  private gNodes: SVGGElement;
  private gOver: SVGGElement;
  private gLabels: SVGGElement;
  private nodeEls = new Map<string, SVGGElement>();
  private edgeEls = new Map<EdgePath, SVGGElement>();
  private groupDepth = new Map<number, SVGGElement>();
  private overBuilt = false;
  private raf = 0;
  geom: Geometry | null = null;
  t = { x: 0, y: 0, k: 1 };
  mode: RenderMode = 'detail';
  onUpdate: (() => void) | null = null;

  constructor(private doc: Document, private host: HTMLElement, private hostApi: RenderHost, private markerBase: string) {
    this.svg = el(doc, 'svg', { xmlns: 'http://www.w3.org/2000/svg', 'font-family': FONT_FAMILY, 'font-size': 12 });
    this.svg.setAttribute('data-testid', 'graph-svg');
    this.defs = drawMarkers(doc, hostApi.palette(), markerBase);
    this.svg.appendChild(this.defs);
    this.vp = el(doc, 'g', { class: 'avg-viewport' });
    this.gOver = el(doc, 'g', { class: 'avg-overview' });
    this.gGroups = el(doc, 'g', { class: 'avg-groups' });
    this.gEdges = el(doc, 'g', { class: 'avg-edges' });
    this.gNodes = el(doc, 'g', { class: 'avg-nodes' });
    this.vp.append(this.gOver, this.gGroups, this.gEdges, this.gNodes);
    this.svg.appendChild(this.vp);
    this.gLabels = el(doc, 'g', { class: 'avg-lod-labels', 'pointer-events': 'none' });
    this.svg.appendChild(this.gLabels);
    host.appendChild(this.svg);
  }

  size(): { w: number; h: number } {
    return { w: this.host.clientWidth, h: this.host.clientHeight };
  }

  setGeometry(g: Geometry): void {
    this.geom = g;
    this.clear();
    this.overBuilt = false;
    this.gOver.textContent = '';
    this.update();
  }

  /** Rebuild every element (states or palette changed). */
  restyle(): void {
    const d = drawMarkers(this.doc, this.hostApi.palette(), this.markerBase);
    this.svg.replaceChild(d, this.defs);
    this.defs = d;
    this.clear();
    this.overBuilt = false;
    this.gOver.textContent = '';
    this.update();
  }

  /** Colour by moved to another step: new fills on the boxes drawn, in place; the overview's paths
   * rebuilt. Boxes drawn without a paint are drawn again (restyle). */
  recolour(): void {
    const g = this.geom;
    if (!g) return;
    if (this.mode === 'overview') { this.overBuilt = false; this.update(); return; }
    for (const b of g.boxes) {
      const e = this.nodeEls.get(b.g.id);
      if (e && !b.open && !repaintNode(e, this.hostApi.nodeState(b))) { this.restyle(); return; }
    }
  }

  private clear(): void {
    this.gGroups.textContent = '';
    this.gEdges.textContent = '';
    this.gNodes.textContent = '';
    this.nodeEls.clear();
    this.edgeEls.clear();
    this.groupDepth.clear();
  }

  setTransform(x: number, y: number, k: number): void {
    this.t = { x, y, k };
    this.vp.setAttribute('transform', `translate(${x.toFixed(2)},${y.toFixed(2)}) scale(${k.toFixed(5)})`);
    this.schedule();
  }

  schedule(): void {
    if (this.raf) return;
    const w = this.doc.defaultView || window;
    this.raf = w.requestAnimationFrame(() => { this.raf = 0; this.update(); });
  }

  cancel(): void {
    if (this.raf) (this.doc.defaultView || window).cancelAnimationFrame(this.raf);
    this.raf = 0;
  }

  worldRect(margin = 0.25): { x0: number; y0: number; x1: number; y1: number } {
    const { w, h } = this.size();
    const k = this.t.k;
    const mx = (w * margin) / k; const my = (h * margin) / k;
    return { x0: -this.t.x / k - mx, y0: -this.t.y / k - my, x1: (w - this.t.x) / k + mx, y1: (h - this.t.y) / k + my };
  }

  toWorld(sx: number, sy: number): [number, number] {
    return [(sx - this.t.x) / this.t.k, (sy - this.t.y) / this.t.k];
  }

  /** Bring the DOM in line with the viewport. */
  update(): void {
    const g = this.geom;
    if (!g) return;
    const r = this.worldRect();
    let count = 0;
    for (const b of g.boxes) if (!b.open && inRect(b, r)) count++;
    const k = this.t.k;
    const mode: RenderMode = k < OVERVIEW_SCALE || count > OVERVIEW_COUNT ? 'overview' : k < DETAIL_SCALE ? 'compact' : 'detail';
    if (mode !== this.mode) {
      this.clear();
      this.mode = mode;
      this.gOver.style.display = mode === 'overview' ? '' : 'none';
      if (mode === 'detail') this.gLabels.textContent = '';
    }
    if (mode === 'overview') {
      if (!this.overBuilt) this.buildOverview();
    } else {
      this.drawBoxes(g, r, mode === 'compact');
      this.drawEdges(g, r);
    }
    if (mode !== 'detail') drawLabels(this.doc, this.gLabels, g, this.t, r, this.hostApi.palette());
    this.onUpdate?.();
  }

  /** Boxes in view as elements (with their text in detail mode, bare in compact mode). */
  private drawBoxes(g: Geometry, r: Rect, bare: boolean): void {
    const p = this.hostApi.palette();
    const wanted = new Set<string>();
    for (const b of g.boxes) {
      if (!inRect(b, r)) continue;
      wanted.add(b.g.id);
      if (this.nodeEls.has(b.g.id)) continue;
      const st = this.hostApi.nodeState(b);
      const e = b.open ? drawGroup(this.doc, b, p, st, bare) : drawNode(this.doc, b, p, st, bare);
      (b.open ? this.layerFor(b.g.depth) : this.gNodes).appendChild(e);
      this.nodeEls.set(b.g.id, e);
    }
    for (const [id, e] of this.nodeEls) if (!wanted.has(id)) { e.remove(); this.nodeEls.delete(id); }
  }

  private drawEdges(g: Geometry, r: Rect): void {
    const p = this.hostApi.palette();
    const labels = this.hostApi.edgeLabels() && this.t.k >= LABEL_SCALE;
    const wantE = new Set<EdgePath>();
    for (const e of g.edges) {
      if (e.minX > r.x1 || e.maxX < r.x0 || e.minY > r.y1 || e.maxY < r.y0) continue;
      wantE.add(e);
      if (this.edgeEls.has(e)) continue;
      const ge = drawEdge(this.doc, e, p, this.hostApi.edgeState(e), this.markerBase, labels);
      this.gEdges.appendChild(ge);
      this.edgeEls.set(e, ge);
    }
    for (const [e, ge] of this.edgeEls) if (!wantE.has(e)) { ge.remove(); this.edgeEls.delete(e); }
    if (labels !== this.lastLabels) {
      this.lastLabels = labels;
      // labels appear / disappear with zoom: redraw the edges in view
      for (const [e, ge] of this.edgeEls) {
        const ne = drawEdge(this.doc, e, p, this.hostApi.edgeState(e), this.markerBase, labels);
        ge.replaceWith(ne);
        this.edgeEls.set(e, ne);
      }
    }
  }

  private lastLabels = false;

  private layerFor(depth: number): SVGGElement {
    let l = this.groupDepth.get(depth);
    if (!l) {
      l = el(this.doc, 'g', { 'data-depth': depth });
      this.groupDepth.set(depth, l);
      // keep the depth layers in order, outer groups below inner ones
      const after = [...this.groupDepth.keys()].filter((d) => d > depth).sort((a, b) => a - b)[0];
      if (after !== undefined) this.gGroups.insertBefore(l, this.groupDepth.get(after)!);
      else this.gGroups.appendChild(l);
    }
    return l;
  }

  /** Batched paths: one per colour for the boxes, one for all edges, one for highlights. */
  private buildOverview(): void {
    const g = this.geom!;
    const p = this.hostApi.palette();
    this.gOver.textContent = '';
    const byCat = new Map<string, string[]>();   // a category, or 'fill:' + a Colour-by fill
    const groups: string[] = [];
    const hi: string[] = [];
    const sel: string[] = [];
    const dim: string[] = [];
    const rect = (b: NodeBox): string => `M${b.x.toFixed(1)},${b.y.toFixed(1)}h${b.w.toFixed(1)}v${b.h.toFixed(1)}h${(-b.w).toFixed(1)}Z`;
    for (const b of g.boxes) {
      const st = this.hostApi.nodeState(b);
      if (b.open) { groups.push(rect(b)); }
      else {
        const key = st.paint ? 'fill:' + svgFill(st.paint.paint) : b.g.cat;
        let a = byCat.get(key);
        if (!a) { a = []; byCat.set(key, a); }
        a.push(rect(b));
        if (st.dim) dim.push(rect(b));
      }
      if (st.selected) sel.push(rect(b));
      else if (st.match || st.traced || st.diff) hi.push(rect(b));
    }
    const edges: string[] = [];
    for (const e of g.edges) {
      let s = `M${e.pts[0].toFixed(1)},${e.pts[1].toFixed(1)}`;
      for (let i = 2; i < e.pts.length; i += 2) s += `L${e.pts[i].toFixed(1)},${e.pts[i + 1].toFixed(1)}`;
      edges.push(s);
    }
    // strokes in screen pixels whatever the zoom
    const ns = { 'vector-effect': 'non-scaling-stroke' };
    if (groups.length) this.gOver.appendChild(el(this.doc, 'path', { d: groups.join(''), fill: p.groupFill, stroke: p.groupStroke, 'stroke-width': 1, ...ns }));
    if (edges.length) this.gOver.appendChild(el(this.doc, 'path', { d: edges.join(''), fill: 'none', stroke: p.edge, 'stroke-width': 1, 'stroke-opacity': 0.8, ...ns }));
    for (const [key, a] of byCat) {
      if (key.startsWith('fill:')) {
        this.gOver.appendChild(el(this.doc, 'path', { d: a.join(''), fill: key.slice(5), stroke: p.edge, 'stroke-width': 1, 'data-fill': key.slice(5), ...ns }));
        continue;
      }
      const cat = key as Category;
      this.gOver.appendChild(el(this.doc, 'path', { d: a.join(''), fill: p.cat[cat], 'fill-opacity': p.dark ? 0.75 : 0.6, stroke: p.cat[cat], 'stroke-width': 1, 'data-cat': cat, ...ns }));
    }
    if (dim.length) this.gOver.appendChild(el(this.doc, 'path', { d: dim.join(''), fill: p.bg, 'fill-opacity': 0.75 }));
    if (hi.length) this.gOver.appendChild(el(this.doc, 'path', { d: hi.join(''), fill: 'none', stroke: p.match, 'stroke-width': 3, ...ns }));
    if (sel.length) this.gOver.appendChild(el(this.doc, 'path', { d: sel.join(''), fill: 'none', stroke: p.accent, 'stroke-width': 4, ...ns }));
    this.overBuilt = true;
  }

  /** The innermost box under a world point (boxes before groups, inner groups before outer). */
  hit(wx: number, wy: number): NodeBox | null {
    const g = this.geom;
    if (!g) return null;
    let best: NodeBox | null = null;
    for (const b of g.boxes) {
      if (wx < b.x || wx > b.x + b.w || wy < b.y || wy > b.y + b.h) continue;
      if (!b.open) return b;
      if (!best || b.g.depth > best.g.depth) best = b;
    }
    return best;
  }

  renderedNodeCount(): number {
    return this.nodeEls.size;
  }
}
