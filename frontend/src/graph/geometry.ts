// From the visible structure to layout jobs (one per scope, cached by shape so identical blocks
// are laid out once), and from scope layouts to absolute boxes and edge paths.
import type { GNode, Visible } from './model';
import type { Direction, LayoutJob, ScopeJob, ScopeLayout } from './layout';
import { BOX } from './labels';
import { hash } from '../common/hash';
import type { EdgePath, NodeBox } from './draw';

export const MARGIN = 24;
export const PAD = { x: BOX.groupPadX, top: BOX.groupHead + 8, bottom: BOX.groupPadBottom };
export const SPACING = { node: 22, rank: 34, edge: 12 };

export interface Geometry {
  boxes: NodeBox[];              // open groups (outer first), then boxes
  byId: Map<string, NodeBox>;
  edges: EdgePath[];
  w: number;
  h: number;
  dir: Direction;
}

export interface Sizer {
  box(g: GNode): { w: number; h: number };
  groupMinW(g: GNode): number;
}

/** The job for the scopes not in the cache; keys of every visible scope. */
export function buildJob(vis: Visible, dir: Direction, sizer: Sizer, cache: Map<string, ScopeLayout>, id: number,
                         spacing = SPACING): { job: LayoutJob; keyOf: Map<string, string> } {
  const keyOf = new Map<string, string>();
  const scopes: ScopeJob[] = [];
  const inJob = new Set<string>();
  const known: Record<string, { w: number; h: number }> = {};
  for (const sc of vis.order) {
    const n = sc.items.length;
    const w: number[] = new Array(n); const h: number[] = new Array(n);
    const childKey: (string | null)[] = new Array(n).fill(null);
    const minW: number[] = new Array(n).fill(0);
    const parts: string[] = [dir, spacing.node + ',' + spacing.rank + ',' + spacing.edge, sc.hasIn ? 'i' : '', sc.hasOut ? 'o' : ''];
    for (let i = 0; i < n; i++) {
      const it = sc.items[i];
      if (vis.scopes.has(it.id)) {
        const ck = keyOf.get(it.id)!;
        childKey[i] = ck; w[i] = 0; h[i] = 0; minW[i] = sizer.groupMinW(it);
        parts.push('S' + ck + ':' + minW[i]);
      } else {
        const s = sizer.box(it);
        w[i] = s.w; h[i] = s.h;
        parts.push(s.w + 'x' + s.h);
      }
    }
    parts.push('E' + sc.edges.join(','));
    const key = hash(parts.join('|'));
    keyOf.set(sc.id, key);
    if (cache.has(key)) continue;
    if (inJob.has(key)) continue;
    inJob.add(key);
    for (const ck of childKey) {
      if (ck && !inJob.has(ck)) {
        const c = cache.get(ck);
        if (c) known[ck] = { w: c.w, h: c.h };
      }
    }
    scopes.push({ key, n, w, h, childKey, edges: sc.edges.slice(), hasIn: sc.hasIn, hasOut: sc.hasOut, minW });
  }
  return { job: { id, dir, scopes, known, pad: PAD, spacing }, keyOf };
}

