// The Layers × steps view (data-view="signals"): one row per layer in model order (a run of
// repeated blocks folded under one band with a copy picker, as the table folds them), one column
// per step, the chosen signal's colour on the shared scale; the findings in words above it with
// their thresholds, the ids the architecture lacks, "showing N of M steps" when the route
// downsampled. A click on a cell opens that layer at that step in the Graph view.

import { errorMessage, latestStep, runSteps } from './api';
import { yieldToMain } from './arch_index';
import { findRepeats, foldLabel } from './common/folding';
import { installSignalsCss, legend } from './common/signals_scale';
import type { ScaleKind } from './common/signals_scale';
import { injectCss } from './common/css';
import { button, errorBox, h, loading, replaceChildren, select } from './dom';
import { currentTheme } from './theme';
import { Heatmap, HEATMAP_CSS, paintCells } from './signals_heatmap';
import type { Cells, HeatData, HeatRow } from './signals_heatmap';
import { archStepAt, loadRunSignals, saveChoice } from './common/signals_model';
import type { RunSignals } from './common/signals_model';
import type { Architecture, ArchNode, SignalFinding } from './types';
import type { View, ViewContext } from './view';

const HEAT_KEY = 'archviz.signals.heat';
const PREFERRED = ['gradients.rms', 'updates.ratio', 'weights.rms', 'activations.std', 'time.forward_ms'];

interface HeatChoice { key: string | null; scale: ScaleKind | null; fold: boolean; picks: Record<string, string> }

function loadHeat(): HeatChoice {
  try {
    const v = JSON.parse(sessionStorage.getItem(HEAT_KEY) || 'null');
    if (v && typeof v === 'object') return { key: typeof v.key === 'string' ? v.key : null, scale: v.scale === 'log' || v.scale === 'linear' ? v.scale : null,
      fold: v.fold !== false, picks: v.picks && typeof v.picks === 'object' ? v.picks : {} };
  } catch { /* storage disabled */ }
  return { key: null, scale: null, fold: true, picks: {} };
}

/** A fold of repeated blocks: its copies and which one is shown ('all' or an index). */
interface Fold { id: string; label: string; members: ArchNode[] }

export function mountSignalsView(container: HTMLElement, ctx: ViewContext): View {
  const v = new SignalsView(container, ctx);
  return { destroy: () => v.destroy() };
}

class SignalsView {
  private readonly root = h('div', { class: 'avs-view', dataset: { testid: 'signals-view' } });
  private readonly bar = h('div', { class: 'av-toolbar avs-bar' });
  private readonly info = h('div', { class: 'avs-info', attrs: { role: 'status' }, dataset: { testid: 'signals-info' } });
  private readonly findings = h('div', { class: 'avs-findings' });
  private readonly legendBox = h('div', { class: 'avs-heat-legend' });
  private readonly body = h('div');
  private heat: Heatmap | null = null;
  private sig: RunSignals | null = null;
  private choice = loadHeat();
  private folds: Fold[] = [];
  private readonly foldOf = new Map<string, { fold: Fold; copy: number }>();
  private dead = false;
  private paintToken = 0;

  constructor(container: HTMLElement, private readonly ctx: ViewContext) {
    installSignalsCss();
    injectCss(document, 'signals-heatmap', HEATMAP_CSS + VIEW_CSS);
    this.root.append(this.bar, this.info, this.findings, this.legendBox, this.body);
    container.appendChild(this.root);
    const run = ctx.state.run;
    if (run == null || !ctx.arch) { this.body.appendChild(h('div', { class: 'av-msg info' }, 'Pick a run.')); return; }
    this.body.appendChild(loading('Loading the signals of “' + run + '”…'));
    loadRunSignals(run).then((s) => this.ready(s), (e) => {
      if (this.dead) return;
      const status = (e as { status?: number })?.status;
      this.body.replaceChildren(status === 404
        ? h('div', { class: 'av-msg info', dataset: { msg: 'no-signals' } }, 'Run “' + run + '” holds no layer signals. Write them with add_layer_signals(writer, model, step) (PyTorch) or ArchVizCallback(layer_signals_every=N) (Keras).')
        : errorBox('Could not load the signals of “' + run + '”.', errorMessage(e)));
    });
  }

  destroy(): void {
    this.dead = true;
    this.heat?.destroy();
  }

