// Layer signals as the views use them: the `signals` route's answer decoded once per run (values
// as numbers: NaN / ±Infinity from their stored strings, null = no value), the metrics one can
// colour by (architecture figures and every signal of the run), the range of a metric over every
// step (so colours compare across steps), and which signals step goes with an architecture step.

import { compareSteps, fetchSignals, isStep, toStep } from '../api';
import { makeScale } from './signals_scale';
import type { Scale, ScaleKind } from './signals_scale';
import type { Architecture, ArchNode, SignalDesc, SignalsResponse, Step } from '../types';

/** A stored value as a number: "NaN" / "Infinity" / "-Infinity" decoded, null / anything else = no value. */
export function decodeValue(v: unknown): number | null {
  if (typeof v === 'number') return v;
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  return null;
}

/** One thing a node can be coloured by: an architecture figure (no steps) or a signal (per step). */
export interface Metric {
  key: string;            // "arch:params" ... or the signal key ("gradients.rms")
  label: string;
  unit: string;
  scale: ScaleKind;       // the default scale
  description: string;
  stepped: boolean;
  /** the value of node `id` at step index `i` (architecture figures ignore `i`); null = no value */
  value(id: string, i: number): number | null;
  /** every value of the metric (every node, every step), for the range */
  values(): Iterable<number | null>;
}

const ARCH_METRICS: { key: string; label: string; unit: string; description: string; of(n: ArchNode): number | null }[] = [
  { key: 'arch:params', label: 'Parameters', unit: 'params', description: 'trainable + non-trainable parameters of the layer (containers: their sum)',
    of: (n) => (n.params ? (Number(n.params.trainable) || 0) + (Number(n.params.non_trainable) || 0) : null) },
  { key: 'arch:macs', label: 'MACs per example', unit: 'MACs', description: 'multiply-accumulates for one example; unknown MACs have no value (not 0)',
    of: (n) => (typeof n.macs === 'number' ? n.macs : null) },
  { key: 'arch:mem_params', label: 'Memory: parameters', unit: 'bytes', description: 'bytes of the parameters as stored (dtype-aware)',
    of: (n) => (n.memory && typeof n.memory.params_bytes === 'number' ? n.memory.params_bytes : null) },
  { key: 'arch:mem_output', label: 'Memory: output per example', unit: 'bytes', description: 'bytes of the layer output for one example',
    of: (n) => (n.memory && typeof n.memory.output_bytes === 'number' ? n.memory.output_bytes : null) },
];

/** The architecture figures one can colour by (log scale: they span orders of magnitude). */
export function archMetrics(arch: Architecture): Metric[] {
  const byId = new Map(arch.nodes.map((n) => [n.id, n]));
  return ARCH_METRICS.map((m) => ({
    key: m.key, label: m.label, unit: m.unit, scale: 'log' as ScaleKind, description: m.description, stepped: false,
    value: (id: string) => { const n = byId.get(id); return n ? m.of(n) : null; },
    values: () => arch.nodes.map((n) => m.of(n)),
  }));
}

/** A run's signals, decoded lazily per signal. */
export class RunSignals {
  readonly steps: Step[];
  readonly descs: SignalDesc[];
  private readonly decoded = new Map<string, Map<string, (number | null)[]>>();
  private readonly scales = new Map<string, Scale>();

  constructor(readonly resp: SignalsResponse) {
    const strs = resp.step_strings;
    this.steps = Array.isArray(strs) && strs.length === resp.steps.length && strs.every(isStep)
      ? strs.slice() : resp.steps.map((n) => toStep(null, n));
    const keys = Object.keys(resp.series || {});
    const listed = Array.isArray(resp.signals) ? resp.signals.filter((d) => d && typeof d.key === 'string') : [];
    // a key in `series` that the list lacks still shows, with its key as label
    for (const k of keys) if (!listed.some((d) => d.key === k)) listed.push({ key: k, label: k, unit: '', scale: 'log' });
    this.descs = listed.filter((d) => keys.includes(d.key));
  }

  desc(key: string): SignalDesc | undefined {
    return this.descs.find((d) => d.key === key);
  }

  /** node id -> values per step (decoded numbers, null = no value) of one signal. */
  series(key: string): Map<string, (number | null)[]> {
    let m = this.decoded.get(key);
    if (!m) {
      m = new Map();
      const raw = this.resp.series?.[key] || {};
      const n = this.steps.length;
      for (const id of Object.keys(raw)) {
        const a = Array.isArray(raw[id]) ? raw[id] : [];
        const out = new Array<number | null>(n);
        for (let i = 0; i < n; i++) out[i] = decodeValue(a[i]);
        m.set(id, out);
      }
      this.decoded.set(key, m);
    }
    return m;
  }

