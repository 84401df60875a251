// Entry point loaded by TensorBoard's plugin iframe: import("./index.js").then(m => m.render()).
import { startApp } from './app';

export function render(): void {
  startApp(document.body);
}
