// ONE index over an architecture, shared by the table, the compare view and the graph: nesting
// (children, depth, pre-order), ancestors, the sources feeding each node, labels, and the one
// definition of what "N layers" counts.

import type { ArchNode, Architecture } from './types';
import type { ShapeStyle } from './format';

export interface ArchIndex {
  arch: Architecture;
  byId: Map<string, ArchNode>;
  children: Map<string | null, ArchNode[]>;
  depth: Map<string, number>;
  /** the qualified name shown for a node: its id (one spelling everywhere: "layer1.0.conv1"). */
  path: Map<string, string>;
  /** ids of the nodes feeding each node (for a container: feeding its subtree from outside). */
  sources: Map<string, string[]>;
  /** depth-first pre-order of the nesting tree. */
  order: ArchNode[];
  /** the name to show for a node in "connected to" (its id when the name is ambiguous). */
  label(id: string): string;
  isContainer(id: string): boolean;
  /** parent first, root last. */
  ancestors(id: string): string[];
}

/** A functional operation (torch `x + y`, `F.relu`; a `keras.ops` call), not a layer/module. */
export function isFunctionalOp(n: ArchNode): boolean {
  return n.is_function === true || n.operation === true;
}

/** A model input placeholder (torch "Input", Keras "InputLayer"). */
export function isInputNode(n: ArchNode): boolean {
  return n.class_name === 'Input' || n.class_name === 'InputLayer';
}

export function shapeStyle(arch: Architecture): ShapeStyle {
  return arch.framework === 'torch' ? 'torch' : 'keras';
}

export function totalParams(n: ArchNode): number {
  return (n.params?.trainable || 0) + (n.params?.non_trainable || 0);
}

export interface NodeCounts {
  /** layers/modules that do work: not containers, not inputs, not functional ops */
  layers: number;
  /** functional operations (torch functions, keras.ops calls) */
  ops: number;
  inputs: number;
  containers: number;
}

/** What the nodes of an architecture are; `layers` is what "N layers" means in every view. */
export function countNodes(arch: Architecture): NodeCounts {
  const idx = indexArchitecture(arch);
  const c: NodeCounts = { layers: 0, ops: 0, inputs: 0, containers: 0 };
  for (const n of idx.byId.values()) {
    if (idx.isContainer(n.id)) c.containers++;
    else if (isFunctionalOp(n)) c.ops++;
    else if (isInputNode(n)) c.inputs++;
    else c.layers++;
  }
  return c;
}

/** "N layers" everywhere: non-container nodes that are neither inputs nor functional ops. */
export function layerCount(arch: Architecture): number {
  return countNodes(arch).layers;
}

/** "40 layers · 8 functional ops" (ops only when there are some). */
export function layerCountText(arch: Architecture): string {
  const c = countNodes(arch);
  const s = c.layers + (c.layers === 1 ? ' layer' : ' layers');
  return c.ops ? s + ' · ' + c.ops + (c.ops === 1 ? ' functional op' : ' functional ops') : s;
}

export const LAYER_COUNT_TITLE =
  'layers: modules/layers that are not containers (inputs and functional ops such as add or relu are counted separately)';

const CHUNK = 5000;

function* nestingOf(byId: Map<string, ArchNode>) {
  const parentOf = (n: ArchNode): string | null =>
    n.parent != null && n.parent !== n.id && byId.has(n.parent) ? n.parent : null;
  const children = new Map<string | null, ArchNode[]>();
  for (const n of byId.values()) {
    const p = parentOf(n);
    let list = children.get(p);
    if (!list) children.set(p, (list = []));
    list.push(n);
  }
  const depth = new Map<string, number>();
  const path = new Map<string, string>();
  const order: ArchNode[] = [];
  const visit = (root: ArchNode) => {
    const stack: [ArchNode, number][] = [[root, 0]];
    while (stack.length) {
      const [n, d] = stack.pop()!;
      if (depth.has(n.id)) continue;
      depth.set(n.id, d);
      path.set(n.id, n.id);
      order.push(n);
      const kids = children.get(n.id) || [];
      for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], d + 1]);
    }
  };
  yield;
  for (const r of children.get(null) || []) visit(r);
  for (const n of byId.values()) visit(n); // nodes caught in a parent cycle
  yield;
  return { parentOf, children, depth, path, order };
}

