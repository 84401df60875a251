// The layered view's model: an architecture reduced to its main path (the longest chain of
// layers from an input to an output, drawn left to right) plus side branches (residual
// shortcuts, projection convolutions, auxiliary heads) that leave and rejoin it. Nested groups
// deeper than `depth` are collapsed into one unit; `fold` merges activation / normalization /
// dropout layers into the layer before them (as visualkeras' type_ignore does). Pure functions.

import type { ArchNode, Architecture, Shape } from './types';
import { categoryOf } from './common/categories';
import type { Category } from './common/categories';

export interface Unit {
  key: string;                 // unique per drawn unit ("relu#2" for a shared module's 2nd call)
  id: string;                  // the node id
  name: string;
  className: string;
  category: Category;
  shape: Shape | null;         // first output shape, batch dimension included
  params: number;
  isGroup: boolean;            // a collapsed container
}

export interface Branch {
  from: number | null;         // index into main of the unit the branch leaves (null: from outside)
  to: number | null;           // index into main where it rejoins (null: a dead end / extra output)
  units: Unit[];               // the side units on it ([] for a plain skip connection)
}

export interface LayeredModel {
  main: Unit[];
  branches: Branch[];
  folded: number;              // layers folded into their predecessor
  maxDepth: number;            // deepest nesting level in the architecture (1 = flat)
}

export interface LayeredOptions {
  depth: number;               // 1 = top-level nodes only; Infinity = every leaf
  fold: boolean;
}

const FOLDED: Category[] = ['activation', 'norm', 'dropout'];

type Adj = Map<string, Set<string>>;

function depthMap(arch: Architecture): Map<string, number> {
  const byId = new Map(arch.nodes.map((n) => [n.id, n]));
  const memo = new Map<string, number>();
  const depthOf = (id: string, guard = 0): number => {
    const known = memo.get(id);
    if (known != null) return known;
    const p = byId.get(id)?.parent;
    const d = p && byId.has(p) && guard < 64 ? depthOf(p, guard + 1) + 1 : 0;
    memo.set(id, d);
    return d;
  };
  for (const n of arch.nodes) depthOf(n.id);
  return memo;
}

/** The unit a node is drawn in: its ancestor at level depth-1 (itself when shallower). */
const PARENTS = new WeakMap<Architecture, Map<string, string | null>>();

function unitIdOf(id: string, arch: Architecture, depths: Map<string, number>, depth: number): string {
  let byParent = PARENTS.get(arch);
  if (!byParent) PARENTS.set(arch, (byParent = new Map(arch.nodes.map((n) => [n.id, n.parent]))));
  let cur = id;
  let d = depths.get(id) ?? 0;
  while (d > depth - 1) {
    const p = byParent.get(cur);
    if (!p) break;
    cur = p;
    d--;
  }
  return cur;
}

function isInput(n: ArchNode, arch: Architecture): boolean {
  return n.is_input === true || arch.inputs.includes(n.id) || /^input(layer)?$/i.test(n.class_name);
}

function toUnit(n: ArchNode, arch: Architecture, collapsed: boolean): Unit {
  const shape = Array.isArray(n.output_shapes) && n.output_shapes.length ? n.output_shapes[0] : null;
  const params = (n.params?.trainable || 0) + (n.params?.non_trainable || 0);
  return {
    key: n.id, id: n.id, name: n.name || n.id, className: n.class_name,
    category: collapsed ? 'container' : categoryOf(n.class_name, isInput(n, arch), { framework: arch.framework, config: n.config }),
    shape: Array.isArray(shape) ? shape : null, params, isGroup: collapsed,
  };
}

function addEdge(adj: Adj, a: string, b: string): void {
  if (a === b) return;
  let s = adj.get(a);
  if (!s) adj.set(a, (s = new Set()));
  s.add(b);
}

/** Call instances of shared modules/layers (`calls` > 1, e.g. one ReLU module used three times
 *  in a torchvision bottleneck): edges are listed in the order data flowed, so an edge into the
 *  node after its previous output was consumed starts a new instance ("relu#2"). Without this a
 *  reused module would join its calls into a cycle. */
class Instances {
  private state = new Map<string, { k: number; out: boolean }>();
  constructor(private multi: (unitId: string) => boolean) {}
  key(unitId: string, incoming: boolean): string {
    if (!this.multi(unitId)) return unitId;
    let st = this.state.get(unitId);
    if (!st) this.state.set(unitId, (st = { k: 1, out: false }));
    if (incoming && st.out) { st.k++; st.out = false; }
    if (!incoming) st.out = true;
    return st.k === 1 ? unitId : unitId + '#' + st.k;
  }
}

