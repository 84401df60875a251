// What the graph draws is derived from the architecture as served, in three optional steps (each a
// toggle of the view; the table, the exports of JSON and the compare logic keep the original):
// 1. shape-only functional ops (view, reshape, transpose, getitem, …) merged into the edge to
//    their consumer;
// 2. flat Keras models grouped by name: `block_3_*`, `conv4_block12_*`, `stage2_unit1_*` become
//    synthetic containers (two levels at most: stage, then block);
// 3. runs of consecutive siblings with the same structure (class tree, shapes, params) folded into
//    one synthetic container, "layers.0 – layers.79 × 80".
import type { ArchEdge, ArchNode, Architecture } from '../types';
import { isFunctionalOp } from '../arch_index';
import { childrenOf, foldLabel, repeatRuns } from '../common/folding';
import { runAll } from '../common/slices';
import type { FoldInfo } from './model';

export interface DeriveOpts {
  allOps: boolean;       // false: shape-only ops merged into edges
  nameGroups: boolean;   // Keras: group layers by name prefix
  fold: boolean;         // fold repeated blocks
}

export const DEFAULT_DERIVE: DeriveOpts = { allOps: false, nameGroups: true, fold: true };

export type { FoldInfo } from './model';

export interface Derived {
  arch: Architecture;
  folds: Map<string, FoldInfo>;
  nameGroups: number;
  mergedOps: number;
}

const SHAPE_OPS = new Set([
  'view', 'view_as', 'reshape', 'reshape_as', 'transpose', 'permute', 'getitem', 'contiguous',
  'flatten', 'unflatten', 'unsqueeze', 'squeeze', 'expand', 'expand_as', 'chunk', 'split',
  'narrow', 'select', 't', 'movedim', 'swapaxes', 'size', 'to', 'type', 'float', 'half',
  'bfloat16', 'clone', 'detach', 'split_with_sizes', 'unbind', 'getattr',
]);

/** Is this node a shape-only functional op (no arithmetic, no parameters)? */
export function isShapeOp(n: ArchNode): boolean {
  return isFunctionalOp(n) && SHAPE_OPS.has(String(n.class_name).toLowerCase());
}

export function deriveArch(arch: Architecture, o: DeriveOpts): Derived {
  return runAll(deriveSteps(arch, o));
}

/** deriveArch in steps: yields between its passes and every few thousand nodes inside the
 *  search for repeated blocks (run with runSliced: no long main-thread task on a big model). */
export function* deriveSteps(arch: Architecture, o: DeriveOpts): Generator<void, Derived> {
  let nodes = Array.isArray(arch.nodes) ? arch.nodes.filter((n) => n && typeof n.id === 'string') : [];
  let edges = Array.isArray(arch.edges) ? arch.edges.filter((e) => e && typeof e.source === 'string') : [];
  let mergedOps = 0;
  if (!o.allOps) {
    yield;
    const r = mergeShapeOps(arch, nodes, edges);
    nodes = r.nodes; edges = r.edges; mergedOps = r.merged;
  }
  let nameGroups = 0;
  if (o.nameGroups && arch.framework === 'keras') {
    yield;
    const r = groupByName(nodes);
    nodes = r.nodes; nameGroups = r.count;
  }
  const folds = new Map<string, FoldInfo>();
  if (o.fold) nodes = yield* foldRepeats(nodes, edges, folds);
  if (!mergedOps && !nameGroups && !folds.size) return { arch, folds, nameGroups, mergedOps };
  return { arch: { ...arch, nodes, edges }, folds, nameGroups, mergedOps };
}

// ------------------------------------------------------------------------------- shape-only ops
function mergeShapeOps(arch: Architecture, nodes: ArchNode[], edges: ArchEdge[]) {
  const keep = new Set<string>([...(arch.inputs || []), ...(arch.outputs || [])]);
  const hasKids = new Set<string>();
  for (const n of nodes) if (n.parent != null) hasKids.add(n.parent);
  const ins = new Map<string, ArchEdge[]>(); const outs = new Map<string, ArchEdge[]>();
  for (const e of edges) { push(outs, e.source, e); push(ins, e.target, e); }
  const S = new Set<string>();
  for (const n of nodes) {
    if (isShapeOp(n) && !keep.has(n.id) && !hasKids.has(n.id) && ins.has(n.id) && outs.has(n.id)) S.add(n.id);
  }
  if (!S.size) return { nodes, edges, merged: 0 };
  const out: ArchEdge[] = [];
  const seen = new Set<string>();
  for (const e of edges) {
    if (S.has(e.source)) continue;
    if (!S.has(e.target)) { out.push(e); continue; }
    // follow the chain of shape ops to every consumer
    const stack: [string, string[]][] = [[e.target, [e.target]]];
    const visited = new Set<string>();
    while (stack.length) {
      const [id, via] = stack.pop()!;
      if (visited.has(id)) continue;
      visited.add(id);
      for (const f of outs.get(id) || []) {
        if (S.has(f.target)) { stack.push([f.target, via.concat([f.target])]); continue; }
        const key = e.source + '\u0000' + f.target + '\u0000' + JSON.stringify(f.shape);
        if (seen.has(key)) continue;
        seen.add(key);
        out.push({ source: e.source, target: f.target, shape: f.shape, via });
      }
    }
  }
  return { nodes: nodes.filter((n) => !S.has(n.id)), edges: out, merged: S.size };
}

