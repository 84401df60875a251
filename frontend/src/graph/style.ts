// Layer categories, their colours in TensorBoard's light and dark themes, and the view's CSS.

export type Category =
  | 'input' | 'conv' | 'linear' | 'norm' | 'activation' | 'pool' | 'dropout' | 'reshape'
  | 'merge' | 'attention' | 'embedding' | 'recurrent' | 'math' | 'container' | 'other';

export const CATEGORY_LABELS: Record<Category, string> = {
  input: 'Input', conv: 'Convolution', linear: 'Dense / Linear', norm: 'Normalization',
  activation: 'Activation', pool: 'Pooling', dropout: 'Dropout / Noise', reshape: 'Reshape',
  merge: 'Merge', attention: 'Attention', embedding: 'Embedding', recurrent: 'Recurrent',
  math: 'Math op', container: 'Container', other: 'Other',
};

const RULES: [Category, RegExp][] = [
  ['attention', /attention|attn/i],
  ['embedding', /embed/i],
  ['recurrent', /lstm|gru|rnn|recurrent/i],
  ['conv', /conv/i],
  ['norm', /norm/i],
  ['pool', /pool/i],
  ['dropout', /dropout|noise/i],
  ['linear', /^dense$|linear|einsumdense|^bilinear$/i],
  ['activation', /relu|gelu|sigmoid|tanh|softmax|softmin|activation|silu|swish|^elu$|selu|softplus|softsign|mish|hardswish|hardsigmoid|leaky|^glu$|threshold/i],
  ['merge', /^(add|concatenate|concat|cat|stack|multiply|subtract|average|maximum|minimum|dot|iadd)$/i],
  ['reshape', /reshape|flatten|view|permute|transpose|squeeze|expand|repeat|crop|padding|^pad$|upsampl|resiz|getitem|split|chunk|slice|contiguous|identity|lambda|rescal|normalization_layer|cast/i],
  ['math', /^(mul|div|sub|pow|sqrt|rsqrt|exp|log|mean|sum|matmul|bmm|einsum|where|neg|abs|clip|clamp|max|min|masked_fill|type|to|float|arange|ones|zeros|truediv|floordiv|scaled_dot_product_attention)$/i],
];

export function categoryOf(className: string, isInput: boolean): Category {
  const c = String(className || '');
  if (isInput || /^input(layer)?$/i.test(c)) return 'input';
  for (const [cat, re] of RULES) if (re.test(c)) return cat;
  return 'other';
}

export interface Palette {
  dark: boolean;
  bg: string;
  nodeFill: string;
  text: string;
  text2: string;
  edge: string;
  edgeLabel: string;
  groupFill: string;
  groupStroke: string;
  groupHeader: string;
  accent: string;        // selection
  match: string;         // search hits
  trace: string;
  added: string;
  removed: string;
  changed: string;
  renamed: string;
  cat: Record<Category, string>;
}

const LIGHT_CAT: Record<Category, string> = {
  input: '#546e7a', conv: '#1e6fd9', linear: '#8e24aa', norm: '#2e9d48', activation: '#e5531a',
  pool: '#00897b', dropout: '#8d8d8d', reshape: '#8d6e63', merge: '#d81b60', attention: '#3f51b5',
  embedding: '#0097a7', recurrent: '#6a3fc1', math: '#9e9d24', container: '#607d8b', other: '#78909c',
};
const DARK_CAT: Record<Category, string> = {
  input: '#90a4ae', conv: '#64a8ff', linear: '#ce7ee0', norm: '#6fd08a', activation: '#ff8a5c',
  pool: '#4dd0c0', dropout: '#b0b0b0', reshape: '#c4a092', merge: '#ff6fa3', attention: '#8e9bff',
  embedding: '#4fd4e6', recurrent: '#b39dff', math: '#d4d36a', container: '#90a4ae', other: '#a7b6bd',
};

// Surfaces follow the dashboard's own stylesheet (TensorBoard's #303030 in dark mode); the compare
// colours are the dashboard's added / removed / changed / renamed line colours.
export const LIGHT: Palette = {
  dark: false, bg: '#ffffff', nodeFill: '#ffffff', text: '#212121', text2: '#616161',
  edge: '#9e9e9e', edgeLabel: '#616161', groupFill: '#f5f7f9', groupStroke: '#c3ccd3',
  groupHeader: '#e6ecf0', accent: '#ef6c00', match: '#00acc1', trace: '#1e88e5',
  added: '#43a047', removed: '#e53935', changed: '#f9a825', renamed: '#7e57c2', cat: LIGHT_CAT,
};
export const DARK: Palette = {
  dark: true, bg: '#303030', nodeFill: '#3a3a3a', text: '#e8e8e8', text2: '#b0b0b0',
  edge: '#8a8a8a', edgeLabel: '#b0b0b0', groupFill: '#363636', groupStroke: '#5a5a5a',
  groupHeader: '#424242', accent: '#ff9800', match: '#26c6da', trace: '#64b5f6',
  added: '#66bb6a', removed: '#ef5350', changed: '#fbc02d', renamed: '#9575cd', cat: DARK_CAT,
};

