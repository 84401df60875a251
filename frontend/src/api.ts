// Typed fetch helpers for the archviz routes. Every URL is relative ("./runs"), so it resolves
// against the plugin iframe's <base href="plugin/archviz/"> and survives --path_prefix,
// /experiment/<id>/ and notebook proxies. Errors become ApiError with the route's message.

import { FetchError, fetchJsonOffThread } from './json_client';
import type { Architecture, DiffResponse, FiltersResponse, RunInfo, RunsResponse, SignalsResponse, Step, TimelineResponse } from './types';

export class ApiError extends Error {
  constructor(message: string, readonly status: number, readonly url: string) {
    super(message);
    this.name = 'ApiError';
  }
}

/** GET a JSON route; a non-2xx answer raises ApiError carrying the route's {"error": ...}. */
export async function getJSON<T>(url: string, signal?: AbortSignal): Promise<T> {
  let resp: Response;
  try {
    resp = await fetch(url, { credentials: 'same-origin', signal });
  } catch (e) {
    if ((e as Error)?.name === 'AbortError') throw e;
    throw new ApiError('Could not reach TensorBoard (' + String((e as Error)?.message || e) + ')',
                       0, url);
  }
  const body = await resp.text();
  let data: unknown = undefined;
  try {
    data = body ? JSON.parse(body) : undefined;
  } catch {
    data = undefined;
  }
  if (!resp.ok) {
    const msg = data && typeof data === 'object' && typeof (data as any).error === 'string'
      ? (data as any).error
      : `HTTP ${resp.status} ${resp.statusText}`.trim();
    throw new ApiError(msg, resp.status, url);
  }
  if (data === undefined) throw new ApiError('The server answered with invalid JSON', resp.status, url);
  return data as T;
}

/** Like getJSON, parsed off the main thread when a worker is available (big answers). */
export async function getBigJSON<T>(url: string): Promise<T> {
  let data: unknown;
  try {
    data = await fetchJsonOffThread(url);
  } catch (e) {
    if (e instanceof FetchError) throw new ApiError(e.message, e.status, url);
    throw e;
  }
  return data === null ? getJSON<T>(url) : data as T;
}

export function query(params: Record<string, string | number | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined) q.set(k, String(v));
  }
  return q.toString();
}

export function fetchRuns(signal?: AbortSignal): Promise<RunsResponse> {
  return getJSON<RunsResponse>('./runs', signal);
}

// Architectures of a given (run, step) never change, so they are cached (as promises, so two
// views asking at once share one request). Failed requests are not cached.
const archCache = new Map<string, Promise<Architecture>>();

export function fetchArchitecture(run: string, step: Step | null): Promise<Architecture> {
  const key = JSON.stringify([run, step]);
  let p = archCache.get(key);
  if (!p) {
    p = getBigJSON<Architecture>('./architecture?' + query({ run, step })).then((a) => {
      if (!a || !Array.isArray(a.nodes) || !Array.isArray(a.edges) || !a.model) {
        throw new ApiError('The architecture of this run/step is malformed', 200, 'architecture');
      }
      return a;
    });
    p.catch(() => archCache.delete(key));
    if (step !== null) archCache.set(key, p);
  }
  return p;
}

export function fetchFilters(run: string, layer: string, step: Step | null,
                             signal?: AbortSignal): Promise<FiltersResponse> {
  return getJSON<FiltersResponse>('./filters?' + query({ run, layer, step }), signal);
}

const diffCache = new Map<string, Promise<DiffResponse>>();

export function fetchDiff(runA: string, stepA: Step, runB: string, stepB: Step): Promise<DiffResponse> {
  const key = JSON.stringify([runA, stepA, runB, stepB]);
  let p = diffCache.get(key);
  if (!p) {
    p = getJSON<DiffResponse>('./diff?' + query({ run_a: runA, step_a: stepA, run_b: runB, step_b: stepB }));
    p.catch(() => diffCache.delete(key));
    diffCache.set(key, p);
  }
  return p;
}

/** What changed at each step of a run, computed by the server in one pass. */
/** The timeline of a run, parsed off the main thread (3,000 steps are ~1.6 MB); `signal` stops
 *  waiting for it. */
