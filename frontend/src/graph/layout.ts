// Layered layout of one graph "scope" (the root, or the inside of an expanded container), with
// dagre. Pure computation: runs in the layout worker and, for small graphs, on the main thread.
//
// Speed: a layered layout's cost grows faster than linearly with the number of nodes, and most of
// a deep network is a chain of blocks joined at single tensors (a residual `add`, a block output).
// 1. Chains (one successor, one predecessor) become one tall box each: dagre would stack them anyway.
// 2. A node crossed by no edge, with every other node its ancestor or its descendant, splits the
//    graph into independent parts: we cut there, lay out each part (>= MIN_CHUNK boxes) with
//    dagre and stack the parts so that the shared node coincides.
// 3. Parts of the same shape (box sizes and edges) are laid out once (ResNet's identity blocks).
// On ResNet-152 this is ~10-25x faster than one dagre run over the whole graph, for the same
// picture (bench/bench_graph_layout.mjs).
import dagre from '@dagrejs/dagre';

export type Direction = 'TB' | 'LR';

export interface ScopeJob {
  key: string;
  n: number;                    // items 0..n-1; the in-port is item n, the out-port item n+1
  w: number[];                  // item widths (ignored for expanded children: see childKey)
  h: number[];
  childKey: (string | null)[];  // for an expanded container item: the key of its own scope
  edges: number[];              // flat [from, to, from, to, ...] item indices (ports included)
  hasIn: boolean;
  hasOut: boolean;
  minW: number[];               // minimum width of expanded children (their header must fit)
}

export interface LayoutJob {
  id: number;
  dir: Direction;
  scopes: ScopeJob[];                         // children before parents
  known: Record<string, { w: number; h: number }>;  // sizes of scopes laid out earlier (cache)
  pad: { x: number; top: number; bottom: number };
  spacing: { node: number; rank: number; edge: number };
}

export interface ScopeLayout {
  key: string;
  w: number;          // size of the scope's content (without the group padding)
  h: number;
  x: number[];        // item centres (ports at n and n+1), relative to the content's top-left
  y: number[];
  iw: number[];       // the sizes used (expanded children resolved)
  ih: number[];
  routes: number[][]; // per edge (same order as job.edges pairs): flat [x0, y0, x1, y1, ...]
}

export interface LayoutResult {
  id: number;
  scopes: ScopeLayout[];
  ms: number;
}

const PORT = 6;
export const MIN_CHUNK = 4;

/** Lay out every scope of the job, children first; expanded children take their scope's size. */
export function runLayoutJob(job: LayoutJob): LayoutResult {
  const t0 = now();
  const sizes: Record<string, { w: number; h: number }> = { ...job.known };
  const out: ScopeLayout[] = [];
  for (const s of job.scopes) {
    const w = s.w.slice();
    const h = s.h.slice();
    for (let i = 0; i < s.n; i++) {
      const ck = s.childKey[i];
      if (ck) {
        const cs = sizes[ck];
        if (!cs) throw new Error('layout: child scope ' + ck + ' was not laid out before its parent');
        w[i] = Math.max(cs.w + 2 * job.pad.x, s.minW[i] || 0);
        h[i] = cs.h + job.pad.top + job.pad.bottom;
      }
    }
    const sl = layoutScope(s, w, h, job.dir, job.spacing);
    sizes[s.key] = { w: sl.w, h: sl.h };
    out.push(sl);
  }
  return { id: job.id, scopes: out, ms: now() - t0 };
}

function now(): number {
  return typeof performance !== 'undefined' ? performance.now() : Date.now();
}

interface Sp { node: number; rank: number; edge: number }

