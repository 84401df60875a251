// The layered view's model: an architecture reduced to its main path (the longest chain of
// layers from an input to an output, drawn left to right) plus side branches (residual
// shortcuts, projection convolutions, auxiliary heads) that leave and rejoin it. Nested groups
// deeper than `depth` are collapsed into one unit; `fold` merges activation / normalization /
// dropout layers into the layer before them (as visualkeras' type_ignore does). Pure functions.

import type { ArchNode, Architecture, Shape } from './types';
import { categoryOf } from './graph/style';
import type { Category } from './graph/style';

export interface Unit {
  id: string;
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
    id: n.id, name: n.name || n.id, className: n.class_name,
    category: collapsed ? 'container' : categoryOf(n.class_name, isInput(n, arch)),
    shape: Array.isArray(shape) ? shape : null, params, isGroup: collapsed,
  };
}

function addEdge(adj: Adj, a: string, b: string): void {
  if (a === b) return;
  let s = adj.get(a);
  if (!s) adj.set(a, (s = new Set()));
  s.add(b);
}

/** Units and their edges after collapsing groups deeper than `depth`. */
function unitGraph(arch: Architecture, depth: number): { units: Map<string, Unit>; succ: Adj; pred: Adj } {
  const depths = depthMap(arch);
  const byId = new Map(arch.nodes.map((n) => [n.id, n]));
  const hasChildren = new Set(arch.nodes.filter((n) => n.parent).map((n) => n.parent as string));
  const units = new Map<string, Unit>();
  const ensure = (id: string): string => {
    const uid = unitIdOf(id, arch, depths, depth);
    if (!units.has(uid)) {
      const n = byId.get(uid)!;
      units.set(uid, toUnit(n, arch, hasChildren.has(uid)));
    }
    return uid;
  };
  const succ: Adj = new Map();
  const pred: Adj = new Map();
  for (const e of arch.edges) {
    if (!byId.has(e.source) || !byId.has(e.target)) continue;
    const a = ensure(e.source), b = ensure(e.target);
    addEdge(succ, a, b);
    addEdge(pred, b, a);
  }
  for (const id of [...arch.inputs, ...arch.outputs]) if (byId.has(id)) ensure(id);
  if (arch.edges.length === 0) {
    // no data flow known (e.g. Keras "tracked_layers"): the leaves in their order, chained
    let prev: string | null = null;
    for (const n of arch.nodes) {
      if (hasChildren.has(n.id) && (depths.get(n.id) ?? 0) < depth - 1) continue;
      const uid = ensure(n.id);
      if (prev && prev !== uid) { addEdge(succ, prev, uid); addEdge(pred, uid, prev); }
      prev = uid;
    }
  }
  return { units, succ, pred };
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
function foldUnits(arch: Architecture, g: ReturnType<typeof unitGraph>, fold: boolean,
                   outputs: Set<string>): number {
  let folded = 0;
  for (const [id, u] of [...g.units]) {
    const innerInput = u.category === 'input' && !arch.inputs.includes(id) && (g.pred.get(id)?.size || 0) > 0;
    const foldable = fold && FOLDED.includes(u.category) && (g.pred.get(id)?.size || 0) > 0 && !outputs.has(id);
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
function branchesOf(main: string[], topo: string[], g: ReturnType<typeof unitGraph>): Branch[] {
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
  const order = arch.nodes.map((n) => n.id).filter((id) => g.units.has(id));
  const topo = topoOrder(order, g.succ, g.pred);
  const mainIds = longestPath(topo, g.pred, outputUnits);
  return {
    main: mainIds.map((id) => g.units.get(id)!),
    branches: branchesOf(mainIds, topo, g),
    folded,
    maxDepth,
  };
}
