// What a node box says (plot_model-like, toggled), formatting of shapes and counts, text widths.
import { fmtInt, fmtShape, fmtShapes, fmtShort } from '../format';
import type { GNode, VEdge } from './model';
import { FONT, FONT_BOLD } from '../common/palette';

export interface LabelOpts {
  name: boolean;
  type: boolean;
  shapes: boolean;
  dtype: boolean;
  activation: boolean;
  params: boolean;
  edgeShapes: boolean;
}

export const DEFAULT_LABELS: LabelOpts = {
  name: true, type: true, shapes: true, dtype: false, activation: true, params: true, edgeShapes: true,
};

export const LABEL_NAMES: [keyof LabelOpts, string][] = [
  ['name', 'Layer name'], ['type', 'Layer type'], ['shapes', 'Input / output shapes'],
  ['dtype', 'dtype'], ['activation', 'Activation'], ['params', 'Params (trainable / non-trainable)'],
  ['edgeShapes', 'Tensor shapes on edges'],
];

export interface Line {
  text: string;
  bold?: boolean;
  muted?: boolean;
}

export const BOX = {
  padX: 10, stripe: 4, head: 22, line: 16, padBottom: 6, minW: 96, maxW: 340,
  groupPadX: 14, groupHead: 28, groupPadBottom: 14,
};

export function fmtParams(t: number, nt: number): string {
  if (!nt) return 'params ' + fmtInt(t);
  return 'params ' + fmtInt(t + nt) + ' (T ' + fmtInt(t) + ' / NT ' + fmtInt(nt) + ')';
}

/** The lines of a layer box or a collapsed container box. */
export function nodeLines(g: GNode, o: LabelOpts, torch: boolean): Line[] {
  const r = g.raw;
  const lines: Line[] = [];
  const name = displayName(g) + (g.fold ? ' × ' + g.children.length : '');
  const type = String(r.class_name ?? '');
  const act = o.activation && r.activation ? String(r.activation) : '';
  if (o.name) lines.push({ text: name, bold: true });
  let typeLine = '';
  if (o.type) typeLine = type;
  if (g.isGroup) typeLine = (typeLine ? typeLine + ' · ' : '') + fmtInt(g.layerCount) + (g.layerCount === 1 ? ' layer' : ' layers');
  if (act) typeLine = typeLine ? typeLine + ' · ' + act : act;
  if (typeLine) lines.push({ text: typeLine, bold: !o.name && lines.length === 0 });
  if (!lines.length) lines.push({ text: type || name, bold: true });
  if (o.shapes) {
    const ins = fmtShapes(r.input_shapes, torch);
    const outs = fmtShapes(r.output_shapes, torch);
    if (ins && g.cat !== 'input') lines.push({ text: 'in  ' + ins });
    if (outs) lines.push({ text: 'out ' + outs });
    if (!ins && !outs && typeof r.reason === 'string') lines.push({ text: 'shapes unknown', muted: true });
  }
  if (o.dtype && r.dtype) lines.push({ text: String(r.dtype), muted: true });
  if (o.params && g.fold) lines.push(foldParams(g));
  else if (o.params) lines.push({ text: fmtParams(g.trainable, g.nonTrainable), muted: g.trainable + g.nonTrainable === 0 });
  return lines;
}

/** The name to show: the node's name, or its id when the name alone says little ("0", ""). */
export function displayName(g: GNode): string {
  const n = g.raw.name == null ? '' : String(g.raw.name);
  return n === '' || /^\d+$/.test(n) ? g.id : n;
}

/** The part of a name that tells it apart from its siblings: the name less its enclosing group's
 *  name ("conv2_block1_1_conv" inside the group "conv2_block1" reads "1_conv"), or the name. */
export function distinctName(g: GNode): string {
  const n = displayName(g);
  if (g.fold || g.raw.synthetic) return n;   // "layers.0 – layers.79" says it already
  const p = g.parent;
  const pn = p && p.raw.name != null ? String(p.raw.name) : '';
  if (pn.length >= 2 && n.length > pn.length + 1 && n.startsWith(pn) && /[_./:-]/.test(n[pn.length])) {
    return n.slice(pn.length + 1);
  }
  return n;
}

/** `s` in at most `n` characters, cut in the middle ("conv2…1_conv"): the end of a layer's name
 *  usually tells it from its neighbours, the start from other stages. Null under 4 characters. */
export function elideMiddle(s: string, n: number): string | null {
  if (n >= s.length) return s;
  if (n < 4) return null;
  const head = Math.max(1, Math.floor((n - 1) * 0.4));
  return s.slice(0, head) + '…' + s.slice(s.length - (n - 1 - head));
}

/** The name that fits `n` characters: the full name, else the distinguishing part (the name less
 *  its group's name), else that cut in the middle. */
