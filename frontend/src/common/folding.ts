// Repeated blocks: runs of consecutive siblings with the same structure (class tree, shapes,
// params), e.g. the 80 decoder layers of Llama-3-70B. The graph folds each run into one box
// ("layers.0 – layers.79 × 80"); the table folds the same runs into one row.
import type { ArchEdge, ArchNode } from '../types';
import { hash } from './hash';

const MIN_FOLD_CONTAINERS = 4;
const MIN_FOLD_LEAVES = 4;
const CHUNK = 2000;   // nodes per step of repeatRuns

/** A run of consecutive siblings with the same structure (class tree, shapes, params): one fold. */
export interface RepeatRun {
  parent: string | null;
  members: ArchNode[];
}

/** The runs of repeated blocks among `nodes` (what the graph folds; the table folds the same runs). */
export function findRepeats(nodes: ArchNode[], edges: ArchEdge[]): RepeatRun[] {
  const g = repeatRuns(nodes, edges);
  let r = g.next();
  while (!r.done) r = g.next();
  return r.value;
}

/** findRepeats in steps: yields every few thousand nodes, so a caller can spread a big model over tasks. */
export function* repeatRuns(nodes: ArchNode[], edges: ArchEdge[]): Generator<void, RepeatRun[]> {
  const kids = childrenOf(nodes);
  const linked = new Set(edges.map((e) => e.source + '\u0000' + e.target));
  yield;
  // layers (not containers) fold only when they form a chain: q/k/v projections stay apart
  const chained = (a: ArchNode, b: ArchNode): boolean => kids.has(a.id) || linked.has(a.id + '\u0000' + b.id);
  const sig = yield* signatures(nodes, kids);
  const runs: RepeatRun[] = [];
  let k = 0;
  for (const [parent, list] of kids) {
    let i = 0;
    while (i < list.length) {
      let j = i + 1;
      while (j < list.length && sig.get(list[j].id) === sig.get(list[i].id) && chained(list[j - 1], list[j])) j++;
      const container = kids.has(list[i].id);
      if (j - i >= (container ? MIN_FOLD_CONTAINERS : MIN_FOLD_LEAVES)) runs.push({ parent, members: list.slice(i, j) });
      k += j - i;
      if (k >= CHUNK) { k = 0; yield; }
      i = j;
    }
  }
  return runs;
}

/** "layers.0 – layers.79": the first and last copies' names (a bare index gets its parent's name). */
export function foldLabel(members: ArchNode[], parentName: string): string {
  const nm = (n: ArchNode): string => (/^\d+$/.test(String(n.name)) && parentName ? parentName + '.' + n.name : String(n.name || n.id));
  return nm(members[0]) + ' – ' + nm(members[members.length - 1]);
}

/** A structural signature per node: class tree, shapes and parameters (names left out). */
function* signatures(nodes: ArchNode[], kids: Map<string | null, ArchNode[]>): Generator<void, Map<string, string>> {
  const sig = new Map<string, string>();
  const open = new Set<string>();   // being expanded: a parent cycle ends here instead of looping
  let k = 0;
  for (const root of nodes) {
    const stack: [ArchNode, boolean][] = [[root, false]];
    while (stack.length) {
      if (++k % CHUNK === 0) yield;
      const [n, done] = stack.pop()!;
      if (sig.has(n.id)) continue;
      const cs = kids.get(n.id) || [];
      if (!done) {
        if (open.has(n.id)) continue;
        open.add(n.id);
        stack.push([n, true]);
        for (const c of cs) if (!sig.has(c.id) && !open.has(c.id)) stack.push([c, false]);
        continue;
      }
      const p = n.params || { trainable: 0, non_trainable: 0 };
      const own = [n.class_name, p.trainable, p.non_trainable, JSON.stringify(n.input_shapes ?? null),
        JSON.stringify(n.output_shapes ?? null)].join('|');
      sig.set(n.id, hash(own + '{' + cs.map((c) => sig.get(c.id) ?? '?').join(',') + '}'));
    }
  }
  return sig;
}

/** The children of every node in document order (null: the roots; a dangling parent is a root). */
export function childrenOf(nodes: ArchNode[]): Map<string | null, ArchNode[]> {
  const ids = new Set(nodes.map((n) => n.id));
  const kids = new Map<string | null, ArchNode[]>();
  for (const n of nodes) {
    const p = n.parent != null && n.parent !== n.id && ids.has(n.parent) ? n.parent : null;
    push(kids, p, n);
  }
  return kids;
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const a = m.get(k);
  if (a) a.push(v); else m.set(k, [v]);
}
