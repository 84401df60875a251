// The canvas of the Layers × steps view: one row per layer, one column per step, each cell the
// signal's colour on the shared scale. The cells are painted once into a bitmap of one pixel per
// cell (one pass, no DOM per cell), then scaled onto a viewport-sized canvas on every scroll; the
// row labels are drawn as text on the canvas. Hover (or the arrow keys) tells the exact value; a
// click (or Enter) opens the layer at that step.

import { h } from './dom';
import { yieldToMain } from './arch_index';
import { onThemeChange } from './theme';
import { canvasHatch, fmtSignal, rampIndexer, rgbOfIndex } from './common/signals_scale';
import type { PaintKind, Scale } from './common/signals_scale';
import type { Step } from './types';

export type HeatRow =
  | { kind: 'layer'; id: string; label: string; values: (number | null)[] | null }
  | { kind: 'fold'; label: string };

export interface HeatData {
  rows: HeatRow[];
  steps: Step[];
  scale: Scale;
  unit: string;
  signalLabel: string;
  /** per step: the training steps the value spans (update ratios written every k steps) */
  spans?: (number | null)[];
}

const ROW_H = 14;
const GUTTER = 240;
const AXIS_H = 20;
const MAX_VIEW_H = 560;
const FONT = '11px Roboto, "Helvetica Neue", Arial, sans-serif';

/** The painted cells and how many cells of each kind (PaintKind) they hold. */
export interface Cells { img: ImageData; counts: Partial<Record<PaintKind, number>> }
const KIND_OF_INDEX: PaintKind[] = ['none', 'nan', 'posinf', 'neginf', 'nonpos'];
const SLICE_MS = 30;

/** The cells as an RGBA bitmap (1 px per cell; "no value" transparent so the hatch shows), painted
 * in slices of SLICE_MS (no long main-thread task); null when `alive()` turns false meanwhile. */
export async function paintCells(d: HeatData, alive: () => boolean): Promise<Cells | null> {
  const nR = Math.max(1, d.rows.length), nC = Math.max(1, d.steps.length);
  const img = new ImageData(nC, nR);
  const px = new Uint32Array(img.data.buffer);
  const le = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  const lut = new Uint32Array(256 + 5);   // RAMP as pixels, then the special cases
  for (let i = -5; i < 256; i++) {
    const rgb = rgbOfIndex(i), R = (rgb >> 16) & 255, G = (rgb >> 8) & 255, B = rgb & 255;
    lut[i + 5] = le ? ((255 << 24) | (B << 16) | (G << 8) | R) >>> 0 : ((R << 24) | (G << 16) | (B << 8) | 255) >>> 0;
  }
  const index = rampIndexer(d.scale);
  const tally = new Float64Array(6);   // none, nan, posinf, neginf, nonpos, value
  let t0 = performance.now();
  for (let r = 0; r < d.rows.length; r++) {
    if (performance.now() - t0 > SLICE_MS) {
      await yieldToMain();
      if (!alive()) return null;
      t0 = performance.now();
    }
    const row = d.rows[r];
    if (row.kind !== 'layer' || !row.values) continue;
    const vals = row.values, base = r * nC;
    for (let c = 0; c < nC; c++) {
      const i = index(vals[c]);
      tally[i < 0 ? -i - 1 : 5]++;
      if (i !== -1) px[base + c] = lut[i + 5];   // no value: left transparent
    }
  }
  const counts: Partial<Record<PaintKind, number>> = { value: tally[5] };
  KIND_OF_INDEX.forEach((k, i) => { if (tally[i]) counts[k] = tally[i]; });
  return { img, counts };
}

export interface HeatHandlers {
  open(id: string, stepIndex: number): void;
  palette(): { bg: string; fg: string; muted: string; band: string; cursor: string };
}

export class Heatmap {
  readonly el: HTMLElement;
  private readonly scroller = h('div', { class: 'avs-heat-scroll' });
  private readonly canvas = h('canvas', { class: 'avs-heat-canvas', attrs: { tabindex: '0', role: 'img' }, dataset: { testid: 'signals-heatmap' } });
  private readonly axis = h('canvas', { class: 'avs-heat-axis', attrs: { 'aria-hidden': 'true' } });
  private readonly spacer = h('div');
  private readonly tip = h('div', { class: 'avs-tip', attrs: { role: 'status', 'aria-live': 'polite' }, dataset: { testid: 'signals-tip' } });
  private bitmap: HTMLCanvasElement | null = null;
  private raf = 0;
  private cursor: { r: number; c: number } | null = null;
  private readonly ro: ResizeObserver | null;
  private hatch: CanvasPattern | string | null = null;
  private readonly stopTheme: () => void;

