// Long work in short tasks: a big model is prepared in slices so that no main-thread task runs
// over ~50 ms and the page keeps painting and answering input meanwhile.

/** Resolves in a new task. A MessageChannel message, not setTimeout(0): chained timeouts are
 *  clamped to 4 ms each after five levels, which a hundred slices would pay for nothing. */
export function nextTask(): Promise<void> {
  return new Promise((resolve) => {
    if (typeof MessageChannel === 'undefined') { setTimeout(resolve, 0); return; }
    const ch = new MessageChannel();
    ch.port1.onmessage = () => { ch.port1.close(); resolve(); };
    ch.port2.postMessage(null);
  });
}

/** Run a generator to its end, giving the page a task whenever a slice has taken `budgetMs`;
 *  a generator yields at points where it may be paused. Throws 'cancelled' when `alive()` turns
 *  false between slices. */
export async function runSliced<T>(gen: Generator<void, T>, budgetMs = 40, alive: () => boolean = () => true): Promise<T> {
  let start = performance.now();
  for (;;) {
    const r = gen.next();
    if (r.done) return r.value;
    if (performance.now() - start >= budgetMs) {
      await nextTask();
      if (!alive()) throw new Error('cancelled');
      start = performance.now();
    }
  }
}

/** A generator run at once (the synchronous form of runSliced). */
export function runAll<T>(gen: Generator<void, T>): T {
  for (;;) {
    const r = gen.next();
    if (r.done) return r.value;
  }
}
