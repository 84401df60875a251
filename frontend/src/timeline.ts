// Timeline of one run: every step at which the architecture was written, what changed at each
// since the previous readable step (the `timeline` route computes and words it in one pass; this
// view only lays it out), and one click to open that diff in the compare view.

import { errorMessage, fetchTimeline } from './api';
import { notesBox } from './app_header';
import { append, button, clear, errorBox, h, loading } from './dom';
import type { TimelineEntry } from './types';
import type { View, ViewContext } from './view';

function entryItem(run: string, e: TimelineEntry, ctx: ViewContext): HTMLElement {
  const li = h('li', { dataset: { step: e.step_string } });
  const what = h('div', { class: 'what' });
  const detail = h('ul');
  append(li, h('span', { class: 'step' }, 'step ' + e.step_string), ' ', what, detail);
  if (e.error) {
    li.classList.add('unreadable');
    what.appendChild(h('span', { class: 'av-msg error' }, e.error));
    return li;
  }
  if (e.identical) li.classList.add('nochange');
  const summary = e.first ? e.summary || 'first architecture written' : e.identical ? 'no change' : e.summary || 'changed';
  what.appendChild(document.createTextNode(summary + ' '));
  const prev = e.previous_step_string;
  if (!e.first && prev != null) {
    what.appendChild(button(`Compare step ${prev} → ${e.step_string}`,
      () => ctx.openCompare({ runA: run, stepA: prev, runB: run, stepB: e.step_string }),
      { class: 'link', dataset: { action: 'open-diff' } }));
  }
  for (const line of e.details || []) detail.appendChild(h('li', null, line));
  return li;
}

export function mountTimeline(container: HTMLElement, ctx: ViewContext): View {
  const run = ctx.state.run!;
  const root = h('div', { class: 'av-timeline-view' });
  container.appendChild(root);
  const abort = new AbortController();
  root.appendChild(loading(`Reading the steps of “${run}”…`));
  fetchTimeline(run, abort.signal).then((t) => {
    clear(root);
    const entries = t.entries || [];
    if (t.errors?.length) root.appendChild(notesBox('Some data of run “' + run + '” could not be read:', t.errors, 'warn', 'timeline-errors'));
    append(root, h('p', { class: 'count' },
      `Run “${run}”: the architecture was written at ${entries.length} step${entries.length === 1 ? '' : 's'}. ` +
      'Each entry says what changed since the previous one.'));
    const list = h('ol', { class: 'av-timeline' });
    for (const e of entries) list.appendChild(entryItem(run, e, ctx));
    root.appendChild(list);
  }, (e) => {
    if (abort.signal.aborted) return;
    clear(root);
    root.appendChild(errorBox(`Could not read the timeline of “${run}”.`, errorMessage(e)));
  });
  return { destroy() { abort.abort(); root.remove(); } };
}