/** Positions of one scope's items and routes of its edges. */
export function layoutScope(s: ScopeJob, w: number[], h: number[], dir: Direction, sp: Sp): ScopeLayout {
  const total = s.n + 2;
  const W = w.concat([PORT, PORT]);
  const H = h.concat([PORT, PORT]);
  const present = new Uint8Array(total);
  for (let i = 0; i < s.n; i++) present[i] = 1;
  if (s.hasIn) present[s.n] = 1;
  if (s.hasOut) present[s.n + 1] = 1;
  const ne = s.edges.length / 2;
  const x = new Array<number>(total).fill(0);
  const y = new Array<number>(total).fill(0);
  const routes: number[][] = new Array(ne);

  // Weakly connected components, laid out separately, then packed in rows (shelves): the main
  // graph first, unconnected pieces (e.g. layers whose connections are unknown) beside and below.
  const bcast = broadcastEdges(s.edges);
  const comp = components(total, present, s.edges.filter((_, i) => !bcast.has(i >> 1)));
  const parts = comp.map((nodes) => {
    const edgeIdx: number[] = [];
    const inComp = new Set(nodes);
    for (let e = 0; e < ne; e++) if (!bcast.has(e) && inComp.has(s.edges[2 * e])) edgeIdx.push(e);
    return { nodes, edgeIdx, r: layoutComponent(nodes, edgeIdx, s.edges, W, H, dir, sp) };
  });
  const tb = dir === 'TB';
  const gap = sp.node * 2;
  const along = (r: CompLayout): number => (tb ? r.w : r.h);   // the packing direction
  const across = (r: CompLayout): number => (tb ? r.h : r.w);
  let area = 0; let widest = 0;
  for (const p of parts) { area += (along(p.r) + gap) * (across(p.r) + gap); widest = Math.max(widest, along(p.r)); }
  const limit = Math.max(widest, Math.sqrt(area) * 1.6);
  let cursor = 0; let shelf = 0; let shelfSize = 0; let extent = 0;
  for (const p of parts) {
    if (cursor > 0 && cursor + along(p.r) > limit) { shelf += shelfSize + gap; cursor = 0; shelfSize = 0; }
    const dx = tb ? cursor : shelf;
    const dy = tb ? shelf : cursor;
    for (const v of p.nodes) { x[v] = p.r.x.get(v)! + dx; y[v] = p.r.y.get(v)! + dy; }
    for (const e of p.edgeIdx) {
      const pts = p.r.routes.get(e)!;
      for (let k = 0; k < pts.length; k += 2) { pts[k] += dx; pts[k + 1] += dy; }
      routes[e] = pts;
    }
    cursor += along(p.r) + gap;
    extent = Math.max(extent, cursor - gap);
    shelfSize = Math.max(shelfSize, across(p.r));
  }
  for (const e of bcast) routes[e] = busRoute(s.edges[2 * e], s.edges[2 * e + 1], x, y, W, H, tb);
  for (let e = 0; e < ne; e++) if (!routes[e]) routes[e] = [];
  const depth = parts.length ? shelf + shelfSize : 0;
  const sw = tb ? extent : depth;
  const sh = tb ? depth : extent;
  return { key: s.key, w: sw, h: sh, x, y, iw: W, ih: H, routes };
}

const BROADCAST = 6;

/**
 * "Broadcast" edges: from a node feeding BROADCAST or more others, into a node that has another
 * input too (a rotary embedding or a mask fed to every layer). Laid out with them, dagre draws
 * one long edge per layer across the whole stack (seconds for 80 layers); they are left out of
 * the layout and drawn along a bus beside the scope instead.
 */
function broadcastEdges(edges: number[]): Set<number> {
  const outdeg = new Map<number, number>();
  const preds = new Map<number, Set<number>>();
  for (let k = 0; k < edges.length; k += 2) {
    outdeg.set(edges[k], (outdeg.get(edges[k]) || 0) + 1);
    let p = preds.get(edges[k + 1]);
    if (!p) preds.set(edges[k + 1], (p = new Set()));
    p.add(edges[k]);
  }
  const out = new Set<number>();
  for (let k = 0; k < edges.length; k += 2) {
    const a = edges[k]; const b = edges[k + 1];
    if (a !== b && (outdeg.get(a) || 0) >= BROADCAST && preds.get(b)!.size > 1) out.add(k / 2);
  }
  return out;
}

