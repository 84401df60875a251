// Runs layout jobs in the worker (static/layout_worker.js, same origin, so TensorBoard's CSP
// allows it: worker-src falls back to script-src 'self'), or on the main thread for small jobs and
// whenever the worker cannot start.
import { runLayoutJob, LayoutJob, LayoutResult } from './layout';

/**
 * The first layout of a view goes to the worker from this many items (below, the worker's start-up
 * costs more than it saves); later layouts (expand, search, direction) from LATER_MIN_ITEMS, so
 * the page never freezes while the user works.
 */
export const WORKER_MIN_ITEMS = 400;
export const LATER_MIN_ITEMS = 40;

type Pending = { resolve: (r: LayoutResult) => void; reject: (e: Error) => void; job: LayoutJob };

let worker: Worker | null = null;
let broken = false;
const pending = new Map<number, Pending>();

function failAll(why: string): void {
  broken = true;
  worker = null;
  for (const [id, p] of pending) {
    pending.delete(id);
    // fall back to the main thread
    try { p.resolve(runLayoutJob(p.job)); } catch (e) { p.reject(e as Error); }
  }
  if (typeof console !== 'undefined') console.warn('archviz: layout worker unavailable (' + why + '); laying out on the main thread');
}

/** Start the worker early (its script loads while the page does other work). */
export function warmWorker(): Worker | null {
  if (worker || broken) return worker;
  // not on a page (the dashboard's bundle also runs inside its JSON worker): nothing to start
  if (typeof document === 'undefined') return null;
  if (typeof Worker === 'undefined') { broken = true; return null; }
  try {
    worker = new Worker(new URL('./static/layout_worker.js', document.baseURI));
  } catch (e) {
    failAll(String(e));
    return null;
  }
  worker.onmessage = (ev: MessageEvent) => {
    const m = ev.data;
    if (!m || m.ready) return;
    const id = m.ok ? m.result.id : m.id;
    const p = pending.get(id);
    if (!p) return;
    pending.delete(id);
    if (m.ok) p.resolve(m.result as LayoutResult);
    else p.reject(new Error(m.error));
  };
  worker.onerror = (ev: ErrorEvent) => { ev.preventDefault(); failAll(ev.message || 'worker error'); };
  return worker;
}

export function workerState(): 'ok' | 'broken' | 'idle' {
  return broken ? 'broken' : worker ? 'ok' : 'idle';
}

/** Lay out a job, in the worker when asked to (and it runs), else on this thread. */
export function runLayout(job: LayoutJob, inWorker: boolean): Promise<LayoutResult> {
  const w = inWorker ? warmWorker() : null;
  if (!w) {
    try { return Promise.resolve(runLayoutJob(job)); } catch (e) { return Promise.reject(e); }
  }
  return new Promise((resolve, reject) => {
    pending.set(job.id, { resolve, reject, job });
    w.postMessage(job);
  });
}
