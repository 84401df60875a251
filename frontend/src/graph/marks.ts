// How each box and edge is marked: selection, search matches, trace, the focused layer type,
// compare-mode changes (added / removed / changed / renamed, "contains changes" on containers).
import type { DiffResponse, NodeChange } from '../types';
import type { GraphModel, GNode, Visible } from './model';
import type { DiffMark, EdgePath, EdgeState, NodeBox, NodeState } from './draw';
import type { Category } from '../common/categories';
import type { Palette } from '../common/palette';
import { nodeReach } from '../gradient_overlay';
import type { GradientReach } from '../gradient_overlay';
import type { Colouring } from '../common/signals_colour_by';

export interface Marks {
  diff: Map<string, DiffMark>;
  changes: Map<string, NodeChange>;
  edges: Map<string, 'added' | 'removed'>;
}

export function computeMarks(model: GraphModel, d: DiffResponse | undefined, side: 'a' | 'b' | undefined): Marks {
  const m: Marks = { diff: new Map(), changes: new Map(), edges: new Map() };
  if (!d || !side) return m;
  const mark = (id: string, x: DiffMark): void => { if (model.nodes.has(id)) m.diff.set(id, x); };
  if (side === 'a') for (const id of d.removed || []) mark(id, 'removed');
  else for (const id of d.added || []) mark(id, 'added');
  for (const c of d.changed || []) {
    const id = side === 'a' ? c.id_a : c.id_b;
    if (!m.diff.has(id)) mark(id, 'changed');
    m.changes.set(id, c);
  }
  for (const r of d.renamed || []) {
    const id = side === 'a' ? r.id_a : r.id_b;
    if (!m.diff.has(id)) mark(id, 'renamed');
  }
  const es = side === 'a' ? d.edges_removed : d.edges_added;
  for (const e of es || []) m.edges.set(e.source + '\u0000' + e.target, side === 'a' ? 'removed' : 'added');
  // containers holding a changed node say so when collapsed
  for (const id of [...m.diff.keys()]) {
    const g = model.nodes.get(id);
    for (let p = g ? g.parent : null; p; p = p.parent) if (!m.diff.has(p.id)) m.diff.set(p.id, 'inside');
  }
  return m;
}

export interface MarkHost {
  selected: string | null;
  search: { matchIds: Set<string> };
  trace: { id: string; set: Set<string> } | null;
  focusCat: Category | null;
  marks: Marks;
  filterLayers: Set<string>;
  vis: Visible | null;
  reach: GradientReach | null;
  pal: Palette;
  colouring: Colouring | null;
}

export function nodeStateOf(v: MarkHost, b: NodeBox): NodeState {
  const g = b.g;
  let diff = v.marks.diff.get(g.id) || null;
  if (diff === 'inside' && b.open) diff = null;
  const tr = v.trace;
  return {
    selected: v.selected === g.id,
    match: v.search.matchIds.has(g.id) || (!b.open && g.isGroup && hiddenMatch(v, g)),
    dim: (tr !== null && !tr.set.has(g.id)) || (v.focusCat !== null && g.cat !== v.focusCat && !b.open),
    traced: tr !== null && tr.set.has(g.id) && tr.id !== g.id && !b.open,
    diff,
    filters: v.filterLayers.has(g.id),
    reach: nodeReach(v.reach, g.id, v.pal.dark),
    paint: v.colouring && !b.open
      ? { paint: v.colouring.paint(g.id), text: v.colouring.text(g.id), label: v.colouring.metric.label } : null,
  };
}

const repsCache = new WeakMap<Visible, { ids: Set<string>; reps: Set<string> }>();

/** Is a search match hidden inside this collapsed container? */
function hiddenMatch(v: MarkHost, g: GNode): boolean {
  const ids = v.search.matchIds;
  if (!ids.size || !v.vis) return false;
  let c = repsCache.get(v.vis);
  if (!c || c.ids !== ids) {
    const reps = new Set<string>();
    for (const id of ids) { const r = v.vis.rep.get(id); if (r) reps.add(r.id); }
    c = { ids, reps };
    repsCache.set(v.vis, c);
  }
  return c.reps.has(g.id);
}

export function edgeStateOf(v: MarkHost, e: EdgePath): EdgeState {
  let hi = false; let dim = false;
  if (v.trace) {
    const s = v.trace.set;
    hi = e.ve.edges.some((x) => s.has(x.s.id) && s.has(x.t.id));
    dim = !hi;
  } else if (v.selected) {
    hi = e.ve.s.id === v.selected || e.ve.t.id === v.selected;
  }
  let diff: 'added' | 'removed' | null = null;
  if (v.marks.edges.size) {
    for (const x of e.ve.edges) {
      const d = v.marks.edges.get(x.s.id + '\u0000' + x.t.id);
      if (d) { diff = d; break; }
    }
  }
  if (v.focusCat && !hi) dim = true;
  return { hi, dim, diff };
}
