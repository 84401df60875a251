// The architecture as a navigable hierarchy: containers, their totals, the edges between layers,
// which nodes are visible for a set of expanded containers, and the per-scope graphs to lay out.
import type { ArchEdge, ArchNode, Architecture } from '../types';
import { categoryOf, Category } from '../common/categories';
import { isFunctionalOp, isInputNode } from '../arch_index';

/** A synthetic container standing for a run of identical sibling blocks (derive.ts). */
export interface FoldInfo {
  id: string;
  members: string[];
  label: string;         // "layers.0 – layers.79"
}

export interface GNode {
  id: string;
  raw: ArchNode;
  parent: GNode | null;
  children: GNode[];
  depth: number;
  order: number;
  isGroup: boolean;          // has children
  leafCount: number;         // number of non-container descendants (1 for a layer)
  layerCount: number;        // "N layers" as every view counts them (arch_index.countNodes): leaves that are neither inputs nor functional ops
  descCount: number;         // number of descendants
  trainable: number;
  nonTrainable: number;
  macs: number | null;       // the node's own `macs` (a container's is its subtree's, summed by the server)
  cat: Category;
  fold: FoldInfo | null;     // a synthetic container standing for repeated blocks
}

export interface GEdge {
  s: GNode;
  t: GNode;
  shape: (number | null)[] | null;
  raw: ArchEdge;
}

/** An edge between two visible nodes (several layer edges may share it). */
export interface VEdge {
  key: string;
  s: GNode;
  t: GNode;
  edges: GEdge[];
  // How to build its path: the scope routes it follows, in order.
  hops: { scope: string; e: number }[];   // scope id, edge number in that scope
  labelHop: number;         // the hop whose route carries the label
}

export interface Scope {
  id: string;                // '' for the root
  node: GNode | null;
  items: GNode[];
  index: Map<string, number>;
  edgeKeys: Map<string, number>;   // "from>to" -> edge number
  edges: number[];                 // flat pairs of item indices (n = in-port, n+1 = out-port)
  hasIn: boolean;
  hasOut: boolean;
}

export interface Visible {
  expanded: Set<string>;
  rep: Map<string, GNode>;          // every node id -> the visible node standing for it
  scopes: Map<string, Scope>;       // expanded containers (and the root) that are visible
  order: Scope[];                   // children before parents
  items: GNode[];                   // visible boxes (layers and collapsed containers)
  groups: GNode[];                  // visible expanded containers
  vedges: VEdge[];
}

export class GraphModel {
  readonly arch: Architecture;
  readonly nodes = new Map<string, GNode>();
  readonly list: GNode[] = [];
  readonly roots: GNode[] = [];
  readonly edges: GEdge[] = [];
  readonly outE = new Map<string, GEdge[]>();
  readonly inE = new Map<string, GEdge[]>();
  readonly problems: string[] = [];
  readonly groupCount: number;

  readonly folds: Map<string, FoldInfo>;
  private readonly cyclic = new Map<string, boolean>();   // wouldCycle's memo

