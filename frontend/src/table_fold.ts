// The table's fold of repeated blocks: each run of consecutive sibling modules/layers with the
// same structure (class tree, shapes, params — the graph's own detection, graph/derive.ts) is ONE
// row "blocks.0 – blocks.11 × 12" whose params / MACs / memory read "one copy × 12 = all copies".
// Expanded, it shows one representative copy (a ‹ › picker and a select choose which; the select
// also offers "all copies"). A search that matches a layer inside a copy shows that copy's rows
// and, when not every copy matches, opens the fold on the first matching copy. "Fold repeats" is
// a toolbar toggle, on by default and remembered in localStorage. Sorted tables stay flat and
// unfolded (every layer), and so do the CSV / Markdown exports. Every string is set as text.

import type { ArchIndex } from './arch_index';
import { yieldToMain } from './arch_index';
import { button, h, select } from './dom';
import { UNKNOWN } from './format';
import { foldLabel, repeatRuns } from './common/folding';
import type { RepeatRun } from './common/folding';
import type { CellEnv, Column } from './table_columns';
import type { ArchNode, Architecture } from './types';

const STORAGE_KEY = 'archviz.table.foldRepeats';
const INDENT_PX = 18;
/** Up to this many nodes the runs are found at once (a few ms); a bigger model in slices of SLICE_MS. */
const SYNC_NODES = 10000;
const SLICE_MS = 25;
/** The columns whose fold cell reads "one copy × N = all copies". */
const SUMMED = new Set(['params', 'trainable', 'non_trainable', 'param_bytes', 'output_bytes', 'macs']);

interface Run {
  id: string;            // the graph's fold id ("fold:blocks.0"), never a layer id
  label: string;         // "blocks.0 – blocks.11"
  members: ArchNode[];   // the copies, in model order
  pick: number | 'all';  // the copy shown when expanded
  rep: ArchNode;         // the row's node: the first copy's type and input, the last one's output
  totals: ArchNode;      // the first copy with params / MACs / memory summed over every copy
}

function loadOn(): boolean {
  try { return localStorage.getItem(STORAGE_KEY) !== '0'; } catch { return true; }
}

function saveOn(on: boolean): void {
  try { localStorage.setItem(STORAGE_KEY, on ? '1' : '0'); } catch { /* storage disabled */ }
}

/** The sum of `f` over the copies; null as soon as one copy's figure is unknown. */
function sumOf(ms: ArchNode[], f: (n: ArchNode) => number | null | undefined): number | null {
  let s = 0;
  for (const m of ms) {
    const v = f(m);
    if (v == null || !Number.isFinite(v)) return null;
    s += v;
  }
  return s;
}

function totalsOf(ms: ArchNode[]): ArchNode {
  const first = ms[0];
  const out: ArchNode = {
    ...first,
    params: { trainable: sumOf(ms, (n) => n.params?.trainable ?? 0) ?? 0,
      non_trainable: sumOf(ms, (n) => n.params?.non_trainable ?? 0) ?? 0 },
    macs: sumOf(ms, (n) => n.macs),
    macs_complete: ms.some((n) => n.macs_complete === false) ? false : first.macs_complete,
  };
  if (first.memory) {
    out.memory = { params_bytes: sumOf(ms, (n) => n.memory?.params_bytes) ?? NaN,
      output_bytes: sumOf(ms, (n) => n.memory?.output_bytes) };
  }
  return out;
}

/** A copy's name in the picker: its path when the name is only an index ("blocks.3"). */
function copyName(n: ArchNode): string {
  return /^\d+$/.test(String(n.name)) ? n.id : String(n.name || n.id);
}

export class TableFold {
  private readonly runs = new Map<string, Run>();
  private readonly firstOf = new Map<string, Run>();    // first copy's id -> its run
  private readonly memberOf = new Map<string, Run>();   // every copy's id -> its run
  private on = loadOn();

  private readonly toggle = h('label', { class: 'av-fold-toggle',
    title: 'show each run of repeated blocks (same class tree, shapes and params) as one row' });

  /** `expanded` is the table's set of open rows (fold ids live in it too); `changed` redraws. */
  constructor(arch: Architecture, private readonly idx: ArchIndex, private readonly expanded: Set<string>,
              private readonly tbody: HTMLElement, private readonly changed: () => void) {
    // the graph's detection on the document as served (every op kept, no synthetic name groups)
    const nodes = [...idx.byId.values()];
    const edges = (Array.isArray(arch.edges) ? arch.edges : []).filter((e) => e && typeof e.source === 'string');
    const steps = repeatRuns(nodes, edges);
    if (nodes.length <= SYNC_NODES) {
      let r = steps.next();
      while (!r.done) r = steps.next();
      this.setRuns(r.value);
    } else {
      this.toggle.hidden = true;
      void this.findLater(steps);
    }
  }

