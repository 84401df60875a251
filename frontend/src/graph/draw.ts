// SVG elements of one node box, one expanded group and one edge, shared by the live view and the
// SVG export. Every string from the model goes in through textContent / setAttribute only.
import type { GNode, VEdge } from './model';
import { BOX, BoxText } from './labels';
import type { Palette } from '../common/palette';
import type { ReachMark } from '../gradient_overlay';
import { hatchPattern, svgFill } from '../common/signals_scale';
import type { Paint } from '../common/signals_scale';

export const SVGNS = 'http://www.w3.org/2000/svg';

export interface NodeBox {
  g: GNode;
  x: number;        // top-left, absolute
  y: number;
  w: number;
  h: number;
  open: boolean;    // an expanded container (drawn as a group frame)
  text: BoxText | null;
  title: string;    // group header (open groups)
}

export interface EdgePath {
  ve: VEdge;
  pts: number[];
  minX: number;
  minY: number;
  maxX: number;
  maxY: number;
  label: string;
  lx: number;
  ly: number;
  middle: boolean;   // label centred on (lx, ly) (left-to-right) or starting there (top-down)
}

export type DiffMark = 'added' | 'removed' | 'changed' | 'renamed' | 'inside';

export interface NodeState {
  selected: boolean;
  match: boolean;
  dim: boolean;
  traced: boolean;
  diff: DiffMark | null;
  filters: boolean;
  reach: ReachMark | null;   // gradient reach (written with gradient_reach=True)
  /** Colour by: the box's fill on the continuous scale and its value as text (null = layer type colours) */
  paint?: { paint: Paint; text: string; label: string } | null;
}

export function el<K extends keyof SVGElementTagNameMap>(doc: Document, tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const e = doc.createElementNS(SVGNS, tag) as SVGElementTagNameMap[K];
  for (const k in attrs) e.setAttribute(k, String(attrs[k]));
  return e;
}

function text(doc: Document, x: number, y: number, s: string, attrs: Record<string, string | number>): SVGTextElement {
  const t = el(doc, 'text', { x, y, ...attrs });
  t.textContent = s;
  return t;
}

function r1(v: number): string {
  return (Math.round(v * 10) / 10).toString();
}

export function diffColor(p: Palette, d: DiffMark): string {
  return d === 'added' ? p.added : d === 'removed' ? p.removed : d === 'renamed' ? p.renamed : p.changed;
}

const DIFF_BADGE: Record<DiffMark, string> = { added: '+', removed: '−', changed: '~', renamed: '≈', inside: '~' };

/** Colour by moved to another step: the new fill, ink and value of a box drawn with a paint, in
 * place (no new elements). False when the box was drawn without one (draw it again instead). */
export function repaintNode(g: SVGGElement, st: NodeState): boolean {
  const pt = st.paint ? st.paint.paint : null;
  const bg = g.querySelector<SVGRectElement>('rect.avg-bg');
  if (!pt || !bg || !bg.hasAttribute('data-paint')) return false;
  bg.setAttribute('fill', svgFill(pt));
  bg.setAttribute('data-paint', pt.kind);
  bg.setAttribute('data-fill', pt.fill);
  for (const t of g.children) if (t.tagName === 'text') t.setAttribute('fill', pt.ink);
  const tt = g.firstElementChild;
  if (tt && tt.tagName === 'title' && st.paint) {
    const s = tt.textContent || '';
    tt.textContent = s.slice(0, s.lastIndexOf('\n')) + '\n' + st.paint.label + ': ' + st.paint.text;
  }
  return true;
}

