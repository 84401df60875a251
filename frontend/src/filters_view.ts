// Filters view: pick a conv layer with filter grids, slide over the steps at which its grid was
// written, and see each filter's maximising image as its own tile (cropped from the grid PNG on
// a canvas) with its score; sort by score on demand; dead filters are marked, never dropped.

import { errorMessage, fetchFilters } from './api';
import type { View, ViewContext } from './app';
import { append, clear, errorBox, fmtInt, fmtScore, h, loading, select, snippet } from './dom';
import type { FilterTile, FiltersResponse } from './types';

let sortByScore = false; // kept while the tab lives, like the other view settings

const FILTERS_SNIPPET = `ArchVizCallback(filters=True)                            # every conv layer, at the end of training
ArchVizCallback(filters=["conv2d_1"], filters_every=2)   # one layer, every 2 epochs
add_filter_grids(writer, model, layers=["features.3"], global_step=step)   # PyTorch`;

/** Where tile (row, col) sits in the grid PNG (margins inside, and outside if the PNG has them). */
export function tileRect(resp: FiltersResponse, t: FilterTile, imgW: number, imgH: number) {
  const ts = resp.tile_size, m = resp.margin || 0;
  const inner = (n: number) => n * ts + Math.max(0, n - 1) * m;
  const offX = Math.max(0, Math.round((imgW - inner(resp.cols)) / 2));
  const offY = Math.max(0, Math.round((imgH - inner(resp.rows)) / 2));
  return { x: offX + t.col * (ts + m), y: offY + t.row * (ts + m), w: ts, h: ts };
}

/** Loads the grid PNG; when the route refuses it, the error says why (its JSON `error`). */
async function loadImage(url: string): Promise<HTMLImageElement> {
  const resp = await fetch(url); // relative URL from the route: resolves against the plugin's <base>
  if (!resp.ok) {
    let message = `the grid image could not be loaded (HTTP ${resp.status})`;
    try {
      const body = await resp.json();
      if (body && typeof body.error === 'string') message = body.error;
    } catch {
      // not JSON: keep the generic message
    }
    throw new Error(message);
  }
  const objectUrl = URL.createObjectURL(await resp.blob());
  try {
    return await new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error('the grid image is not a readable PNG'));
      img.src = objectUrl;
    });
  } finally {
    // The decoded image stays usable for drawing after the URL is revoked.
    setTimeout(() => URL.revokeObjectURL(objectUrl), 0);
  }
}

