// Gradient reach overlay: pure functions from an architecture's `gradient_reach` object (written
// by add_architecture(gradient_reach=True) / ArchVizCallback(gradient_reach=True)) to what a
// view shows per node — a state, a short label, a colour and a tooltip — and the summary line.
// No DOM here: the table, the graph and the layered view call these and draw themselves.

import type { Architecture } from './types';

export type ReachState = 'grad' | 'none' | 'frozen' | 'mixed';

export interface ReachParam {
  state: ReachState;
  size?: number;
  reason?: string;
}

export interface ReachNode {
  state: ReachState;
  reason?: string;
  params?: Record<string, ReachParam>;
}

export interface GradientReach {
  status: 'ok' | 'unavailable';
  reason?: string;
  summary?: string;
  counts?: Partial<Record<'grad' | 'none' | 'frozen', number>>;
  nodes?: Record<string, ReachNode>;
}

/** What a view draws for one node. */
export interface ReachMark {
  state: ReachState;
  label: string;       // "gets gradient", "none — the branch is detached at aux.detach()", ...
  short: string;       // "grad" / "none" / "frozen" / "mixed" (badges, table cells)
  colour: string;
  title: string;       // tooltip: label plus one line per parameter
}

export const REACH_STATES: ReachState[] = ['grad', 'none', 'frozen', 'mixed'];

const STATE_LABELS: Record<ReachState, string> = {
  grad: 'gets gradient', none: 'no gradient', frozen: 'frozen', mixed: 'mixed',
};

const LIGHT_COLOURS: Record<ReachState, string> = {
  grad: '#2e7d32', none: '#d32f2f', frozen: '#607d8b', mixed: '#ef6c00',
};
const DARK_COLOURS: Record<ReachState, string> = {
  grad: '#66bb6a', none: '#ef5350', frozen: '#90a4ae', mixed: '#ffa726',
};

function isState(s: unknown): s is ReachState {
  return typeof s === 'string' && (REACH_STATES as string[]).includes(s);
}

/** The architecture's gradient reach, or null when it has none (or a malformed one). */
export function reachOf(arch: Architecture | null | undefined): GradientReach | null {
  const r = arch ? (arch as Record<string, unknown>)['gradient_reach'] : null;
  if (!r || typeof r !== 'object') return null;
  const g = r as GradientReach;
  if (g.status !== 'ok' && g.status !== 'unavailable') return null;
  return g;
}

/** The line a view shows above its content: the summary, or "gradient reach unavailable: …". */
export function reachSummary(reach: GradientReach | null): string | null {
  if (!reach) return null;
  if (reach.status === 'unavailable') {
    return 'gradient reach unavailable: ' + String(reach.reason || 'unknown reason');
  }
  return typeof reach.summary === 'string' ? 'Gradient reach: ' + reach.summary : null;
}

/** The colour of a state in the light or dark theme. */
export function reachColour(state: ReachState, dark: boolean): string {
  return (dark ? DARK_COLOURS : LIGHT_COLOURS)[state];
}

/** "gets gradient" / "none — <reason>" / "frozen" / "mixed — <reason>". */
export function reachLabel(state: ReachState, reason?: string): string {
  if ((state === 'none' || state === 'mixed') && reason) return STATE_LABELS[state] + ' — ' + reason;
  return STATE_LABELS[state];
}

function paramLines(params: Record<string, ReachParam> | undefined): string[] {
  if (!params) return [];
  return Object.entries(params).map(([name, p]) =>
    name + ': ' + (isState(p?.state) ? reachLabel(p.state, p.reason) : '?'));
}

/** The mark of one node id, or null when the node has no parameters (or no reach data). */
export function nodeReach(reach: GradientReach | null, id: string, dark = false): ReachMark | null {
  if (!reach || reach.status !== 'ok' || !reach.nodes) return null;
  const n = Object.prototype.hasOwnProperty.call(reach.nodes, id) ? reach.nodes[id] : undefined;
  if (!n || !isState(n.state)) return null;
  const label = reachLabel(n.state, typeof n.reason === 'string' ? n.reason : undefined);
  return {
    state: n.state,
    label,
    short: n.state,
    colour: reachColour(n.state, dark),
    title: ['Gradient reach: ' + label, ...paramLines(n.params)].join('\n'),
  };
}

/** Counts of the states over the node ids given (e.g. the visible ones), for a legend. */
export function reachCounts(reach: GradientReach | null, ids: string[]): Record<ReachState, number> {
  const out: Record<ReachState, number> = { grad: 0, none: 0, frozen: 0, mixed: 0 };
  for (const id of ids) {
    const m = nodeReach(reach, id);
    if (m) out[m.state]++;
  }
  return out;
}

/** Legend entries (state, label, colour) for the states present. */
export function reachLegend(counts: Record<ReachState, number>, dark: boolean):
  { state: ReachState; label: string; colour: string }[] {
  return REACH_STATES.filter((s) => counts[s] > 0)
    .map((s) => ({ state: s, label: STATE_LABELS[s], colour: reachColour(s, dark) }));
}
