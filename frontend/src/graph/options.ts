// Options of a graph view (mountGraphView).
import type { DiffResponse } from '../types';
import type { SignalsSource } from '../common/signals_colour_by';

export interface GraphViewOptions {
  onSelectNode?: (id: string) => void;
  onShowFilters?: (nodeId: string) => void;
  filterLayers?: Set<string>;
  diff?: DiffResponse;
  side?: 'a' | 'b';
  /** a narrow pane (compare mode): icon buttons, a one-line toolbar, a narrower detail panel */
  compact?: boolean;
  /** the run's signals: the "Colour by" control and the panel's sparklines (single view only) */
  signals?: SignalsSource;
}
