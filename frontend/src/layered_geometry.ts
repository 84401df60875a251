// Sizes and positions of the layered view: each main-path unit becomes a box in oblique
// projection whose front face is (spatial height) x (channels along the path) and whose receding
// depth is the spatial width; 1-D outputs (Dense, Flatten) are thin bars. Sizes grow as a power
// below 1 (default), a log, or linearly up to a cap, so 2048 channels do not dwarf 3. Pure.

import type { Shape } from './types';
import { fmtShape } from './format';
import type { Branch, LayeredModel, Unit } from './layered_model';

export type ScaleMode = 'power' | 'log' | 'linear';

export interface DrawOptions {
  scale: number;          // multiplies every size (0.25 .. 3)
  spacing: number;        // px between boxes
  mode: ScaleMode;
  names: boolean;         // label each box with its name
  shapes: boolean;        // ... and its output shape
  colourBy: 'type' | 'reach';
}

export interface Dims {
  kind: 'volume' | 'bar' | 'unknown';
  spatial: number[];      // [height, width] (a 1-D sequence has [length])
  channels: number | null;
}

export interface BoxGeom {
  unit: Unit;
  index: number;
  dims: Dims;
  x: number;              // left of the front face
  y: number;              // top of the front face
  len: number;            // along the path (channels)
  h: number;              // front face height (spatial height)
  od: number;             // oblique offset (spatial width): the back face is at (+od, -od)
  label: string;
}

export interface ConnectorGeom {
  branch: Branch;
  x1: number; y1: number; // where it leaves (top of a box, or the left margin)
  x2: number; y2: number; // where it rejoins (top of a box), or the end of a stub
  level: number;          // y of its horizontal run
  stub: boolean;          // a dead end (extra output / unused branch)
}

export interface LayeredGeometry {
  boxes: BoxGeom[];
  connectors: ConnectorGeom[];
  width: number;
  height: number;
  headerY: number;        // baseline of the title line
  labelY: number;         // where the labels start
  legendY: number;        // top of the legend
  cy: number;             // centre line of the boxes
}

const MARGIN = 16;
const CHAR_W = 6.4;       // estimated width of one label character (11px sans-serif)
const LEVEL_STEP = 10;
const LABEL_PITCH = 19;   // min px between labelled boxes: 45° labels 13 px apart
export const LEGEND_ROW = 18;

/** How an output shape reads as a volume (batch dimension dropped). */
export function dimsOf(shape: Shape | null, framework: string, className: string): Dims {
  if (!shape || shape.length < 2) return { kind: 'unknown', spatial: [], channels: null };
  const d = shape.slice(1).map((x) => (x == null ? 0 : x));
  if (d.length === 1) return { kind: 'bar', spatial: [], channels: d[0] };
  const channelsFirst = framework === 'torch' && (d.length >= 3 || /1d/i.test(className));
  const channels = channelsFirst ? d[0] : d[d.length - 1];
  const spatial = channelsFirst ? d.slice(1) : d.slice(0, -1);
  return { kind: 'volume', spatial: spatial.slice(-2), channels };
}

type Axis = 'spatial' | 'channels' | 'units';

// [power: k, exponent] [log: min, k] [linear: k, cap] per axis
const POWER: Record<Axis, [number, number]> = { spatial: [6.3, 0.585], channels: [4, 0.4], units: [3, 0.5] };
const LOG: Record<Axis, [number, number]> = { spatial: [4, 16], channels: [2, 5], units: [6, 13] };
const LINEAR: Record<Axis, [number, number]> = { spatial: [0.9, 200], channels: [0.25, 120], units: [0.12, 240] };
const MIN: Record<Axis, number> = { spatial: 4, channels: 3, units: 8 };
const CAP: Record<Axis, number> = { spatial: 400, channels: 160, units: 260 };

/** Pixels for `n` along an axis: every mode grows strictly with n up to its cap. */
export function axisSize(n: number, axis: Axis, mode: ScaleMode): number {
  if (!(n > 0)) return MIN[axis];
  let v: number;
  if (mode === 'log') v = LOG[axis][0] + LOG[axis][1] * Math.log2(1 + n);
  else if (mode === 'linear') v = Math.min(LINEAR[axis][1], n * LINEAR[axis][0]);
  else v = Math.min(CAP[axis], POWER[axis][0] * Math.pow(n, POWER[axis][1]));
  return Math.max(MIN[axis], v);
}