  constructor(arch: Architecture, folds: Map<string, FoldInfo> = new Map()) {
    this.arch = arch;
    this.folds = folds;
    const nodes = Array.isArray(arch.nodes) ? arch.nodes : [];
    nodes.forEach((raw, i) => {
      if (!raw || typeof raw.id !== 'string') { this.problems.push(`node #${i} has no id`); return; }
      if (this.nodes.has(raw.id)) { this.problems.push(`duplicate node id ${raw.id}`); return; }
      const p = raw.params || { trainable: 0, non_trainable: 0 };
      const g: GNode = {
        id: raw.id, raw, parent: null, children: [], depth: 0, order: this.list.length,
        isGroup: false, leafCount: 1, descCount: 0,
        layerCount: isFunctionalOp(raw) || isInputNode(raw) ? 0 : 1,
        trainable: num(p.trainable), nonTrainable: num(p.non_trainable),
        macs: typeof raw.macs === 'number' ? raw.macs : null,
        cat: 'other', fold: folds.get(raw.id) || null,
      };
      this.nodes.set(raw.id, g);
      this.list.push(g);
    });
    for (const g of this.list) {
      const pid = g.raw.parent;
      const p = pid != null ? this.nodes.get(pid) : undefined;
      if (pid != null && !p) this.problems.push(`node ${g.id}: unknown parent ${pid}`);
      if (p && !this.wouldCycle(g)) { g.parent = p; p.children.push(g); }
      else this.roots.push(g);
    }
    // depth, counts, totals (bottom-up over a post-order)
    const post: GNode[] = [];
    const stack: [GNode, boolean][] = this.roots.map((r) => [r, false] as [GNode, boolean]).reverse();
    while (stack.length) {
      const [g, done] = stack.pop()!;
      if (done) { post.push(g); continue; }
      g.depth = g.parent ? g.parent.depth + 1 : 0;
      stack.push([g, true]);
      for (let i = g.children.length - 1; i >= 0; i--) stack.push([g.children[i], false]);
    }
    let groups = 0;
    for (const g of post) {
      if (!g.children.length) continue;
      groups++;
      g.isGroup = true;
      let leaves = 0; let desc = 0; let t = 0; let nt = 0; let layers = 0;
      for (const c of g.children) {
        leaves += c.leafCount; desc += c.descCount + 1; layers += c.layerCount;
        t += c.trainable; nt += c.nonTrainable;
      }
      g.leafCount = leaves; g.descCount = desc; g.layerCount = layers;
      // The contract says a container's params are its subtree's; trust them unless absent.
      if (g.trainable === 0 && g.nonTrainable === 0) { g.trainable = t; g.nonTrainable = nt; }
    }
    this.groupCount = groups;
    for (const g of this.list) {
      g.cat = g.isGroup ? 'container' : categoryOf(g.raw.class_name, this.isInput(g), { framework: arch.framework, config: g.raw.config });
    }
    const edges = Array.isArray(arch.edges) ? arch.edges : [];
    edges.forEach((raw, i) => {
      const s = raw && this.nodes.get(raw.source);
      const t = raw && this.nodes.get(raw.target);
      if (!s || !t) { this.problems.push(`edge #${i} names an unknown node`); return; }
      const e: GEdge = { s, t, shape: Array.isArray(raw.shape) ? raw.shape : null, raw };
      this.edges.push(e);
      push(this.outE, s.id, e);
      push(this.inE, t.id, e);
    });
  }

  /** True when following the parents from `child` comes back to a node already passed (a cycle
   *  in the document's parent links): such a node is shown as a root. Memoised per node. */
  private wouldCycle(child: GNode): boolean {
    const memo = this.cyclic;
    const path: string[] = [];
    const onPath = new Set<string>();
    let id: string | null | undefined = child.id;
    let verdict = false;
    while (id != null) {
      const known = memo.get(id);
      if (known !== undefined) { verdict = known; break; }
      if (onPath.has(id)) { verdict = true; break; }
      onPath.add(id);
      path.push(id);
      const raw: ArchNode | undefined = this.nodes.get(id)?.raw;
      id = raw && raw.parent != null && this.nodes.has(raw.parent) ? raw.parent : null;
    }
    for (const p of path) memo.set(p, verdict);
    return verdict;
  }

  private isInput(g: GNode): boolean {
    return Array.isArray(this.arch.inputs) && this.arch.inputs.includes(g.id);
  }

  ancestors(g: GNode): GNode[] {
    const out: GNode[] = [];
    for (let p = g.parent; p; p = p.parent) out.push(p);
    return out;
  }

