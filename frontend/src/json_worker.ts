// Big JSON answers (a 50k-node architecture is ~16 MB) parsed off the main thread: the bundle
// itself (index.js) runs as a module worker that fetches and parses the answer, then posts it
// back in chunks of re-serialised JSON, each parsed on the main thread in its own short task.
// Without module workers (or if the worker fails) the answer is parsed on the main thread.

const CHUNK = 2000;

interface Req { id: number; url: string }

export type WorkerMsg =
  | { id: -1; kind: 'ready' }
  | { id: number; kind: 'error'; status: number; message: string }
  | { id: number; kind: 'whole'; json: string }
  | { id: number; kind: 'meta'; json: string }
  | { id: number; kind: 'nodes' | 'edges'; json: string }
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