  private save(): void {
    try { sessionStorage.setItem(HEAT_KEY, JSON.stringify(this.choice)); } catch { /* storage disabled */ }
  }

  private async ready(sig: RunSignals): Promise<void> {
    if (this.dead) return;
    this.sig = sig;
    if (!this.choice.key || !sig.desc(this.choice.key)) {
      this.choice.key = PREFERRED.find((k) => sig.desc(k)) || sig.descs[0]?.key || null;
    }
    this.findFolds(this.ctx.arch!);
    await yieldToMain();
    if (this.dead) return;
    this.renderFindings();
    await this.renderAll();
  }

  /** The folds: runs of repeated blocks (containers), outermost only — a run inside a copy of
   * another stays unfolded, and so do runs of single layers (each a row of its own). */
  private findFolds(arch: Architecture): void {
    const byId = new Map(arch.nodes.map((n) => [n.id, n]));
    const parents = new Set(arch.nodes.map((n) => n.parent).filter((p): p is string => p != null));
    const runs = findRepeats(arch.nodes, Array.isArray(arch.edges) ? arch.edges : [])
      .filter((r) => r.members.length > 1 && parents.has(r.members[0].id));
    const members = new Set(runs.flatMap((r) => r.members.map((m) => m.id)));
    const nested = (n: ArchNode): boolean => {
      for (let p = n.parent, guard = 0; p != null && guard < 1000; p = byId.get(p)?.parent ?? null, guard++) if (members.has(p)) return true;
      return false;
    };
    for (const run of runs) {
      if (nested(run.members[0]) || run.members.some((m) => this.foldOf.has(m.id))) continue;
      const parent = run.parent != null ? String(byId.get(run.parent)?.name ?? '') : '';
      const f: Fold = { id: run.members[0].id, label: foldLabel(run.members, parent) + ' × ' + run.members.length, members: run.members };
      this.folds.push(f);
      run.members.forEach((m, i) => this.foldOf.set(m.id, { fold: f, copy: i }));
    }
  }

  /** The fold copy a node belongs to (itself or an ancestor is a copy), if any. */
  private copyOf(n: ArchNode, byId: Map<string, ArchNode>): { fold: Fold; copy: number } | null {
    let cur: ArchNode | undefined = n;
    for (let guard = 0; cur && guard < 1000; guard++) {
      const f = this.foldOf.get(cur.id);
      if (f) return f;
      cur = cur.parent != null ? byId.get(cur.parent) : undefined;
    }
    return null;
  }

  /** The rows in model order: layers with this signal; folded runs as a band + the picked copy. */
  private rows(key: string): HeatRow[] {
    const arch = this.ctx.arch!, sig = this.sig!;
    const series = sig.series(key);
    const byId = new Map(arch.nodes.map((n) => [n.id, n]));
    const out: HeatRow[] = [];
    const banded = new Set<Fold>();
    for (const n of arch.nodes) {
      const vals = series.get(n.id);
      if (!vals) continue;
      const fc = this.choice.fold ? this.copyOf(n, byId) : null;
      if (fc) {
        const pick = this.choice.picks[fc.fold.id] ?? '0';
        if (pick !== 'all' && Number(pick) !== fc.copy) continue;
        if (!banded.has(fc.fold)) {
          banded.add(fc.fold);
          out.push({ kind: 'fold', label: fc.fold.label + (pick === 'all' ? ' (all copies)' : ' · copy ' + fc.fold.members[fc.copy].id) });
        }
      }
      out.push({ kind: 'layer', id: n.id, label: n.id, values: vals });
    }
    return out;
  }

  private async renderAll(): Promise<void> {
    const sig = this.sig!, key = this.choice.key;
    this.renderBar();
    if (!key) { this.body.replaceChildren(h('div', { class: 'av-msg info' }, 'This run lists no signals.')); return; }
    const m = sig.metric(key)!;
    const kind: ScaleKind = this.choice.scale || m.scale;
    const rows = this.rows(key);
    await yieldToMain();
    if (this.dead) return;
    const scale = sig.scale(m, kind);
    await yieldToMain();
    if (this.dead) return;
    const spans = key === 'updates.ratio' ? sig.resp.update_steps : undefined;
    const data: HeatData = { rows, steps: sig.steps, scale, unit: m.unit, signalLabel: m.label, spans };
    const token = ++this.paintToken;
    const cells = await paintCells(data, () => !this.dead && token === this.paintToken);
    if (!cells) return;
    this.renderInfo(rows);
    this.renderLegend(data, cells);
    await yieldToMain();
    if (this.dead || token !== this.paintToken) return;
    if (!this.heat) {
      this.heat = new Heatmap(data, { open: (id, c) => this.open(id, c), palette: heatPalette });
      this.body.replaceChildren(this.heat.el);
    }
    this.heat.setData(data, cells);
    this.root.dataset.renderComplete = '1';
  }

