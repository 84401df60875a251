// The "Colour by" control of the Graph, Layered and Table views: layer type (the views' own
// colours), an architecture figure (params, MACs, memory) or any signal of the run, on the shared
// continuous scale (common/signals_scale.ts) with a linear / log choice, its legend, and a step
// slider for signals. The step follows the app's step picker (signals_model.stepFor) until the
// user moves the slider; moving it recolours only (the view's onChange must not lay out again).

import { h, select } from '../dom';
import { fmtInt, fmtBytes } from '../format';
import { fmtSignal, installSignalsCss, legend, makeScale, paintKind, paintOf } from './signals_scale';
import type { Paint, PaintKind, Scale, ScaleKind } from './signals_scale';
import { archMetrics, loadChoice, loadRunSignals, saveChoice, stepFor } from './signals_model';
import type { ColourChoice, Metric, RunSignals } from './signals_model';
import { latestStep } from '../api';
import type { Architecture, RunsResponse, Step } from '../types';

/** What the view paints with: the metric at a step on a scale. */
export interface Colouring {
  metric: Metric;
  scale: Scale;
  stepIndex: number;          // -1 for architecture figures
  step: Step | null;
  value(id: string): number | null;
  paint(id: string): Paint;
  /** the value as text, with its unit ("no value", "NaN" spelled out) */
  text(id: string): string;
}

/** Where a view's signals come from: the run, whether it holds signals, the architecture shown. */
export interface SignalsSource {
  run: string;
  /** the runs listing says the run holds signals; when false only the architecture figures are offered */
  hasSignals: boolean;
  archStep: Step | null;
  /** the latest architecture of the run is shown (the step picker's default) */
  latest: boolean;
}

/** The source for `run` with the step picker at `step` (null = latest). */
export function signalsSource(runs: RunsResponse, run: string, step: Step | null): SignalsSource {
  return { run, hasSignals: runs[run]?.signals === true, archStep: step ?? latestStep(runs, run), latest: step == null };
}

export interface ColourByOptions {
  source: SignalsSource;
  arch: Architecture;
  onChange(c: Colouring | null): void;
}

const TYPE = 'type';
const PICKED = 'the step picked on the slider or in Layers × steps';

/** A value of an architecture figure as the tables print it. */
function fmtFigure(m: Metric, v: number | null): string {
  if (v == null) return 'no value';
  if (m.unit === 'bytes') return fmtBytes(v);
  return fmtInt(v) + (m.unit ? ' ' + m.unit : '');
}

export class ColourBy {
  readonly el = h('div', { class: 'avs-colour', dataset: { testid: 'colour-by' } });
  readonly legendBox = h('div', { class: 'avs-legend-box', dataset: { testid: 'colour-legend-box' } });
  private readonly arch: Metric[];
  private signals: RunSignals | null = null;
  private choice: ColourChoice = loadChoice();
  private colouring: Colouring | null = null;
  private stepIndex = -1;
  private why = '';
  private dead = false;
  private failed = false;   // the run's signals could not be read
  private readonly status = h('span', { class: 'muted', attrs: { role: 'status' } });

  constructor(private readonly opts: ColourByOptions) {
    installSignalsCss();
    this.arch = archMetrics(opts.arch);
    if (this.choice.step != null && this.choice.forArch !== this.archKey()) this.choice = { ...this.choice, step: null };
    if (opts.source.hasSignals) {
      this.status.textContent = 'loading signals…';
      loadRunSignals(opts.source.run).then((s) => { if (!this.dead) { this.signals = s; this.status.textContent = ''; this.apply(); } },
        (e) => { if (!this.dead) { this.failed = true; this.status.textContent = 'signals unavailable: ' + String((e as Error)?.message || e); this.apply(); } });
    }
    this.apply();
  }

  /** Which architecture the explicit step was chosen for ("latest" or the step). */
  private archKey(): string {
    return this.opts.source.latest ? 'latest' : String(this.opts.source.archStep);
  }

  current(): Colouring | null {
    return this.colouring;
  }

  destroy(): void {
    this.dead = true;
  }

  private metricOf(key: string): Metric | null {
    return this.arch.find((m) => m.key === key) || this.signals?.metric(key) || null;
  }

  /** Rebuild the controls, the colouring and the legend from the choice; tell the view. */
  private apply(): void {
    const m = this.choice.key === TYPE ? null : this.metricOf(this.choice.key);
    const settled = this.signals != null || !this.opts.source.hasSignals || this.failed;   // else the signals are still loading
    if (!m && this.choice.key !== TYPE && settled) {
      this.choice = { key: TYPE, scale: null, step: null };   // a signal this run does not have
    }
    this.pickStep(m);
    this.colouring = m ? this.build(m) : null;
    this.renderControls(m);
    this.renderLegend();
    this.opts.onChange(this.colouring);
  }