interface UnitGraph { units: Map<string, Unit>; succ: Adj; pred: Adj; order: string[] }

/** Units and their edges after collapsing groups deeper than `depth`. */
function unitGraph(arch: Architecture, depth: number): UnitGraph {
  const depths = depthMap(arch);
  const byId = new Map(arch.nodes.map((n) => [n.id, n]));
  const hasChildren = new Set(arch.nodes.filter((n) => n.parent).map((n) => n.parent as string));
  const units = new Map<string, Unit>();
  const unitOf = (id: string) => unitIdOf(id, arch, depths, depth);
  const ensure = (uid: string, key = uid): string => {
    if (!units.has(key)) units.set(key, { ...toUnit(byId.get(uid)!, arch, hasChildren.has(uid)), key });
    return key;
  };
  const inst = new Instances((uid) => Number(byId.get(uid)?.calls) > 1);
  const succ: Adj = new Map();
  const pred: Adj = new Map();
  const link = (a: string, b: string) => { addEdge(succ, a, b); addEdge(pred, b, a); };
  for (const e of arch.edges) {
    if (!byId.has(e.source) || !byId.has(e.target)) continue;
    const ua = unitOf(e.source), ub = unitOf(e.target);
    if (ua === ub) continue;
    link(ensure(ua, inst.key(ua, false)), ensure(ub, inst.key(ub, true)));
  }
  for (const id of [...arch.inputs, ...arch.outputs]) if (byId.has(id)) ensure(unitOf(id));
  if (arch.edges.length === 0) {
    // no data flow known (e.g. Keras "tracked_layers"): the leaves in their order, chained
    let prev: string | null = null;
    for (const n of arch.nodes) {
      if (hasChildren.has(n.id) && (depths.get(n.id) ?? 0) < depth - 1) continue;
      const key = ensure(unitOf(n.id));
      if (prev && prev !== key) link(prev, key);
      prev = key;
    }
  }
  const rank = new Map(arch.nodes.map((n, i) => [n.id, i]));
  const order = [...units.keys()].sort((a, b) => (rank.get(units.get(a)!.id) ?? 0) - (rank.get(units.get(b)!.id) ?? 0)
    || a.length - b.length || (a < b ? -1 : 1));
  return { units, succ, pred, order };
}

/** Remove the edges that close a cycle (depth-first from the sources, in node order). */
function breakCycles(order: string[], succ: Adj, pred: Adj): void {
  const state = new Map<string, number>();   // 1 = on the stack, 2 = done
  const starts = [...order.filter((k) => !(pred.get(k)?.size)), ...order];
  for (const start of starts) {
    if (state.has(start)) continue;
    const stack: [string, string[]][] = [[start, [...(succ.get(start) || [])]]];
    state.set(start, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const next = top[1].shift();
      if (next === undefined) { state.set(top[0], 2); stack.pop(); continue; }
      if (state.get(next) === 1) { succ.get(top[0])?.delete(next); pred.get(next)?.delete(top[0]); continue; }
      if (!state.has(next)) { state.set(next, 1); stack.push([next, [...(succ.get(next) || [])]]); }
    }
  }
}

/** Remove a unit, joining each predecessor to each successor. */
function contract(id: string, units: Map<string, Unit>, succ: Adj, pred: Adj): void {
  const ps = [...(pred.get(id) || [])], ss = [...(succ.get(id) || [])];
  for (const p of ps) succ.get(p)?.delete(id);
  for (const s of ss) pred.get(s)?.delete(id);
  for (const p of ps) for (const s of ss) { addEdge(succ, p, s); addEdge(pred, s, p); }
  succ.delete(id);
  pred.delete(id);
  units.delete(id);
}

/** Units that only pass data through: inner InputLayers of nested models, and folded types. */
function foldUnits(arch: Architecture, g: UnitGraph, fold: boolean, outputs: Set<string>): number {
  let folded = 0;
  for (const [id, u] of [...g.units]) {
    const innerInput = u.category === 'input' && !arch.inputs.includes(u.id) && (g.pred.get(id)?.size || 0) > 0;
    const foldable = fold && FOLDED.includes(u.category) && (g.pred.get(id)?.size || 0) > 0 && !outputs.has(u.id);
    if (innerInput || foldable) {
      contract(id, g.units, g.succ, g.pred);
      if (foldable) folded++;
    }
  }
  return folded;
}