  private renderBar(): void {
    const sig = this.sig!;
    const opts = sig.descs.map((d) => ({ value: d.key, label: d.label + (d.unit ? ' [' + d.unit + ']' : '') }));
    const parts: HTMLElement[] = [];
    if (opts.length) {
      parts.push(h('label', null, 'Signal ', select(opts, this.choice.key, (v) => { this.choice.key = v; this.choice.scale = null; this.rerender(); },
        { attrs: { 'aria-label': 'Signal' }, dataset: { action: 'signal' } })));
      const m = this.choice.key ? sig.metric(this.choice.key) : null;
      parts.push(h('label', null, 'scale ', select([{ value: 'log', label: 'log' }, { value: 'linear', label: 'linear' }],
        this.choice.scale || m?.scale || 'log', (v) => { this.choice.scale = v as ScaleKind; this.rerender(); },
        { attrs: { 'aria-label': 'Colour scale' }, dataset: { action: 'signal-scale' } })));
    }
    if (this.folds.length) {
      const box = h('input', { attrs: { type: 'checkbox' }, dataset: { action: 'fold-repeats' } });
      box.checked = this.choice.fold;
      box.addEventListener('change', () => { this.choice.fold = box.checked; this.rerender(); });
      parts.push(h('label', { title: 'show one copy of each run of repeated blocks (pick which)' }, box, ' Fold repeats'));
      if (this.choice.fold) for (const f of this.folds) parts.push(this.foldPicker(f));
    }
    const a = this.bar.contains(document.activeElement) ? document.activeElement as HTMLElement : null;
    const again = a?.dataset.action ? `[data-action="${a.dataset.action}"]` : a?.dataset.foldPick ? `[data-fold-pick="${CSS.escape(a.dataset.foldPick)}"]` : null;
    this.bar.replaceChildren(...parts);
    if (again) this.bar.querySelector<HTMLElement>(again)?.focus();   // keyboard users keep their place
  }

  private foldPicker(f: Fold): HTMLElement {
    const opts = f.members.map((m, i) => ({ value: String(i), label: m.id }));
    opts.push({ value: 'all', label: `all ${f.members.length} copies` });
    const cur = this.choice.picks[f.id] ?? '0';
    const sel = select(opts, cur, (v) => { this.choice.picks[f.id] = v; this.rerender(); },
      { attrs: { 'aria-label': 'copy of ' + f.label + ' to show' }, dataset: { foldPick: f.id } });
    return h('label', { class: 'avs-fold' }, f.label + ': ', sel);
  }

  private rerender(): void {
    this.save();
    this.root.dataset.renderComplete = '0';
    void this.renderAll();
  }

  private renderInfo(rows: HeatRow[]): void {
    const r = this.sig!.resp, n = this.sig!.steps.length;
    const layers = rows.filter((x) => x.kind === 'layer').length;
    const parts = [`${layers} layers × ${n} steps`];
    if (r.downsampled) parts.push(`showing ${n} of ${r.total_steps} steps (downsampled to stay within the read limits)`);
    if (r.architecture_step != null) parts.push(`ids matched against the architecture at step ${r.architecture_step}`);
    const notes = Array.isArray(r.notes) ? r.notes.filter((x): x is string => typeof x === 'string') : [];
    this.info.textContent = parts.join(' · ') + (notes.length ? ' · ' + notes.join(' ') : '');
    this.info.dataset.downsampled = String(!!r.downsampled);
  }

  private renderLegend(d: HeatData, cells: Cells): void {
    const counts = cells.counts;
    const m = this.sig!.metric(this.choice.key!)!;
    this.legendBox.replaceChildren(legend({ label: m.label, unit: m.unit, scale: d.scale, counts,
      note: 'cells counted per kind; hover a cell for its exact value, click to open the layer at that step in the Graph view' }));
  }