/** Pixel sizes of a box: [len, h, od]. */
export function boxSize(dims: Dims, o: DrawOptions): [number, number, number] {
  const s = o.scale;
  if (dims.kind === 'bar') return [6 * s, axisSize(dims.channels || 0, 'units', o.mode) * s, 5 * s];
  if (dims.kind === 'unknown') return [14 * s, 24 * s, 8 * s];
  const [hh, ww] = dims.spatial.length === 1 ? [dims.spatial[0], 0] : dims.spatial;
  const h = axisSize(hh, 'spatial', o.mode) * s;
  const od = (dims.spatial.length === 1 ? 4 : axisSize(ww, 'spatial', o.mode) * 0.5) * s;
  const len = axisSize(dims.channels || 0, 'channels', o.mode) * s;
  return [len, h, od];
}

function shapeText(shape: Shape | null): string {
  return fmtShape(shape, 'keras');
}

export function labelOf(u: Unit, o: DrawOptions): string {
  const parts: string[] = [];
  if (o.names) parts.push(u.id);
  if (o.shapes) parts.push(shapeText(u.shape));
  return parts.join('  ');
}

/** Levels for the connectors' horizontal runs: shortest spans lowest, no two overlapping. */
function levels(spans: [number, number][]): number[] {
  const order = spans.map((s, i) => i).sort((a, b) => (spans[a][1] - spans[a][0]) - (spans[b][1] - spans[b][0]));
  const taken: [number, number][][] = [];
  const out = new Array<number>(spans.length).fill(0);
  for (const i of order) {
    const [a, b] = spans[i];
    let lv = 0;
    while (taken[lv] && taken[lv].some(([c, d]) => a < d && c < b)) lv++;
    (taken[lv] = taken[lv] || []).push([a, b]);
    out[i] = lv;
  }
  return out;
}

function placeBoxes(model: LayeredModel, framework: string, o: DrawOptions): { boxes: BoxGeom[]; right: number } {
  let x = MARGIN + 14;
  const boxes: BoxGeom[] = model.main.map((unit, index) => {
    const dims = dimsOf(unit.shape, framework, unit.className);
    const [len, h, od] = boxSize(dims, o);
    const b: BoxGeom = { unit, index, dims, x, y: 0, len, h, od, label: labelOf(unit, o) };
    x += Math.max(len + od + o.spacing, b.label ? LABEL_PITCH : 0);  // rotated labels stay apart
    return b;
  });
  return { boxes, right: x - o.spacing };
}

/** Everything's position; `legendRows` is how many legend rows the caller will draw; the
 *  drawing is wide enough for the `summary` line. */
export function layout(model: LayeredModel, framework: string, o: DrawOptions, summary: string | null,
                       legendRows: number): LayeredGeometry {
  const { boxes, right } = placeBoxes(model, framework, o);
  const spans = model.branches.map((br): [number, number] => {
    const a = br.from == null ? -1 : br.from;
    return [a, br.to == null ? a + 1 : br.to];
  });
  const lv = levels(spans);
  const nLevels = lv.length ? Math.max(...lv) + 1 : 0;
  const headerY = MARGIN + 12;
  const up = Math.max(10, ...boxes.map((b) => b.h / 2 + b.od));
  const down = Math.max(10, ...boxes.map((b) => b.h / 2));
  const top = headerY + (summary ? 20 : 0) + 14 + nLevels * LEVEL_STEP;
  const cy = top + up;
  for (const b of boxes) b.y = cy - b.h / 2;
  const connectors = model.branches.map((br, i) => connector(br, boxes, top - 6 - lv[i] * LEVEL_STEP));
  const labelY = cy + down + 16;
  const longest = Math.max(0, ...boxes.map((b) => b.label.length));
  const legendY = labelY + (longest ? longest * CHAR_W * 0.72 + 12 : 0) + 6;
  const width = Math.max(right + MARGIN + longest * CHAR_W * 0.72, 520, (summary || '').length * 5.9 + 2 * MARGIN);
  return { boxes, connectors, width: Math.ceil(width), height: Math.ceil(legendY + legendRows * LEGEND_ROW + MARGIN),
    headerY, labelY, legendY, cy };
}

function connector(br: Branch, boxes: BoxGeom[], level: number): ConnectorGeom {
  const at = (i: number, shift: number): [number, number] => {
    const b = boxes[i];
    return [b.x + (b.len + b.od) / 2 + shift, b.y - b.od / 2];
  };
  const [x1, y1] = br.from == null || !boxes[br.from] ? [MARGIN, level] : at(br.from, 3);
  if (br.to == null || !boxes[br.to]) {
    return { branch: br, x1, y1, x2: x1 + 26, y2: level, level, stub: true };
  }
  const [x2, y2] = at(br.to, -3);
  return { branch: br, x1, y1, x2, y2, level, stub: false };
}
