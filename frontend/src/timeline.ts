// Timeline of one run: every step at which the architecture was written, what changed at each
// (the diff of consecutive steps, e.g. "trainable params 0 → 2,257,984"), and one click to open
// that diff in the compare view.

import { errorMessage, fetchArchitecture, fetchDiff, runSteps } from './api';
import type { View, ViewContext } from './view';
import { append, button, clear, h } from './dom';
import { fieldLines, someNames as names } from './diff_text';
import { fmtInt, fmtSigned } from './format';
import type { DiffResponse } from './types';

const MAX_NAMES = 6;

/** Human lines describing a diff between two steps of one run. */
export function describeDiff(d: DiffResponse): string[] {
  const out: string[] = [...(d.highlights || [])];
  const t = d.totals;
  const tot = (label: string, v?: { a: number; b: number; delta: number }) => {
    if (v && v.a !== v.b && !out.some((l) => l.startsWith(label + ' '))) out.push(`${label} ${fmtInt(v.a)} → ${fmtInt(v.b)} (${fmtSigned(v.b - v.a)})`);
  };
  tot('total params', t?.total_params);
  tot('trainable params', t?.trainable_params);
  tot('non-trainable params', t?.non_trainable_params);
  if (d.added?.length) out.push(`added: ${names(d.added)}`);
  if (d.removed?.length) out.push(`removed: ${names(d.removed)}`);
  if (d.renamed?.length) out.push(`renamed: ${names(d.renamed.map((r) => r.id_a + ' → ' + r.id_b))}`);
  for (const c of (d.changed || []).slice(0, MAX_NAMES)) {
    const f = fieldLines(c.fields || {}).map(([k, a, b]) => `${k} ${a} → ${b}`).join('; ');
    out.push(`${c.id_b}: ${f || 'changed'}`);
  }
  if ((d.changed?.length || 0) > MAX_NAMES) out.push(`… and ${d.changed.length - MAX_NAMES} more changed layers`);
  const ea = d.edges_added?.length || 0, er = d.edges_removed?.length || 0;
  if (ea || er) out.push(`connections: +${ea} / −${er}`);
  return out;
}

function isEmptyDiff(d: DiffResponse): boolean {
  return !(d.added?.length || d.removed?.length || d.changed?.length || d.renamed?.length
    || d.edges_added?.length || d.edges_removed?.length);
}

export function mountTimeline(container: HTMLElement, ctx: ViewContext): View {
  const run = ctx.state.run!;
  const steps = runSteps(ctx.runs, run);
  const root = h('div', { class: 'av-timeline-view' });
  container.appendChild(root);
  let destroyed = false;

  append(root, h('p', { class: 'count' },
    `Run “${run}”: the architecture was written at ${steps.length} step${steps.length === 1 ? '' : 's'}. ` +
    'Each entry says what changed since the previous one.'));
  const list = h('ol', { class: 'av-timeline' });
  root.appendChild(list);

  const jobs: (() => Promise<void>)[] = [];
  steps.forEach((s, i) => {
    const li = h('li', { dataset: { step: String(s) } });
    const what = h('div', { class: 'what' }, h('span', { class: 'muted' }, 'loading…'));
    const detail = h('ul');
    append(li, h('span', { class: 'step' }, 'step ' + s), ' ', what, detail);
    list.appendChild(li);
    if (i === 0) {
      jobs.push(async () => {
        try {
          const a = await fetchArchitecture(run, s);
          if (destroyed) return;
          clear(what);
          append(what, `first architecture written: ${a.model.name} (${a.model.class_name}), ${a.nodes.length} layers, ` +
            `${fmtInt(a.model.total_params)} params (${fmtInt(a.model.trainable_params)} trainable)`);
        } catch (e) {
          if (destroyed) return;
          clear(what);
          what.appendChild(h('span', { class: 'av-msg error' }, errorMessage(e)));
        }
      });
      return;
    }
    const prev = steps[i - 1];
    jobs.push(async () => {
      try {
        const d = await fetchDiff(run, prev, run, s);
        if (destroyed) return;
        clear(what);
        if (isEmptyDiff(d)) li.classList.add('nochange');
        append(what, (isEmptyDiff(d) ? 'no change' : d.summary || 'changed') + ' ',
          button(`Compare step ${prev} → ${s}`, () => ctx.openCompare({ runA: run, stepA: prev, runB: run, stepB: s }),
            { class: 'link', dataset: { action: 'open-diff' } }));
        for (const line of describeDiff(d)) detail.appendChild(h('li', null, line));
      } catch (e) {
        if (destroyed) return;
        clear(what);
        what.appendChild(h('span', { class: 'av-msg error' }, `could not compare with step ${prev}: ${errorMessage(e)}`));
      }
    });
  });

  // at most 3 requests at a time
  let next = 0;
  const worker = async () => { while (!destroyed && next < jobs.length) await jobs[next++](); };
  for (let k = 0; k < 3; k++) void worker();

  return { destroy() { destroyed = true; root.remove(); } };
}
