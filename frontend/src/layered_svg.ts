// Draws the layered view as a standalone SVG (colours as attributes, no CSS), used on the page
// and for the SVG / PNG exports. Built with createElementNS and textContent only: layer names
// are untrusted. Text goes through xmlSafe() so the serialised SVG always parses as XML 1.0.

import { CATEGORY_LABELS } from './common/categories';
import type { Category } from './common/categories';
import { xmlSafe } from './common/export';
import { fmtInt, fmtShape } from './format';
import { FONT_FAMILY } from './common/palette';
import type { Palette } from './common/palette';
import type { GradientReach } from './gradient_overlay';
import { nodeReach, reachCounts, reachLegend } from './gradient_overlay';
import type { BoxGeom, ConnectorGeom, DrawOptions, LayeredGeometry } from './layered_geometry';
import { LEGEND_ROW } from './layered_geometry';
import type { LayeredModel, Unit } from './layered_model';
import { hatchPattern, svgFill } from './common/signals_scale';
import type { Colouring } from './common/signals_colour_by';

const NS = 'http://www.w3.org/2000/svg';
const CHAR_W = 6.4;

export function el(doc: Document, tag: string, attrs: Record<string, string | number>): SVGElement {
  const e = doc.createElementNS(NS, tag) as SVGElement;
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function textEl(doc: Document, s: string, attrs: Record<string, string | number>): SVGElement {
  const t = el(doc, 'text', attrs);
  t.textContent = xmlSafe(s);
  return t;
}

function titled(doc: Document, g: SVGElement, s: string): void {
  const t = el(doc, 'title', {});
  t.textContent = xmlSafe(s);
  g.appendChild(t);
}

function mix(hex: string, other: string, f: number): string {
  const p = (h: string) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
  if (!/^#[0-9a-f]{6}$/i.test(hex) || !/^#[0-9a-f]{6}$/i.test(other)) return hex;
  const a = p(hex), b = p(other);
  return '#' + a.map((v, i) => Math.round(v + (b[i] - v) * f).toString(16).padStart(2, '0')).join('');
}

function pts(list: [number, number][]): string {
  return list.map(([x, y]) => x.toFixed(1) + ',' + y.toFixed(1)).join(' ');
}

function boxTitle(u: Unit, b: BoxGeom, reachText: string | null): string {
  const shape = fmtShape(u.shape, 'keras');
  const lines = [u.id + ' (' + u.className + (u.isGroup ? ', collapsed group' : '') + ')',
    'output ' + shape, 'params ' + fmtInt(u.params)];
  if (reachText) lines.push(reachText);
  return lines.join('\n');
}

function drawBox(doc: Document, b: BoxGeom, fill: string, p: Palette, reach: GradientReach | null,
                 selected: boolean): SVGElement {
  const u = b.unit;
  const g = el(doc, 'g', {
    'data-testid': 'layered-box', 'data-id': xmlSafe(u.id), 'data-index': b.index, 'data-kind': b.dims.kind,
    'data-len': b.len.toFixed(2), 'data-h': b.h.toFixed(2), 'data-depth': b.od.toFixed(2),
    'data-category': u.category,
  });
  const mark = nodeReach(reach, u.id, p.dark);
  titled(doc, g, boxTitle(u, b, mark ? mark.title : null));
  const { x, y, len, h, od } = b;
  const stroke = selected ? p.accent : mix(fill, '#000000', 0.45);
  const common = { stroke, 'stroke-width': selected ? 2.5 : 0.8, 'stroke-linejoin': 'round' } as Record<string, string | number>;
  if (u.isGroup) common['stroke-dasharray'] = '3 2';
  g.appendChild(el(doc, 'polygon', { points: pts([[x, y], [x + od, y - od], [x + len + od, y - od], [x + len, y]]), fill: mix(fill, '#ffffff', 0.35), ...common }));
  g.appendChild(el(doc, 'polygon', { points: pts([[x + len, y], [x + len + od, y - od], [x + len + od, y + h - od], [x + len, y + h]]), fill: mix(fill, '#000000', 0.25), ...common }));
  g.appendChild(el(doc, 'rect', { x: x.toFixed(1), y: y.toFixed(1), width: len.toFixed(1), height: h.toFixed(1), fill, ...common }));
  if (mark) {
    const badge = el(doc, 'circle', { cx: (x + len / 2).toFixed(1), cy: (y + h + 7).toFixed(1), r: 3.5,
      fill: mark.colour, stroke: p.bg, 'stroke-width': 1, 'data-testid': 'layered-reach', 'data-state': mark.state });
    g.appendChild(badge);
  }
  return g;
}

function drawConnector(doc: Document, c: ConnectorGeom, p: Palette, colourOf: (u: Unit) => string): SVGElement {
  const g = el(doc, 'g', { 'data-testid': 'layered-branch', 'data-units': c.branch.units.length });
  const names = c.branch.units.map((u) => u.id + ' (' + u.className + ')');
  titled(doc, g, c.stub ? 'side output: ' + names.join(', ')
    : names.length ? 'side branch: ' + names.join(' → ') : 'skip connection');
  const d = c.stub ? `M${c.x1.toFixed(1)},${c.y1.toFixed(1)} V${c.level.toFixed(1)} H${c.x2.toFixed(1)}`
    : `M${c.x1.toFixed(1)},${c.y1.toFixed(1)} V${c.level.toFixed(1)} H${c.x2.toFixed(1)} V${c.y2.toFixed(1)}`;
  g.appendChild(el(doc, 'path', { d, fill: 'none', stroke: p.edge, 'stroke-width': 1.2 }));
  if (!c.stub) {
    g.appendChild(el(doc, 'path', { d: `M${(c.x2 - 3).toFixed(1)},${(c.y2 - 5).toFixed(1)} L${c.x2.toFixed(1)},${c.y2.toFixed(1)} L${(c.x2 + 3).toFixed(1)},${(c.y2 - 5).toFixed(1)}`, fill: 'none', stroke: p.edge, 'stroke-width': 1.2 }));
  }
  if (c.branch.units.length) {
    const main = c.branch.units.reduce((a, b) => (b.params > a.params ? b : a));
    const mx = c.stub ? c.x2 : (c.x1 + c.x2) / 2;
    g.appendChild(el(doc, 'rect', { x: (mx - 4).toFixed(1), y: (c.level - 4).toFixed(1), width: 8, height: 8,
      fill: colourOf(main), stroke: p.edge, 'stroke-width': 0.8 }));
  }
  return g;
}

function drawLabels(doc: Document, geom: LayeredGeometry, p: Palette): SVGElement {
  const g = el(doc, 'g', { 'data-testid': 'layered-labels', 'font-size': 11, fill: p.text });
  for (const b of geom.boxes) {
    if (!b.label) continue;
    const x = b.x + (b.len + b.od) / 2, y = geom.labelY;
    g.appendChild(textEl(doc, b.label, { x: x.toFixed(1), y: y.toFixed(1), transform: `rotate(45 ${x.toFixed(1)} ${y.toFixed(1)})` }));
  }
  return g;
}

interface LegendItem { colour: string; text: string; key: string }

export function typeLegend(model: LayeredModel, colourOf: (u: Unit) => string): LegendItem[] {
  const byCat = new Map<Category, { colour: string; classes: Set<string> }>();
  for (const u of [...model.main, ...model.branches.flatMap((b) => b.units)]) {
    let e = byCat.get(u.category);
    if (!e) byCat.set(u.category, (e = { colour: colourOf(u), classes: new Set() }));
    e.classes.add(u.className);
  }
  return [...byCat.entries()].map(([cat, e]) => ({
    key: cat, colour: e.colour, text: CATEGORY_LABELS[cat] + ': ' + [...e.classes].join(', '),
  }));
}

/** Legend items laid out in rows that fit `width`; returns the rows. */
export function legendRows(items: LegendItem[], width: number): LegendItem[][] {
  const rows: LegendItem[][] = [[]];
  let x = 16;
  for (const it of items) {
    const w = 22 + it.text.length * CHAR_W + 14;
    if (x + w > width - 16 && rows[rows.length - 1].length) { rows.push([]); x = 16; }
    rows[rows.length - 1].push(it);
    x += w;
  }
  return rows.filter((r) => r.length);
}

function drawLegend(doc: Document, rows: LegendItem[][], top: number, p: Palette): SVGElement {
  const g = el(doc, 'g', { 'data-testid': 'layered-legend', 'font-size': 11, fill: p.text });
  rows.forEach((row, r) => {
    let x = 16;
    const y = top + r * LEGEND_ROW;
    for (const it of row) {
      const item = el(doc, 'g', { 'data-testid': 'layered-legend-item', 'data-key': xmlSafe(it.key) });
      item.appendChild(el(doc, 'rect', { x, y, width: 12, height: 12, rx: 2, fill: it.colour }));
      item.appendChild(textEl(doc, it.text, { x: x + 17, y: y + 10 }));
      g.appendChild(item);
      x += 22 + it.text.length * CHAR_W + 14;
    }
  });
  return g;
}

export interface SvgInput {
  model: LayeredModel;
  geom: LayeredGeometry;
  palette: Palette;
  opts: DrawOptions;
  reach: GradientReach | null;
  title: string;
  summary: string | null;
  legend: LegendItem[][];
  selected: string | null;
  /** Colour by a figure or a signal (common/signals_colour_by.ts); null = the type / reach colours */
  colouring?: Colouring | null;
}

/** The reach legend items (states present on the drawn units). */
export function reachItems(model: LayeredModel, reach: GradientReach | null, dark: boolean): LegendItem[] {
  const ids = [...model.main, ...model.branches.flatMap((b) => b.units)].map((u) => u.id);
  return reachLegend(reachCounts(reach, ids), dark)
    .map((e) => ({ colour: e.colour, text: 'gradient: ' + e.label, key: 'reach-' + e.state }));
}

/** The colour of a unit: its layer type's, or its gradient-reach state's. */
export function colourFn(p: Palette, opts: DrawOptions, reach: GradientReach | null): (u: Unit) => string {
  return (u) => {
    if (opts.colourBy === 'reach') {
      const m = nodeReach(reach, u.id, p.dark);
      return m ? m.colour : (p.dark ? '#5a5a5a' : '#cfd8dc');
    }
    return p.cat[u.category] || p.cat.other;
  };
}

/** A box coloured by a value: its paint and value on the element, "no value" hatched on the front. */
function markPaint(doc: Document, g: SVGElement, col: Colouring, id: string): void {
  const paint = col.paint(id);
  g.setAttribute('data-paint', paint.kind);
  g.setAttribute('data-fill', paint.fill);
  if (paint.kind === 'none') g.querySelector('rect')?.setAttribute('fill', svgFill(paint));
  const t = g.querySelector('title');
  if (t) t.textContent += '\n' + xmlSafe(col.metric.label + ': ' + col.text(id));
}

export function buildLayeredSvg(doc: Document, s: SvgInput): SVGSVGElement {
  const { geom, palette: p } = s;
  const svg = el(doc, 'svg', { xmlns: NS, version: '1.1', width: geom.width, height: geom.height,
    viewBox: `0 0 ${geom.width} ${geom.height}`, 'font-family': FONT_FAMILY, 'font-size': 12,
    'data-testid': 'layered-svg' }) as SVGSVGElement;
  titled(doc, svg, s.title);
  svg.appendChild(el(doc, 'rect', { width: geom.width, height: geom.height, fill: p.bg }));
  svg.appendChild(textEl(doc, s.title, { x: 16, y: geom.headerY, 'font-weight': 600, fill: p.text }));
  if (s.summary) {
    svg.appendChild(textEl(doc, s.summary, { x: 16, y: geom.headerY + 18, 'font-size': 11, fill: p.text2,
      'data-testid': 'layered-svg-summary' }));
  }
  const col = s.colouring || null;
  const colourOf = col ? (u: Unit) => col.paint(u.id).fill : colourFn(p, s.opts, s.reach);
  if (col) svg.appendChild(el(doc, 'defs', {})).appendChild(hatchPattern(doc));
  const conns = el(doc, 'g', { 'data-testid': 'layered-branches' });
  for (const c of geom.connectors) conns.appendChild(drawConnector(doc, c, p, colourOf));
  const boxes = el(doc, 'g', { 'data-testid': 'layered-boxes' });
  for (const b of geom.boxes) {
    const g = boxes.appendChild(drawBox(doc, b, colourOf(b.unit), p, s.reach, b.unit.id === s.selected));
    if (col) markPaint(doc, g, col, b.unit.id);
  }
  svg.append(conns, boxes, drawLabels(doc, geom, p), drawLegend(doc, s.legend, geom.legendY, p));
  return svg;
}

