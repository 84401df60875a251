// The page's side of json_worker.ts: GET a big JSON answer through the worker, assembling the
// chunks as they arrive (one short task each). Falls back to the main thread when module
// workers are unavailable or the worker fails to start.

import type { WorkerMsg } from './json_worker';

export class FetchError extends Error {
  constructor(message: string, readonly status: number) { super(message); }
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: unknown): void;
  meta: Record<string, unknown> | null;
  nodes: unknown[];
  edges: unknown[];
  series?: Record<string, Record<string, unknown>>;   // a signals answer, assembled by chunks
  entries?: unknown[];                                // a timeline answer, assembled by chunks
}

let worker: Worker | null = null;
let ready: Promise<boolean> | null = null;
let nextId = 1;
const pending = new Map<number, Pending>();

function onMessage(m: WorkerMsg): void {
  const p = pending.get(m.id);
  if (!p) return;
  try {
    if (m.kind === 'error') { pending.delete(m.id); p.reject(new FetchError(m.message, m.status)); }
    else if (m.kind === 'whole') { pending.delete(m.id); p.resolve(JSON.parse(m.json)); }
    else if (m.kind === 'meta') p.meta = JSON.parse(m.json);
    else if (m.kind === 'nodes') for (const n of JSON.parse(m.json)) p.nodes.push(n);
    else if (m.kind === 'edges') for (const e of JSON.parse(m.json)) p.edges.push(e);
    else if (m.kind === 'entries') for (const e of JSON.parse(m.json)) (p.entries ??= []).push(e);
    else if (m.kind === 'series') {
      const [key, part] = JSON.parse(m.json) as [string, Record<string, unknown>];
      const all = (p.series ??= {});
      Object.assign((all[key] ??= {}), part);
    } else if (m.kind === 'done') {
      pending.delete(m.id);
      p.resolve(p.series ? { ...p.meta, series: p.series } : p.entries ? { ...p.meta, entries: p.entries }
        : { ...p.meta, nodes: p.nodes, edges: p.edges });
    }
  } catch (e) {
    pending.delete(m.id);
    p.reject(e);
  }
}

function startWorker(): Promise<boolean> {
  if (ready) return ready;
  ready = new Promise<boolean>((resolve) => {
    try {
      const w = new Worker(new URL('./index.js', document.baseURI), { type: 'module' });
      const timer = window.setTimeout(() => resolve(false), 10000);
      w.onmessage = (ev: MessageEvent<WorkerMsg>) => {
        if (ev.data.kind === 'ready') { window.clearTimeout(timer); worker = w; resolve(true); return; }
        onMessage(ev.data);
      };
      w.onerror = () => {
        window.clearTimeout(timer);
        worker = null;
        for (const [id, p] of pending) { pending.delete(id); p.reject(new FetchError('worker failed', -1)); }
        resolve(false);
      };
    } catch {
      resolve(false);
    }
  });
  return ready;
}

/**
 * GET `url` (relative to the page) and parse it off the main thread when possible. Returns null
 * when the worker is unavailable (the caller then fetches on the main thread).
 */
export async function fetchJsonOffThread(url: string): Promise<unknown | null> {
  if (typeof Worker === 'undefined' || !(await startWorker()) || !worker) return null;
  const id = nextId++;
  const abs = new URL(url, document.baseURI).href;
  try {
    return await new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject, meta: null, nodes: [], edges: [] });
      worker!.postMessage({ id, url: abs });
    });
  } catch (e) {
    if (e instanceof FetchError && e.status === -1) return null;
    throw e;
  }
}
