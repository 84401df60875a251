// Big JSON answers (a 50k-node architecture is ~16 MB) parsed off the main thread: the bundle
// itself (index.js) runs as a module worker that fetches and parses the answer, then posts it
// back in chunks of re-serialised JSON, each parsed on the main thread in its own short task.
// Without module workers (or if the worker fails) the answer is parsed on the main thread.

const CHUNK = 2000;
const SERIES_CHUNK = 50;   // node series per message of a signals answer (50 x 1000 values)

interface Req { id: number; url: string }

export type WorkerMsg =
  | { id: -1; kind: 'ready' }
  | { id: number; kind: 'error'; status: number; message: string }
  | { id: number; kind: 'whole'; json: string }
  | { id: number; kind: 'meta'; json: string }
  | { id: number; kind: 'nodes' | 'edges'; json: string }
  | { id: number; kind: 'series'; json: string }
  | { id: number; kind: 'entries'; json: string }
  | { id: number; kind: 'done' };

function errorFrom(status: number, statusText: string, data: unknown): string {
  if (data && typeof data === 'object' && typeof (data as { error?: unknown }).error === 'string') return (data as { error: string }).error;
  return `HTTP ${status} ${statusText}`.trim();
}

async function serve(req: Req, post: (m: WorkerMsg) => void): Promise<void> {
  let resp: Response;
  try {
    resp = await fetch(req.url, { credentials: 'same-origin' });
  } catch (e) {
    post({ id: req.id, kind: 'error', status: 0, message: 'Could not reach TensorBoard (' + String((e as Error)?.message || e) + ')' });
    return;
  }
  const body = await resp.text();
  let data: unknown;
  try { data = body ? JSON.parse(body) : undefined; } catch { data = undefined; }
  if (!resp.ok) { post({ id: req.id, kind: 'error', status: resp.status, message: errorFrom(resp.status, resp.statusText, data) }); return; }
  if (data === undefined) { post({ id: req.id, kind: 'error', status: resp.status, message: 'The server answered with invalid JSON' }); return; }
  const d = data as Record<string, unknown>;
  if (postSeries(req.id, d, post)) return;
  if (postEntries(req.id, d, post)) return;
  if (!d || typeof d !== 'object' || !Array.isArray(d.nodes) || !Array.isArray(d.edges)) {
    post({ id: req.id, kind: 'whole', json: body });
    return;
  }
  const { nodes, edges, ...rest } = d as { nodes: unknown[]; edges: unknown[] };
  post({ id: req.id, kind: 'meta', json: JSON.stringify(rest) });
  for (let i = 0; i < nodes.length; i += CHUNK) post({ id: req.id, kind: 'nodes', json: JSON.stringify(nodes.slice(i, i + CHUNK)) });
  for (let i = 0; i < edges.length; i += CHUNK * 2) post({ id: req.id, kind: 'edges', json: JSON.stringify(edges.slice(i, i + CHUNK * 2)) });
  post({ id: req.id, kind: 'done' });
}

/** The signals answer: its `series` (KEY -> node id -> values) in chunks of SERIES_CHUNK nodes. */
function postSeries(id: number, d: Record<string, unknown>, post: (m: WorkerMsg) => void): boolean {
  const series = d && typeof d === 'object' ? d.series : null;
  if (!series || typeof series !== 'object' || Array.isArray(series)) return false;
  const rest = { ...d };
  delete rest.series;
  post({ id, kind: 'meta', json: JSON.stringify(rest) });
  for (const [key, byNode] of Object.entries(series as Record<string, Record<string, unknown>>)) {
    const ids = Object.keys(byNode && typeof byNode === 'object' ? byNode : {});
    if (!ids.length) post({ id, kind: 'series', json: JSON.stringify([key, {}]) });
    for (let i = 0; i < ids.length; i += SERIES_CHUNK) {
      post({ id, kind: 'series', json: JSON.stringify([key, Object.fromEntries(ids.slice(i, i + SERIES_CHUNK).map((n) => [n, byNode[n]]))]) });
    }
  }
  post({ id, kind: 'done' });
  return true;
}

/** A timeline answer: its `entries` in chunks (3,000 steps are ~1.6 MB of JSON). */
function postEntries(id: number, d: Record<string, unknown>, post: (m: WorkerMsg) => void): boolean {
  const entries = d && typeof d === 'object' ? d.entries : null;
  if (!Array.isArray(entries)) return false;
  const rest = { ...d };
  delete rest.entries;
  post({ id, kind: 'meta', json: JSON.stringify(rest) });
  for (let i = 0; i < entries.length; i += CHUNK / 4) post({ id, kind: 'entries', json: JSON.stringify(entries.slice(i, i + CHUNK / 4)) });
  post({ id, kind: 'done' });
  return true;
}

/** Inside a worker: answer {id, url} requests. */
export function installJsonWorker(scope: { onmessage: ((ev: MessageEvent) => void) | null; postMessage(m: unknown): void }): void {
  const post = (m: WorkerMsg) => scope.postMessage(m);
  scope.onmessage = (ev: MessageEvent) => { void serve(ev.data as Req, post); };
  post({ id: -1, kind: 'ready' });
}

/** Whether this code runs in a dedicated worker (not a page). */
export function inWorker(): boolean {
  const g = globalThis as unknown as { WorkerGlobalScope?: new () => unknown };
  return typeof document === 'undefined' && typeof g.WorkerGlobalScope === 'function' && globalThis instanceof g.WorkerGlobalScope;
}