/** A layer box or a collapsed container box. */
export function drawNode(doc: Document, b: NodeBox, p: Palette, st: NodeState, bare = false): SVGGElement {
  const g = el(doc, 'g', { class: 'avg-node', transform: `translate(${r1(b.x)},${r1(b.y)})` });
  g.setAttribute('data-id', b.g.id);
  g.setAttribute('data-testid', b.g.isGroup ? 'graph-group-collapsed' : 'graph-node');
  if (st.dim) g.setAttribute('opacity', '0.22');
  if (st.diff) g.setAttribute('data-diff', st.diff);
  const color = p.cat[b.g.cat];
  const tt = el(doc, 'title', {});
  tt.textContent = String(b.g.raw.name ?? b.g.id) + ' (' + String(b.g.raw.class_name ?? '') + ')'
    + (st.reach ? '\n' + st.reach.title : '') + (st.paint ? '\n' + st.paint.label + ': ' + st.paint.text : '');
  g.appendChild(tt);
  if (st.reach) g.setAttribute('data-reach', st.reach.state);
  // A collapsed container is drawn as a stack of two cards (the box includes the back card).
  const fw = b.g.isGroup ? b.w - 4 : b.w;
  const fh = b.g.isGroup ? b.h - 4 : b.h;
  if (b.g.isGroup) {
    g.appendChild(el(doc, 'rect', { x: 4, y: 4, width: r1(fw), height: r1(fh), rx: 5, fill: p.nodeFill, stroke: color, 'stroke-width': 1 }));
  }
  let stroke = color; let sw = 1;
  if (st.reach) { stroke = st.reach.colour; sw = 2; }
  if (st.diff) { stroke = diffColor(p, st.diff); sw = 2.5; }
  if (st.match) { stroke = p.match; sw = 3; }
  if (st.traced) { stroke = p.trace; sw = 2.5; }
  if (st.selected) { stroke = p.accent; sw = 3; }
  const pt = st.paint ? st.paint.paint : null;
  const bg = el(doc, 'rect', { class: 'avg-bg', width: r1(fw), height: r1(fh), rx: 5, fill: pt ? svgFill(pt) : p.nodeFill, stroke, 'stroke-width': sw });
  if (pt) { bg.setAttribute('data-paint', pt.kind); bg.setAttribute('data-fill', pt.fill); }
  if (st.diff === 'inside') bg.setAttribute('stroke-dasharray', '5 3');
  g.appendChild(bg);
  // tinted header band (rounded top corners only)
  const hh = BOX.head;
  if (!pt) {
    g.appendChild(el(doc, 'path', {
      d: `M0,${hh}V5Q0,0 5,0H${r1(fw - 5)}Q${r1(fw)},0 ${r1(fw)},5V${hh}Z`,
      fill: color, 'fill-opacity': p.dark ? 0.32 : 0.17,
    }));
  }
  g.appendChild(el(doc, 'rect', { x: 0, y: 0, width: 3, height: r1(fh), fill: color, rx: 1 }));
  const lines = b.text && !bare ? b.text.lines : [];
  const x0 = BOX.padX + BOX.stripe - 2;
  lines.forEach((l, i) => {
    const y = i === 0 ? 15 : hh + 12 + (i - 1) * BOX.line;
    const attrs: Record<string, string | number> = { fill: pt ? pt.ink : l.muted ? p.text2 : p.text };
    if (l.bold) attrs['font-weight'] = 600;
    g.appendChild(text(doc, x0, y, l.text, attrs));
  });
  if (b.g.isGroup) {
    const tg = el(doc, 'g', { class: 'avg-toggle', transform: `translate(${r1(fw - 20)},3)` });
    tg.setAttribute('data-toggle', b.g.id);
    tg.setAttribute('data-testid', 'graph-expand');
    const tt2 = el(doc, 'title', {}); tt2.textContent = 'Expand'; tg.appendChild(tt2);
    tg.appendChild(el(doc, 'rect', { width: 16, height: 16, rx: 3, fill: p.nodeFill, stroke: color }));
    tg.appendChild(el(doc, 'path', { d: 'M4,8H12M8,4V12', stroke: p.text, 'stroke-width': 1.6 }));
    g.appendChild(tg);
  }
  let bx = fw - (b.g.isGroup ? 24 : 4);
  if (st.diff) {
    const c = diffColor(p, st.diff);
    bx -= 16;
    g.appendChild(el(doc, 'rect', { x: r1(bx), y: 3, width: 15, height: 15, rx: 7.5, fill: c }));
    if (!bare) g.appendChild(text(doc, bx + 7.5, 14.5, DIFF_BADGE[st.diff], { fill: '#fff', 'text-anchor': 'middle', 'font-weight': 700 }));
  }
  if (st.reach) {
    bx -= 16;
    g.appendChild(reachBadge(doc, st.reach, bx));
  }
  if (st.filters) {
    bx -= 16;
    const fg = el(doc, 'g', { transform: `translate(${r1(bx)},4)` });
    const t3 = el(doc, 'title', {}); t3.textContent = 'Filter grid available'; fg.appendChild(t3);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) {
      fg.appendChild(el(doc, 'rect', { x: i * 4.5, y: j * 4.5, width: 3.5, height: 3.5, fill: p.text2 }));
    }
    g.appendChild(fg);
  }
  return g;
}

