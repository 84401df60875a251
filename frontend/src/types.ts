// Shapes of the JSON served by the archviz plugin routes (see tensorboard_archviz/http_api.md).
// Every string in here may come from a user's model: render it as text, never as HTML.

export type Dim = number | null;

/** A step as an exact decimal string ("-1", "1152921504606846977"): steps are int64 and JSON
 *  numbers lose precision above 2^53, so the dashboard never does arithmetic on them. */
export type Step = string;

/** Per-node memory (schema 2): parameter bytes and output bytes per example (dtype-aware). */
export interface NodeMemory {
  params_bytes: number;
  output_bytes: number | null;
  buffers_bytes?: number;             // torch buffers
  activations_bytes?: number | null;  // containers: the leaf outputs inside
}
export type Shape = Dim[];

export interface NodeParams {
  trainable: number;
  non_trainable: number;
}

export interface ArchNode {
  id: string;
  name: string;
  class_name: string;
  parent: string | null;
  input_shapes: (Shape | null)[] | null;
  output_shapes: (Shape | null)[] | null;
  dtype: string | null;
  params: NodeParams;
  activation: string | null;
  config: Record<string, unknown>;
  /** multiply-accumulates per example (schema 2); null with `macs_reason` when unknown */
  macs: number | null;
  macs_reason?: string;
  memory?: NodeMemory;
  // optional keys (typed in tensorboard_archviz/schema.py too: tests/test_schema_types.py)
  macs_complete?: boolean;   // false on a container with unknown MACs inside
  self_macs?: number | null; // a container's own work (MultiheadAttention)
  weights?: { name: string; shape: Shape; trainable: boolean; dtype?: string; path?: string }[];
  buffers?: { name: string; shape: Shape; dtype?: string }[];
  reason?: string;
  dtype_policy?: string;
  calls?: number | null;     // null: unknown (a partial run)
  call_shapes?: { input_shapes: unknown; output_shapes: unknown }[];
  container_calls?: number;  // Keras: layers of a nested model called k times
  is_container?: boolean;
  is_input?: boolean;
  is_function?: boolean;     // torch functional op
  operation?: boolean;       // a keras.ops call
  class_known?: boolean;     // torch saved programs
  config_source?: string;
  used_by?: string;          // the node using this module's weights directly (a parent, an op)
  [key: string]: unknown;
}

export interface ArchEdge {
  source: string;
  target: string;
  shape: Shape | null;
  count?: number;            // Keras: the same tensor flows this many times
  [key: string]: unknown;
}

export interface ModelInfo {
  name: string;
  class_name: string;
  total_params: number;
  trainable_params: number;
  non_trainable_params: number;
  /** schema 2: sum of the known per-example MACs; `macs_complete` false -> "at least" */
  macs?: number | null;
  macs_complete?: boolean;
  macs_convention?: string;
  /** false only on a migrated schema 1 document: its MACs are in the old convention */
  macs_comparable?: boolean;
  batch_size?: number | null;
  memory?: { params_bytes?: number; buffers_bytes?: number; activations_bytes?: number };
  optimizer_params?: number;  // Keras: optimizer variables (not counted in the totals)
  output_names?: { name: string; node: string | null; shape: Shape | null }[];
  buffers?: number;           // torch: buffer elements
  self_weights?: { name: string; shape: Shape; trainable: boolean; dtype?: string }[];
  self_buffers?: { name: string; shape: Shape; dtype?: string }[];
  /** the model's own work outside every node; null: unknown (`self_macs_reason` says why) */
  self_macs?: number | null;
  self_macs_reason?: string;
  [key: string]: unknown;
}

export interface Architecture {
  schema_version: number;
  framework: 'keras' | 'torch';
  framework_version: string;
  model: ModelInfo;
  inputs: string[];
  outputs: string[];
  nodes: ArchNode[];
  edges: ArchEdge[];
  extraction?: { method: string; reason?: string; [key: string]: unknown };
  backend?: string;           // Keras backend
  gradient_reach?: Record<string, unknown>;  // see gradient_overlay.ts
  [key: string]: unknown;
}

// GET ./runs
export interface RunInfo {
  steps: (number | string)[];   // read through api.runSteps() (exact strings)
  step_strings?: string[];      // the same steps as exact decimal strings
  filter_layers?: string[];   // node ids that have filter grids in this run
  errors?: string[];          // problems with this run's data, shown to the user
  [key: string]: unknown;
}
export type RunsResponse = Record<string, RunInfo>;

