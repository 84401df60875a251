// Entry point loaded by TensorBoard's plugin iframe: import("./index.js").then(m => m.render()).
// The same bundle runs as a module worker that parses big JSON answers off the main thread.
import { startApp } from './app';
import { inWorker, installJsonWorker } from './json_worker';

export function render(): void {
  startApp(document.body);
}

if (inWorker()) installJsonWorker(self as unknown as Parameters<typeof installJsonWorker>[0]);
