// Filters view: pick a conv layer with filter grids (in model order), slide over the steps at
// which its grid was written, and see each filter's maximising image as its own tile (cropped
// from the grid PNG on a canvas) with its score; sort by score on demand; dead filters and
// filters that fire only after normalisation are marked, never dropped. Click a tile to enlarge
// it (scores, the kernel of a first layer, the same filter at every step). Big grids are drawn
// a capped number of tiles at a time, in short slices, so the page never freezes.

import { errorMessage, fetchArchitecture, fetchFilters, filterSteps, latestStep } from './api';
import { append, button, clear, errorBox, h, loading, select, snippet } from './dom';
import { openDetail, tileCanvas, unreadableTile } from './filters_detail';
import { checkLayout, checkTiles } from './filters_layout';
import type { CheckedTile, GridLayout } from './filters_layout';
import { installFilterStyles } from './filters_styles';
import { fmtInt, fmtScore } from './format';
import type { FilterTile, FiltersResponse, Step } from './types';
import type { View, ViewContext } from './view';

let sortByScore = false; // kept while the tab lives, like the other view settings

/** Tiles put on the page at first, and per "show more". */
export const TILE_PAGE = 400;
/** Time slice (ms) for building tiles before yielding to the browser. */
const SLICE_MS = 12;

const FILTERS_SNIPPET = `ArchVizCallback(filters=True)                            # every conv layer, at the end of training
ArchVizCallback(filters=["conv2d_1"], filters_every=2)   # one layer, every 2 epochs
add_filter_grids(writer, model, layers=["features.3"], global_step=step)   # PyTorch`;

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
    const img = new Image();
    img.src = objectUrl;
    try {
      await img.decode(); // decoded off the main thread, before any drawImage
    } catch {
      throw new Error('the grid image is not a readable PNG');
    }
    return img;
  } finally {
    setTimeout(() => URL.revokeObjectURL(objectUrl), 0);
  }
}

/** Layers in model order (the architecture's node order); unknown ones after, natural order. */
export function orderLayers(layers: string[], nodeOrder: string[]): string[] {
  const pos = new Map(nodeOrder.map((id, i) => [id, i]));
  const natural = (a: string, b: string) => a.localeCompare(b, undefined, { numeric: true });
  return [...layers].sort((a, b) => {
    const pa = pos.get(a), pb = pos.get(b);
    if (pa != null && pb != null) return pa - pb;
    if (pa != null) return -1;
    if (pb != null) return 1;
    return natural(a, b);
  });
}

async function modelOrder(ctx: ViewContext, run: string, layers: string[]): Promise<string[]> {
  try {
    const step = ctx.state.step ?? latestStep(ctx.runs, run);
    if (step == null) return orderLayers(layers, []);
    const arch = ctx.arch ?? await fetchArchitecture(run, step);
    return orderLayers(layers, arch.nodes.map((n) => n.id));
  } catch {
    return orderLayers(layers, []);
  }
}

function tileElement(t: FilterTile, lay: GridLayout, image: HTMLImageElement, side: number): HTMLElement {
  const afterNorm = t.fires === 'after_norm';
  const tip = `filter ${t.index} · score ${fmtScore(t.score)}` +
    (t.post_score != null ? ` · post-activation ${fmtScore(t.post_score)}` : '') +
    (t.dead ? ' · dead: never fires' : afterNorm ? ' · fires only after normalisation' : '') +
    (t.dead_reason ? '\n' + t.dead_reason : '') + '\nclick to enlarge';
  return h('div', {
    class: 'av-tile' + (t.dead ? ' dead' : '') + (afterNorm ? ' after-norm' : ''), title: tip,
    dataset: { index: String(t.index), dead: String(!!t.dead), fires: t.fires || (t.dead ? 'never' : 'yes') },
    attrs: { tabindex: '0', role: 'button' },
  },
  tileCanvas(lay, t, image, side, 'filter ' + t.index),
  h('div', { class: 'idx' }, '#' + t.index),
  h('div', { class: 'score' }, fmtScore(t.score)),
  t.dead ? h('span', { class: 'dead-label' }, 'dead') : null,
  afterNorm ? h('span', { class: 'norm-label', title: 'the conv’s own output never fires; after BatchNorm it does' }, 'after norm') : null);
}