  /**
   * The containers to expand at first: all when small, else whole levels while under budget.
   * Groups made from layer names start collapsed (they are the overview of a flat model).
   */
  defaultExpanded(budget = 160, smallModel = 300): Set<string> {
    const exp = new Set<string>();
    const auto = (g: GNode): boolean => g.isGroup && (g.raw.synthetic !== 'name-group' || this.list.length <= 60);
    if (this.list.length <= smallModel) {
      for (const g of this.list) if (auto(g)) exp.add(g.id);
      this.openNameGroups(exp);
      return exp;
    }
    // a big model opens on its overview: a fold of repeated blocks stays one box (with its
    // totals; one click opens it), the containers around it open while the budget allows
    const open = (g: GNode): boolean => auto(g) && !g.fold;
    openLevels(this.roots.filter(open), this.roots.length, budget, open, exp);
    this.openNameGroups(exp);
    return exp;
  }

  /** Name groups open level by level (stages, then blocks) while the overview stays small. */
  private openNameGroups(exp: Set<string>, budget = 40): void {
    const named = (g: GNode): boolean => g.raw.synthetic === 'name-group' && !exp.has(g.id);
    const level = this.list.filter((g) => named(g) && (!g.parent || (exp.has(g.parent.id) && g.parent.raw.synthetic !== 'name-group')));
    if (level.length) openLevels(level, this.visible(exp).items.length, budget, named, exp);
  }

  /** What opens with a fold the user opens: its shown copy, then inside it level by level while
   *  the boxes stay under `budget` (as the first view of a model is opened). */
  openInside(g: GNode, pick: Map<string, number>, budget = 160): string[] {
    const open = (c: GNode): boolean => c.isGroup && !c.fold && c.raw.synthetic !== 'name-group';
    const exp = new Set<string>();
    openLevels(this.shownChildren(g, pick).filter(open), 1, budget, open, exp);
    return [...exp];
  }

  /** Which members of an open fold are shown: one (its index in `pick`, 0 by default) or all (-1). */
  shownChildren(g: GNode, pick: Map<string, number>): GNode[] {
    if (!g.fold) return g.children;
    const k = pick.get(g.id) ?? 0;
    return k < 0 ? g.children : [g.children[Math.min(k, g.children.length - 1)]];
  }

  visible(expanded: Set<string>, pick: Map<string, number> = new Map()): Visible {
    const rep = new Map<string, GNode>();
    const scopes = new Map<string, Scope>();
    const order: Scope[] = [];
    const items: GNode[] = [];
    const groups: GNode[] = [];
    const mkScope = (id: string, node: GNode | null, kids: GNode[]): Scope => {
      const s: Scope = { id, node, items: kids, index: new Map(), edgeKeys: new Map(), edges: [], hasIn: false, hasOut: false };
      kids.forEach((k, i) => s.index.set(k.id, i));
      scopes.set(id, s);
      return s;
    };
    const root = mkScope('', null, this.roots);
    // Pre-order walk to assign representatives; post-order list of scopes.
    const walk = (g: GNode, hidden: GNode | null): void => {
      rep.set(g.id, hidden || g);
      const open = !hidden && g.isGroup && expanded.has(g.id);
      if (!hidden) (open ? groups : items).push(g);
      const shown = open ? this.shownChildren(g, pick) : g.children;
      if (open) mkScope(g.id, g, shown);
      for (const c of g.children) walk(c, hidden || (open && (shown === g.children || shown[0] === c) ? null : g));
      if (open) order.push(scopes.get(g.id)!);
    };
    for (const r of this.roots) walk(r, null);
    order.push(root);

    const vmap = new Map<string, VEdge>();
    const vedges: VEdge[] = [];
    for (const e of this.edges) {
      const vs = rep.get(e.s.id)!; const vt = rep.get(e.t.id)!;
      if (vs === vt) continue;
      const key = vs.id + '\u0000' + vt.id;
      let ve = vmap.get(key);
      if (!ve) {
        ve = { key, s: vs, t: vt, edges: [], hops: [], labelHop: 0 };
        this.route(ve, scopes);
        vmap.set(key, ve);
        vedges.push(ve);
      }
      ve.edges.push(e);
    }
    return { expanded, rep, scopes, order, items, groups, vedges };
  }