export function mountFiltersView(container: HTMLElement, ctx: ViewContext): View {
  const run = ctx.state.run!;
  const info = ctx.runs[run];
  const layers = [...(info?.filter_layers || [])];
  const root = h('div', { class: 'av-filters' });
  container.appendChild(root);
  let destroyed = false;
  let token = 0;

  if (layers.length === 0) {
    append(root,
      h('div', { class: 'av-msg info' }, 'Run “' + run + '” has no filter grids. Ask for them when you train:'),
      snippet(FILTERS_SNIPPET));
    return { destroy() { destroyed = true; root.remove(); } };
  }
  let layer = ctx.state.layer && layers.includes(ctx.state.layer) ? ctx.state.layer : layers[0];

  const toolbar = h('div', { class: 'av-toolbar' });
  const head = h('div', { class: 'av-toolbar' });
  const body = h('div');
  append(root, toolbar, head, body);

  const layerSel = select(layers.map((l) => ({ value: l, label: l })), layer, (v) => {
    layer = v;
    ctx.setState({ layer: v, fstep: null }, false);
    void load(null);
  }, { attrs: { 'aria-label': 'Layer' }, dataset: { picker: 'layer' } });
  const sortBox = h('input', { attrs: { type: 'checkbox' }, dataset: { action: 'sort-score' } });
  sortBox.checked = sortByScore;
  const stepWrap = h('span', { class: 'av-slider' });
  append(toolbar,
    h('label', null, 'Layer ', layerSel),
    stepWrap,
    h('label', { title: 'by default tiles keep the layer’s filter order' }, sortBox, ' Sort by score'));

  let current: FiltersResponse | null = null;
  let image: HTMLImageElement | null = null;
  sortBox.addEventListener('change', () => { sortByScore = sortBox.checked; renderTiles(); });

  function renderSlider(resp: FiltersResponse) {
    clear(stepWrap);
    const steps = [...resp.steps].sort((a, b) => a - b);
    const label = h('span', { class: 'mono', dataset: { label: 'fstep' } }, 'step ' + resp.step);
    if (steps.length <= 1) {
      append(stepWrap, 'Step', label);
      return;
    }
    const slider = h('input', {
      attrs: { type: 'range', min: '0', max: String(steps.length - 1), step: '1', 'aria-label': 'Step' },
      dataset: { picker: 'fstep' },
    });
    slider.value = String(Math.max(0, steps.indexOf(resp.step)));
    let timer: number | undefined;
    slider.addEventListener('input', () => {
      const s = steps[parseInt(slider.value, 10)];
      label.textContent = 'step ' + s;
      window.clearTimeout(timer);
      timer = window.setTimeout(() => {
        ctx.setState({ fstep: s === steps[steps.length - 1] ? null : s }, false);
        void load(s);
      }, 120);
    });
    append(stepWrap, 'Step', slider, label,
      h('span', { class: 'count' }, `(${steps.length} steps: ${steps[0]}–${steps[steps.length - 1]})`));
  }

  function renderTiles() {
    if (!current || !image) return;
    const resp = current;
    clear(head);
    clear(body);
    const dead = resp.tiles.filter((t) => t.dead).length;
    append(head,
      h('span', { class: 'mono' }, resp.layer),
      h('span', { class: 'count' }, `${fmtInt(resp.tiles.length)} filters · ${fmtInt(dead)} dead · step ${resp.step}`),
      h('span', { class: 'count', title: 'score: mean pre-activation of the filter on its maximising image' },
        'score = mean activation of the filter on its image'));
    const tiles = [...resp.tiles];
    if (sortByScore) tiles.sort((a, b) => (b.score ?? -Infinity) - (a.score ?? -Infinity) || a.index - b.index);
    else tiles.sort((a, b) => a.index - b.index);
    const ts = resp.tile_size;
    const scale = ts >= 96 ? 1 : Math.max(1, Math.floor(96 / ts));
    const grid = h('div', { class: 'av-tiles' });
    for (const t of tiles) {
      const r = tileRect(resp, t, image.naturalWidth, image.naturalHeight);
      const canvas = h('canvas', { attrs: { width: String(ts * scale), height: String(ts * scale), 'aria-label': 'filter ' + t.index } });
      const c2d = canvas.getContext('2d');
      if (c2d) {
        c2d.imageSmoothingEnabled = false;
        c2d.drawImage(image, r.x, r.y, r.w, r.h, 0, 0, ts * scale, ts * scale);
      }
      const tip = `filter ${t.index} · score ${fmtScore(t.score)}` +
        (t.post_score != null ? ` · post-activation ${fmtScore(t.post_score)}` : '') + (t.dead ? ' · dead: never activates' : '');
      const tile = h('div', { class: 'av-tile' + (t.dead ? ' dead' : ''), title: tip, dataset: { index: String(t.index), dead: String(!!t.dead) } },
        canvas,
        h('div', { class: 'idx' }, '#' + t.index),
        h('div', { class: 'score' }, fmtScore(t.score)),
        t.dead ? h('span', { class: 'dead-label' }, 'dead') : null);
      grid.appendChild(tile);
    }
    body.appendChild(grid);
  }

  async function load(step: number | null) {
    const my = ++token;
    clear(head);
    clear(body);
    body.appendChild(loading('Loading the filters of “' + layer + '”…'));
    try {
      const resp = await fetchFilters(run, layer, step);
      if (destroyed || my !== token) return;
      const img = await loadImage(resp.image_url);
      if (destroyed || my !== token) return;
      current = resp;
      image = img;
      renderSlider(resp);
      renderTiles();
    } catch (e) {
      if (destroyed || my !== token) return;
      clear(body);
      body.appendChild(errorBox('Could not load the filters of “' + layer + '”' + (step != null ? ' at step ' + step : '') + '.', errorMessage(e)));
    }
  }

  void load(ctx.state.layer === layer ? ctx.state.fstep : null);
  return { destroy() { destroyed = true; token++; root.remove(); } };
}