function entryElement(c: CheckedTile, lay: GridLayout, image: HTMLImageElement, side: number): HTMLElement {
  return c.readable ? tileElement(c.tile, lay, image, side) : unreadableTile(c.index, c.reason);
}

/** Tiles in display order: filter order, or by score (unreadable entries last). */
function ordered(entries: CheckedTile[]): CheckedTile[] {
  const index = (c: CheckedTile) => (c.readable ? c.tile.index : c.index);
  const score = (c: CheckedTile) => (c.readable ? c.tile.score ?? -Infinity : -Infinity);
  const out = [...entries];
  if (sortByScore) {
    out.sort((a, b) => Number(b.readable) - Number(a.readable) || score(b) - score(a) || index(a) - index(b));
  } else out.sort((a, b) => index(a) - index(b));
  return out;
}

/** Builds tile elements into `grid` in time slices; returns a cancel function. */
function drawTiles<T>(grid: HTMLElement, tiles: T[], make: (t: T) => HTMLElement, done: () => void): () => void {
  let k = 0;
  let cancelled = false;
  const slice = () => {
    if (cancelled) return;
    const t0 = performance.now();
    const frag = document.createDocumentFragment();
    while (k < tiles.length && performance.now() - t0 < SLICE_MS) frag.appendChild(make(tiles[k++]));
    grid.appendChild(frag);
    if (k < tiles.length) setTimeout(slice, 0);
    else done();
  };
  slice();
  return () => { cancelled = true; };
}

export function mountFiltersView(container: HTMLElement, ctx: ViewContext): View {
  installFilterStyles();
  const run = ctx.state.run!;
  const layers = [...(ctx.runs[run]?.filter_layers || [])];
  const root = h('div', { class: 'av-filters' });
  container.appendChild(root);
  const life = { destroyed: false, cleanup: [] as (() => void)[] };
  const destroy = () => { life.destroyed = true; life.cleanup.forEach((f) => f()); root.remove(); };
  if (layers.length === 0) {
    append(root,
      h('div', { class: 'av-msg info' }, 'Run “' + run + '” has no filter grids. Ask for them when you train:'),
      snippet(FILTERS_SNIPPET));
    return { destroy };
  }
  root.appendChild(loading('Loading the layers of “' + run + '”…'));
  void modelOrder(ctx, run, layers).then((ordered) => {
    if (life.destroyed) return;
    clear(root);
    mountLayers(root, ctx, run, ordered, life);
  });
  return { destroy };
}

interface Life { destroyed: boolean; cleanup: (() => void)[] }

function mountLayers(root: HTMLElement, ctx: ViewContext, run: string, layers: string[], life: Life): void {
  let layer = ctx.state.layer && layers.includes(ctx.state.layer) ? ctx.state.layer : layers[0];
  const toolbar = h('div', { class: 'av-toolbar' });
  const head = h('div', { class: 'av-toolbar' });
  const body = h('div');
  append(root, toolbar, head, body);
  const stepWrap = h('span', { class: 'av-slider' });
  const sortBox = h('input', { attrs: { type: 'checkbox' }, dataset: { action: 'sort-score' } });
  sortBox.checked = sortByScore;
  const grid = createGrid(run, head, body, life, () => layer);
  const load = grid.load;
  const layerSel = select(layers.map((l) => ({ value: l, label: l })), layer, (v) => {
    layer = v;
    ctx.setState({ layer: v, fstep: null }, false);
    void load(null);
  }, { attrs: { 'aria-label': 'Layer' }, dataset: { picker: 'layer' } });
  sortBox.addEventListener('change', () => { sortByScore = sortBox.checked; grid.render(); });
  append(toolbar,
    h('label', { title: 'layers in model order' }, 'Layer ', layerSel),
    stepWrap,
    h('label', { title: 'by default tiles keep the layer’s filter order' }, sortBox, ' Sort by score'));
  grid.onLoaded = (resp) => renderSlider(stepWrap, resp, ctx, load);
  void load(ctx.state.layer === layer ? ctx.state.fstep : null);
}

