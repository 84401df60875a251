// The graph view of the Arch Viz tab: layered layout (dagre, in a worker for big graphs),
// collapsible containers, repeated blocks folded, flat Keras models grouped by name, shape-only
// ops merged into edges, pan / zoom / fit with legible labels at every zoom, search, detail panel,
// trace, keyboard shortcuts, SVG / PNG / JSON export, light and dark themes, compare-mode marks
// and a linked pair of views for compare mode.
//
// Entry points: mountGraphView(container, arch, opts) and mountLinkedGraphs(...) (linked.ts).
// Strings from the model are always set as text (textContent / setAttribute), never parsed as HTML.
import type { Architecture } from '../types';
import { warmWorker } from './layout_client';
import { GraphView } from './view';
import type { GraphViewOptions } from './options';

export type { GraphViewOptions } from './options';
export { mountLinkedGraphs } from './linked';
export type { LinkedGraphs } from './linked';

export interface GraphViewHandle {
  destroy(): void;
  focusNode(id: string): void;
}

// Start the layout worker as soon as the dashboard loads: its script loads and warms up while the
// dashboard fetches the runs and the architecture.
try { warmWorker(); } catch (_) { /* laid out on the main thread then */ }

export function mountGraphView(container: HTMLElement, arch: Architecture, opts: GraphViewOptions = {}): GraphViewHandle {
  const view = new GraphView(container, arch, opts);
  return { destroy: () => view.destroy(), focusNode: (id: string) => view.focusNode(id) };
}