  private renderFindings(): void {
    const r = this.sig!.resp;
    const list: SignalFinding[] = Array.isArray(r.findings) ? r.findings : [];
    const items = list.map((f) => h('li', { class: 'avs-finding ' + (f.severity === 'warning' ? 'warn' : 'info'), dataset: { kind: String(f.kind), signal: String(f.signal) } },
      h('span', { class: 'avs-sev' }, f.severity === 'warning' ? '⚠ ' : 'ℹ '), f.text + ' ',
      this.sig!.desc(f.signal) ? button('show', () => this.showFinding(f), { class: 'link', attrs: { 'aria-label': 'show ' + f.signal + ' for this finding' } }) : null));
    const th = r.thresholds && typeof r.thresholds === 'object' ? Object.entries(r.thresholds) : [];
    const unmatched = Object.entries(r.unmatched || {}).filter(([, ids]) => Array.isArray(ids) && ids.length);
    replaceChildren(this.findings,
      h('div', { class: 'avs-ftitle' }, list.length ? 'Findings' : 'Findings: none at the thresholds below'),
      list.length ? h('ul', { dataset: { testid: 'signals-findings' } }, items) : null,
      th.length ? h('div', { class: 'avs-thresholds', dataset: { testid: 'signals-thresholds' } },
        'Thresholds: ' + th.map(([k, v]) => k.replace(/_/g, ' ') + ' = ' + String(v)).join(' · ')) : null,
      unmatched.length ? h('div', { class: 'avs-unmatched', dataset: { testid: 'signals-unmatched' } },
        'Ids the architecture does not have (not drawn): ', unmatched.map(([k, ids]) => k + ': ' + ids.join(', ')).join('; ')) : null);
  }

  private showFinding(f: SignalFinding): void {
    if (this.choice.key !== f.signal) { this.choice.key = f.signal; this.choice.scale = null; }
    const first = f.nodes?.length ? this.ctx.arch!.nodes.find((n) => n.id === f.nodes[0]) : undefined;
    const fc = first && this.choice.fold ? this.copyOf(first, new Map(this.ctx.arch!.nodes.map((n) => [n.id, n]))) : null;
    const pick = fc ? this.choice.picks[fc.fold.id] ?? '0' : 'all';
    if (fc && pick !== 'all' && Number(pick) !== fc.copy) this.choice.picks[fc.fold.id] = String(fc.copy);   // show its copy
    this.save();
    void this.renderAll().then(() => { if (f.nodes?.length) this.heat?.reveal(f.nodes[0]); });
  }

  /** A cell clicked: the Graph view on the architecture in effect at that step, the layer selected,
   * coloured by this signal at this step. */
  private open(id: string, c: number): void {
    const run = this.ctx.state.run!, sig = this.sig!;
    const step = sig.steps[c];
    const archSteps = runSteps(this.ctx.runs, run);
    const at = archStepAt(archSteps, step);
    const latest = at == null || at === latestStep(this.ctx.runs, run);
    saveChoice({ key: this.choice.key!, scale: this.choice.scale, step, forArch: latest ? 'latest' : String(at) });
    this.ctx.setState({ view: 'graph', step: latest ? null : at, selected: id });
  }
}

function heatPalette() {
  const dark = currentTheme() === 'dark';
  return dark
    ? { bg: '#303030', fg: '#e8e8e8', muted: '#b0b0b0', band: '#424242', cursor: '#ff9800' }
    : { bg: '#ffffff', fg: '#212121', muted: '#616161', band: '#e6ecf0', cursor: '#ef6c00' };
}

const VIEW_CSS = `
.avs-view{padding:8px 16px}
.avs-bar{display:flex;flex-wrap:wrap;gap:6px 14px;align-items:center}
.avs-fold select{max-width:220px}
.avs-info{font-size:12px;color:var(--muted);margin:4px 0}
.avs-findings{font-size:12px;margin:4px 0 6px}
.avs-findings ul{margin:2px 0 4px;padding-left:18px}
.avs-findings .warn .avs-sev{color:var(--dead)}
.avs-ftitle{font-weight:600}
.avs-thresholds,.avs-unmatched{color:var(--muted);margin-top:2px;word-break:break-word}
.avs-heat-legend{margin:4px 0}
`;