/** A broadcast edge's route: out of its source, along a bus left of (above) the content, in. */
function busRoute(a: number, b: number, x: number[], y: number[], W: number[], H: number[], tb: boolean): number[] {
  const c3 = (px: number, py: number): number[] => [px, py, px, py, px, py];
  if (tb) {
    const xs = x[a]; const ys = y[a] + H[a] / 2; const xl = x[b] - W[b] / 2; const yt = y[b];
    return [xs, ys, ...c3(-8, ys + 8), ...c3(-8, yt), xl, yt];
  }
  const xs = x[a] + W[a] / 2; const ys = y[a]; const xt = x[b]; const yt = y[b] - H[b] / 2;
  return [xs, ys, ...c3(xs + 8, -8), ...c3(xt, -8), xt, yt];
}

function components(total: number, present: Uint8Array, edges: number[]): number[][] {
  const parent = new Int32Array(total);
  for (let i = 0; i < total; i++) parent[i] = i;
  const find = (a: number): number => {
    while (parent[a] !== a) { parent[a] = parent[parent[a]]; a = parent[a]; }
    return a;
  };
  for (let k = 0; k < edges.length; k += 2) {
    const a = find(edges[k]); const b = find(edges[k + 1]);
    if (a !== b) parent[a] = b;
  }
  const groups = new Map<number, number[]>();
  for (let i = 0; i < total; i++) {
    if (!present[i]) continue;
    const r = find(i);
    let g = groups.get(r);
    if (!g) { g = []; groups.set(r, g); }
    g.push(i);
  }
  // Big components first keeps the main graph on the left / top.
  return [...groups.values()].sort((a, b) => b.length - a.length || a[0] - b[0]);
}

interface CompLayout {
  x: Map<number, number>;
  y: Map<number, number>;
  routes: Map<number, number[]>;
  w: number;
  h: number;
}

/**
 * One connected component. Chains (links u->v with u having one successor and v one
 * predecessor) are first merged into one tall node each, which is how dagre would place them
 * anyway; then the graph is cut at separator nodes, each chunk laid out by dagre, the chunks
 * stacked, and the chains expanded again.
 */
function layoutComponent(nodes: number[], edgeIdx: number[], edges: number[], W: number[], H: number[],
                         dir: Direction, sp: Sp): CompLayout {
  const tb = dir === 'TB';
  const ch = findChains(nodes, edgeIdx, edges);
  const SW: number[] = []; const SH: number[] = [];
  for (const members of ch.chains) {
    let along = 0; let across = 0;
    for (const v of members) {
      along += tb ? H[v] : W[v];
      across = Math.max(across, tb ? W[v] : H[v]);
    }
    along += (members.length - 1) * sp.rank;
    SW.push(tb ? across : along); SH.push(tb ? along : across);
  }
  // Super edges (between chains); internal chain links are drawn straight afterwards.
  const superEdges: number[] = [];
  const superOf: number[] = [];        // super edge -> original edge index
  const internal: number[] = [];
  for (const e of edgeIdx) {
    const a = edges[2 * e]; const b = edges[2 * e + 1];
    const ca = ch.chainOf.get(a)!; const cb = ch.chainOf.get(b)!;
    if (ca === cb && ch.link(a) === b) { internal.push(e); continue; }
    superEdges.push(ca, cb); superOf.push(e);
  }
  const placed = placeChunks(ch.chains.length, superEdges, superOf, SW, SH, dir, sp);
  const x = new Map<number, number>();
  const y = new Map<number, number>();
  for (let c = 0; c < ch.chains.length; c++) {
    let off = tb ? placed.sy[c] - SH[c] / 2 : placed.sx[c] - SW[c] / 2;
    for (const v of ch.chains[c]) {
      if (tb) { x.set(v, placed.sx[c]); y.set(v, off + H[v] / 2); off += H[v] + sp.rank; }
      else { y.set(v, placed.sy[c]); x.set(v, off + W[v] / 2); off += W[v] + sp.rank; }
    }
  }
  const routes = placed.routes;
  for (const e of internal) {
    const a = edges[2 * e]; const b = edges[2 * e + 1];
    routes.set(e, tb ? [x.get(a)!, y.get(a)! + H[a] / 2, x.get(b)!, y.get(b)! - H[b] / 2]
                     : [x.get(a)! + W[a] / 2, y.get(a)!, x.get(b)! - W[b] / 2, y.get(b)!]);
  }
  const inLongChain = (v: number): boolean => ch.chains[ch.chainOf.get(v)!].length > 1;
  fixEnds(superOf, edges, routes, x, y, W, H, inLongChain);
  return normalise(nodes, x, y, routes, W, H);
}