  private pickStep(m: Metric | null): void {
    const steps = this.signals?.steps || [];
    if (!m || !m.stepped || !steps.length) { this.stepIndex = -1; this.why = ''; return; }
    const chosen = this.choice.step != null ? steps.indexOf(this.choice.step) : -1;
    if (chosen >= 0) { this.stepIndex = chosen; this.why = PICKED; return; }
    const r = stepFor(steps, this.opts.source.archStep, this.opts.source.latest);
    this.stepIndex = r.index;
    this.why = r.why;
  }

  private build(m: Metric): Colouring {
    const kind: ScaleKind = this.choice.scale || m.scale;
    const scale = this.signals && m.stepped ? this.signals.scale(m, kind) : makeScale(m.values(), kind);
    const i = this.stepIndex;
    const value = (id: string) => m.value(id, i);
    return {
      metric: m, scale, stepIndex: i, step: i >= 0 && this.signals ? this.signals.steps[i] : null,
      value, paint: (id) => paintOf(scale, value(id)),
      text: (id) => (m.stepped ? fmtSignal(value(id), m.unit) : fmtFigure(m, value(id))),
    };
  }

  private set(patch: Partial<ColourChoice>): void {
    this.choice = { ...this.choice, ...patch };
    saveChoice(this.choice);
    this.apply();
  }

  private renderControls(m: Metric | null): void {
    const opts = [{ value: TYPE, label: 'Layer type' }, ...this.arch.map((a) => ({ value: a.key, label: a.label }))];
    for (const s of this.signals?.metrics() || []) opts.push({ value: s.key, label: 'Signal: ' + s.label });
    const sel = select(opts, this.choice.key, (v) => this.set({ key: v, scale: null }),
      { attrs: { 'aria-label': 'Colour by' }, dataset: { action: 'colour-by' } });
    const parts: (HTMLElement | string)[] = [h('label', null, 'Colour by ', sel)];
    if (m) {
      const sc = select([{ value: 'log', label: 'log' }, { value: 'linear', label: 'linear' }], this.choice.scale || m.scale,
        (v) => this.set({ scale: v as ScaleKind }), { attrs: { 'aria-label': 'Colour scale' }, dataset: { action: 'colour-scale' } });
      parts.push(h('label', { title: 'log: equal steps for each factor of 10; values ≤ 0 have their own colour' }, 'scale ', sc));
    }
    if (m?.stepped && this.signals && this.stepIndex >= 0) parts.push(this.stepSlider());
    parts.push(this.status);
    const focused = this.el.contains(document.activeElement) ? (document.activeElement as HTMLElement).dataset.action : undefined;
    this.el.replaceChildren(...parts);
    if (focused) this.el.querySelector<HTMLElement>(`[data-action="${focused}"]`)?.focus();   // keyboard users keep their place
  }

  private stepSlider(): HTMLElement {
    const steps = this.signals!.steps;
    const input = h('input', { attrs: { type: 'range', min: '0', max: String(steps.length - 1), step: '1',
      'aria-label': 'Signals step' }, dataset: { action: 'colour-step' } });
    input.value = String(this.stepIndex);
    input.disabled = steps.length < 2;
    const label = h('output', { dataset: { colourStep: steps[this.stepIndex] } }, 'step ' + steps[this.stepIndex]);
    input.addEventListener('input', () => {
      const i = Number(input.value);
      this.choice = { ...this.choice, step: steps[i], forArch: this.archKey() };
      saveChoice(this.choice);
      this.stepIndex = i;
      this.why = PICKED;
      label.textContent = 'step ' + steps[i];
      label.dataset.colourStep = steps[i];
      this.colouring = this.build(this.colouring!.metric);
      this.renderLegend();
      this.opts.onChange(this.colouring);
    });
    return h('label', { title: 'the signals step the colours are from' }, input, label);
  }

  private renderLegend(): void {
    const c = this.colouring;
    if (!c) { this.legendBox.replaceChildren(); this.legendBox.hidden = true; return; }
    const counts: Partial<Record<PaintKind, number>> = {};
    for (const n of this.opts.arch.nodes) {
      const k = paintKind(c.scale, c.value(n.id));
      counts[k] = (counts[k] || 0) + 1;
    }
    const steps = this.signals?.steps || [];
    const note = c.metric.stepped && c.step != null
      ? `colours from step ${c.step} (${this.why})` + (this.signals?.resp.downsampled ? `; showing ${steps.length} of ${this.signals.resp.total_steps} steps` : '')
      : c.metric.description;
    const unit = c.metric.unit === 'params' || c.metric.unit === 'MACs' ? '' : c.metric.unit;
    this.legendBox.hidden = false;
    this.legendBox.replaceChildren(legend({ label: c.metric.label, unit, scale: c.scale, counts, note,
      format: c.metric.unit === 'bytes' ? (v) => fmtBytes(v) : undefined }));
  }
}

