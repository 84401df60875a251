// The views' contract: what the dashboard shell (app.ts) gives a view and what a view returns.
// Views import this module, never app.ts (no import cycle between the shell and its views).

import type { Architecture, DiffResponse, RunsResponse, Step } from './types';

export type ViewName = 'table' | 'graph' | 'layered' | 'filters' | 'compare' | 'timeline' | 'signals';

export const VIEWS: { name: ViewName; label: string }[] = [
  { name: 'table', label: 'Table' },
  { name: 'graph', label: 'Graph' },
  { name: 'layered', label: 'Layered' },
  { name: 'filters', label: 'Filters' },
  { name: 'compare', label: 'Compare' },
  { name: 'timeline', label: 'Timeline' },
  { name: 'signals', label: 'Layers × steps' },
];

/** Two (run, step) pairs to compare. Steps are exact decimal strings ("-1", "1152921504606846977"). */
export interface CompareSel {
  runA: string; stepA: Step; runB: string; stepB: Step;
}

export interface AppState {
  view: ViewName;
  run: string | null;
  step: Step | null;          // null = latest; an exact decimal string
  layer: string | null;       // filters view
  fstep: Step | null;         // filters view step (null = latest); an exact decimal string
  cmp: CompareSel | null;     // compare view
  selected: string | null;    // node selected in the table or graph
}

/** Two linked graph panes of a comparison (one scale, aligned scrolling, selection mirrored). */
export interface LinkedGraphPanes {
  a: { focusNode(id: string): void };
  b: { focusNode(id: string): void };
  destroy(): void;
}

/** Mounts two linked graphs; the shell hands the graph view's implementation to the compare view
 *  (a view never imports another view's modules). */
export type MountLinkedGraphs = (paneA: HTMLElement, paneB: HTMLElement, archA: Architecture, archB: Architecture,
                                 diff: DiffResponse, aToB: Map<string, string>, bToA: Map<string, string>) => LinkedGraphPanes;

/** What a view gets from the shell. */
export interface ViewContext {
  runs: RunsResponse;
  state: Readonly<AppState>;
  /** the architecture of the current (run, step) — table and graph views */
  arch: Architecture | null;
  /** change state; views that manage a part of it themselves pass remount=false */
  setState(patch: Partial<AppState>, remount?: boolean): void;
  openFilters(run: string, layer: string): void;
  openCompare(sel: CompareSel): void;
  /** the graph view's linked pair, for the compare view */
  mountLinkedGraphs: MountLinkedGraphs;
}

export interface View {
  destroy(): void;
}
