// The layered view's toolbar: groups depth, folding, labels, scale, spacing, colouring and the
// exports. Each control calls onChange with the new settings; no drawing here.

import { button, h, select } from './dom';
import type { ScaleMode } from './layered_geometry';

export interface LayeredSettings {
  depth: number;            // 1 = nested groups collapsed; Infinity = all expanded
  fold: boolean;
  names: boolean;
  shapes: boolean;
  mode: ScaleMode;
  scale: number;
  spacing: number;
  colourBy: 'type' | 'reach';
  fit: boolean;
  pngWidth: number;
}

export interface ControlHooks {
  maxDepth: number;
  hasReach: boolean;
  onChange(patch: Partial<LayeredSettings>): void;
  onExportSvg(): void;
  onExportPng(): void;
}

function check(label: string, value: boolean, testid: string, on: (v: boolean) => void, title = ''): HTMLElement {
  const box = h('input', { attrs: { type: 'checkbox', 'data-testid': testid } });
  box.checked = value;
  box.addEventListener('change', () => on(box.checked));
  return h('label', { class: 'avl-ctl', title }, box, label);
}

function range(label: string, value: number, min: number, max: number, step: number, testid: string,
               on: (v: number) => void): HTMLElement {
  const r = h('input', { attrs: { type: 'range', min: String(min), max: String(max), step: String(step), 'data-testid': testid, 'aria-label': label } });
  r.value = String(value);
  r.addEventListener('input', () => on(parseFloat(r.value)));
  return h('label', { class: 'avl-ctl' }, label, r);
}

function depthSelect(s: LayeredSettings, k: ControlHooks): HTMLElement | null {
  if (k.maxDepth <= 1) return null;
  const opts = [{ value: '1', label: 'collapsed' }];
  for (let d = 2; d < k.maxDepth; d++) opts.push({ value: String(d), label: 'open to level ' + d });
  opts.push({ value: 'all', label: 'all open' });
  const sel = select(opts, Number.isFinite(s.depth) ? String(Math.min(s.depth, k.maxDepth)) : 'all',
    (v) => k.onChange({ depth: v === 'all' ? Infinity : parseInt(v, 10) }),
    { attrs: { 'data-testid': 'layered-depth', 'aria-label': 'Nested groups' } });
  return h('label', { class: 'avl-ctl', title: 'nested groups (blocks, sub-models) drawn as one volume or opened' }, 'Groups', sel);
}

function pngControls(s: LayeredSettings, k: ControlHooks): HTMLElement[] {
  const width = h('input', { attrs: { type: 'number', min: '64', max: '16384', step: '1', 'data-testid': 'layered-png-width', 'aria-label': 'PNG width in pixels' } });
  width.value = String(s.pngWidth);
  width.style.width = '70px';
  width.addEventListener('change', () => {
    const v = parseInt(width.value, 10);
    if (Number.isFinite(v) && v > 0) k.onChange({ pngWidth: v });
  });
  return [
    button('Export SVG', () => k.onExportSvg(), { class: 'avl-btn', dataset: { testid: 'layered-export-svg' } }),
    h('label', { class: 'avl-ctl', title: 'width of the PNG in pixels (the height follows the drawing)' }, 'PNG width', width, 'px'),
    button('Export PNG', () => k.onExportPng(), { class: 'avl-btn', dataset: { testid: 'layered-export-png' } }),
  ];
}

/** The toolbar element for the current settings. */
export function toolbar(s: LayeredSettings, k: ControlHooks): HTMLElement {
  const on = k.onChange;
  const mode = select([{ value: 'power', label: 'power (n^0.6)' }, { value: 'log', label: 'log' },
    { value: 'linear', label: 'linear (capped)' }], s.mode,
    (v) => on({ mode: v as ScaleMode }), { attrs: { 'data-testid': 'layered-mode', 'aria-label': 'Size scale' } });
  const colour = k.hasReach ? h('label', { class: 'avl-ctl' }, 'Colour', select(
    [{ value: 'type', label: 'layer type' }, { value: 'reach', label: 'gradient reach' }], s.colourBy,
    (v) => on({ colourBy: v as 'type' | 'reach' }), { attrs: { 'data-testid': 'layered-colour', 'aria-label': 'Colour by' } })) : null;
  return h('div', { class: 'avl-toolbar', attrs: { role: 'toolbar' } },
    depthSelect(s, k),
    check('Fold act./norm./dropout', s.fold, 'layered-fold', (v) => on({ fold: v }),
      'draw activation, normalization and dropout layers inside the layer before them'),
    check('Names', s.names, 'layered-names', (v) => on({ names: v })),
    check('Shapes', s.shapes, 'layered-shapes', (v) => on({ shapes: v })),
    h('label', { class: 'avl-ctl', title: 'how output sizes map to box sizes' }, 'Scale', mode),
    range('Size', s.scale, 0.25, 3, 0.05, 'layered-scale', (v) => on({ scale: v })),
    range('Spacing', s.spacing, 0, 60, 1, 'layered-spacing', (v) => on({ spacing: v })),
    colour,
    check('Fit width', s.fit, 'layered-fit', (v) => on({ fit: v })),
    h('span', { class: 'avl-sep' }),
    ...pngControls(s, k));
}

export const LAYERED_CSS = `
.avl-root{display:flex;flex-direction:column;gap:6px;min-height:300px}
.avl-toolbar{display:flex;flex-wrap:wrap;align-items:center;gap:6px 12px;font-size:12px}
.avl-ctl{display:inline-flex;align-items:center;gap:4px;white-space:nowrap}
.avl-ctl input[type=range]{width:90px}
.avl-sep{flex:1}
.avl-btn{font:inherit;font-size:12px;padding:3px 8px;cursor:pointer}
.avl-summary{font-size:12px;padding:4px 8px;border-radius:4px;border:1px solid rgba(127,127,127,.35)}
.avl-summary.unavailable{opacity:.8;font-style:italic}
.avl-info{font-size:12px;opacity:.75}
.avl-canvas{overflow:auto;border:1px solid rgba(127,127,127,.3);border-radius:4px;max-height:calc(100vh - 220px)}
.avl-canvas svg{display:block}
.avl-canvas.fit svg{width:100%;height:auto}
`;
