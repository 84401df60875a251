// Sparklines of a layer's signals over steps, for the node detail panel (graph) and the table's row
// details: one small inline SVG per signal (log or linear, each on its own range; gaps where a step
// has no value; NaN / ±Infinity as red ticks), the latest value as text. Names are set as text.

import { h } from '../dom';
import { fmtSignal, installSignalsCss } from './signals_scale';
import type { ScaleKind } from './signals_scale';
import { loadRunSignals } from './signals_model';
import type { RunSignals } from './signals_model';

const NS = 'http://www.w3.org/2000/svg';
const W = 120, H = 22, PAD = 2;

function svgEl<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const e = document.createElementNS(NS, tag) as SVGElementTagNameMap[K];
  for (const k in attrs) e.setAttribute(k, String(attrs[k]));
  return e;
}

/** One sparkline: `values` per step (null = no value), `mark` = a step index to mark. */
export function sparkline(values: (number | null)[], kind: ScaleKind, label: string, mark = -1): SVGSVGElement {
  const useLog = kind === 'log';
  const f = (v: number) => (useLog ? Math.log10(v) : v);
  let lo = Infinity, hi = -Infinity, bad = 0, known = 0;
  for (const v of values) {
    if (v == null) continue;
    known++;
    if (!Number.isFinite(v)) { bad++; continue; }
    if (useLog && v <= 0) continue;
    const y = f(v);
    if (y < lo) lo = y;
    if (y > hi) hi = y;
  }
  const n = values.length;
  const x = (i: number) => PAD + (n <= 1 ? (W - 2 * PAD) / 2 : (i * (W - 2 * PAD)) / (n - 1));
  const y = (v: number) => (hi === lo ? H / 2 : H - PAD - ((f(v) - lo) * (H - 2 * PAD)) / (hi - lo));
  const svg = svgEl('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: 'avs-spark', role: 'img' });
  svg.setAttribute('aria-label', `${label} over ${n} steps` + (bad ? `, ${bad} not finite` : '') + (known < n ? `, ${n - known} without value` : ''));
  // on a log scale 0 and negatives sit on the bottom edge (below every positive value)
  const yOf = (v: number) => (useLog && v <= 0 ? H - 1 : y(v));
  let d = '', pen = false;
  values.forEach((v, i) => {
    if (v == null || !Number.isFinite(v)) { pen = false; return; }
    d += (pen ? 'L' : 'M') + x(i).toFixed(1) + ',' + yOf(v).toFixed(1);
    pen = true;
  });
  if (mark >= 0 && mark < n) svg.appendChild(svgEl('line', { x1: x(mark), x2: x(mark), y1: 0, y2: H, stroke: 'currentColor', 'stroke-opacity': 0.35 }));
  if (d) svg.appendChild(svgEl('path', { d, fill: 'none', stroke: 'currentColor', 'stroke-width': 1.3 }));
  if (d && !d.includes('L')) {   // a single point: a dot
    const [px, py] = d.slice(1).split(',').map(Number);
    svg.appendChild(svgEl('circle', { cx: px, cy: py, r: 1.8, fill: 'currentColor' }));
  }
  values.forEach((v, i) => {
    if (v != null && !Number.isFinite(v)) svg.appendChild(svgEl('rect', { x: x(i) - 1, y: 0, width: 2, height: H, fill: '#e91e63', 'data-nonfinite': String(v) }));
  });
  return svg;
}

/** The rows of a layer's signals (label, sparkline, latest value); empty when the layer has none. */
export function signalRows(sig: RunSignals, id: string, mark = -1): HTMLElement[] {
  const rows: HTMLElement[] = [];
  for (const m of sig.metrics()) {
    const vals = sig.series(m.key).get(id);
    if (!vals) continue;
    let last: number | null = null, lastI = -1;
    for (let i = vals.length - 1; i >= 0; i--) if (vals[i] !== null) { last = vals[i]; lastI = i; break; }
    const at = mark >= 0 ? mark : lastI;
    const shown = at >= 0 ? vals[at] : last;
    rows.push(h('tr', { dataset: { signal: m.key } },
      h('th', { title: m.description }, m.label),
      h('td', null, sparkline(vals, m.scale, m.label, mark)),
      h('td', { class: 'num', title: at >= 0 ? 'at step ' + sig.steps[at] : 'no value at any step' },
        fmtSignal(shown, m.unit) + (at >= 0 ? ' @ ' + sig.steps[at] : ''))));
  }
  return rows;
}

/**
 * The "Signals" section of a detail panel: filled when the run's signals arrive; removes itself
 * when the run has none (404) and says so when they cannot be read.
 */
export function signalsSection(run: string, id: string, hasSignals: boolean, mark = -1): HTMLElement | null {
  if (!hasSignals) return null;
  installSignalsCss();
  const body = h('div', { class: 'muted' }, 'loading signals…');
  const box = h('div', { class: 'avs-signals', dataset: { testid: 'node-signals' } }, h('h4', null, 'Signals over steps'), body);
  loadRunSignals(run).then((sig) => {
    const rows = signalRows(sig, id, mark);
    const note = sig.resp.downsampled ? `showing ${sig.steps.length} of ${sig.resp.total_steps} steps` : `${sig.steps.length} steps`;
    body.className = '';
    body.replaceChildren(rows.length
      ? h('table', { class: 'avs-spark-table' }, h('tbody', null, rows))
      : h('div', { class: 'muted' }, 'No signal was written for this layer.'),
    h('div', { class: 'muted' }, note));
  }, (e) => {
    if ((e as { status?: number })?.status === 404) box.remove();
    else body.textContent = 'Signals could not be read: ' + String((e as Error)?.message || e);
  });
  return box;
}