/** The gradient reach badge: a dot in the state's colour, its label and parameters on hover. */
function reachBadge(doc: Document, m: ReachMark, x: number): SVGGElement {
  const rg = el(doc, 'g', { transform: `translate(${r1(x)},3)`, 'data-testid': 'graph-reach', 'data-state': m.state });
  const t = el(doc, 'title', {}); t.textContent = m.title; rg.appendChild(t);
  rg.appendChild(el(doc, 'circle', { cx: 7.5, cy: 7.5, r: 6, fill: m.colour }));
  return rg;
}

/** The frame of an expanded container, with its header and a collapse toggle. */
export function drawGroup(doc: Document, b: NodeBox, p: Palette, st: NodeState, bare = false): SVGGElement {
  const g = el(doc, 'g', { class: 'avg-group', transform: `translate(${r1(b.x)},${r1(b.y)})` });
  g.setAttribute('data-id', b.g.id);
  g.setAttribute('data-testid', 'graph-group');
  if (st.dim) g.setAttribute('opacity', '0.35');
  let stroke = p.groupStroke; let sw = 1;
  if (st.diff) { stroke = diffColor(p, st.diff); sw = 2; }
  if (st.match) { stroke = p.match; sw = 3; }
  if (st.selected) { stroke = p.accent; sw = 3; }
  g.appendChild(el(doc, 'rect', { width: r1(b.w), height: r1(b.h), rx: 7, fill: p.groupFill, 'fill-opacity': 0.85, stroke, 'stroke-width': sw }));
  const head = el(doc, 'g', { class: 'avg-group-head' });
  head.setAttribute('data-id', b.g.id);
  const hh = BOX.groupHead - 4;
  head.appendChild(el(doc, 'path', {
    d: `M0,${hh}V7Q0,0 7,0H${r1(b.w - 7)}Q${r1(b.w)},0 ${r1(b.w)},7V${hh}Z`, fill: p.groupHeader,
  }));
  const tt = el(doc, 'title', {}); tt.textContent = b.title; head.appendChild(tt);
  if (!bare) head.appendChild(text(doc, 28, 16, b.title, { fill: p.text, 'font-weight': 600 }));
  g.appendChild(head);
  const tg = el(doc, 'g', { class: 'avg-toggle', transform: 'translate(6,4)' });
  tg.setAttribute('data-toggle', b.g.id);
  tg.setAttribute('data-testid', 'graph-collapse');
  const t2 = el(doc, 'title', {}); t2.textContent = 'Collapse'; tg.appendChild(t2);
  tg.appendChild(el(doc, 'rect', { width: 16, height: 16, rx: 3, fill: p.nodeFill, stroke: p.groupStroke }));
  tg.appendChild(el(doc, 'path', { d: 'M4,8H12', stroke: p.text, 'stroke-width': 1.6 }));
  g.appendChild(tg);
  if (b.g.fold) foldControls(doc, g, b, p);
  return g;
}

// previous copy, next copy, all copies / one copy (icons, no text)
const FOLD_CONTROLS: [string, string, string, string][] = [
  ['-1', 'Previous copy ([)', 'graph-fold-prev', 'M10,4L6,8L10,12'],
  ['1', 'Next copy (])', 'graph-fold-next', 'M6,4L10,8L6,12'],
  ['all', 'All copies / one copy', 'graph-fold-all', 'M4,5H12M4,8H12M4,11H12'],
];

/** The picker of a fold's header: which of the repeated blocks is drawn. */
function foldControls(doc: Document, g: SVGGElement, b: NodeBox, p: Palette): void {
  FOLD_CONTROLS.forEach(([step, title, testid, d], i) => {
    const c = el(doc, 'g', { class: 'avg-toggle', transform: `translate(${r1(b.w - 66 + i * 20)},4)` });
    c.setAttribute('data-fold', b.g.id);
    c.setAttribute('data-step', step);
    c.setAttribute('data-testid', testid);
    const t = el(doc, 'title', {}); t.textContent = title; c.appendChild(t);
    c.appendChild(el(doc, 'rect', { width: 16, height: 16, rx: 3, fill: p.nodeFill, stroke: p.groupStroke }));
    c.appendChild(el(doc, 'path', { d, fill: 'none', stroke: p.text, 'stroke-width': 1.6 }));
    g.appendChild(c);
  });
}

