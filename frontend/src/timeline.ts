// Timeline of one run: every step at which the architecture was written, what changed at each
// since the previous readable step (the `timeline` route computes and words it in one pass; this
// view only lays it out, in slices), and one click to open that diff in the compare view. An
// entry the view cannot read is shown as such, in words.

import { errorMessage, fetchTimeline } from './api';
import { notesBox } from './app_header';
import { append, button, clear, errorBox, h, loading } from './dom';
import type { TimelineEntry, TimelineResponse } from './types';
import { nextTask } from './common/slices';
import type { View, ViewContext } from './view';

/** Why an entry of the answer cannot be shown as one, in words; null when it can. */
export function entryProblem(e: unknown): string | null {
  if (e === null || typeof e !== 'object' || Array.isArray(e)) {
    return 'expected an object, got ' + (e === null ? 'null' : Array.isArray(e) ? 'a list' : 'a ' + typeof e);
  }
  const x = e as Record<string, unknown>;
  if (typeof x.step_string !== 'string' && typeof x.step !== 'number') return 'it has no step';
  return null;
}

/** The text of an optional string field; a value of another type is named as unreadable. */
function str(v: unknown, what: string): string | null {
  if (v == null) return null;
  return typeof v === 'string' ? v : `(${what} unreadable: a ${Array.isArray(v) ? 'list' : typeof v})`;
}

function unreadableItem(i: number, why: string): HTMLElement {
  return h('li', { class: 'unreadable', dataset: { entry: String(i) } },
    h('span', { class: 'step' }, 'entry ' + (i + 1)), ' ',
    h('div', { class: 'what' }, h('span', { class: 'av-msg error' }, 'Unreadable timeline entry: ' + why + '.')));
}

function entryItem(run: string, e: TimelineEntry, ctx: ViewContext): HTMLElement {
  const step = typeof e.step_string === 'string' ? e.step_string : String(e.step);
  const li = h('li', { dataset: { step } });
  const what = h('div', { class: 'what' });
  const detail = h('ul');
  append(li, h('span', { class: 'step' }, 'step ' + step), ' ', what, detail);
  if (e.error != null) {
    li.classList.add('unreadable');
    what.appendChild(h('span', { class: 'av-msg error' }, str(e.error, 'error') || ''));
    return li;
  }
  if (e.identical) li.classList.add('nochange');
  const summary = str(e.summary, 'summary');
  what.appendChild(document.createTextNode((e.first ? summary || 'first architecture written' : e.identical ? 'no change' : summary || 'changed') + ' '));
  const prev = e.previous_step_string;
  if (!e.first && typeof prev === 'string') {
    what.appendChild(button(`Compare step ${prev} → ${step}`,
      () => ctx.openCompare({ runA: run, stepA: prev, runB: run, stepB: step }),
      { class: 'link', dataset: { action: 'open-diff' } }));
  }
  const details: unknown = e.details;
  if (Array.isArray(details)) for (const line of details) detail.appendChild(h('li', null, str(line, 'detail') || ''));
  else if (details != null) detail.appendChild(h('li', null, '(details unreadable: not a list)'));
  return li;
}

/** Append the entries in slices of a few milliseconds: a 3,000-step timeline never blocks the
 *  page (the first screenful shows at once, the rest follows within the next frames). */
async function fillList(list: HTMLElement, run: string, entries: unknown[], ctx: ViewContext, alive: () => boolean): Promise<void> {
  let start = performance.now();
  let frag = document.createDocumentFragment();
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    const why = entryProblem(e);
    frag.appendChild(why ? unreadableItem(i, why) : entryItem(run, e as TimelineEntry, ctx));
    if (performance.now() - start > 25) {
      list.appendChild(frag);
      frag = document.createDocumentFragment();
      await nextTask();
      if (!alive()) return;
      start = performance.now();
    }
  }
  list.appendChild(frag);
  list.setAttribute('data-complete', '1');
}

/** The timeline's answer laid out in `root` (`reload` asks the route again: a partial answer,
 *  cut by the route's time budget, continues where it stopped). */
function showTimeline(root: HTMLElement, run: string, t: TimelineResponse, ctx: ViewContext,
  signal: AbortSignal, reload: () => void): void {
  const entries: unknown = t && t.entries;
  if (!Array.isArray(entries)) {
    root.appendChild(errorBox(`Could not read the timeline of “${run}”.`, 'The answer is malformed: its entries are not a list.'));
    return;
  }
  if (Array.isArray(t.errors) && t.errors.length) root.appendChild(notesBox('Some data of run “' + run + '” could not be read:', t.errors.map(String), 'warn', 'timeline-errors'));
  if (t.partial === true) {
    root.appendChild(notesBox('The timeline is not complete yet:', [typeof t.notice === 'string' ? t.notice : 'some steps were not compared within the time budget.'], 'info', 'timeline-partial'));
    root.appendChild(button('Continue', reload, { dataset: { action: 'timeline-continue' } }));
  }
  append(root, h('p', { class: 'count' },
    `Run “${run}”: the architecture was written at ${entries.length} step${entries.length === 1 ? '' : 's'}. ` +
    'Each entry says what changed since the previous one.'));
  const list = h('ol', { class: 'av-timeline' });
  root.appendChild(list);
  void fillList(list, run, entries, ctx, () => !signal.aborted);
}

export function mountTimeline(container: HTMLElement, ctx: ViewContext): View {
  const run = ctx.state.run!;
  const root = h('div', { class: 'av-timeline-view' });
  container.appendChild(root);
  let abort = new AbortController();
  const load = (): void => {
    abort.abort();
    abort = new AbortController();
    const signal = abort.signal;
    clear(root);
    root.appendChild(loading(`Reading the steps of “${run}”…`));
    fetchTimeline(run, signal).then((t) => {
      if (signal.aborted) return;
      clear(root);
      showTimeline(root, run, t, ctx, signal, load);
    }, (e) => {
      if (signal.aborted) return;
      clear(root);
      root.appendChild(errorBox(`Could not read the timeline of “${run}”.`, errorMessage(e)));
    });
  };
  load();
  return { destroy() { abort.abort(); root.remove(); } };
}
