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