export function fittedName(g: GNode, full: string, n: number): string | null {
  if (n >= full.length) return full;
  const d = distinctName(g);
  const short = d === displayName(g) ? full : d + full.slice(displayName(g).length);
  return elideMiddle(short, n);
}

/** "params 218M each · 17.4B in all" for a fold. */
function foldParams(g: GNode): Line {
  const one = g.children[0];
  const p1 = one ? one.trainable + one.nonTrainable : 0;
  return { text: 'params ' + fmtShort(p1) + ' each · ' + fmtShort(g.trainable + g.nonTrainable) + ' in all', muted: p1 === 0 };
}

/** The one-line header of an expanded container (a fold says which copy it shows). */
export function groupTitle(g: GNode, pick?: Map<string, number>): string {
  const r = g.raw;
  const type = String(r.class_name ?? '');
  const base = displayName(g) + (type ? '  ·  ' + type : '');
  if (g.fold) {
    const k = pick?.get(g.id) ?? 0;
    const shown = k < 0 ? 'all copies' : 'copy ' + (k + 1) + ' of ' + g.children.length;
    return displayName(g) + ' × ' + g.children.length + (type ? '  ·  ' + type : '') + ' · ' + shown + ' · '
      + fmtShort(g.trainable + g.nonTrainable) + ' params';
  }
  return base + ' · ' + fmtInt(g.layerCount) + (g.layerCount === 1 ? ' layer' : ' layers') + ' · '
    + fmtShort(g.trainable + g.nonTrainable) + ' params';
}

export function edgeLabel(ve: VEdge, torch: boolean): string {
  const first = ve.edges[0];
  if (!first) return '';
  const s0 = first.shape ? fmtShape(first.shape, torch) : '';
  for (let i = 1; i < ve.edges.length; i++) {
    const s = ve.edges[i].shape ? fmtShape(ve.edges[i].shape, torch) : '';
    if (s !== s0) return '×' + ve.edges.length;
  }
  return s0 + (ve.edges.length > 1 ? '  ×' + ve.edges.length : '');
}

/** Text widths with a canvas (same fonts as the SVG), cached. */
export class Measurer {
  private ctx: CanvasRenderingContext2D | null;
  private cache = new Map<string, number>();

  constructor() {
    const c = document.createElement('canvas');
    this.ctx = c.getContext('2d');
  }

  width(text: string, bold = false): number {
    const key = (bold ? 'b' : 'n') + text;
    let w = this.cache.get(key);
    if (w === undefined) {
      if (this.ctx) {
        this.ctx.font = bold ? FONT_BOLD : FONT;
        w = this.ctx.measureText(text).width;
      } else {
        w = text.length * (bold ? 7.2 : 6.6);
      }
      this.cache.set(key, w);
    }
    return w;
  }

  /** The text cut in the middle to fit maxW (a name: its start and its distinguishing end). */
  fitMiddle(text: string, maxW: number, bold = false): string {
    if (this.width(text, bold) <= maxW) return text;
    let lo = 0; let hi = text.length;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      const t = elideMiddle(text, mid);
      if (t != null && this.width(t, bold) <= maxW) lo = mid; else hi = mid - 1;
    }
    return elideMiddle(text, Math.max(4, lo)) ?? text.slice(0, 1) + '…';
  }

  /** The text cut with an ellipsis to fit maxW. */
  fit(text: string, maxW: number, bold = false): string {
    if (this.width(text, bold) <= maxW) return text;
    let lo = 0; let hi = text.length;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.width(text.slice(0, mid) + '…', bold) <= maxW) lo = mid; else hi = mid - 1;
    }
    return text.slice(0, lo) + '…';
  }
}

export interface BoxText {
  lines: Line[];
  w: number;
  h: number;
}

/** Lines cut to the maximum width, and the box size. */
export function layoutBox(lines: Line[], m: Measurer, extraW = 0): BoxText {
  const maxText = BOX.maxW - 2 * BOX.padX - BOX.stripe - extraW;
  let w = 0;
  const out = lines.map((l, i) => {
    const text = i === 0 && l.bold ? m.fitMiddle(l.text, maxText, true) : m.fit(l.text, maxText, !!l.bold);
    w = Math.max(w, m.width(text, !!l.bold));
    return { ...l, text };
  });
  // widths in steps of 8 px: boxes of the same shape lay out the same (cached per chunk)
  const bw = Math.min(BOX.maxW, Math.max(BOX.minW, Math.ceil((w + 2 * BOX.padX + BOX.stripe + extraW) / 8) * 8));
  const bh = BOX.head + Math.max(0, out.length - 1) * BOX.line + BOX.padBottom;
  return { lines: out, w: bw, h: bh };
}