export const FONT = '12px Roboto, "Helvetica Neue", Arial, sans-serif';
export const FONT_BOLD = '600 12px Roboto, "Helvetica Neue", Arial, sans-serif';
export const FONT_FAMILY = 'Roboto, "Helvetica Neue", Arial, sans-serif';
export const MONO_FAMILY = '"Roboto Mono", Menlo, Consolas, "DejaVu Sans Mono", monospace';

const CSS = `
.avg-root{position:relative;display:flex;flex-direction:column;width:100%;height:100%;min-height:420px;
  font:13px ${FONT_FAMILY};color:var(--avg-text);background:var(--avg-bg);overflow:hidden;box-sizing:border-box}
.avg-root *{box-sizing:border-box}
.avg-toolbar{display:flex;flex-wrap:wrap;align-items:center;gap:6px;padding:6px 8px;border-bottom:1px solid var(--avg-border);
  background:var(--avg-panel);z-index:3}
.avg-toolbar .avg-sep{width:1px;height:22px;background:var(--avg-border);margin:0 2px}
.avg-btn{font:inherit;font-size:12px;color:var(--avg-text);background:var(--avg-btn);border:1px solid var(--avg-border);
  border-radius:4px;padding:3px 8px;cursor:pointer;line-height:18px;white-space:nowrap}
.avg-btn:hover{background:var(--avg-btn-hover)}
.avg-btn[aria-pressed="true"]{background:var(--avg-btn-on);border-color:var(--avg-accent)}
.avg-btn:disabled{opacity:.5;cursor:default}
.avg-search{display:flex;align-items:center;gap:4px;position:relative}
.avg-search input{font:inherit;font-size:12px;width:200px;padding:3px 6px;border:1px solid var(--avg-border);border-radius:4px;
  background:var(--avg-bg);color:var(--avg-text)}
.avg-search .avg-count{font-size:11px;color:var(--avg-text2);min-width:52px}
.avg-results{position:absolute;top:28px;left:0;width:320px;max-height:320px;overflow:auto;background:var(--avg-panel);
  border:1px solid var(--avg-border);border-radius:4px;box-shadow:0 4px 14px rgba(0,0,0,.25);z-index:10;display:none}
.avg-results.avg-open{display:block}
.avg-results div{padding:4px 8px;cursor:pointer;font-size:12px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.avg-results div[aria-selected="true"],.avg-results div:hover{background:var(--avg-btn-hover)}
.avg-results .avg-type{color:var(--avg-text2);margin-left:6px}
.avg-menu{position:relative}
.avg-menu-pop{position:absolute;top:28px;left:0;background:var(--avg-panel);border:1px solid var(--avg-border);border-radius:4px;
  padding:6px 8px;box-shadow:0 4px 14px rgba(0,0,0,.25);z-index:10;display:none;min-width:170px}
.avg-menu-pop.avg-open{display:block}
.avg-menu-pop label{display:flex;align-items:center;gap:6px;font-size:12px;padding:2px 0;white-space:nowrap;cursor:pointer}
.avg-menu-pop .avg-btn{display:block;width:100%;text-align:left;margin:2px 0}
.avg-main{position:relative;flex:1;min-height:0;display:flex}
.avg-canvas{position:relative;flex:1;min-width:0;overflow:hidden;outline:none;cursor:grab;touch-action:none}
.avg-canvas.avg-dragging{cursor:grabbing}
.avg-canvas svg{position:absolute;left:0;top:0;width:100%;height:100%;display:block;user-select:none}
.avg-status{position:absolute;left:50%;top:12px;transform:translateX(-50%);background:var(--avg-panel);border:1px solid var(--avg-border);
  border-radius:4px;padding:4px 10px;font-size:12px;color:var(--avg-text2);display:none;z-index:2}
.avg-status.avg-open{display:block}
.avg-legend{position:absolute;left:8px;bottom:8px;background:var(--avg-panel);border:1px solid var(--avg-border);border-radius:4px;
  padding:6px 8px;font-size:11px;z-index:2;max-height:45%;overflow:auto}
.avg-legend .avg-li,.avg-legend .avg-lt{font:inherit;color:inherit;background:none;border:0;margin:0;text-align:left;width:100%}
.avg-legend .avg-li{display:flex;align-items:center;gap:6px;padding:1px 0;cursor:pointer;white-space:nowrap}
.avg-legend .avg-li.avg-mark{cursor:default}
.avg-legend button:focus-visible{outline:2px solid var(--avg-link);outline-offset:1px;border-radius:2px}
.avg-legend .avg-li[aria-pressed="true"]{font-weight:600}
.avg-legend .avg-sw{width:12px;height:12px;border-radius:2px;flex:none}
.avg-legend .avg-lt{font-weight:600;margin-bottom:3px;padding:0;display:flex;justify-content:space-between;gap:8px;cursor:pointer}
.avg-legend.avg-closed .avg-li{display:none}
.avg-minimap{position:absolute;right:46px;bottom:8px;border:1px solid var(--avg-border);border-radius:3px;z-index:2;
  cursor:crosshair;box-shadow:0 1px 4px rgba(0,0,0,.2)}
.avg-zoom{position:absolute;right:8px;bottom:8px;display:flex;flex-direction:column;gap:4px;z-index:2}
.avg-zoom .avg-btn{width:30px;padding:3px 0;text-align:center}
.avg-panel{width:340px;flex:none;border-left:1px solid var(--avg-border);background:var(--avg-panel);overflow:auto;padding:10px 12px;
  font-size:12px;display:none}
.avg-panel.avg-open{display:block}
.avg-panel h3{font-size:14px;margin:0 0 2px 0;word-break:break-all}
.avg-panel h4{font-size:12px;margin:12px 0 4px 0;color:var(--avg-text2);text-transform:uppercase;letter-spacing:.04em}
.avg-panel table{border-collapse:collapse;width:100%}
.avg-panel td,.avg-panel th{text-align:left;padding:2px 4px;vertical-align:top;border-bottom:1px solid var(--avg-border);word-break:break-all}
.avg-panel th{color:var(--avg-text2);font-weight:500;width:38%}
.avg-panel .avg-mono{font-family:${MONO_FAMILY};font-size:11px}
.avg-panel pre{font-family:${MONO_FAMILY};font-size:11px;white-space:pre-wrap;word-break:break-all;margin:0;
  background:var(--avg-bg);border:1px solid var(--avg-border);border-radius:4px;padding:6px;max-height:320px;overflow:auto}
.avg-panel .avg-actions{display:flex;flex-wrap:wrap;gap:4px;margin:8px 0}
.avg-panel .avg-link{color:var(--avg-link);cursor:pointer;text-decoration:underline}
.avg-panel .avg-close{float:right}
.avg-panel .avg-sub{color:var(--avg-text2);margin-bottom:6px;word-break:break-all}
.avg-panel .avg-badge{display:inline-block;border-radius:3px;padding:0 5px;font-size:11px;color:#fff;margin-right:4px}
.avg-help{position:absolute;inset:0;background:rgba(0,0,0,.45);display:none;align-items:center;justify-content:center;z-index:20}
.avg-help.avg-open{display:flex}
.avg-help>div{background:var(--avg-panel);color:var(--avg-text);border-radius:6px;padding:16px 20px;min-width:340px;
  box-shadow:0 8px 30px rgba(0,0,0,.4)}
.avg-help h3{margin:0 0 8px 0;font-size:15px}
.avg-help td{padding:3px 10px 3px 0;font-size:12px}
.avg-help kbd{font-family:${MONO_FAMILY};border:1px solid var(--avg-border);border-radius:3px;padding:0 5px;background:var(--avg-bg)}
.avg-info{margin-left:auto;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;min-width:0}
.avg-compact .avg-toolbar{flex-wrap:nowrap;gap:4px;padding:4px 6px}
.avg-compact .avg-search input{width:110px}
.avg-compact .avg-search .avg-count{min-width:0}
.avg-compact .avg-btn{padding:3px 6px}
.avg-compact .avg-panel{width:250px}
.avg-compact .avg-legend{display:none}
.avg-reach-summary{font-size:12px;color:var(--avg-text);padding:2px 8px}
.avg-reach-summary.avg-unavailable{font-style:italic;color:var(--avg-text2)}
.avg-warn{font-size:11px;color:var(--avg-removed);padding:2px 8px}
.avg-edge-hit{cursor:default}
.avg-node,.avg-group-head{cursor:pointer}
.avg-toggle{cursor:pointer}
`;

export function injectCss(doc: Document): void {
  if (doc.getElementById('archviz-graph-css')) return;
  const el = doc.createElement('style');
  el.id = 'archviz-graph-css';
  el.textContent = CSS;
  doc.head.appendChild(el);
}

/** CSS custom properties of the chrome (toolbar, panels) for a palette. */
export function chromeVars(p: Palette): Record<string, string> {
  return {
    '--avg-bg': p.bg,
    '--avg-text': p.text,
    '--avg-text2': p.text2,
    '--avg-panel': p.dark ? '#353535' : '#fafafa',
    '--avg-border': p.dark ? '#4a4a4a' : '#dcdfe3',
    '--avg-btn': p.dark ? '#3a3a3a' : '#ffffff',
    '--avg-btn-hover': p.dark ? '#45484d' : '#eef1f4',
    '--avg-btn-on': p.dark ? '#4a3b28' : '#fff3e0',
    '--avg-accent': p.accent,
    '--avg-link': p.dark ? '#8ab4f8' : '#1a73e8',
    '--avg-removed': p.removed,
  };
}
