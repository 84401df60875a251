// The detail panel of the selected node, wired to the view's actions.
import { renderPanel } from './panel';
import type { GraphModel } from './model';
import type { Marks } from './marks';
import type { Palette } from '../common/palette';
import type { SignalsSource } from '../common/signals_colour_by';
import type { Colouring } from '../common/signals_colour_by';

export interface SelectionHost {
  model: GraphModel;
  selected: string | null;
  torch: boolean;
  pal: Palette;
  expanded: Set<string>;
  pick: Map<string, number>;
  marks: Marks;
  filterLayers: Set<string>;
  trace: { id: string; dir: 'up' | 'down' | 'both' } | null;
  panel: HTMLElement;
  opts: { onShowFilters?: (nodeId: string) => void; signals?: SignalsSource };
  colouring: Colouring | null;
  vp: { centerOn(id: string): void };
  jumpTo(id: string): void;
  toggleGroup(id: string): void;
  setTrace(id: string | null, dir?: 'up' | 'down' | 'both'): void;
  select(id: string | null): void;
  setFoldPick(id: string, k: number): void;
}

export function showPanelFor(v: SelectionHost): void {
  const g = v.selected ? v.model.nodes.get(v.selected) : null;
  if (!g) { v.panel.classList.remove('avg-open'); v.panel.textContent = ''; return; }
  const tr = v.trace;
  const onShow = v.opts.onShowFilters;
  renderPanel(v.panel, g, {
    model: v.model, torch: v.torch, palette: v.pal, expanded: v.expanded.has(g.id),
    diff: v.marks.diff.get(g.id) || null, change: v.marks.changes.get(g.id) || null,
    hasFilters: v.filterLayers.has(g.id), traceDir: tr && tr.id === g.id ? tr.dir : null,
    foldPick: g.fold ? (v.pick.get(g.id) ?? 0) : null,
    signals: v.opts.signals, signalsMark: v.colouring?.stepIndex ?? -1,
  }, {
    jump: (x) => v.jumpTo(x),
    toggle: (x) => v.toggleGroup(x),
    trace: (x, d) => v.setTrace(tr && tr.id === x && tr.dir === d ? null : x, d),
    center: (x) => v.vp.centerOn(x),
    close: () => v.select(null),
    pickFold: (x, k) => v.setFoldPick(x, k),
    showFilters: onShow ? (x) => { try { onShow(x); } catch (e) { console.error(e); } } : null,
  });
  v.panel.classList.add('avg-open');
}