  metric(key: string): Metric | null {
    const d = this.desc(key);
    if (!d) return null;
    const s = () => this.series(key);
    return {
      key, label: d.label || key, unit: d.unit || '', scale: d.scale === 'linear' ? 'linear' : 'log',
      description: d.description || '', stepped: true,
      value: (id, i) => { const a = s().get(id); return a && i >= 0 && i < a.length ? a[i] : null; },
      values: function* () { for (const a of s().values()) yield* a; },
    };
  }

  metrics(): Metric[] {
    return this.descs.map((d) => this.metric(d.key)!).filter(Boolean);
  }

  /** The scale of a signal over every node and step (cached per kind). */
  scale(m: Metric, kind: ScaleKind): Scale {
    const k = m.key + '|' + kind;
    let s = this.scales.get(k);
    if (!s) {
      // a plain loop over the arrays (a generator over 10^6 values is several times slower)
      const log = kind === 'log';
      let min = Infinity, max = -Infinity;
      for (const a of this.series(m.key).values()) {
        for (let i = 0; i < a.length; i++) {
          const v = a[i];
          if (v == null || !Number.isFinite(v) || (log && v <= 0)) continue;
          if (v < min) min = v;
          if (v > max) max = v;
        }
      }
      s = min > max ? makeScale([], kind) : { kind, min, max, empty: false };
      this.scales.set(k, s);
    }
    return s;
  }
}

// one decoded RunSignals per answer of api.fetchSignals (which caches per run until "Reload")
const decodedCache = new WeakMap<Promise<SignalsResponse>, Promise<RunSignals>>();

/** The signals of a run (one request per run, every signal; the route's default step limit). */
export function loadRunSignals(run: string): Promise<RunSignals> {
  const raw = fetchSignals(run);
  let p = decodedCache.get(raw);
  if (!p) {
    p = raw.then((r) => new RunSignals(r));
    decodedCache.set(raw, p);
  }
  return p;
}

/** Whether the runs listing says this run holds signals (the route decides when the flag is absent). */
export function runHasSignals(info: { [k: string]: unknown } | undefined): boolean {
  return !!info && info.signals !== false;
}

/**
 * The signals step that goes with an architecture step: the one nearest at or before it; the latest
 * when the latest architecture is shown (it describes the model from then on); the first when every
 * signals step comes after it. Returns the index into `steps` and why, in words.
 */
export function stepFor(steps: Step[], archStep: Step | null, latest: boolean): { index: number; why: string } {
  if (!steps.length) return { index: -1, why: 'no signals steps' };
  if (latest || archStep == null) return { index: steps.length - 1, why: 'the latest signals step, as the latest architecture is shown' };
  let best = -1;
  for (let i = 0; i < steps.length; i++) if (compareSteps(steps[i], archStep) <= 0) best = i;
  if (best < 0) return { index: 0, why: `the first signals step: none is at or before architecture step ${archStep}` };
  return { index: best, why: `the signals step nearest at or before architecture step ${archStep}` };
}

/** The architecture step in effect at a signals step: the latest one at or before it, else the first. */
export function archStepAt(archSteps: Step[], step: Step): Step | null {
  let best: Step | null = null;
  for (const s of archSteps) if (compareSteps(s, step) <= 0) best = s;
  return best ?? archSteps[0] ?? null;
}

// The colour-by choice, shared by the Graph, Layered and Table views and kept for the session.
export interface ColourChoice {
  key: string;                  // 'type' (layer type), 'arch:...' or a signal key
  scale: ScaleKind | null;      // null = the metric's default
  step: Step | null;            // null = follow the step picker (stepFor)
  forArch?: string;             // the architecture shown when `step` was chosen ("latest" or its step)
}
const CHOICE_KEY = 'archviz.colourBy';

export function loadChoice(): ColourChoice {
  try {
    const v = JSON.parse(sessionStorage.getItem(CHOICE_KEY) || 'null');
    if (v && typeof v.key === 'string') {
      return { key: v.key, scale: v.scale === 'log' || v.scale === 'linear' ? v.scale : null, step: isStep(v.step) ? v.step : null,
        forArch: typeof v.forArch === 'string' ? v.forArch : undefined };
    }
  } catch { /* storage disabled or bad JSON */ }
  return { key: 'type', scale: null, step: null };
}

export function saveChoice(c: ColourChoice): void {
  try { sessionStorage.setItem(CHOICE_KEY, JSON.stringify(c)); } catch { /* storage disabled */ }
}