interface Chains { chains: number[][]; chainOf: Map<number, number>; link(a: number): number | undefined }

/** Chains: links u->v with u having one successor and v one predecessor, merged into one node. */
function findChains(nodes: number[], edgeIdx: number[], edges: number[]): Chains {
  const indeg = new Map<number, number>();
  const outdeg = new Map<number, number>();
  const nextOf = new Map<number, number>();
  for (const e of edgeIdx) {
    const a = edges[2 * e]; const b = edges[2 * e + 1];
    outdeg.set(a, (outdeg.get(a) || 0) + 1);
    indeg.set(b, (indeg.get(b) || 0) + 1);
    nextOf.set(a, b);
  }
  const link = (a: number): number | undefined => {
    if (outdeg.get(a) !== 1) return undefined;
    const b = nextOf.get(a)!;
    return indeg.get(b) === 1 && b !== a ? b : undefined;
  };
  const isHead = new Set<number>(nodes);
  for (const a of nodes) { const b = link(a); if (b !== undefined) isHead.delete(b); }
  const chainOf = new Map<number, number>();   // node -> super index
  const chains: number[][] = [];
  for (const v of nodes) {
    if (!isHead.has(v)) continue;
    const members = [v];
    chainOf.set(v, chains.length);
    let cur = v;
    for (;;) {
      const b = link(cur);
      if (b === undefined || chainOf.has(b)) break;
      members.push(b); chainOf.set(b, chains.length); cur = b;
    }
    chains.push(members);
  }
  // A cycle made only of chain links has no head: give each such node its own chain.
  for (const v of nodes) if (!chainOf.has(v)) { chainOf.set(v, chains.length); chains.push([v]); }
  return { chains, chainOf, link };
}

/** Chunks of the super graph, each laid out by dagre, stacked on their separators. */
function placeChunks(n: number, superEdges: number[], superOf: number[], SW: number[], SH: number[],
                     dir: Direction, sp: Sp): { sx: Float64Array; sy: Float64Array; routes: Map<number, number[]> } {
  const sNodes = Array.from({ length: n }, (_, i) => i);
  const sEdgeIdx = superOf.map((_, i) => i);
  const chunks = splitChunks(sNodes, sEdgeIdx, superEdges);
  const sx = new Float64Array(n);
  const sy = new Float64Array(n);
  const routes = new Map<number, number[]>();
  let prevAnchor: { x: number; y: number } | null = null;
  for (let c = 0; c < chunks.length; c++) {
    const { members, next } = chunks[c];
    const local = new Map<number, number>();
    members.forEach((v, i) => local.set(v, i));
    const m = members.length;
    if (next !== null) local.set(next, m);
    const mine: number[] = [];
    const le: number[] = [];
    for (const se of sEdgeIdx) {
      const la = local.get(superEdges[2 * se]);
      if (la === undefined || la === m) continue;
      const lb = local.get(superEdges[2 * se + 1]);
      if (lb === undefined) continue;
      mine.push(se); le.push(la, lb);
    }
    const all = next !== null ? members.concat([next]) : members;
    const cl = chunkLayout(all.map((v) => SW[v]), all.map((v) => SH[v]), le, dir, sp);
    let dx = 0; let dy = 0;
    if (prevAnchor) { dx = prevAnchor.x - cl.x[0]; dy = prevAnchor.y - cl.y[0]; }
    for (let i = 0; i < m; i++) { sx[members[i]] = cl.x[i] + dx; sy[members[i]] = cl.y[i] + dy; }
    mine.forEach((se, k) => {
      const r = cl.routes[k];
      const pts = new Array<number>(r.length);
      for (let i = 0; i < r.length; i += 2) { pts[i] = r[i] + dx; pts[i + 1] = r[i + 1] + dy; }
      routes.set(superOf[se], pts);
    });
    if (next !== null) prevAnchor = { x: cl.x[m] + dx, y: cl.y[m] + dy };
  }
  return { sx, sy, routes };
}

