// The layout worker: lays out graph scopes off the main thread (built to static/layout_worker.js).
import { runLayoutJob, LayoutJob } from './layout';

const ctx = self as unknown as DedicatedWorkerGlobalScope;
ctx.onmessage = (ev: MessageEvent<LayoutJob>) => {
  const job = ev.data;
  try {
    ctx.postMessage({ ok: true, result: runLayoutJob(job) });
  } catch (e) {
    ctx.postMessage({ ok: false, id: job && job.id, error: String((e as Error)?.message || e) });
  }
};
ctx.postMessage({ ready: true });

// Warm the JIT while the page is still fetching the architecture: one small layout of a typical
// shape (a chain with a few branches), so the real one runs on compiled code.
function warmUp(): void {
  const n = 40;
  const edges: number[] = [];
  for (let i = 1; i < n; i++) edges.push(i - 1, i);
  for (let i = 4; i < n; i += 6) edges.push(i - 4, i);
  const w = new Array(n).fill(150); const h = new Array(n).fill(60);
  runLayoutJob({
    id: -1, dir: 'TB', known: {}, pad: { x: 10, top: 30, bottom: 10 }, spacing: { node: 20, rank: 30, edge: 10 },
    scopes: [{ key: 'warm', n, w, h, childKey: new Array(n).fill(null), edges, hasIn: false, hasOut: false, minW: [] }],
  });
}
try { warmUp(); } catch (_) { /* only an optimisation */ }
