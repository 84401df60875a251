// The ONE continuous colour scale of the dashboard (Colour by in the Graph, Layered and Table
// views, the Layers × steps heatmap): a perceptual sequential ramp (viridis, dark = low) on a
// linear or log scale, its legend (label, unit, min / max, scale), and the distinct paints of the
// values that are not on the scale: "no value" (hatched grey, never the colour of 0), NaN,
// +Infinity, −Infinity, and 0 / negatives on a log scale. Every string is set as text.

import { h } from '../dom';
import { injectCss } from './css';

export type ScaleKind = 'log' | 'linear';
/** What a value is, for its paint: on the ramp, or one of the special cases. */
export type PaintKind = 'value' | 'none' | 'nan' | 'posinf' | 'neginf' | 'nonpos';

export interface Scale {
  kind: ScaleKind;
  min: number;          // finite; on a log scale > 0
  max: number;
  /** true when no finite value is on the scale (every value is special) */
  empty: boolean;
}

export interface Paint {
  kind: PaintKind;
  fill: string;         // CSS colour; for 'none' the flat fallback colour (the hatch is drawn on top)
  ink: string;          // a readable text colour on `fill`
  rgb: number;          // 0xRRGGBB of `fill`
}

const STOPS = ['#440154', '#472d7b', '#3b528b', '#2c728e', '#21918c', '#28ae80', '#5ec962', '#addc30', '#fde725'];
const LUT_SIZE = 256;

function hexToRgb(hex: string): number { return parseInt(hex.slice(1), 16); }
function rgbToHex(rgb: number): string { return '#' + rgb.toString(16).padStart(6, '0'); }

/** The ramp as 256 packed RGB values, low → high. */
export const RAMP: Uint32Array = (() => {
  const out = new Uint32Array(LUT_SIZE);
  const cs = STOPS.map(hexToRgb);
  for (let i = 0; i < LUT_SIZE; i++) {
    const t = (i / (LUT_SIZE - 1)) * (cs.length - 1);
    const k = Math.min(cs.length - 2, Math.floor(t)), f = t - k;
    const a = cs[k], b = cs[k + 1];
    const ch = (s: number) => Math.round(((a >> s) & 255) * (1 - f) + ((b >> s) & 255) * f);
    out[i] = (ch(16) << 16) | (ch(8) << 8) | ch(0);
  }
  return out;
})();
const RAMP_HEX = Array.from(RAMP, rgbToHex);

/** The paints of the special cases (same in light and dark themes: they sit on their own swatch). */
export const SPECIAL: Record<Exclude<PaintKind, 'value'>, { rgb: number; label: string; title: string }> = {
  none: { rgb: 0xb0b6bb, label: 'no value', title: 'this layer has no value for this signal at this step (not measured or not computable) — not 0' },
  nan: { rgb: 0xe91e63, label: 'NaN', title: 'the value is NaN (not a number)' },
  posinf: { rgb: 0xff1744, label: '+Infinity', title: 'the value is +Infinity' },
  neginf: { rgb: 0x2979ff, label: '−Infinity', title: 'the value is −Infinity' },
  nonpos: { rgb: 0x000000, label: '≤ 0 (off the log scale)', title: 'zero or negative: below every value of a log scale' },
};

function inkOn(rgb: number): string {
  const r = (rgb >> 16) & 255, g = (rgb >> 8) & 255, b = rgb & 255;
  return 0.2126 * r + 0.7152 * g + 0.0722 * b > 140 ? '#111111' : '#ffffff';
}

const SPECIAL_PAINT = Object.fromEntries(Object.entries(SPECIAL).map(([k, v]) =>
  [k, { kind: k as PaintKind, fill: rgbToHex(v.rgb), ink: inkOn(v.rgb), rgb: v.rgb }])) as Record<Exclude<PaintKind, 'value'>, Paint>;
const RAMP_PAINT: Paint[] = Array.from(RAMP, (rgb, i) => ({ kind: 'value' as PaintKind, fill: RAMP_HEX[i], ink: inkOn(rgb), rgb }));

/** The scale over `values` (null = no value; NaN / ±Infinity allowed): min and max of the finite
 * values that the kind can show (> 0 on a log scale). */
