// The enlarged filter tile: index, scores, firing state (with its reason), the kernel itself for
// a first conv layer, and the same filter at every written step side by side.

import { compareSteps, errorMessage, fetchFilters, filterSteps } from './api';
import { append, button, clear, h } from './dom';
import { fmtScore } from './format';
import { checkLayout, checkTiles, tileRect } from './filters_layout';
import type { GridLayout } from './filters_layout';
import type { FilterTile, FiltersResponse, Step } from './types';

export const MAX_STEP_TILES = 16;

/** A canvas showing one tile of a grid image, displayed at `side` px. The canvas holds the
 *  PNG's own pixels of the tile (never more than the PNG has: the layout is clamped to the
 *  decoded image); CSS enlarges it. */
export function tileCanvas(lay: GridLayout, t: FilterTile, img: HTMLImageElement, side: number,
                           label: string): HTMLCanvasElement {
  const r = tileRect(lay, t);
  const canvas = h('canvas', { attrs: { width: String(r.w), height: String(r.h), 'aria-label': label } });
  canvas.style.width = Math.round(side * r.w / lay.tileSize) + 'px';
  canvas.style.height = Math.round(side * r.h / lay.tileSize) + 'px';
  const c2d = canvas.getContext('2d');
  if (c2d) {
    c2d.imageSmoothingEnabled = false;
    c2d.drawImage(img, r.x, r.y, r.w, r.h, 0, 0, r.w, r.h);
  }
  return canvas;
}

/** The element standing for a tile entry that cannot be read: the words, and why. */
export function unreadableTile(index: number, reason: string): HTMLElement {
  return h('div', { class: 'av-tile unreadable', title: reason, dataset: { index: String(index), unreadable: 'true' } },
    h('div', { class: 'unreadable-box' }, 'unreadable tile'),
    h('div', { class: 'idx' }, '#' + index),
    h('div', { class: 'reason' }, reason));
}

/** The kernel as an image: one channel in a blue–white–red scale (0 = white), three as RGB
 * around grey; one scale for the whole kernel (largest |weight|). */
export function kernelCanvas(kernel: number[][][], side: number): HTMLCanvasElement {
  const kh = kernel.length, kw = kernel[0]?.length || 0, cin = kernel[0]?.[0]?.length || 0;
  const canvas = h('canvas', { attrs: { width: String(kw), height: String(kh), 'aria-label': 'kernel' }, dataset: { role: 'kernel' } });
  canvas.style.width = Math.round(side * kw / Math.max(kh, kw)) + 'px';
  canvas.style.height = Math.round(side * kh / Math.max(kh, kw)) + 'px';
  const c2d = canvas.getContext('2d');
  if (!c2d || !kh || !kw) return canvas;
  let amax = 1e-12;
  for (const row of kernel) for (const px of row) for (const v of px) amax = Math.max(amax, Math.abs(v));
  const data = c2d.createImageData(kw, kh);
  for (let y = 0; y < kh; y++) {
    for (let x = 0; x < kw; x++) {
      const px = kernel[y][x], o = 4 * (y * kw + x);
      if (cin === 3) {
        for (let c = 0; c < 3; c++) data.data[o + c] = Math.round(127.5 + 127.5 * px[c] / amax);
      } else {
        const v = px.reduce((a, b) => a + b, 0) / Math.max(1, cin) / amax;   // in [-1, 1]
        data.data[o] = Math.round(255 * (v < 0 ? 1 + v : 1));
        data.data[o + 1] = Math.round(255 * (1 - Math.abs(v)));
        data.data[o + 2] = Math.round(255 * (v > 0 ? 1 - v : 1));
      }
      data.data[o + 3] = 255;
    }
  }
  c2d.putImageData(data, 0, 0);
  return canvas;
}

export function firesText(t: FilterTile): string {
  if (t.fires === 'after_norm') return 'fires only after normalisation';
  if (t.dead || t.fires === 'never') return 'never fires (dead)';
  return 'fires';
}

function facts(t: FilterTile): HTMLElement {
  const row = (k: string, v: string) => [h('dt', null, k), h('dd', null, v)];
  return h('dl', null,
    row('filter', '#' + t.index),
    row('score', fmtScore(t.score)),
    t.pre_score != null ? row('conv output', fmtScore(t.pre_score)) : null,
    t.post_score != null ? row('post-activation', fmtScore(t.post_score)) : null,
    row('state', firesText(t)));
}

export interface DetailContext {
  run: string;
  layer: string;
  resp: FiltersResponse;
  layout: GridLayout;
  image: HTMLImageElement;
  load: (url: string) => Promise<HTMLImageElement>;
}

