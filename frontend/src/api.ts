// Typed fetch helpers for the archviz routes. Every URL is relative ("./runs"), so it resolves
// against the plugin iframe's <base href="plugin/archviz/"> and survives --path_prefix,
// /experiment/<id>/ and notebook proxies. Errors become ApiError with the route's message.

import type { Architecture, DiffResponse, FiltersResponse, RunsResponse } from './types';

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

export function fetchArchitecture(run: string, step: number | null): Promise<Architecture> {
  const key = JSON.stringify([run, step]);
  let p = archCache.get(key);
  if (!p) {
    p = getJSON<Architecture>('./architecture?' + query({ run, step })).then((a) => {
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

export function fetchFilters(run: string, layer: string, step: number | null,
                             signal?: AbortSignal): Promise<FiltersResponse> {
  return getJSON<FiltersResponse>('./filters?' + query({ run, layer, step }), signal);
}

const diffCache = new Map<string, Promise<DiffResponse>>();

export function fetchDiff(runA: string, stepA: number, runB: string, stepB: number): Promise<DiffResponse> {
  const key = JSON.stringify([runA, stepA, runB, stepB]);
  let p = diffCache.get(key);
  if (!p) {
    p = getJSON<DiffResponse>('./diff?' + query({ run_a: runA, step_a: stepA, run_b: runB, step_b: stepB }));
    p.catch(() => diffCache.delete(key));
    diffCache.set(key, p);
  }
  return p;
}

/** Forget cached answers (after the user reloads). */
export function clearCaches(): void {
  archCache.clear();
  diffCache.clear();
}

// helpers over the runs listing (shared by the pickers of several views)

export function latestStep(runs: RunsResponse, run: string | null): number | null {
  if (run == null || !runs[run]) return null;
  const steps = runs[run].steps || [];
  return steps.length ? Math.max(...steps) : null;
}

export function runOptions(runs: RunsResponse): { value: string; label: string }[] {
  return Object.keys(runs).sort((a, b) => a.localeCompare(b, undefined, { numeric: true })).map((r) => ({
    value: r,
    label: r + ((runs[r].errors?.length || 0) > 0 ? '  ⚠' : ''),
  }));
}

export function stepOptions(runs: RunsResponse, run: string | null): { value: string; label: string }[] {
  if (run == null || !runs[run]) return [];
  const steps = [...(runs[run].steps || [])].sort((a, b) => a - b);
  const last = steps[steps.length - 1];
  return steps.map((s) => ({ value: String(s), label: 'step ' + s + (s === last ? ' (latest)' : '') }));
}

export function errorMessage(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}