export function makeScale(values: Iterable<number | null>, kind: ScaleKind): Scale {
  let min = Infinity, max = -Infinity;
  for (const v of values) {
    if (v == null || !Number.isFinite(v) || (kind === 'log' && v <= 0)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (min > max) return { kind, min: kind === 'log' ? 1 : 0, max: 1, empty: true };
  return { kind, min, max, empty: false };
}

/** The kind of a value on a scale (the ramp, or a special case). */
export function paintKind(s: Scale, v: number | null | undefined): PaintKind {
  if (v == null) return 'none';
  if (Number.isNaN(v)) return 'nan';
  if (v === Infinity) return 'posinf';
  if (v === -Infinity) return 'neginf';
  if (s.kind === 'log' && v <= 0) return 'nonpos';
  return 'value';
}

/** Position of a finite on-scale value in [0, 1]. */
export function position(s: Scale, v: number): number {
  if (s.max === s.min) return 0.5;
  const t = s.kind === 'log'
    ? (Math.log10(v) - Math.log10(s.min)) / (Math.log10(s.max) - Math.log10(s.min))
    : (v - s.min) / (s.max - s.min);
  return t < 0 ? 0 : t > 1 ? 1 : t;
}

/** Index into RAMP, or -1 .. -5 for the special cases (none, nan, posinf, neginf, nonpos). */
export function rampIndex(s: Scale, v: number | null | undefined): number {
  const k = paintKind(s, v);
  if (k !== 'value') return SPECIAL_INDEX[k];
  return Math.round(position(s, v as number) * (LUT_SIZE - 1));
}

/** rampIndex with the scale's constants computed once (for 10^6 cells in one pass). */
export function rampIndexer(s: Scale): (v: number | null | undefined) => number {
  const log = s.kind === 'log';
  const lo = log ? Math.log10(s.min) : s.min, span = (log ? Math.log10(s.max) : s.max) - lo;
  const k = span > 0 ? (LUT_SIZE - 1) / span : 0, mid = (LUT_SIZE - 1) / 2;
  return (v) => {
    if (v == null) return -1;
    if (v !== v) return -2;
    if (v === Infinity) return -3;
    if (v === -Infinity) return -4;
    if (log && v <= 0) return -5;
    if (k === 0) return Math.round(mid);
    const t = Math.round(((log ? Math.log10(v) : v) - lo) * k);
    return t < 0 ? 0 : t > LUT_SIZE - 1 ? LUT_SIZE - 1 : t;
  };
}
export const SPECIAL_INDEX: Record<Exclude<PaintKind, 'value'>, number> = { none: -1, nan: -2, posinf: -3, neginf: -4, nonpos: -5 };
const BY_INDEX: Paint[] = [SPECIAL_PAINT.none, SPECIAL_PAINT.nan, SPECIAL_PAINT.posinf, SPECIAL_PAINT.neginf, SPECIAL_PAINT.nonpos];

/** The packed RGB of a rampIndex() result. */
export function rgbOfIndex(i: number): number {
  return i >= 0 ? RAMP[i] : BY_INDEX[-i - 1].rgb;
}

/** The paint of a value. */
export function paintOf(s: Scale, v: number | null | undefined): Paint {
  const i = rampIndex(s, v);
  return i >= 0 ? RAMP_PAINT[i] : BY_INDEX[-i - 1];
}

// ---------------------------------------------------------------------------------------------
// formatting of signal values: 4 significant digits, the special values spelled out

/** "0.01234", "1.235e-5", "NaN", "+Infinity", "no value"; with the unit ("3.2 ms", "92 %"). */
export function fmtSignal(v: number | null | undefined, unit = ''): string {
  if (v == null) return 'no value';
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Infinity';
  if (v === -Infinity) return '−Infinity';
  if (unit === 'fraction') return fmtNum(v) + ' (' + fmtNum(v * 100) + ' %)';
  return fmtNum(v) + (unit ? ' ' + unit : '');
}

/** A finite number with 4 significant digits (exponent below 1e-3 and from 1e6). */
export function fmtNum(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e6) return v.toExponential(3).replace(/\.?0+e/, 'e').replace('e+', 'e');
  return String(Number(v.toPrecision(4)));
}

// ---------------------------------------------------------------------------------------------
// hatching for "no value" in SVG, canvas and CSS

const HATCH_ID = 'avs-nodata-hatch';
/** A CSS background for "no value" cells and swatches. */
export const NO_VALUE_CSS = 'repeating-linear-gradient(45deg, #b0b6bb 0 2px, #e4e7ea 2px 5px)';

/** The SVG <pattern> of "no value" (id HATCH_ID), for a drawing's <defs>. */
export function hatchPattern(doc: Document): SVGPatternElement {
  const ns = 'http://www.w3.org/2000/svg';
  const mk = <K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string>): SVGElementTagNameMap[K] => {
    const e = doc.createElementNS(ns, tag) as SVGElementTagNameMap[K];
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  };
  const pat = mk('pattern', { id: HATCH_ID, width: '6', height: '6', patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' });
  pat.append(mk('rect', { width: '6', height: '6', fill: '#e4e7ea' }), mk('rect', { width: '2', height: '6', fill: '#b0b6bb' }));
  return pat;
}

/** The SVG fill of a paint: the hatch (with its flat colour as fallback) for "no value". */
export function svgFill(paint: Paint): string {
  return paint.kind === 'none' ? `url(#${HATCH_ID}) ${paint.fill}` : paint.fill;
}

/** A canvas pattern for "no value" cells. */
export function canvasHatch(ctx: CanvasRenderingContext2D): CanvasPattern | string {
  const c = document.createElement('canvas');
  c.width = c.height = 6;
  const g = c.getContext('2d');
  if (!g) return rgbToHex(SPECIAL.none.rgb);
  g.fillStyle = '#e4e7ea';
  g.fillRect(0, 0, 6, 6);
  g.strokeStyle = '#b0b6bb';
  g.lineWidth = 2;
  g.beginPath();
  g.moveTo(-1, 7); g.lineTo(7, -1);
  g.moveTo(-1, 1); g.lineTo(1, -1);
  g.moveTo(5, 7); g.lineTo(7, 5);
  g.stroke();
  return ctx.createPattern(c, 'repeat') || rgbToHex(SPECIAL.none.rgb);
}

// ---------------------------------------------------------------------------------------------
// the legend

export interface LegendInfo {
  label: string;
  unit: string;
  scale: Scale;
  /** how many shown values fall in each special case (only those > 0 get a swatch; "no value" always) */
  counts?: Partial<Record<PaintKind, number>>;
  /** e.g. "colours from step 300 (the signals step at or before architecture step 300)" */
  note?: string;
  format?: (v: number) => string;
}

function swatch(kind: Exclude<PaintKind, 'value'>, count?: number): HTMLElement {
  const sp = SPECIAL[kind];
  const box = h('span', { class: 'avs-sw', style: { background: kind === 'none' ? NO_VALUE_CSS : rgbToHex(sp.rgb) } });
  return h('span', { class: 'avs-li', title: sp.title, dataset: { paint: kind } }, box,
    sp.label + (count != null ? ' (' + count + ')' : ''));
}

/** The legend of a scale: title with unit, the ramp with min / max, the scale kind, special swatches. */
export function legend(info: LegendInfo): HTMLElement {
  const s = info.scale;
  const fmt = info.format || ((v: number) => fmtNum(v));
  const unit = info.unit === 'fraction' ? 'fraction (0–1)' : info.unit;
  const title = h('div', { class: 'avs-lt' }, info.label + (unit ? ' [' + unit + ']' : ''));
  const bar = h('span', { class: 'avs-ramp', attrs: { 'aria-hidden': 'true' },
    style: { background: 'linear-gradient(to right, ' + STOPS.join(', ') + ')' } });
  const range = s.empty
    ? h('div', { class: 'avs-range muted' }, 'no finite value on this scale')
    : h('div', { class: 'avs-range' },
      h('span', { dataset: { legend: 'min' }, title: 'smallest value shown' }, 'min ' + fmt(s.min)), bar,
      h('span', { dataset: { legend: 'max' }, title: 'largest value shown' }, 'max ' + fmt(s.max)));
  const kind = h('div', { class: 'avs-kind', dataset: { legend: 'scale' } }, s.kind === 'log' ? 'log scale' : 'linear scale');
  const c = info.counts || {};
  const specials = (['none', 'nan', 'posinf', 'neginf', 'nonpos'] as const)
    .filter((k) => k === 'none' || (c[k] || 0) > 0).map((k) => swatch(k, c[k]));
  return h('div', { class: 'avs-legend', dataset: { testid: 'signals-legend' }, attrs: { role: 'group', 'aria-label': 'Colour legend' } },
    title, range, kind, h('div', { class: 'avs-specials' }, specials),
    info.note ? h('div', { class: 'avs-note', dataset: { legend: 'note' } }, info.note) : null);
}

/** The shared CSS of the legend, the colour-by control and the signals view (installed once). */
export const SIGNALS_CSS = `
.avs-legend{font-size:11px;line-height:1.35;display:flex;flex-direction:column;gap:3px;max-width:340px}
.avs-legend .avs-lt{font-weight:600}
.avs-legend .avs-range{display:flex;align-items:center;gap:6px;white-space:nowrap}
.avs-legend .avs-ramp{display:inline-block;width:110px;height:10px;border-radius:2px;flex:none}
.avs-legend .avs-specials{display:flex;flex-wrap:wrap;gap:2px 10px}
.avs-li{display:inline-flex;align-items:center;gap:4px;white-space:nowrap}
.avs-sw{display:inline-block;width:12px;height:12px;border-radius:2px;border:1px solid rgba(128,128,128,.6);flex:none}
.avs-legend .avs-note{opacity:.85}
.avs-colour{display:inline-flex;flex-wrap:wrap;align-items:center;gap:6px;font-size:12px}
.avs-colour select,.avs-colour input{font:inherit;font-size:12px}
.avs-colour input[type=range]{width:160px}
.avg-colour-bar{display:flex;flex-wrap:wrap;gap:4px 18px;align-items:center;padding:4px 8px;border-bottom:1px solid var(--avg-border);background:var(--avg-panel);font-size:12px}
.avs-spark-table th{font-weight:500;width:auto}
.avs-spark{color:var(--avg-link, var(--link));display:block}
.avs-cell-val{font-size:11px;margin-left:2px;white-space:nowrap}
.avs-table-colour{flex-wrap:wrap;gap:4px 18px}
.avs-cell-sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px;border:1px solid rgba(128,128,128,.6)}
`;

export function installSignalsCss(doc: Document = document): void {
  injectCss(doc, 'signals', SIGNALS_CSS);
}