function renderSlider(stepWrap: HTMLElement, resp: FiltersResponse, ctx: ViewContext,
                      load: (s: Step | null) => Promise<void>) {
  clear(stepWrap);
  const { step, steps } = filterSteps(resp);
  const label = h('span', { class: 'mono', dataset: { label: 'fstep' } }, 'step ' + step);
  if (steps.length <= 1) {
    append(stepWrap, 'Step', label);
    return;
  }
  const slider = h('input', {
    attrs: { type: 'range', min: '0', max: String(steps.length - 1), step: '1', 'aria-label': 'Step' },
    dataset: { picker: 'fstep' },
  });
  slider.value = String(Math.max(0, steps.indexOf(step)));
  slider.setAttribute('aria-valuetext', 'step ' + step);
  let timer: number | undefined;
  slider.addEventListener('input', () => {
    const s = steps[parseInt(slider.value, 10)];
    label.textContent = 'step ' + s;
    slider.setAttribute('aria-valuetext', 'step ' + s);
    window.clearTimeout(timer);
    timer = window.setTimeout(() => {
      ctx.setState({ fstep: s === steps[steps.length - 1] ? null : s }, false);
      void load(s);
    }, 120);
  });
  append(stepWrap, 'Step', slider, label,
    h('span', { class: 'count' }, `(${steps.length} steps: ${steps[0]}–${steps[steps.length - 1]})`));
}

interface Grid {
  load(step: Step | null): Promise<void>;
  render(): void;
  onLoaded: (resp: FiltersResponse) => void;
}

function summary(resp: FiltersResponse, entries: CheckedTile[]): HTMLElement[] {
  const tiles = entries.flatMap((c) => (c.readable ? [c.tile] : []));
  const unreadable = entries.length - tiles.length;
  const dead = tiles.filter((t) => t.dead).length;
  const afterNorm = tiles.filter((t) => t.fires === 'after_norm').length;
  const objective = typeof resp.objective === 'string' ? resp.objective : 'mean activation of the filter on its image';
  return [
    h('span', { class: 'mono' }, resp.layer),
    h('span', { class: 'count' }, `${fmtInt(tiles.length)} filters · ${fmtInt(dead)} dead · step ${filterSteps(resp).step}`),
    unreadable ? h('span', { class: 'count', dataset: { role: 'unreadable-count' } }, `${fmtInt(unreadable)} unreadable tile${unreadable === 1 ? '' : 's'}`) : null,
    afterNorm ? h('span', { class: 'count', title: 'the conv’s own output never fires, BatchNorm shifts it into the active range' },
      `${fmtInt(afterNorm)} fire only after normalisation`) : null,
    h('span', { class: 'count', title: 'what each image maximises' }, 'score = ' + objective),
  ].filter((x): x is HTMLElement => x != null);
}

/** The notes above the tiles: what of the stored layout did not fit the real PNG. */
function layoutNote(lay: GridLayout): HTMLElement | null {
  if (!lay.problems.length) return null;
  const shown = lay.problems.slice(0, 6).join('; ') + (lay.problems.length > 6 ? `; and ${lay.problems.length - 6} more` : '');
  return h('div', { class: 'av-msg warn', dataset: { role: 'layout-problems' } },
    h('span', { class: 'title' }, `The stored layout does not fit the ${lay.width}×${lay.height} grid image; what fits is shown.`), shown);
}

/** A layer the writer left out at this step (time budget, not reached, failed): why. */
function skippedNote(resp: FiltersResponse, reason: string): HTMLElement {
  return h('div', { class: 'av-msg info', dataset: { role: 'skipped' } },
    h('span', { class: 'title' }, `No grid for “${resp.layer}” at step ${filterSteps(resp).step}.`),
    reason.charAt(0).toUpperCase() + reason.slice(1) + '. Earlier steps, if any, are on the slider.');
}

interface Loaded { resp: FiltersResponse; image: HTMLImageElement | null; layout: GridLayout | null; entries: CheckedTile[] }