  /** A big model: the runs found in slices (no long main-thread task), then the table redrawn. */
  private async findLater(steps: Generator<void, RepeatRun[]>): Promise<void> {
    let t = performance.now();
    let r = steps.next();
    while (!r.done) {
      if (performance.now() - t > SLICE_MS) {
        await yieldToMain();
        if (!this.tbody.closest('.av-table-view')?.parentNode) return;   // the table is gone
        t = performance.now();
      }
      r = steps.next();
    }
    this.setRuns(r.value);
    if (!this.runs.size) return;
    this.toggle.hidden = false;
    if (this.on) this.changed();
  }

  private setRuns(found: RepeatRun[]): void {
    for (const { parent, members } of found) {
      if (members.length < 2 || members.some((m) => this.memberOf.has(m.id))) continue;
      const first = members[0], last = members[members.length - 1];
      let id = 'fold:' + first.id;
      while (this.idx.byId.has(id) || this.runs.has(id)) id += '+';
      const label = foldLabel(members, parent != null ? String(this.idx.byId.get(parent)?.name ?? '') : '');
      const rep: ArchNode = { ...first, id, name: label, output_shapes: last.output_shapes,
        synthetic: 'fold', fold_count: members.length };
      const run: Run = { id, label, members, pick: 0, rep, totals: totalsOf(members) };
      this.runs.set(id, run);
      this.firstOf.set(first.id, run);
      for (const m of members) this.memberOf.set(m.id, run);
    }
  }

  /** Folding applies: the toggle is on and the model has repeated blocks. */
  active(): boolean {
    return this.on && this.runs.size > 0;
  }

  isFold(id: string): boolean {
    return this.active() && this.runs.has(id);
  }

  /** The ids of the fold rows (for "Expand all"). */
  ids(): string[] {
    return [...this.runs.keys()];
  }

  /** The indentation level of a layer row: its depth plus one per fold around it. */
  depth(id: string): number {
    const d = this.idx.depth.get(id) || 0;
    if (!this.active()) return d;
    let k = this.memberOf.has(id) ? 1 : 0;
    for (const a of this.idx.ancestors(id)) if (this.memberOf.has(a)) k++;
    return d + k;
  }

  /** The "Fold repeats" toolbar toggle (null when the model has no repeated blocks; hidden while
   * a big model's runs are still being found). */
  control(): HTMLElement | null {
    if (!this.runs.size && !this.toggle.hidden) return null;
    const box = h('input', { attrs: { type: 'checkbox' }, dataset: { action: 'fold-repeats' } });
    box.checked = this.on;
    box.addEventListener('change', () => { this.on = box.checked; saveOn(this.on); this.changed(); });
    this.toggle.replaceChildren(box, ' Fold repeats');
    return this.toggle;
  }

  /** Open the folds around a layer on the copy that holds it (focus from another view). */
  reveal(id: string): void {
    if (!this.active()) return;
    for (const a of [id, ...this.idx.ancestors(id)]) {
      const run = this.memberOf.get(a);
      if (!run) continue;
      this.expanded.add(run.id);
      if (run.pick !== 'all') run.pick = run.members.findIndex((m) => m.id === a);
    }
  }

  private shown(run: Run): ArchNode[] {
    return run.pick === 'all' ? run.members : [run.members[Math.min(run.pick, run.members.length - 1)]];
  }

  /** The rows of the tree (no search, not sorted): a fold row in place of each run. */
  treeEntries(): ArchNode[] {
    const out: ArchNode[] = [];
    const emit = (n: ArchNode): void => {
      out.push(n);
      if (this.idx.isContainer(n.id) && this.expanded.has(n.id)) walk(n.id);
    };
    const walk = (parent: string | null): void => {
      for (const c of this.idx.children.get(parent) || []) {
        const run = this.firstOf.get(c.id);
        if (run) {
          out.push(run.rep);
          if (this.expanded.has(run.id)) for (const m of this.shown(run)) emit(m);
        } else if (!this.memberOf.has(c.id)) emit(c);
      }
    };
    walk(null);
    return out;
  }

  /** The rows while searching: `keep` (the matches and their ancestors), each run's matching
   * copies under its fold row; a fold is opened on its first matching copy unless every copy matches. */
  searchEntries(keep: ReadonlySet<string>): ArchNode[] {
    const out: ArchNode[] = [];
    const emit = (n: ArchNode): void => { out.push(n); walk(n.id); };
    const walk = (parent: string | null): void => {
      for (const c of this.idx.children.get(parent) || []) {
        const run = this.firstOf.get(c.id);
        if (run) {
          const hit = run.members.filter((m) => keep.has(m.id));
          if (!hit.length) continue;
          out.push(run.rep);
          if (hit.length < run.members.length) {
            this.expanded.add(run.id);
            if (run.pick !== 'all') run.pick = run.members.indexOf(hit[0]);
          }
          for (const m of hit) emit(m);
        } else if (!this.memberOf.has(c.id) && keep.has(c.id)) emit(c);
      }
    };
    walk(null);
    return out;
  }

