// Labels of the overview (level of detail): drawn in screen space at a fixed, legible size over
// the scaled-down boxes, only where they fit: a collapsed group's name with its count and params,
// an open group's title, a layer's name on its bar. Text only (textContent), never below 9 px.
import type { Geometry } from './geometry';
import type { NodeBox } from './draw';
import { el } from './draw';
import type { Palette } from '../common/palette';
import { displayName, fittedName } from './labels';
import { fmtShort, plural } from '../format';

export const GROUP_FONT = 11;
export const NODE_FONT = 10;
const MIN_FONT = 9;   // never smaller on screen
const MAX_LABELS = 700;

type Rect = { x0: number; y0: number; x1: number; y1: number };

/** Characters that fit in `w` px at `font` px (a conservative average glyph width). */
function fitText(s: string, w: number, font: number, bold: boolean): string | null {
  const cw = font * (bold ? 0.62 : 0.56);
  const n = Math.floor(w / cw);
  if (n >= s.length) return s;
  if (n < 4) return null;
  return s.slice(0, n - 1) + '…';
}

/** A box's name in `w` px: in full, else the part that tells it apart (see fittedName). */
function fitName(b: NodeBox, s: string, w: number, font: number, bold: boolean): string | null {
  return fittedName(b.g, s, Math.floor(w / (font * (bold ? 0.62 : 0.56))));
}

function groupLine2(b: NodeBox): string {
  const g = b.g;
  const p = fmtShort(g.trainable + g.nonTrainable) + ' params';
  if (g.fold) return '× ' + g.children.length + ' · ' + p;
  return plural(g.layerCount, 'layer') + ' · ' + p;
}

interface Label { x: number; y: number; text: string; font: number; bold: boolean; muted: boolean; area: number }

function labelsOf(b: NodeBox, sx: number, sy: number, sw: number, sh: number, k: number): Label[] {
  const out: Label[] = [];
  const area = sw * sh;
  const name = displayName(b.g) + (b.g.fold ? ' × ' + b.g.children.length : '');
  if (b.open) {
    const x0 = 24 * k + 4;   // right of the collapse toggle
    const t = fitText(b.title || name, sw - x0 - (b.g.fold ? 66 * k : 4), GROUP_FONT, true);
    if (t && sh > 16) out.push({ x: sx + x0, y: sy + GROUP_FONT + 1, text: t, font: GROUP_FONT, bold: true, muted: false, area: area * 4 });
    return out;
  }
  if (b.g.isGroup) {
    // the whole name at the smallest legible size before a shortened one at the usual size
    const small = fitText(name, sw - 8, MIN_FONT, true) === name;
    const font = small && fitText(name, sw - 8, GROUP_FONT, true) !== name ? MIN_FONT : GROUP_FONT;
    const t = small ? name : fitName(b, name, sw - 8, GROUP_FONT, true);
    if (!t || sh < font + 3) return out;
    const two = sh >= 2 * GROUP_FONT + 8;
    const y = two ? sy + sh / 2 - 2 : sy + sh / 2 + font / 2 - 1;
    out.push({ x: sx + 5, y, text: t, font, bold: true, muted: false, area: area * 2 });
    const t2 = two ? fitText(groupLine2(b), sw - 8, NODE_FONT, false) : null;
    if (t2) out.push({ x: sx + 5, y: y + NODE_FONT + 3, text: t2, font: NODE_FONT, bold: false, muted: true, area: area * 2 });
    return out;
  }
  const t = fitName(b, name, sw - 6, NODE_FONT, false);
  if (t && sh >= NODE_FONT + 1) out.push({ x: sx + 4, y: sy + sh / 2 + NODE_FONT / 2 - 1, text: t, font: NODE_FONT, bold: false, muted: false, area });
  return out;
}

/** Redraw the overview's labels for the boxes in view (biggest first, at most MAX_LABELS). */
export function drawLabels(doc: Document, layer: SVGGElement, g: Geometry, t: { x: number; y: number; k: number },
                           r: Rect, p: Palette): void {
  layer.textContent = '';
  const all: Label[] = [];
  for (const b of g.boxes) {
    if (b.x > r.x1 || b.x + b.w < r.x0 || b.y > r.y1 || b.y + b.h < r.y0) continue;
    const sw = b.w * t.k; const sh = b.h * t.k;
    if (sw < 28) continue;
    for (const l of labelsOf(b, b.x * t.k + t.x, b.y * t.k + t.y, sw, sh, t.k)) all.push(l);
  }
  all.sort((a, b) => b.area - a.area);
  for (const l of all.slice(0, MAX_LABELS)) {
    const e = el(doc, 'text', {
      x: l.x.toFixed(1), y: l.y.toFixed(1), 'font-size': l.font, fill: l.muted ? p.text2 : p.text,
      stroke: p.bg, 'stroke-width': 3, 'stroke-opacity': 0.85, 'paint-order': 'stroke', 'stroke-linejoin': 'round',
    });
    if (l.bold) e.setAttribute('font-weight', '600');
    e.textContent = l.text;
    layer.appendChild(e);
  }
}