interface Drawing { cancel: (() => void) | null; closeDetail: (() => void) | null }

/** The tiles of a loaded grid into `body`, a page (TILE_PAGE) at a time in time slices. */
function renderTiles(body: HTMLElement, run: string, loaded: Loaded, layout: GridLayout,
                     image: HTMLImageElement, drawing: Drawing): void {
  const resp = loaded.resp;
  const note = layoutNote(layout);
  if (note) body.appendChild(note);
  const tiles = ordered(loaded.entries);
  const ts = layout.tileSize;
  const side = ts * (ts >= 96 ? 1 : Math.max(1, Math.floor(96 / ts)));
  const tilesEl = h('div', { class: 'av-tiles', dataset: { state: 'drawing' } });
  const more = h('div', { class: 'av-tiles-more' });
  append(body, tilesEl, more);
  tilesEl.addEventListener('click', (ev) => {
    const el = (ev.target as HTMLElement).closest<HTMLElement>('.av-tile');
    const c = el && tiles.find((x) => x.readable && String(x.tile.index) === el.dataset.index);
    if (c && c.readable) {
      drawing.closeDetail = openDetail({ run, layer: resp.layer, resp, layout, image, load: loadImage }, c.tile,
        () => { drawing.closeDetail = null; });
    }
  });
  tilesEl.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.target as HTMLElement).classList.contains('av-tile')) (ev.target as HTMLElement).click();
  });
  let shown = 0;
  const page = () => {
    const next = tiles.slice(shown, shown + TILE_PAGE);
    shown += next.length;
    tilesEl.dataset.state = 'drawing';
    clear(more);
    drawing.cancel = drawTiles(tilesEl, next, (c) => entryElement(c, layout, image, side), () => {
      tilesEl.dataset.state = 'done';
      if (shown < tiles.length) {
        append(more, h('span', { class: 'count' }, `${fmtInt(shown)} of ${fmtInt(tiles.length)} filters shown`),
          button(`Show ${fmtInt(Math.min(TILE_PAGE, tiles.length - shown))} more`, page, { dataset: { action: 'more-tiles' } }));
      }
    });
  };
  page();
}

function createGrid(run: string, head: HTMLElement, body: HTMLElement, life: Life, layerOf: () => string): Grid {
  let current: Loaded | null = null;
  let token = 0;
  const drawing: Drawing = { cancel: null, closeDetail: null };
  life.cleanup.push(() => { token++; drawing.cancel?.(); drawing.closeDetail?.(); });

  const grid: Grid = {
    onLoaded: () => undefined,
    render() {
      if (!current) return;
      drawing.cancel?.();
      clear(head);
      clear(body);
      const { resp, image, layout } = current;
      if (typeof resp.skipped === 'string' || !image || !layout) {
        append(head, h('span', { class: 'mono' }, resp.layer));
        body.appendChild(skippedNote(resp, typeof resp.skipped === 'string' ? resp.skipped : 'not computed'));
        return;
      }
      append(head, ...summary(resp, current.entries));
      renderTiles(body, run, current, layout, image, drawing);
    },
    async load(step: Step | null) {
      const my = ++token;
      const layer = layerOf();
      drawing.cancel?.();
      clear(head);
      clear(body);
      body.appendChild(loading('Loading the filters of “' + layer + '”…'));
      try {
        const resp = await fetchFilters(run, layer, step);
        if (life.destroyed || my !== token) return;
        if (typeof resp.skipped === 'string') {
          current = { resp, image: null, layout: null, entries: [] };
        } else {
          const image = await loadImage(resp.image_url);
          if (life.destroyed || my !== token) return;
          const layout = checkLayout(resp, image.naturalWidth, image.naturalHeight);
          current = { resp, image, layout, entries: checkTiles(resp, layout) };
        }
        grid.onLoaded(resp);
        grid.render();
      } catch (e) {
        if (life.destroyed || my !== token) return;
        clear(body);
        body.appendChild(errorBox('Could not load the filters of “' + layer + '”' + (step != null ? ' at step ' + step : '') + '.', errorMessage(e)));
      }
    },
  };
  return grid;
}