/** Routes of edges between chains end on the chain's box: move the ends onto the member's box. */
function fixEnds(superOf: number[], edges: number[], routes: Map<number, number[]>, x: Map<number, number>,
                 y: Map<number, number>, W: number[], H: number[], inLongChain: (v: number) => boolean): void {
  for (const e of superOf) {
    const pts = routes.get(e);
    const a = edges[2 * e]; const b = edges[2 * e + 1];
    if (!pts || pts.length < 4) {
      routes.set(e, [...clip(x.get(a)!, y.get(a)!, W[a], H[a], x.get(b)!, y.get(b)!),
                     ...clip(x.get(b)!, y.get(b)!, W[b], H[b], x.get(a)!, y.get(a)!)]);
      continue;
    }
    if (inLongChain(a)) {
      const p = clip(x.get(a)!, y.get(a)!, W[a], H[a], pts[2], pts[3]);
      pts[0] = p[0]; pts[1] = p[1];
    }
    if (inLongChain(b)) {
      const k = pts.length;
      const p = clip(x.get(b)!, y.get(b)!, W[b], H[b], pts[k - 4], pts[k - 3]);
      pts[k - 2] = p[0]; pts[k - 1] = p[1];
    }
  }
}

/** Move everything to a top-left origin at 0,0; the extent. */
function normalise(nodes: number[], x: Map<number, number>, y: Map<number, number>, routes: Map<number, number[]>,
                   W: number[], H: number[]): CompLayout {
  let minX = Infinity; let minY = Infinity; let maxX = -Infinity; let maxY = -Infinity;
  for (const v of nodes) {
    const cx = x.get(v)!; const cy = y.get(v)!;
    minX = Math.min(minX, cx - W[v] / 2); maxX = Math.max(maxX, cx + W[v] / 2);
    minY = Math.min(minY, cy - H[v] / 2); maxY = Math.max(maxY, cy + H[v] / 2);
  }
  for (const pts of routes.values()) {
    for (let k = 0; k < pts.length; k += 2) {
      minX = Math.min(minX, pts[k]); maxX = Math.max(maxX, pts[k]);
      minY = Math.min(minY, pts[k + 1]); maxY = Math.max(maxY, pts[k + 1]);
    }
  }
  if (!isFinite(minX)) { minX = minY = 0; maxX = maxY = 0; }
  for (const v of nodes) { x.set(v, x.get(v)! - minX); y.set(v, y.get(v)! - minY); }
  for (const pts of routes.values()) {
    for (let k = 0; k < pts.length; k += 2) { pts[k] -= minX; pts[k + 1] -= minY; }
  }
  return { x, y, routes, w: maxX - minX, h: maxY - minY };
}

interface ChunkResult { x: number[]; y: number[]; routes: number[][] }

// Chunks of the same shape (sizes and edges) get the same layout: ResNet's identity blocks, a
// transformer's layers. Kept across jobs (the worker lives as long as the page).
const chunkCache = new Map<string, ChunkResult>();
/** Forget the cached chunk layouts (benchmarks: measure the layout itself). */
export function clearLayoutCache(): void {
  chunkCache.clear();
}

/** dagre on one chunk (local indices; edges as local pairs), or the cached result. */
function chunkLayout(w: number[], h: number[], edges: number[], dir: Direction, sp: Sp): ChunkResult {
  const key = dir + sp.node + ',' + sp.rank + ',' + sp.edge + '|' + w.join(',') + '|' + h.join(',') + '|' + edges.join(',');
  const hit = chunkCache.get(key);
  if (hit) return hit;
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: dir, nodesep: sp.node, ranksep: sp.rank, edgesep: sp.edge, marginx: 0, marginy: 0 });
  for (let i = 0; i < w.length; i++) g.setNode(String(i), { width: w[i], height: h[i] });
  for (let k = 0; k < edges.length; k += 2) g.setEdge(String(edges[k]), String(edges[k + 1]), {}, 'e' + k);
  dagre.layout(g);
  const res: ChunkResult = { x: [], y: [], routes: [] };
  for (let i = 0; i < w.length; i++) { const nd = g.node(String(i)); res.x.push(nd.x); res.y.push(nd.y); }
  for (let k = 0; k < edges.length; k += 2) {
    const ed = g.edge(String(edges[k]), String(edges[k + 1]), 'e' + k);
    const pts: number[] = [];
    for (const p of (ed && ed.points) || []) pts.push(p.x, p.y);
    res.routes.push(pts);
  }
  if (chunkCache.size > 5000) chunkCache.clear();
  chunkCache.set(key, res);
  return res;
}