// ------------------------------------------------------------------------------ groups by name
const MIN_GROUP = 3;
const MAX_LEVEL = 1;

/** The name prefix ending at the `level`-th token holding a digit, with a token after it. */
export function namePrefix(name: string, level: number): string | null {
  const t = String(name).split('_');
  let seen = -1;
  for (let i = 0; i < t.length - 1; i++) {
    if (/\d/.test(t[i]) && ++seen === level) return t.slice(0, i + 1).join('_');
  }
  return null;
}

function groupByName(nodes: ArchNode[]): { nodes: ArchNode[]; count: number } {
  const ids = new Set(nodes.map((n) => n.id));
  const groups: { parent: string | null; key: string; members: ArchNode[] }[] = [];
  for (const [parent, list] of childrenOf(nodes)) findNameRuns(list, parent, 0, groups);
  if (!groups.length) return { nodes, count: 0 };
  const inserts = new Map<string, ArchNode[]>();   // first member id -> group nodes, outer first
  const parentOf = new Map<string, string>();      // member -> its innermost group
  for (const g of groups) {
    let id = 'group:' + g.key;
    while (ids.has(id)) id += '+';
    ids.add(id);
    const first = g.members[0]; const last = g.members[g.members.length - 1];
    const gn: ArchNode = {
      id, name: g.key, class_name: '', parent: parentOf.get(first.id) ?? g.parent,
      input_shapes: first.input_shapes, output_shapes: last.output_shapes, dtype: null,
      params: { trainable: 0, non_trainable: 0 }, activation: null, config: {}, macs: null,
      synthetic: 'name-group',
    };
    for (const m of g.members) parentOf.set(m.id, id);
    push(inserts, first.id, gn);
  }
  const out: ArchNode[] = [];
  for (const n of nodes) {
    for (const g of inserts.get(n.id) || []) out.push(g);
    const p = parentOf.get(n.id);
    out.push(p ? { ...n, parent: p } : n);
  }
  return { nodes: out, count: groups.length };
}

function findNameRuns(list: ArchNode[], parent: string | null, level: number,
                      groups: { parent: string | null; key: string; members: ArchNode[] }[]): void {
  if (level > MAX_LEVEL || list.length < 2 * MIN_GROUP) return;
  let i = 0;
  while (i < list.length) {
    const key = namePrefix(list[i].name, level);
    let j = i + 1;
    if (key) while (j < list.length && namePrefix(list[j].name, level) === key) j++;
    if (key && j - i === list.length) { findNameRuns(list, parent, level + 1, groups); return; }
    if (key && j - i >= MIN_GROUP) {
      const members = list.slice(i, j);
      groups.push({ parent, key, members });
      findNameRuns(members, null, level + 1, groups);
    }
    i = j;
  }
}

// ----------------------------------------------------------------------------- repeated blocks
function* foldRepeats(nodes: ArchNode[], edges: ArchEdge[], folds: Map<string, FoldInfo>): Generator<void, ArchNode[]> {
  const runs = yield* repeatRuns(nodes, edges);
  yield;
  const ids = new Set(nodes.map((n) => n.id));
  const insert = new Map<string, ArchNode>();
  const parentOf = new Map<string, string>();
  for (const { parent, members } of runs) {
    const fn = foldNode(members, parent, ids, nodes);
    folds.set(fn.id, { id: fn.id, members: members.map((m) => m.id), label: fn.name });
    insert.set(members[0].id, fn);
    for (const m of members) parentOf.set(m.id, fn.id);
  }
  if (!insert.size) return nodes;
  const out: ArchNode[] = [];
  for (const n of nodes) {
    const f = insert.get(n.id);
    if (f) out.push(f);
    const p = parentOf.get(n.id);
    out.push(p ? { ...n, parent: p } : n);
  }
  return out;
}

function foldNode(members: ArchNode[], parent: string | null, ids: Set<string>, nodes: ArchNode[]): ArchNode {
  const first = members[0]; const last = members[members.length - 1];
  let id = 'fold:' + first.id;
  while (ids.has(id)) id += '+';
  ids.add(id);
  const pname = parent != null ? nodes.find((n) => n.id === parent)?.name ?? '' : '';
  return {
    id, name: foldLabel(members, pname), class_name: String(first.class_name ?? ''), parent,
    input_shapes: first.input_shapes, output_shapes: last.output_shapes, dtype: first.dtype,
    params: { trainable: 0, non_trainable: 0 }, activation: null, config: {}, macs: null,
    synthetic: 'fold', fold_count: members.length,
  };
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const a = m.get(k);
  if (a) a.push(v); else m.set(k, [v]);
}
