// The details of a node (table row details, compare view): id, shapes, dtype, MACs with the
// reason when unknown, memory, config, weights, buffers — as a definition list, all as text.

import type { ArchIndex } from './arch_index';
import { shapeStyle } from './arch_index';
import { append, h } from './dom';
import { fmtBytes, fmtInt, fmtNodeMacsLine, fmtShape, fmtValue, shapeLines } from './format';
import type { ArchNode } from './types';

export function nodeDetails(n: ArchNode, idx: ArchIndex): HTMLElement {
  const style = shapeStyle(idx.arch);
  const dl = h('dl', { class: 'av-details' });
  const row = (k: string, v: Node | string) => append(dl, h('dt', null, k), h('dd', null, v));
  row('id', h('span', { class: 'mono' }, n.id));
  if (n.input_shapes !== undefined) row('input shapes', shapeLines(n.input_shapes, style).join('  '));
  row('output shapes', shapeLines(n.output_shapes, style).join('  '));
  if (n.reason) row('note', String(n.reason));
  if (n.dtype) row('dtype', n.dtype + (n.dtype_policy && n.dtype_policy !== n.dtype ? ' (policy ' + String(n.dtype_policy) + ')' : ''));
  if (typeof n.calls === 'number' && n.calls > 1) row('calls', String(n.calls) + ' (shared; params counted once)');
  if (n.macs != null || n.macs_reason) {
    row('MACs per example', fmtNodeMacsLine(n));
  }
  if (n.memory) {
    row('memory', `params ${fmtBytes(n.memory.params_bytes)} (${fmtInt(n.memory.params_bytes)} bytes) · `
      + `output ${fmtBytes(n.memory.output_bytes)} per example`);
  }
  const cfg = n.config || {};
  for (const k of Object.keys(cfg)) row(k, h('span', { class: 'mono' }, fmtValue(cfg[k])));
  if (Array.isArray(n.weights) && n.weights.length) {
    row('weights', h('div', null, n.weights.map((w) =>
      h('div', { class: 'mono' }, `${w.name}  ${fmtShape(w.shape, style)}${w.trainable ? '' : '  (non-trainable)'}`))));
  }
  if (Array.isArray(n.buffers) && n.buffers.length) {
    row('buffers', h('div', null, n.buffers.map((b) =>
      h('div', { class: 'mono' }, `${b.name}  ${fmtShape(b.shape, style)}`))));
  }
  return dl;
}
