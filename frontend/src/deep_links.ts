// What a deep link (or a remembered state) asks for that the logs do not have: one sentence per
// unknown run / step / layer, naming what was not found and what exists, and the state to show
// instead. The shell shows the sentences; nothing is replaced silently.

import { latestStep, runOptions, runSteps } from './api';
import type { Architecture, RunsResponse } from './types';
import type { AppState } from './view';

const MAX_LISTED = 8;

/** "a, b, c and 4 more" */
export function listSome(items: string[], quote = true): string {
  const q = (s: string) => (quote ? '“' + s + '”' : s);
  const shown = items.slice(0, MAX_LISTED).map(q).join(', ');
  return items.length > MAX_LISTED ? `${shown} and ${items.length - MAX_LISTED} more` : shown;
}

/** Check run and step against the listing; returns the messages and fixes `state` in place. */
export function checkRunAndStep(state: AppState, runs: RunsResponse): string[] {
  const notes: string[] = [];
  const names = runOptions(runs).map((o) => o.value);
  if (state.run != null && !runs[state.run]) {
    const missing = state.run;
    state.run = names.find((n) => runSteps(runs, n).length > 0) ?? names[0] ?? null;
    state.step = null;
    notes.push(`Run “${missing}” was not found. Runs: ${listSome(names)}.` + (state.run != null ? ` Showing “${state.run}”.` : ''));
  }
  if (state.step != null && state.run != null && !runSteps(runs, state.run).includes(state.step)) {
    const steps = runSteps(runs, state.run);
    notes.push(`Run “${state.run}” has no architecture at step ${state.step}. ` +
      (steps.length ? `Steps: ${listSome(steps, false)}; showing the latest, ${latestStep(runs, state.run)}.` : 'It lists no steps.'));
    state.step = null;
  }
  if (state.view === 'filters' && state.layer != null && state.run != null && runs[state.run]) {
    const layers = runs[state.run].filter_layers || [];
    if (!layers.includes(state.layer)) {
      notes.push(`Run “${state.run}” has no filter grids for layer “${state.layer}”. ` +
        (layers.length ? `Layers with grids: ${listSome(layers)}.` : 'It has no filter grids.'));
      state.layer = null;
    }
  }
  return notes;
}

/** The selected layer of a deep link that the architecture does not have. */
export function checkLayer(layer: string, arch: Architecture, where: string): string | null {
  if (arch.nodes.some((n) => n.id === layer)) return null;
  const last = layer.split(/[./]/).pop()!.toLowerCase();
  const like = arch.nodes.filter((n) => last && n.id.toLowerCase().includes(last)).map((n) => n.id);
  const some = like.length ? like : arch.nodes.map((n) => n.id);
  return `Layer “${layer}” was not found in ${where}. ${like.length ? 'Similar' : 'Layers'}: ${listSome(some)}.`;
}

/** The messages for a comparison whose runs or steps do not exist (empty when it is valid). */
export function checkCompare(sel: { runA: string; stepA: string; runB: string; stepB: string },
                             runs: RunsResponse): string[] {
  const notes: string[] = [];
  const names = runOptions(runs).map((o) => o.value);
  for (const [side, run, step] of [['A', sel.runA, sel.stepA], ['B', sel.runB, sel.stepB]] as const) {
    if (!runs[run]) {
      notes.push(`Compare ${side}: run “${run}” was not found. Runs: ${listSome(names)}.`);
    } else if (!runSteps(runs, run).includes(step)) {
      notes.push(`Compare ${side}: run “${run}” has no architecture at step ${step}. Steps: ${listSome(runSteps(runs, run), false)}.`);
    }
  }
  return notes;
}
