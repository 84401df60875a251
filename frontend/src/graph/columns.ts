// A long top-down graph (a chain of blocks far taller than the screen is wide) is folded into
// side-by-side columns, like a newspaper, so that "Fit" shows it at a readable scale instead of
// a one-pixel line. Cuts are made only between top-level boxes that do not overlap vertically;
// edges that cross from the bottom of one column to the top of the next are re-routed through
// the gap between the columns.
import type { Geometry } from './geometry';
import { MARGIN } from './geometry';
import type { GNode, Visible } from './model';
import type { EdgePath, NodeBox } from './draw';
import { READABLE_K } from './viewport';

const GAP = 64;
const MAX_COLS = 12;

function topOf(g: GNode): GNode {
  let t = g;
  while (t.parent) t = t.parent;
  return t;
}

/** The number of columns that gives the largest "Fit" scale for a canvas of aspect w / h. */
function bestColumns(gw: number, gh: number, aspect: number): number {
  let best = 1; let bestK = 0;
  for (let c = 1; c <= MAX_COLS; c++) {
    const w = c * gw + (c - 1) * GAP; const h = gh / c + 2 * MARGIN;
    const k = Math.min(aspect / w, 1 / h);
    if (k > bestK * 1.05) { bestK = k; best = c; }
  }
  return best;
}

/** Bands of top-level boxes (ids), cut where nothing overlaps vertically. */
function bands(geom: Geometry, vis: Visible, cols: number): { tops: Set<string>; y0: number; y1: number }[] {
  const root = vis.scopes.get('');
  if (!root) return [];
  const items = root.items.map((g) => geom.byId.get(g.id)).filter((b): b is NodeBox => !!b).sort((a, b) => a.y - b.y);
  const target = (geom.h - 2 * MARGIN) / cols;
  const out: { tops: Set<string>; y0: number; y1: number }[] = [];
  let cur: { tops: Set<string>; y0: number; y1: number } | null = null;
  for (const b of items) {
    if (!cur || (b.y >= cur.y1 && cur.y1 - cur.y0 >= target * 0.92 && out.length < cols)) {
      cur = { tops: new Set(), y0: b.y, y1: b.y + b.h };
      out.push(cur);
    }
    cur.tops.add(b.g.id);
    cur.y1 = Math.max(cur.y1, b.y + b.h);
  }
  return out;
}

export function wrapColumns(geom: Geometry, vis: Visible, w: number, h: number): Geometry {
  if (geom.dir !== 'TB') return geom;
  if (Math.min(w / geom.w, h / geom.h) >= READABLE_K) return geom;
  const cols = bestColumns(geom.w, geom.h, w / h);
  if (cols < 2) return geom;
  const bs = bands(geom, vis, cols);
  if (bs.length < 2) return geom;
  // worth it only when the columns are balanced enough to fit at a clearly larger scale
  const tallest = Math.max(...bs.map((b) => b.y1 - b.y0)) + 2 * MARGIN;
  const wide = bs.length * geom.w + (bs.length - 1) * GAP;
  if (Math.min(w / wide, h / tallest) < 1.5 * Math.min(w / geom.w, h / geom.h)) return geom;
  const bandOf = new Map<string, number>();
  bs.forEach((b, i) => { for (const id of b.tops) bandOf.set(id, i); });
  const dx = bs.map((_, i) => i * (geom.w + GAP));
  const dy = bs.map((b) => MARGIN - b.y0);
  const boxes: NodeBox[] = []; const byId = new Map<string, NodeBox>();
  for (const b of geom.boxes) {
    const i = bandOf.get(topOf(b.g).id) ?? 0;
    const nb = { ...b, x: b.x + dx[i], y: b.y + dy[i] };
    boxes.push(nb);
    byId.set(nb.g.id, nb);
  }
  const edges = geom.edges.map((e) => {
    const si = bandOf.get(topOf(e.ve.s).id) ?? 0; const ti = bandOf.get(topOf(e.ve.t).id) ?? 0;
    return si === ti ? shift(e, dx[si], dy[si]) : bridge(e, bs, si, ti, dx, dy, geom.w);
  });
  return { boxes, byId, edges, w: dx[bs.length - 1] + geom.w, h: tallest, dir: geom.dir };
}

function shift(e: EdgePath, dx: number, dy: number): EdgePath {
  const pts = e.pts.map((v, i) => (i % 2 ? v + dy : v + dx));
  return { ...e, pts, minX: e.minX + dx, maxX: e.maxX + dx, minY: e.minY + dy, maxY: e.maxY + dy, lx: e.lx + dx, ly: e.ly + dy };
}

/** An edge from column si to column ti: down, through the gap, up to the top, into the target. */
function bridge(e: EdgePath, bs: { y0: number; y1: number }[], si: number, ti: number,
                dx: number[], dy: number[], colW: number): EdgePath {
  const n = e.pts.length;
  const sx = e.pts[0] + dx[si]; const sy = e.pts[1] + dy[si];
  const ex = e.pts[n - 2] + dx[ti]; const ey = e.pts[n - 1] + dy[ti];
  const by = bs[si].y1 + dy[si] + 14;
  const ty = MARGIN - 14;
  const gx = ti > si ? dx[si] + colW + GAP / 2 : dx[si] - GAP / 2;
  // corners repeated three times: the smoothed (basis) path passes through them
  const c3 = (x: number, y: number): number[] => [x, y, x, y, x, y];
  const pts = [sx, sy, ...c3(sx, by), ...c3(gx, by), ...c3(gx, ty), ...c3(ex, ty), ex, ey];
  let minX = Infinity; let minY = Infinity; let maxX = -Infinity; let maxY = -Infinity;
  for (let i = 0; i < pts.length; i += 2) {
    minX = Math.min(minX, pts[i]); maxX = Math.max(maxX, pts[i]);
    minY = Math.min(minY, pts[i + 1]); maxY = Math.max(maxY, pts[i + 1]);
  }
  return { ...e, pts, minX, minY, maxX: maxX + 80, maxY, lx: ex + 6, ly: (ty + ey) / 2 + 3, middle: false };
}