// GET ./filters?run=&layer=[&step=]
export interface FilterTile {
  index: number;      // filter index in the layer
  score: number;      // mean pre-activation of the filter on its maximising image
  post_score?: number;// mean post-activation value
  dead: boolean;      // the filter never activates
  row: number;        // tile position in the grid image
  col: number;
  // optional keys written by tensorboard_archviz.filters (older grids lack them)
  pre_score?: number;                          // the conv's own output (before norm/activation)
  fires?: 'yes' | 'after_norm' | 'never';
  dead_reason?: string | null;                 // why the filter never fires
  kernel?: number[][][];                       // first conv layer: (kh, kw, cin)
}
export interface FiltersResponse {
  run: string;
  layer: string;
  step: number;        // may be rounded above 2^53: use step_string
  step_string?: Step;  // the exact step
  steps: number[];
  step_strings?: Step[];
  image_url: string;  // relative URL of the PNG grid, e.g. "filters_image?run=..&layer=..&step=.."
  tile_size: number;  // pixels per tile in the PNG
  margin: number;     // pixels between tiles
  rows: number;
  cols: number;
  tiles: FilterTile[];
  // grid-level keys written by tensorboard_archviz.filters (older grids lack them)
  norm?: string | null;             // the normalisation after the conv, e.g. "BatchNorm2d"
  post?: string | null;             // what the post-activation score measures
  objective_kind?: string;          // "centre" | "interior" | ...
  gain?: number | null;             // fixed contrast gain of the image parametrisation
  first_layer?: boolean;            // a first conv layer (kernels are shown)
  kernel_shape?: number[];          // (kh, kw, cin) of `kernel`
  [key: string]: unknown;
}

// GET ./diff?run_a=&step_a=&run_b=&step_b=
export interface NodeChange {
  id_a: string;
  id_b: string;
  fields: Record<string, { a: unknown; b: unknown }>;
}
export interface DiffResponse {
  a: { run: string; step: number };
  b: { run: string; step: number };
  added: string[];           // node ids in B only
  removed: string[];         // node ids in A only
  changed: NodeChange[];
  renamed: { id_a: string; id_b: string }[];  // matched structurally
  edges_added: { source: string; target: string }[];   // ids in B
  edges_removed: { source: string; target: string }[]; // ids in A
  totals: {
    total_params: { a: number; b: number; delta: number };
    trainable_params: { a: number; b: number; delta: number };
    non_trainable_params: { a: number; b: number; delta: number };
  };
  summary: string;           // e.g. "+2 layers, -1 layer, 3 changed, params +118,272 (+9.4 %)"
  highlights?: string[];     // sentences for the timeline, e.g. "base unfrozen", "trainable params 0 → 2,257,984"
  identical?: boolean;       // nothing added, removed or changed
  [key: string]: unknown;
}

export interface ErrorResponse {
  error: string;
}

// GET ./timeline?run=
export interface TimelineEntry {
  step: number;
  step_string: string;
  wall_time?: number;
  first?: boolean;
  identical?: boolean;
  previous_step_string?: string;
  summary?: string;
  highlights?: string[];
  details?: string[];
  error?: string;
  [key: string]: unknown;
}
export interface TimelineResponse {
  run: string;
  errors?: string[];
  entries: TimelineEntry[];
  /** true when the route's time budget ran out: `notice` says so, `pending` entries follow */
  partial?: boolean;
  notice?: string;
}

// GET ./signals?run=[&signal=][&max_steps=]  (layer signals over steps; see http_api.md)
/** A stored signal value: a finite number, "NaN" / "Infinity" / "-Infinity", or null (no value). */
export type SignalValue = number | 'NaN' | 'Infinity' | '-Infinity' | null;
export interface SignalDesc {
  key: string;              // "gradients.rms", "values.<name>", ...
  label: string;
  unit: string;             // "" | "ms" | "fraction" | ...
  scale: 'log' | 'linear';
  description?: string;
}
export interface SignalFinding {
  kind: string;             // vanishing | exploding | dead | saturated | update_high | frozen | nonfinite | slowest
  severity: 'warning' | 'info' | string;
  signal: string;
  step: number;
  step_string?: string;
  nodes: string[];
  text: string;
}
export interface SignalsResponse {
  run: string;
  steps: number[];
  step_strings?: string[];
  total_steps: number;
  downsampled: boolean;
  architecture_step: number | null;
  signals: SignalDesc[];
  /** KEY -> node id -> one value per entry of `steps` */
  series: Record<string, Record<string, SignalValue[]>>;
  /** per entry of `steps`: the training steps its `updates.ratio` spans (null: unknown) */
  update_steps?: (number | null)[];
  findings?: SignalFinding[];
  thresholds?: Record<string, number | string>;
  unmatched?: Record<string, string[]>;
  [key: string]: unknown;
}
