// The compare view's rows: B's nesting order with A's removed nodes placed after their A
// predecessor, each marked added / removed / changed / renamed / same (from the `diff` route).

import { latestStep, runOptions, runSteps } from './api';
import type { ArchIndex } from './arch_index';
import type { ArchNode, DiffResponse, NodeChange, RunsResponse } from './types';
import type { CompareSel } from './view';

export type ChangeKind = 'added' | 'removed' | 'changed' | 'renamed' | 'same';

export interface DiffRow {
  kind: ChangeKind;
  renamed: boolean;
  a: ArchNode | null;
  b: ArchNode | null;
  depth: number;
  fields: Record<string, { a: unknown; b: unknown }>;
}

export const KIND_LABEL: Record<Exclude<ChangeKind, 'same'>, string> = {
  added: 'added', removed: 'removed', changed: 'changed', renamed: 'renamed',
};


/** A sensible first comparison: the last two steps of the current run, else two runs. */
export function defaultSelection(runs: RunsResponse, run: string | null): CompareSel | null {
  const names = runOptions(runs).map((o) => o.value).filter((r) => runSteps(runs, r).length > 0);
  if (!names.length) return null;
  const r = run && names.includes(run) ? run : names[0];
  const steps = runSteps(runs, r);
  if (steps.length >= 2) return { runA: r, stepA: steps[steps.length - 2], runB: r, stepB: steps[steps.length - 1] };
  const other = names.find((n) => n !== r);
  if (other) return { runA: r, stepA: steps[0], runB: other, stepB: latestStep(runs, other)! };
  return { runA: r, stepA: steps[0], runB: r, stepB: steps[0] };
}

/** Rows of the unified table: B's nesting order, removed A nodes placed after their A predecessor. */
export function diffRows(diff: DiffResponse, ia: ArchIndex, ib: ArchIndex): DiffRow[] {
  const added = new Set(diff.added || []);
  const removed = new Set(diff.removed || []);
  const changedByB = new Map<string, NodeChange>();
  for (const c of diff.changed || []) changedByB.set(c.id_b, c);
  const renamedB2A = new Map<string, string>();
  const renamedA = new Set<string>();
  for (const r of diff.renamed || []) { renamedB2A.set(r.id_b, r.id_a); renamedA.add(r.id_a); }
  for (const c of diff.changed || []) if (c.id_a !== c.id_b) renamedA.add(c.id_a);
  const matchA = (idB: string): string | null => {
    if (added.has(idB)) return null;
    const c = changedByB.get(idB);
    if (c) return c.id_a;
    const r = renamedB2A.get(idB);
    if (r) return r;
    return ia.byId.has(idB) && !removed.has(idB) && !renamedA.has(idB) ? idB : null;
  };
  // removed nodes, grouped by the matched A node that precedes them in A's order
  const anchored = new Map<string | null, ArchNode[]>();
  const matchedA = new Set<string>();
  for (const n of ib.order) { const a = matchA(n.id); if (a) matchedA.add(a); }
  let anchor: string | null = null;
  for (const n of ia.order) {
    if (removed.has(n.id) || !matchedA.has(n.id)) {
      if (!removed.has(n.id)) continue; // unmatched but not reported removed: not shown
      let l = anchored.get(anchor);
      if (!l) anchored.set(anchor, (l = []));
      l.push(n);
    } else {
      anchor = n.id;
    }
  }
  const rows: DiffRow[] = [];
  const pushRemoved = (key: string | null) => {
    for (const n of anchored.get(key) || []) {
      rows.push({ kind: 'removed', renamed: false, a: n, b: null, depth: ia.depth.get(n.id) || 0, fields: {} });
    }
    anchored.delete(key);
  };
  pushRemoved(null);
  for (const n of ib.order) {
    const aId = matchA(n.id);
    const a = aId ? ia.byId.get(aId) || null : null;
    const c = changedByB.get(n.id);
    const renamed = renamedB2A.has(n.id) || (!!c && c.id_a !== c.id_b);
    let kind: ChangeKind = 'same';
    if (added.has(n.id) || (!a && !c)) kind = 'added';
    else if (c && Object.keys(c.fields || {}).length) kind = 'changed';
    else if (renamed) kind = 'renamed';
    rows.push({ kind, renamed, a, b: n, depth: ib.depth.get(n.id) || 0, fields: c?.fields || {} });
    if (aId) pushRemoved(aId);
  }
  for (const key of [...anchored.keys()]) pushRemoved(key);
  return rows;
}