export function fetchTimeline(run: string, signal?: AbortSignal): Promise<TimelineResponse> {
  const p = getBigJSON<TimelineResponse>('./timeline?' + query({ run }));
  if (!signal) return p;
  return new Promise((resolve, reject) => {
    const stop = () => reject(new DOMException('aborted', 'AbortError'));
    if (signal.aborted) { stop(); return; }
    signal.addEventListener('abort', stop, { once: true });
    p.then(resolve, reject);
  });
}

// Layer signals of a run (every signal, at most `maxSteps` steps): one request per run shared by
// every view (colour-by, Layers × steps, sparklines); parsed off the main thread.
const signalsCache = new Map<string, Promise<SignalsResponse>>();

export function fetchSignals(run: string, maxSteps: number | null = null): Promise<SignalsResponse> {
  const key = JSON.stringify([run, maxSteps]);
  let p = signalsCache.get(key);
  if (!p) {
    p = getBigJSON<SignalsResponse>('./signals?' + query({ run, max_steps: maxSteps })).then((r) => {
      if (!r || !Array.isArray(r.steps) || !Array.isArray(r.signals) || !r.series || typeof r.series !== 'object') {
        throw new ApiError('The signals of this run are malformed', 200, 'signals');
      }
      return r;
    });
    p.catch(() => signalsCache.delete(key));
    signalsCache.set(key, p);
  }
  return p;
}

/** Forget cached answers (after the user reloads). */
export function clearCaches(): void {
  archCache.clear();
  diffCache.clear();
  signalsCache.clear();
}

// helpers over the runs listing (shared by the pickers of several views). Steps are exact
// decimal strings: compared as BigInt, never as JS numbers (which round above 2^53).

const STEP_RE = /^-?\d+$/;

export function isStep(s: unknown): s is Step {
  return typeof s === 'string' && STEP_RE.test(s);
}

/** Order two steps numerically. */
export function compareSteps(a: Step, b: Step): number {
  const x = BigInt(a), y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** One step as an exact string: `exact` when the server sent it, else the (maybe rounded) number. */
export function toStep(exact: unknown, n: unknown): Step {
  if (isStep(exact)) return exact;
  return typeof n === 'number' && Number.isFinite(n) ? BigInt(Math.trunc(n)).toString() : '0';
}

/** A filters response's step and steps (ascending) as exact strings. */
export function filterSteps(resp: FiltersResponse): { step: Step; steps: Step[] } {
  const strs = resp.step_strings;
  const steps = Array.isArray(strs) && strs.length === resp.steps.length && strs.every(isStep)
    ? strs : resp.steps.map((n) => toStep(null, n));
  return { step: toStep(resp.step_string, resp.step), steps: [...new Set(steps)].sort(compareSteps) };
}

/** The exact steps of one run's listing, ascending. */
export function infoSteps(info: RunInfo | undefined): Step[] {
  if (!info) return [];
  const strs = info.step_strings;
  const raw = Array.isArray(strs) && strs.every(isStep) ? strs : Array.isArray(info.steps) ? info.steps : [];
  const out = raw.map((s) => (typeof s === 'string' ? s : Number.isFinite(s) ? BigInt(Math.trunc(s)).toString() : ''))
    .filter(isStep);
  return [...new Set(out)].sort(compareSteps);
}

export function runSteps(runs: RunsResponse, run: string | null): Step[] {
  return run == null ? [] : infoSteps(runs[run]);
}

export function latestStep(runs: RunsResponse, run: string | null): Step | null {
  const steps = runSteps(runs, run);
  return steps.length ? steps[steps.length - 1] : null;
}

export function runOptions(runs: RunsResponse): { value: string; label: string }[] {
  return Object.keys(runs).sort((a, b) => a.localeCompare(b, undefined, { numeric: true })).map((r) => ({
    value: r,
    label: r + ((runs[r].errors?.length || 0) > 0 ? '  ⚠' : ''),
  }));
}

export function stepOptions(runs: RunsResponse, run: string | null): { value: string; label: string }[] {
  const steps = runSteps(runs, run);
  const last = steps[steps.length - 1];
  return steps.map((s) => ({ value: s, label: 'step ' + s + (s === last ? ' (latest)' : '') }));
}

export function errorMessage(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}