  /** The fold row of run `id` at entry `i`: name cell with the picker, summed cells, the rest as the first copy. */
  row(id: string, i: number, cols: Column[], env: CellEnv, searching: boolean): HTMLElement {
    const run = this.runs.get(id)!;
    const tr = h('tr', { class: 'row container fold', dataset: { id, foldCount: String(run.members.length) },
      attrs: { tabindex: '0', 'aria-rowindex': String(i + 2) } });
    for (const c of cols) {
      const td = c.key === 'name' ? this.nameCell(run, searching)
        : SUMMED.has(c.key) ? this.sumCell(run, c, env)
          : c.key === 'conn' && c.cell ? c.cell(run.members[0], env)
            : c.cell ? c.cell(run.rep, env) : h('td', null, c.text(run.rep, env));
      td.dataset.col = c.key;
      tr.appendChild(td);
    }
    if (!searching) {
      tr.addEventListener('click', () => this.flip(run, ''));
      tr.addEventListener('keydown', (e) => {
        if (e.target === tr && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); this.flip(run, ''); }
      });
    }
    return tr;
  }

  private sumCell(run: Run, c: Column, env: CellEnv): HTMLElement {
    const n = run.members.length;
    const one = c.text(run.members[0], env), all = c.text(run.totals, env);
    const known = one !== UNKNOWN, zero = known && one === all;   // "0", "0 B": no product to show
    return h('td', { class: 'num' + (known ? '' : ' muted') + (zero ? ' zero' : ''),
      title: `one copy: ${one}; all ${n} copies: ${all}`, dataset: { one, all } }, known && !zero ? `${one} × ${n} = ${all}` : one);
  }

  private nameCell(run: Run, searching: boolean): HTMLElement {
    const open = this.expanded.has(run.id);
    const n = run.members.length;
    const cell = h('div', { class: 'cell', style: { 'flex-wrap': 'wrap' } });   // the picker on a line of its own
    cell.style.paddingLeft = (this.depth(run.members[0].id) - 1) * INDENT_PX + 'px';   // the first copy's level
    if (searching) cell.appendChild(h('span', { class: 'twisty-pad' }));
    else {
      cell.appendChild(button(open ? '▾' : '▸', (e) => { e.stopPropagation(); this.flip(run, 'button.twisty'); },
        { class: 'twisty', title: open ? 'collapse' : 'expand one copy',
          attrs: { 'aria-expanded': String(open), 'aria-label': (open ? 'collapse ' : 'expand ') + run.label } }));
    }
    cell.appendChild(h('span', { class: 'nm' }, run.label));
    cell.appendChild(h('span', { class: 'badge', title: `${n} consecutive copies with the same structure (class tree, shapes, params)` },
      '× ' + n));
    if (open && !searching) cell.appendChild(this.picker(run));
    return h('td', { class: 'name' }, cell);
  }

  private picker(run: Run): HTMLElement {
    const n = run.members.length;
    const cur = run.pick === 'all' ? -1 : run.pick;
    const step = (d: number, sel: string) => this.choose(run, Math.max(0, Math.min(n - 1, cur + d)), sel);
    const prev = button('‹', () => step(-1, 'button[data-fold-step="-1"]'),
      { title: 'previous copy', attrs: { 'aria-label': 'previous copy of ' + run.label }, dataset: { foldStep: '-1' } });
    const next = button('›', () => step(1, 'button[data-fold-step="1"]'),
      { title: 'next copy', attrs: { 'aria-label': 'next copy of ' + run.label }, dataset: { foldStep: '1' } });
    prev.disabled = cur <= 0;
    next.disabled = cur < 0 || cur >= n - 1;
    const options = run.members.map((m, k) => ({ value: String(k), label: copyName(m) }));
    options.push({ value: 'all', label: `all ${n} copies` });
    const sel = select(options, String(run.pick), (v) => this.choose(run, v === 'all' ? 'all' : Number(v), 'select'),
      { attrs: { 'aria-label': 'copy of ' + run.label + ' to show' }, dataset: { foldPick: run.id } });
    const box = h('span', { class: 'av-fold-picker', style: { display: 'inline-flex', 'align-items': 'center', gap: '4px',
      'flex-basis': '100%', 'padding-left': '22px' } }, prev, sel, next);
    box.addEventListener('click', (e) => e.stopPropagation());
    return box;
  }

  private choose(run: Run, pick: number | 'all', focus: string): void {
    run.pick = pick;
    this.expanded.add(run.id);
    this.changed();
    this.refocus(run, focus);
  }

  private flip(run: Run, focus: string): void {
    if (this.expanded.has(run.id)) this.expanded.delete(run.id); else this.expanded.add(run.id);
    this.changed();
    this.refocus(run, focus);
  }

  private refocus(run: Run, sel: string): void {
    const tr = this.tbody.querySelector<HTMLElement>(`tr.row[data-id="${CSS.escape(run.id)}"]`);
    const el = sel ? tr?.querySelector<HTMLElement>(sel) : tr;
    (el && !(el as HTMLButtonElement).disabled ? el : tr)?.focus({ preventScroll: true });
  }
}