  constructor(private d: HeatData, private readonly hd: HeatHandlers) {
    this.scroller.append(this.canvas, this.spacer);
    this.el = h('div', { class: 'avs-heat' }, this.axis, this.scroller, this.tip);
    this.scroller.addEventListener('scroll', () => this.schedule(), { passive: true });
    this.canvas.addEventListener('mousemove', (e) => this.hover(e));
    this.canvas.addEventListener('mouseleave', () => { if (!this.cursor) this.tip.textContent = ''; });
    this.canvas.addEventListener('click', (e) => { const at = this.cellAt(e); if (at) this.openAt(at.r, at.c); });
    this.canvas.addEventListener('keydown', (e) => this.key(e));
    this.ro = typeof ResizeObserver !== 'undefined' ? new ResizeObserver(() => this.schedule()) : null;
    this.ro?.observe(this.scroller);
    this.stopTheme = onThemeChange(() => this.schedule());
    this.setData(d, null);
  }

  destroy(): void {
    this.ro?.disconnect();
    this.stopTheme();
    if (this.raf) cancelAnimationFrame(this.raf);
  }

  /** New rows / signal / scale with their painted cells (paintCells). */
  setData(d: HeatData, cells: Cells | null): void {
    this.d = d;
    const bm = document.createElement('canvas');
    bm.width = cells ? cells.img.width : 1; bm.height = cells ? cells.img.height : 1;
    if (cells) bm.getContext('2d')?.putImageData(cells.img, 0, 0);
    this.bitmap = bm;
    const total = d.rows.length * ROW_H;
    const view = Math.min(total, MAX_VIEW_H);
    this.canvas.style.height = view + 'px';
    this.spacer.style.height = Math.max(0, total - view) + 'px';
    this.scroller.style.height = view + 'px';
    // the geometry, for tests and tools reading cells (row ids in order; null for a fold band)
    this.canvas.dataset.rowH = String(ROW_H);
    this.canvas.dataset.gutter = String(GUTTER);
    this.canvas.dataset.steps = String(d.steps.length);
    this.canvas.dataset.rowIds = JSON.stringify(d.rows.map((r) => (r.kind === 'layer' ? r.id : null)));
    this.canvas.setAttribute('aria-label', `${d.signalLabel}: ${d.rows.filter((r) => r.kind === 'layer').length} layers × ${d.steps.length} steps. `
      + 'Use the arrow keys to read a cell, Enter to open the layer at that step in the Graph view.');
    this.cursor = null;
    this.draw();
  }

  /** Scroll so that the row of `id` is in view and put the cursor on it. */
  reveal(id: string): void {
    const r = this.d.rows.findIndex((x) => x.kind === 'layer' && x.id === id);
    if (r < 0) return;
    this.scroller.scrollTop = Math.max(0, r * ROW_H - ROW_H * 2);
    this.cursor = { r, c: this.d.steps.length - 1 };
    this.describe(r, this.d.steps.length - 1);
    this.schedule();
  }

  private schedule(): void {
    if (!this.raf) this.raf = requestAnimationFrame(() => { this.raf = 0; this.draw(); });
  }

  private cellW(): number {
    return Math.max(0.01, (this.canvas.clientWidth - GUTTER) / Math.max(1, this.d.steps.length));
  }

  /** Paint the rows in view: hatch, the scaled bitmap, fold bands, labels, the cursor; then the axis. */
  draw(): void {
    const cv = this.canvas, dpr = window.devicePixelRatio || 1;
    const W = cv.clientWidth || 800, H = cv.clientHeight || 100;
    if (cv.width !== Math.round(W * dpr) || cv.height !== Math.round(H * dpr)) { cv.width = Math.round(W * dpr); cv.height = Math.round(H * dpr); }
    const g = cv.getContext('2d');
    if (!g || !this.bitmap) return;
    const p = this.hd.palette();
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.fillStyle = p.bg;
    g.fillRect(0, 0, W, H);
    const top = this.scroller.scrollTop, r0 = Math.floor(top / ROW_H), off = r0 * ROW_H - top;
    const nVis = Math.min(this.d.rows.length - r0, Math.ceil(H / ROW_H) + 1);
    const cellsW = W - GUTTER;
    g.fillStyle = this.hatch ??= canvasHatch(g);
    g.fillRect(GUTTER, 0, cellsW, H);
    g.imageSmoothingEnabled = false;
    if (nVis > 0) g.drawImage(this.bitmap, 0, r0, this.bitmap.width, nVis, GUTTER, off, cellsW, nVis * ROW_H);
    g.font = FONT;
    g.textBaseline = 'middle';
    for (let k = 0; k < nVis; k++) this.drawLabel(g, this.d.rows[r0 + k], off + k * ROW_H, W, p);
    if (this.cursor && this.cursor.r >= r0 && this.cursor.r < r0 + nVis) {
      const cw = this.cellW();
      g.strokeStyle = p.cursor;
      g.lineWidth = 2;
      g.strokeRect(GUTTER + this.cursor.c * cw - 1, off + (this.cursor.r - r0) * ROW_H, Math.max(3, cw + 2), ROW_H);
    }
    this.drawAxis(W, p);
  }

  private drawLabel(g: CanvasRenderingContext2D, row: HeatRow, y: number, W: number, p: ReturnType<HeatHandlers['palette']>): void {
    if (row.kind === 'fold') {
      g.fillStyle = p.band;
      g.fillRect(0, y, W, ROW_H);
      g.fillStyle = p.fg;
      g.fillText(fit(g, '▾ ' + row.label, W - 8), 4, y + ROW_H / 2);
      return;
    }
    g.fillStyle = row.values ? p.fg : p.muted;
    g.fillText(fit(g, row.label, GUTTER - 8), 4, y + ROW_H / 2);
  }

