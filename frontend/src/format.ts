// The dashboard's ONE set of formatters (table, graph, compare, timeline, filters). Numbers are
// exact unless the function says it abbreviates; an unknown value is "—" everywhere.

import type { Shape } from './types';

export const UNKNOWN = '—';

const INT = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** 1256080 -> "1,256,080" (exact; no rounding to K/M); unknown -> "—". */
export function fmtInt(n: number | null | undefined): string {
  if (n == null || !Number.isFinite(n)) return UNKNOWN;
  return INT.format(n);
}

/** Signed integer: +118,272 / −1,024 / 0. */
export function fmtSigned(n: number): string {
  if (n > 0) return '+' + fmtInt(n);
  if (n < 0) return '−' + fmtInt(-n);
  return '0';
}

/** 1234567 -> "1.23M", 12345 -> "12.3k" (for tight places: graph boxes, header). */
export function fmtShort(n: number | null | undefined): string {
  if (n == null || !Number.isFinite(n)) return UNKNOWN;
  const a = Math.abs(n);
  if (a >= 1e12) return (n / 1e12).toFixed(a >= 1e13 ? 1 : 2) + 'T';
  if (a >= 1e9) return (n / 1e9).toFixed(a >= 1e10 ? 1 : 2) + 'B';
  if (a >= 1e6) return (n / 1e6).toFixed(a >= 1e7 ? 1 : 2) + 'M';
  if (a >= 1e4) return (n / 1e3).toFixed(a >= 1e5 ? 0 : 1) + 'k';
  return fmtInt(n);
}

const BYTE_UNITS = ['B', 'kB', 'MB', 'GB', 'TB'];

/** Bytes in decimal units as torchinfo prints them: 512 B, 1.23 MB, 44.6 MB; unknown -> "—". */
export function fmtBytes(n: number | null | undefined): string {
  if (n == null || !Number.isFinite(n)) return UNKNOWN;
  let v = Math.abs(n), u = 0;
  while (v >= 1000 && u < BYTE_UNITS.length - 1) { v /= 1000; u++; }
  const s = u === 0 ? String(v) : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return (n < 0 ? '−' : '') + s + ' ' + BYTE_UNITS[u];
}

/**
 * MACs per example. `complete` false (model.macs_complete) prefixes "at least"; `short`
 * abbreviates (4.46G) for the header; unknown -> "—".
 */
export function fmtMacs(n: number | null | undefined, complete = true, short = false): string {
  if (n == null || !Number.isFinite(n)) return UNKNOWN;
  let s = short ? fmtShort(n) : fmtInt(n);
  if (short) s = s.replace(/B$/, 'G');   // MACs read as giga, params as billions
  return (complete ? '' : 'at least ') + s;
}

/** A node's MACs keys (a container's `macs_complete` is false when some figure inside is unknown). */
export interface NodeMacs { macs?: number | null; macs_reason?: unknown; macs_complete?: unknown }

/** The server's `macs_reason` of a node whose figure is a lower bound ("at least: ..."). */
export function macsAtLeast(reason: unknown): boolean {
  return typeof reason === 'string' && reason.startsWith('at least');
}

/**
 * One node's MACs as the server computed them (tensorboard_archviz/totals.py sums containers):
 * "at least 1,234" when its `macs_reason` says so, "—" when null; `title` is the reason to hover.
 */
export function fmtNodeMacs(n: NodeMacs): { text: string; title: string | undefined } {
  const reason = typeof n.macs_reason === 'string' && n.macs_reason ? n.macs_reason : undefined;
  if (n.macs == null || !Number.isFinite(n.macs)) return { text: UNKNOWN, title: reason || 'not computed' };
  return { text: fmtMacs(n.macs, !macsAtLeast(reason) && n.macs_complete !== false), title: reason };
}

/** The same as one line for details panels: "— (unknown: why)", "at least 1,234 (why)", "1,234". */
export function fmtNodeMacsLine(n: NodeMacs): string {
  const m = fmtNodeMacs(n);
  if (n.macs == null) return m.text + ' (unknown: ' + String(m.title).replace(/^unknown:\s*/, '') + ')';
  return m.title ? m.text + ' (' + m.title.replace(/^at least:?\s*/, '') + ')' : m.text;
}

/** A score with 3 significant digits (e.g. 0.0123, 4.56, 1230). */
export function fmtScore(x: number | null | undefined): string {
  if (x == null || !Number.isFinite(x)) return UNKNOWN;
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1000 || a < 0.001) return x.toExponential(2);
  return x.toPrecision(3).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
}

export type ShapeStyle = 'keras' | 'torch';

function styleOf(style: ShapeStyle | boolean): ShapeStyle {
  return style === true || style === 'torch' ? 'torch' : 'keras';
}

/** A shape as Keras prints it: (None, 28, 28, 20); torch style ([1, 20, 28, 28]) with `true`/'torch'. */
export function fmtShape(shape: Shape | null | undefined, style: ShapeStyle | boolean = 'keras'): string {
  if (!Array.isArray(shape)) return '?';
  const st = styleOf(style);
  const dims = shape.map((d) => (d == null ? (st === 'keras' ? 'None' : '?') : String(d)));
  if (st === 'torch') return '[' + dims.join(', ') + ']';
  return '(' + dims.join(', ') + (dims.length === 1 ? ',' : '') + ')';
}

/** Several shapes on one line ("[(None, 4), (None, 4)]"); null when there are none. */
export function fmtShapes(list: (Shape | null)[] | null | undefined,
                          style: ShapeStyle | boolean = 'keras'): string | null {
  if (!Array.isArray(list) || list.length === 0) return null;
  if (list.length === 1) return fmtShape(list[0], style);
  return '[' + list.map((s) => fmtShape(s, style)).join(', ') + ']';
}

/** One line per shape ("?" when unknown, "—" when the node has none). */
export function shapeLines(shapes: (Shape | null)[] | null | undefined, style: ShapeStyle | boolean): string[] {
  if (shapes == null) return ['?'];
  if (shapes.length === 0) return [UNKNOWN];
  return shapes.map((s) => fmtShape(s, style));
}

/** Any JSON value as a short readable string (config values, diff fields). */
export function fmtValue(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (typeof v === 'number') return Number.isInteger(v) ? fmtInt(v) : String(v);
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

/** "1 layer" / "2 layers". */
export function plural(n: number, one: string, many = one + 's'): string {
  return fmtInt(n) + ' ' + (n === 1 ? one : many);
}