/** Where the segment from a box's centre (cx, cy) towards (px, py) leaves the box. */
export function clip(cx: number, cy: number, w: number, h: number, px: number, py: number): [number, number] {
  const dx = px - cx; const dy = py - cy;
  if (dx === 0 && dy === 0) return [cx, cy];
  const hw = w / 2; const hh = h / 2;
  const s = Math.abs(dy) * hw > Math.abs(dx) * hh ? hh / Math.abs(dy) : hw / Math.abs(dx);
  return [cx + dx * s, cy + dy * s];
}

interface Chunk { members: number[]; next: number | null }

/**
 * Topological order, then the separators: positions crossed by no edge, with no source after
 * and no sink before them (so every other node is an ancestor or a descendant). Chunks run from
 * one separator (inclusive) to the next (exclusive); consecutive small chunks are merged.
 * A graph with a cycle is laid out in one piece.
 */
export function splitChunks(nodes: number[], edgeIdx: number[], edges: number[]): Chunk[] {
  const n = nodes.length;
  if (n <= MIN_CHUNK) return [{ members: nodes.slice(), next: null }];
  const local = new Map<number, number>();
  nodes.forEach((v, i) => local.set(v, i));
  const indeg = new Int32Array(n);
  const outdeg = new Int32Array(n);
  const succ: number[][] = Array.from({ length: n }, () => []);
  for (const e of edgeIdx) {
    const a = local.get(edges[2 * e]); const b = local.get(edges[2 * e + 1]);
    if (a === undefined || b === undefined || a === b) continue;
    succ[a].push(b); indeg[b]++; outdeg[a]++;
  }
  const order: number[] = [];
  const deg = indeg.slice();
  for (let i = 0; i < n; i++) if (deg[i] === 0) order.push(i);
  for (let q = 0; q < order.length; q++) {
    for (const b of succ[order[q]]) if (--deg[b] === 0) order.push(b);
  }
  if (order.length !== n) return [{ members: nodes.slice(), next: null }];
  const pos = new Int32Array(n);
  order.forEach((v, i) => { pos[v] = i; });
  const cover = new Int32Array(n + 1);
  for (let a = 0; a < n; a++) {
    for (const b of succ[a]) {
      const pa = pos[a]; const pb = pos[b];
      if (pb - pa > 1) { cover[pa + 1]++; cover[pb]--; }
    }
  }
  const sinksBefore = new Int32Array(n);   // sinks at positions < i
  for (let i = 1; i < n; i++) sinksBefore[i] = sinksBefore[i - 1] + (outdeg[order[i - 1]] === 0 ? 1 : 0);
  const sourcesAfter = new Int32Array(n);  // sources at positions > i
  for (let i = n - 2; i >= 0; i--) sourcesAfter[i] = sourcesAfter[i + 1] + (indeg[order[i + 1]] === 0 ? 1 : 0);
  const cuts: number[] = [0];
  let run = 0;
  for (let i = 1; i < n; i++) {
    run += cover[i];
    if (run === 0 && sinksBefore[i] === 0 && sourcesAfter[i] === 0 && i - cuts[cuts.length - 1] >= MIN_CHUNK
        && n - i >= MIN_CHUNK / 2) {
      cuts.push(i);
    }
  }
  if (cuts.length === 1) return [{ members: nodes.slice(), next: null }];
  const chunks: Chunk[] = [];
  for (let c = 0; c < cuts.length; c++) {
    const end = c + 1 < cuts.length ? cuts[c + 1] : n;
    const members: number[] = [];
    for (let i = cuts[c]; i < end; i++) members.push(nodes[order[i]]);
    chunks.push({ members, next: end < n ? nodes[order[end]] : null });
  }
  return chunks;
}
