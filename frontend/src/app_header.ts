// The pieces of the dashboard's header: the model totals (params, MACs per example, memory,
// layer count), the messages about the run's data and about a deep link, and the empty state.

import { countNodes, layerCountText, LAYER_COUNT_TITLE } from './arch_index';
import { append, h, snippet } from './dom';
import { fmtBytes, fmtInt, fmtMacs } from './format';
import { isOldMacs } from './common/schema_flags';
import type { Architecture } from './types';

function stat(label: string, value: string, key: string, title?: string): HTMLElement {
  return h('span', { class: 'stat', title }, label + ' ', h('b', { dataset: { total: key } }, value));
}

function macsStat(arch: Architecture): HTMLElement | null {
  const m = arch.model;
  const macs = typeof m.macs === 'number' ? m.macs : typeof m.macs === 'string' ? Number(m.macs) : null;
  if (macs == null || !Number.isFinite(macs)) return null;
  const complete = m.macs_complete !== false;
  if (isOldMacs(arch)) {
    return stat('MACs (old convention)', fmtMacs(macs, complete), 'macs', String(m.macs_convention));
  }
  // the model's own work unknown (a Keras call() that could not be traced) says why, as text
  const own = m.self_macs === null && typeof m.self_macs_reason === 'string' ? m.self_macs_reason : '';
  return stat('MACs per example', fmtMacs(macs, complete), 'macs',
    (complete ? '' : (own || 'some layers have no MAC count (see the MACs column)') + '; this is a lower bound. ')
    + fmtInt(macs) + ' multiply-accumulates for one example' + (m.macs_convention ? ' — ' + String(m.macs_convention) : ''));
}

function memoryStat(arch: Architecture): HTMLElement | null {
  const mem = arch.model.memory;
  if (!mem || typeof mem !== 'object') return null;
  const parts: string[] = [];
  if (typeof mem.params_bytes === 'number') parts.push('params ' + fmtBytes(mem.params_bytes));
  if (typeof mem.buffers_bytes === 'number' && mem.buffers_bytes > 0) parts.push('buffers ' + fmtBytes(mem.buffers_bytes));
  if (typeof mem.activations_bytes === 'number') parts.push('activations ' + fmtBytes(mem.activations_bytes) + ' per example');
  if (!parts.length) return null;
  return stat('Memory', parts.join(' · '), 'memory',
    'parameters and buffers as stored (dtype-aware); activations: the forward outputs of the layers for one example');
}

/** The totals line of the header for an architecture. */
export function totalsLine(arch: Architecture): HTMLElement[] {
  const m = arch.model;
  const counts = countNodes(arch);
  return [
    h('span', { class: 'model-name', title: 'model name (class)' }, m.name, h('span', { class: 'stat' }, ' (' + m.class_name + ')')),
    stat('Total params', fmtInt(m.total_params), 'total'),
    stat('Trainable', fmtInt(m.trainable_params), 'trainable'),
    stat('Non-trainable', fmtInt(m.non_trainable_params), 'non_trainable'),
    macsStat(arch),
    memoryStat(arch),
    h('span', { class: 'stat' }, (arch.framework === 'torch' ? 'PyTorch ' : 'Keras ') + (arch.framework_version || '')),
    h('span', { class: 'stat', title: LAYER_COUNT_TITLE + ` (${counts.inputs} inputs, ${counts.containers} containers)`, dataset: { total: 'layers' } },
      layerCountText(arch)),
  ].filter((x): x is HTMLElement => x != null);
}

/** Messages (deep link not found, unreadable data) as one alert box. */
export function notesBox(title: string, lines: string[], cls: 'warn' | 'info' = 'warn', key = 'notes'): HTMLElement {
  return h('div', { class: 'av-msg ' + cls, attrs: { role: 'alert' }, dataset: { msg: key } },
    h('span', { class: 'title' }, title), lines.map((e) => h('div', null, e)));
}

const KERAS_SNIPPET = `from tensorboard_archviz import ArchVizCallback

model.fit(x, y, epochs=5, callbacks=[ArchVizCallback(log_dir="logs")])`;
const TORCH_SNIPPET = `from torch.utils.tensorboard import SummaryWriter
from tensorboard_archviz import add_architecture

writer = SummaryWriter("logs/run1")
add_architecture(writer, model, example_input)`;

export function emptyState(): HTMLElement {
  const box = h('div', { class: 'av-empty' });
  append(box,
    h('h2', null, 'No architectures yet — add ArchVizCallback() to model.fit(...)'),
    h('p', null, 'Keras: add the callback to fit(); the architecture is written when training starts and again whenever it changes.'),
    snippet(KERAS_SNIPPET),
    h('p', null, 'PyTorch: write it next to your other summaries.'),
    snippet(TORCH_SNIPPET),
    h('p', { class: 'muted' }, 'This page checks for new data every few seconds.'));
  return box;
}