/** Steps to show side by side: all when few, else evenly spaced ones plus the current one. */
export function pickSteps(steps: Step[], current: Step, max = MAX_STEP_TILES): Step[] {
  const all = [...steps].sort(compareSteps);
  if (all.length <= max) return all;
  const out = new Set<Step>([current]);
  for (let k = 0; k < max - 1; k++) out.add(all[Math.round(k * (all.length - 1) / (max - 2))]);
  return [...out].sort(compareSteps);
}

async function fillSteps(strip: HTMLElement, ctx: DetailContext, index: number, isOpen: () => boolean) {
  const cur = filterSteps(ctx.resp);
  const steps = pickSteps(cur.steps, cur.step);
  const slots = steps.map((s) => {
    const fig = h('figure', { class: 'av-step-tile' + (s === cur.step ? ' current' : ''), dataset: { step: s } },
      h('span', { class: 'count' }, '…'), h('figcaption', null, 'step ' + s));
    strip.appendChild(fig);
    return fig;
  });
  for (let k = 0; k < steps.length; k++) {
    if (!isOpen()) return;
    const fig = slots[k];
    try {
      const resp = steps[k] === cur.step ? ctx.resp : await fetchFilters(ctx.run, ctx.layer, steps[k]);
      if (typeof resp.skipped === 'string') throw new Error('not computed at this step');
      const img = steps[k] === cur.step ? ctx.image : await ctx.load(resp.image_url);
      const lay = steps[k] === cur.step ? ctx.layout : checkLayout(resp, img.naturalWidth, img.naturalHeight);
      const entry = checkTiles(resp, lay).find((c) => (c.readable ? c.tile.index : c.index) === index);
      const tile = entry && entry.readable ? entry.tile : null;
      clear(fig);
      append(fig, tile ? tileCanvas(lay, tile, img, 96, 'filter ' + index + ' at step ' + steps[k])
        : h('span', { class: 'count' }, entry ? 'unreadable tile' : 'not in this grid'),
      h('figcaption', null, 'step ' + steps[k] + (tile ? ' · ' + fmtScore(tile.score) : '')));
    } catch (e) {
      clear(fig);
      append(fig, h('span', { class: 'count' }, errorMessage(e)), h('figcaption', null, 'step ' + steps[k]));
    }
  }
}

/** Open the enlarged view of one tile; returns a function that closes it. */
export function openDetail(ctx: DetailContext, t: FilterTile, onClose: () => void): () => void {
  let open = true;
  const side = Math.max(192, Math.min(320, ctx.layout.tileSize * 4));
  const strip = h('div', { class: 'av-filter-steps', attrs: { 'aria-label': 'this filter at every step' } });
  const close = () => {
    if (!open) return;
    open = false;
    backdrop.remove();
    document.removeEventListener('keydown', onKey);
    onClose();
  };
  const onKey = (ev: KeyboardEvent) => { if (ev.key === 'Escape') close(); };
  const kernel = t.kernel ? h('figure', null, kernelCanvas(t.kernel, side), h('figcaption', null,
    'kernel ' + t.kernel.length + '×' + (t.kernel[0]?.length || 0) + ' (blue < 0 < red)')) : null;
  const dialog = h('div', { class: 'av-filter-detail', attrs: { role: 'dialog', 'aria-modal': 'true', 'aria-label': 'filter ' + t.index } },
    h('header', null, h('span', { class: 'title' }, 'Filter #' + t.index), h('span', { class: 'mono' }, ctx.layer),
      h('span', { class: 'count' }, 'step ' + filterSteps(ctx.resp).step), button('Close', close, { class: 'close', dataset: { action: 'close-detail' } })),
    h('div', { class: 'main' },
      h('figure', null, tileCanvas(ctx.layout, t, ctx.image, side, 'filter ' + t.index + ' enlarged'),
        h('figcaption', null, 'optimised image')),
      kernel,
      h('div', null, facts(t), t.dead_reason ? h('div', { class: 'reason' }, t.dead_reason) : null)),
    h('div', { class: 'count' }, 'This filter at every written step:'), strip);
  const backdrop = h('div', { class: 'av-filter-detail-backdrop' }, dialog);
  backdrop.addEventListener('click', (ev) => { if (ev.target === backdrop) close(); });
  document.addEventListener('keydown', onKey);
  document.body.appendChild(backdrop);
  void fillSteps(strip, ctx, t.index, () => open);
  return close;
}