function ancestorsFn(byId: Map<string, ArchNode>, parentOf: (n: ArchNode) => string | null) {
  const cache = new Map<string, string[]>();
  return (id: string): string[] => {
    let a = cache.get(id);
    if (a) return a;
    a = [];
    const seen = new Set<string>([id]);
    let cur = byId.get(id);
    while (cur) {
      const p = parentOf(cur);
      if (p == null || seen.has(p)) break;
      seen.add(p);
      a.push(p);
      cur = byId.get(p);
    }
    cache.set(id, a);
    return a;
  };
}

function* sourcesOf(arch: Architecture, byId: Map<string, ArchNode>, ancestors: (id: string) => string[]) {
  const sources = new Map<string, string[]>();
  const addSource = (target: string, src: string) => {
    let l = sources.get(target);
    if (!l) sources.set(target, (l = []));
    if (!l.includes(src)) l.push(src);
  };
  let k = 0;
  for (const e of arch.edges) {
    if (++k % CHUNK === 0) yield;
    if (!byId.has(e.source) || !byId.has(e.target)) continue;
    addSource(e.target, e.source);
    const srcAnc = new Set([e.source, ...ancestors(e.source)]);
    for (const a of ancestors(e.target)) {
      if (srcAnc.has(a)) break;
      addSource(a, e.source);
    }
  }
  return sources;
}

function* buildIndex(arch: Architecture): Generator<void, ArchIndex> {
  const byId = new Map<string, ArchNode>();
  for (const n of arch.nodes) if (!byId.has(n.id)) byId.set(n.id, n);
  const { parentOf, children, depth, path, order } = yield* nestingOf(byId);
  const ancestors = ancestorsFn(byId, parentOf);
  let k = 0;
  for (const n of order) {             // fill the ancestors' cache now, in chunks
    ancestors(n.id);
    if (++k % CHUNK === 0) yield;
  }
  const sources = yield* sourcesOf(arch, byId, ancestors);
  const nameCount = new Map<string, number>();
  for (const n of byId.values()) nameCount.set(n.name, (nameCount.get(n.name) || 0) + 1);
  const label = (id: string) => {
    const n = byId.get(id);
    if (!n) return id;
    return (nameCount.get(n.name) || 0) > 1 ? n.id : n.name;
  };
  const isContainer = (id: string) =>
    (children.get(id)?.length || 0) > 0 || byId.get(id)?.is_container === true;
  return { arch, byId, children, depth, path, sources, order, label, isContainer, ancestors };
}

const cache = new WeakMap<Architecture, ArchIndex>();

/** The index of an architecture (built once per document, then cached). */
export function indexArchitecture(arch: Architecture): ArchIndex {
  let idx = cache.get(arch);
  if (!idx) {
    const g = buildIndex(arch);
    let r = g.next();
    while (!r.done) r = g.next();
    idx = r.value;
    cache.set(arch, idx);
  }
  return idx;
}

/** Yield to the browser (lets it paint and handle input between chunks of work). */
export function yieldToMain(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Build the index in short tasks (big models: no long main-thread task); cached like indexArchitecture. */
export async function prepareIndex(arch: Architecture): Promise<ArchIndex> {
  let idx = cache.get(arch);
  if (idx) return idx;
  const g = buildIndex(arch);
  let r = g.next();
  while (!r.done) {
    await yieldToMain();
    r = g.next();
  }
  idx = cache.get(arch) ?? r.value;
  cache.set(arch, idx);
  return idx;
}

/**
 * The node to name for `id` when the groups in `expanded` are the only open ones: `id` itself
 * when every ancestor is expanded, else the outermost collapsed ancestor (the visible group).
 */
export function visibleOwner(idx: ArchIndex, id: string, expanded: ReadonlySet<string>): string {
  const anc = idx.ancestors(id);
  for (let i = anc.length - 1; i >= 0; i--) if (!expanded.has(anc[i])) return anc[i];
  return id;
}