/** Smooth path through dagre's route points (d3's curveBasis). */
export function basisPath(p: number[]): string {
  const n = p.length / 2;
  if (n < 2) return '';
  if (n === 2) return `M${r1(p[0])},${r1(p[1])}L${r1(p[2])},${r1(p[3])}`;
  let x0 = p[0]; let y0 = p[1]; let x1 = p[2]; let y1 = p[3];
  let d = `M${r1(x0)},${r1(y0)}L${r1((5 * x0 + x1) / 6)},${r1((5 * y0 + y1) / 6)}`;
  const seg = (x: number, y: number): void => {
    d += `C${r1((2 * x0 + x1) / 3)},${r1((2 * y0 + y1) / 3)},${r1((x0 + 2 * x1) / 3)},${r1((y0 + 2 * y1) / 3)},`
      + `${r1((x0 + 4 * x1 + x) / 6)},${r1((y0 + 4 * y1 + y) / 6)}`;
  };
  for (let i = 2; i < n; i++) {
    const x = p[2 * i]; const y = p[2 * i + 1];
    seg(x, y);
    x0 = x1; y0 = y1; x1 = x; y1 = y;
  }
  seg(x1, y1);
  d += `L${r1(x1)},${r1(y1)}`;
  return d;
}

export interface EdgeState {
  hi: boolean;       // traced / touching the selection
  dim: boolean;
  diff: 'added' | 'removed' | null;
}

export function drawEdge(doc: Document, e: EdgePath, p: Palette, st: EdgeState, markerBase: string, showLabel: boolean): SVGGElement {
  const g = el(doc, 'g', { class: 'avg-edge' });
  g.setAttribute('data-testid', 'graph-edge');
  g.setAttribute('data-source', e.ve.s.id);
  g.setAttribute('data-target', e.ve.t.id);
  let color = p.edge; let sw = 1.2; let marker = 'n';
  if (st.diff) { color = st.diff === 'added' ? p.added : p.removed; sw = 2; marker = st.diff === 'added' ? 'a' : 'r'; }
  if (st.hi) { color = p.trace; sw = 2; marker = 'h'; }
  const path = el(doc, 'path', { d: basisPath(e.pts), fill: 'none', stroke: color, 'stroke-width': sw, 'marker-end': `url(#${markerBase}-${marker})` });
  if (st.dim) g.setAttribute('opacity', '0.18');
  const via = e.ve.edges.map((x) => x.raw.via).find((v) => Array.isArray(v) && v.length) as string[] | undefined;
  if (via) {
    // shape-only ops merged into this edge (derive.ts): named in its tooltip
    const t = el(doc, 'title', {});
    t.textContent = 'through ' + via.join(' → ');
    g.appendChild(t);
    g.setAttribute('data-via', String(via.length));
  }
  g.appendChild(path);
  if (showLabel && e.label) {
    g.appendChild(text(doc, e.lx, e.ly, e.label, {
      ...(e.middle ? { 'text-anchor': 'middle' } : {}),
      fill: p.edgeLabel, 'font-size': 10, stroke: p.bg, 'stroke-width': 3, 'paint-order': 'stroke',
      'stroke-linejoin': 'round',
    }));
  }
  return g;
}

export function drawMarkers(doc: Document, p: Palette, base: string): SVGDefsElement {
  const defs = el(doc, 'defs', {});
  const mk = (id: string, color: string): void => {
    const m = el(doc, 'marker', { id: `${base}-${id}`, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse', markerUnits: 'userSpaceOnUse' });
    m.appendChild(el(doc, 'path', { d: 'M0,0L10,5L0,10Z', fill: color }));
    defs.appendChild(m);
  };
  mk('n', p.edge); mk('h', p.trace); mk('a', p.added); mk('r', p.removed);
  defs.appendChild(hatchPattern(doc));   // "no value" of Colour by
  return defs;
}
