// Options of a graph view (mountGraphView).
import type { DiffResponse } from '../types';

export interface GraphViewOptions {
  onSelectNode?: (id: string) => void;
  onShowFilters?: (nodeId: string) => void;
  filterLayers?: Set<string>;
  diff?: DiffResponse;
  side?: 'a' | 'b';
  /** a narrow pane (compare mode): icon buttons, a one-line toolbar, a narrower detail panel */
  compact?: boolean;
}