  private drawAxis(W: number, p: ReturnType<HeatHandlers['palette']>): void {
    const ax = this.axis, dpr = window.devicePixelRatio || 1;
    ax.style.width = '100%';
    ax.style.height = AXIS_H + 'px';
    const aw = ax.clientWidth || W;
    if (ax.width !== Math.round(aw * dpr)) { ax.width = Math.round(aw * dpr); ax.height = Math.round(AXIS_H * dpr); }
    const g = ax.getContext('2d');
    if (!g) return;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, aw, AXIS_H);
    g.font = FONT;
    g.fillStyle = p.muted;
    g.textBaseline = 'middle';
    g.fillText('layer \\ step', 4, AXIS_H / 2);
    const n = this.d.steps.length, cw = this.cellW();
    const every = Math.max(1, Math.ceil(70 / Math.max(cw, 0.01)));
    for (let c = 0; c < n; c += every) {
      const x = GUTTER + c * cw;
      g.fillRect(x, AXIS_H - 4, 1, 4);
      g.fillText(this.d.steps[c], x + 2, AXIS_H / 2 - 2);
    }
  }

  private cellAt(e: MouseEvent): { r: number; c: number } | null {
    const rect = this.canvas.getBoundingClientRect();
    const x = e.clientX - rect.left, y = e.clientY - rect.top + this.scroller.scrollTop;
    const r = Math.floor(y / ROW_H), c = Math.floor((x - GUTTER) / this.cellW());
    if (x < GUTTER || r < 0 || r >= this.d.rows.length || c < 0 || c >= this.d.steps.length) return null;
    return this.d.rows[r].kind === 'layer' ? { r, c } : null;
  }

  private hover(e: MouseEvent): void {
    const at = this.cellAt(e);
    this.canvas.style.cursor = at ? 'pointer' : 'default';
    if (at) this.describe(at.r, at.c);
  }

  /** The exact value of a cell in words (the status line under the heatmap). */
  private describe(r: number, c: number): void {
    const row = this.d.rows[r];
    if (row.kind !== 'layer') return;
    const v = row.values ? row.values[c] : null;
    this.tip.dataset.layer = row.id;
    this.tip.dataset.step = this.d.steps[c];
    const span = v !== null && this.d.spans ? this.d.spans[c] : null;
    const over = span && span > 1 ? ` over the ${span} training steps since the previous write` : '';
    this.tip.textContent = `${row.id} · step ${this.d.steps[c]} · ${this.d.signalLabel}: ${fmtSignal(v, this.d.unit)}${over}`;
  }

  private openAt(r: number, c: number): void {
    const row = this.d.rows[r];
    if (row.kind === 'layer') this.hd.open(row.id, c);
  }

  private key(e: KeyboardEvent): void {
    const n = this.d.rows.length, m = this.d.steps.length;
    if (!n || !m) return;
    let cur = this.cursor || { r: this.d.rows.findIndex((x) => x.kind === 'layer'), c: m - 1 };
    const moves: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    if (e.key === 'Enter' && this.cursor) { e.preventDefault(); this.openAt(cur.r, cur.c); return; }
    const mv = moves[e.key];
    if (!mv) return;
    e.preventDefault();
    let r = cur.r;
    if (this.cursor) {
      do { r += mv[0]; } while (r >= 0 && r < n && this.d.rows[r].kind !== 'layer');
      if (r < 0 || r >= n) r = cur.r;
    }
    cur = { r, c: Math.min(m - 1, Math.max(0, cur.c + (this.cursor ? mv[1] * (e.shiftKey ? 10 : 1) : 0))) };
    this.cursor = cur;
    const y = cur.r * ROW_H, st = this.scroller.scrollTop, vh = this.scroller.clientHeight;
    if (y < st) this.scroller.scrollTop = y;
    else if (y + ROW_H > st + vh) this.scroller.scrollTop = y + ROW_H - vh;
    this.describe(cur.r, cur.c);
    this.schedule();
  }
}

/** Text cut with an ellipsis to `w` pixels. */
function fit(g: CanvasRenderingContext2D, s: string, w: number): string {
  if (g.measureText(s).width <= w) return s;
  let lo = 0, hi = s.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (g.measureText('…' + s.slice(s.length - mid)).width <= w) lo = mid; else hi = mid - 1;
  }
  return '…' + s.slice(s.length - lo);
}

export const HEATMAP_CSS = `
.avs-heat{position:relative;margin-top:6px}
.avs-heat-axis{display:block;width:100%}
.avs-heat-scroll{overflow-y:auto;overflow-x:hidden;position:relative;border:1px solid var(--border)}
.avs-heat-canvas{position:sticky;top:0;display:block;width:100%}
.avs-heat-canvas:focus-visible{outline:2px solid var(--focus);outline-offset:-2px}
.avs-tip{min-height:18px;font-size:12px;padding:3px 2px;font-family:"Roboto Mono",Menlo,Consolas,monospace;word-break:break-all}
`;