/** Absolute positions of every visible box and the paths of the visible edges. */
export function compose(vis: Visible, keyOf: Map<string, string>, cache: Map<string, ScopeLayout>, dir: Direction,
                        text: (g: GNode) => NodeBox['text'], title: (g: GNode) => string,
                        label: (ve: EdgePath['ve']) => string): Geometry {
  const origin = new Map<string, [number, number]>();
  const boxes: NodeBox[] = [];
  const groups: NodeBox[] = [];
  const byId = new Map<string, NodeBox>();
  const rootL = cache.get(keyOf.get('')!)!;
  origin.set('', [MARGIN, MARGIN]);
  // parents are after their children in vis.order: walk it backwards
  for (let s = vis.order.length - 1; s >= 0; s--) {
    const sc = vis.order[s];
    const L = cache.get(keyOf.get(sc.id)!)!;
    const [ox, oy] = origin.get(sc.id)!;
    sc.items.forEach((g, i) => {
      const w = L.iw[i]; const h = L.ih[i];
      const x = ox + L.x[i] - w / 2; const y = oy + L.y[i] - h / 2;
      const open = vis.scopes.has(g.id);
      const b: NodeBox = { g, x, y, w, h, open, text: open ? null : text(g), title: open ? title(g) : '' };
      byId.set(g.id, b);
      if (open) {
        const cl = cache.get(keyOf.get(g.id)!)!;
        origin.set(g.id, [x + (w - cl.w) / 2, y + PAD.top]);
        groups.push(b);
      } else {
        boxes.push(b);
      }
    });
  }
  groups.sort((a, b) => a.g.depth - b.g.depth);
  const edges: EdgePath[] = [];
  for (const ve of vis.vedges) {
    const pts: number[] = [];
    let lx = 0; let ly = 0;
    ve.hops.forEach((hop, k) => {
      const L = cache.get(keyOf.get(hop.scope)!)!;
      const [ox, oy] = origin.get(hop.scope)!;
      const r = L.routes[hop.e] || [];
      for (let i = 0; i < r.length; i += 2) {
        const x = r[i] + ox; const y = r[i + 1] + oy;
        const m = pts.length;
        if (m && Math.abs(pts[m - 2] - x) < 0.5 && Math.abs(pts[m - 1] - y) < 0.5) continue;
        pts.push(x, y);
      }
      if (k === ve.labelHop) {
        const mid = midpoint(r);
        lx = mid[0] + ox; ly = mid[1] + oy;
      }
    });
    if (pts.length < 4) continue;
    let minX = Infinity; let minY = Infinity; let maxX = -Infinity; let maxY = -Infinity;
    for (let i = 0; i < pts.length; i += 2) {
      if (pts[i] < minX) minX = pts[i]; if (pts[i] > maxX) maxX = pts[i];
      if (pts[i + 1] < minY) minY = pts[i + 1]; if (pts[i + 1] > maxY) maxY = pts[i + 1];
    }
    const e: EdgePath = { ve, pts, minX, minY, maxX, maxY, label: '', lx: 0, ly: 0, middle: dir === 'LR' };
    e.label = label(ve);
    if (dir === 'TB') { e.lx = lx + 6; e.ly = ly + 3; } else { e.lx = lx; e.ly = ly - 5; }
    if (e.label) {
      // labels count towards the extent (culling)
      const half = e.label.length * 3;
      e.maxX = Math.max(maxX, e.middle ? e.lx + half : e.lx + 2 * half);
      e.minX = Math.min(minX, e.middle ? e.lx - half : e.lx);
      e.minY = Math.min(minY, e.ly - 10);
    }
    edges.push(e);
  }
  return {
    boxes: groups.concat(boxes), byId, edges,
    w: rootL.w + 2 * MARGIN, h: rootL.h + 2 * MARGIN, dir,
  };
}

/** The point halfway along a polyline. */
export function midpoint(r: number[]): [number, number] {
  if (r.length < 4) return [r[0] || 0, r[1] || 0];
  let total = 0;
  for (let i = 2; i < r.length; i += 2) total += Math.hypot(r[i] - r[i - 2], r[i + 1] - r[i - 1]);
  let half = total / 2;
  for (let i = 2; i < r.length; i += 2) {
    const d = Math.hypot(r[i] - r[i - 2], r[i + 1] - r[i - 1]);
    if (d >= half && d > 0) {
      const t = half / d;
      return [r[i - 2] + (r[i] - r[i - 2]) * t, r[i - 1] + (r[i + 1] - r[i - 1]) * t];
    }
    half -= d;
  }
  return [r[r.length - 2], r[r.length - 1]];
}