function topoOrder(order: string[], succ: Adj, pred: Adj): string[] {
  const known = new Set(order);
  const indeg = new Map(order.map((id) => [id, [...(pred.get(id) || [])].filter((p) => known.has(p)).length]));
  const ready = order.filter((id) => indeg.get(id) === 0);
  const out: string[] = [];
  const seen = new Set<string>();
  while (ready.length) {
    const id = ready.shift()!;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(id);
    for (const s of succ.get(id) || []) {
      const d = (indeg.get(s) ?? 1) - 1;
      indeg.set(s, d);
      if (d === 0) ready.push(s);
    }
  }
  for (const id of order) if (!seen.has(id)) out.push(id);  // a cycle: keep the rest in order
  return out;
}

/** The longest chain of units ending at an output (ties: the first in topological order). */
function longestPath(topo: string[], pred: Adj, outputs: Set<string>): string[] {
  const dist = new Map<string, number>();
  const prev = new Map<string, string | null>();
  for (const id of topo) {
    let best = 0, from: string | null = null;
    for (const p of pred.get(id) || []) {
      const d = (dist.get(p) ?? -1) + 1;
      if (dist.has(p) && d > best) { best = d; from = p; }
    }
    dist.set(id, best);
    prev.set(id, from);
  }
  const ends = topo.filter((id) => outputs.has(id));
  const pool = ends.length ? ends : topo;
  let end: string | null = null;
  for (const id of pool) if (end === null || (dist.get(id) ?? 0) > (dist.get(end) ?? 0)) end = id;
  const path: string[] = [];
  for (let cur = end; cur != null; cur = prev.get(cur) ?? null) path.push(cur);
  return path.reverse();
}

/** Side units grouped by where they leave and rejoin the main path. */
function branchesOf(main: string[], topo: string[], g: UnitGraph): Branch[] {
  const index = new Map(main.map((id, i) => [id, i]));
  const reach = (start: string, adj: Adj, pick: (a: number, b: number) => number): number | null => {
    let found: number | null = null;
    const seen = new Set([start]);
    const todo = [...(adj.get(start) || [])];
    while (todo.length) {
      const cur = todo.pop()!;
      if (seen.has(cur)) continue;
      seen.add(cur);
      const i = index.get(cur);
      if (i != null) { found = found == null ? i : pick(found, i); continue; }
      todo.push(...(adj.get(cur) || []));
    }
    return found;
  };
  const groups = new Map<string, Branch>();
  const key = (a: number | null, b: number | null) => String(a) + '>' + String(b);
  for (const id of topo) {
    if (index.has(id)) continue;
    const from = reach(id, g.pred, Math.max), to = reach(id, g.succ, Math.min);
    const k = key(from, to);
    if (!groups.has(k)) groups.set(k, { from, to, units: [] });
    groups.get(k)!.units.push(g.units.get(id)!);
  }
  main.forEach((id, i) => {
    for (const s of g.succ.get(id) || []) {
      const j = index.get(s);
      if (j != null && j > i + 1 && !groups.has(key(i, j))) groups.set(key(i, j), { from: i, to: j, units: [] });
    }
  });
  return [...groups.values()];
}

/** The layered model of an architecture (see the module comment). */
export function buildLayered(arch: Architecture, opts: LayeredOptions): LayeredModel {
  const depths = depthMap(arch);
  let maxDepth = 1;
  for (const d of depths.values()) maxDepth = Math.max(maxDepth, d + 1);
  const depth = Math.max(1, opts.depth);
  const g = unitGraph(arch, depth);
  const outputUnits = new Set(arch.outputs.filter((id) => depths.has(id))
    .map((id) => unitIdOf(id, arch, depths, depth)));
  const folded = foldUnits(arch, g, opts.fold, outputUnits);
  const order = g.order.filter((k) => g.units.has(k));
  breakCycles(order, g.succ, g.pred);
  const topo = topoOrder(order, g.succ, g.pred);
  const outKeys = new Set(order.filter((k) => outputUnits.has(g.units.get(k)!.id)));
  const mainIds = longestPath(topo, g.pred, outKeys);
  return {
    main: mainIds.map((id) => g.units.get(id)!),
    branches: branchesOf(mainIds, topo, g),
    folded,
    maxDepth,
  };
}