  /** The scope edges a visible edge follows, from its source up to the common scope and down. */
  private route(ve: VEdge, scopes: Map<string, Scope>): void {
    const pa = this.ancestors(ve.s).reverse().concat([ve.s]);   // root-level ... s
    const pb = this.ancestors(ve.t).reverse().concat([ve.t]);
    let k = 0;
    while (k < pa.length && k < pb.length && pa[k] === pb[k]) k++;
    const add = (scopeId: string, from: string | 'in', to: string | 'out'): void => {
      const sc = scopes.get(scopeId)!;
      const n = sc.items.length;
      let fi: number; let ti: number;
      if (from === 'in') { fi = n; sc.hasIn = true; } else fi = sc.index.get(from)!;
      if (to === 'out') { ti = n + 1; sc.hasOut = true; } else ti = sc.index.get(to)!;
      const ek = fi + '>' + ti;
      let num = sc.edgeKeys.get(ek);
      if (num === undefined) { num = sc.edges.length / 2; sc.edges.push(fi, ti); sc.edgeKeys.set(ek, num); }
      ve.hops.push({ scope: scopeId, e: num });
    };
    // source side: from s up to the child of the common scope
    for (let j = pa.length - 1; j > k; j--) add(pa[j - 1].id, pa[j].id, 'out');
    const common = k === 0 ? '' : pa[k - 1].id;
    if (k < pa.length && k < pb.length) {
      ve.labelHop = ve.hops.length;
      add(common, pa[k].id, pb[k].id);
    } else if (k === pa.length) {
      // s is an (expanded) ancestor of t: enter s through its in-port.
      ve.labelHop = ve.hops.length;
      add(ve.s.id, 'in', pb[k].id);
    } else {
      // t is an (expanded) ancestor of s: leave t through its out-port.
      ve.labelHop = ve.hops.length;
      add(ve.t.id, pa[k].id, 'out');
      return;
    }
    for (let j = k + 1; j < pb.length; j++) add(pb[j - 1].id, 'in', pb[j].id);
  }

  /** Every node upstream (dir -1) or downstream (+1) of a node, its subtree included. */
  trace(id: string, dir: 1 | -1): Set<string> {
    const start = this.nodes.get(id);
    const out = new Set<string>();
    if (!start) return out;
    const queue: GNode[] = [];
    const visit = (g: GNode): void => { if (!out.has(g.id)) { out.add(g.id); queue.push(g); } };
    const sub = (g: GNode): void => { visit(g); for (const c of g.children) sub(c); };
    sub(start);
    for (let q = 0; q < queue.length; q++) {
      const g = queue[q];
      const es = (dir > 0 ? this.outE : this.inE).get(g.id) || [];
      for (const e of es) {
        const o = dir > 0 ? e.t : e.s;
        if (!out.has(o.id)) sub(o);
      }
    }
    return out;
  }

  /** Case-insensitive match on name, id or layer type, in model order. */
  search(query: string): GNode[] {
    const q = query.trim().toLowerCase();
    if (!q) return [];
    return this.list.filter((g) => {
      const r = g.raw;
      return String(r.name).toLowerCase().includes(q) || g.id.toLowerCase().includes(q)
        || String(r.class_name).toLowerCase().includes(q);
    });
  }
}

function num(v: unknown): number {
  return typeof v === 'number' && isFinite(v) ? v : 0;
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const a = m.get(k);
  if (a) a.push(v); else m.set(k, [v]);
}

/** Open `level`, then the level below it (the children `open` accepts), and so on while the boxes
 *  shown (`visible` at first) stay under `budget`. */
function openLevels(level: GNode[], visible: number, budget: number, open: (g: GNode) => boolean, exp: Set<string>): void {
  while (level.length) {
    const add = level.reduce((n, g) => n + g.children.length - 1, 0);
    if (visible + add > budget) break;
    visible += add;
    for (const g of level) exp.add(g.id);
    level = level.flatMap((g) => g.children.filter(open));
  }
}
