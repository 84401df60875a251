// The Layered view (beside Table and Graph): the model's main path drawn left to right as 3-D
// volumes sized by output shape (visualkeras' layered_view), side branches as thin connectors,
// layer-type colours from the graph's palette with a legend, the gradient-reach summary and a
// per-box state badge, and SVG / PNG exports. Works for any architecture (Keras or PyTorch).

import { clear, errorBox, h } from './dom';
import { reachOf, reachSummary } from './gradient_overlay';
import type { GradientReach } from './gradient_overlay';
import { DARK, LIGHT } from './common/palette';
import type { Palette } from './common/palette';
import { injectCss } from './common/css';
import { LAYERED_CSS, toolbar } from './layered_controls';
import type { LayeredSettings } from './layered_controls';
import { download, fileBase, pngSize, svgText, svgToPng } from './layered_export';
import { layout } from './layered_geometry';
import { buildLayered } from './layered_model';
import type { LayeredModel } from './layered_model';
import { buildLayeredSvg, colourFn, legendRows, reachItems, typeLegend } from './layered_svg';
import { isDark, onThemeChange } from './theme';
import type { Architecture } from './types';
import type { View, ViewContext } from './view';
import { ColourBy, signalsSource } from './common/signals_colour_by';
import type { Colouring } from './common/signals_colour_by';

const BIG = 40;   // main paths longer than this start folded, without shape labels
const MIN_MAIN = 6;   // groups are opened by default until the main path has this many boxes

function installCss(doc: Document): void {
  injectCss(doc, 'layered', LAYERED_CSS);
}

/** Start collapsed, opening nested groups level by level while the main path is too short to
 *  say anything (e.g. a model whose only child is a ModuleList of blocks). */
function defaults(arch: Architecture): LayeredSettings {
  let depth = 1;
  let flat = buildLayered(arch, { depth, fold: false });
  while (flat.main.length < MIN_MAIN && depth < flat.maxDepth) {
    depth++;
    flat = buildLayered(arch, { depth, fold: false });
  }
  const big = flat.main.length > BIG;
  return { depth, fold: big, names: true, shapes: !big, mode: 'power', scale: big ? 0.8 : 1, spacing: big ? 4 : 10,
    colourBy: 'type', fit: false, pngWidth: 3000 };
}

interface Drawn { svg: SVGSVGElement; model: LayeredModel; palette: Palette }

function draw(arch: Architecture, s: LayeredSettings, reach: GradientReach | null, selected: string | null,
              colouring: Colouring | null = null): Drawn {
  const palette = isDark() ? DARK : LIGHT;
  const model = buildLayered(arch, { depth: s.depth, fold: s.fold });
  const opts = { scale: s.scale, spacing: s.spacing, mode: s.mode, names: s.names, shapes: s.shapes,
    colourBy: s.colourBy };
  const colourOf = colourFn(palette, opts, reach);
  // colour by reach: the legend lists the states only (the type colours are not drawn)
  const items = colouring ? [] : [...(s.colourBy === 'reach' ? [] : typeLegend(model, colourOf)), ...reachItems(model, reach, palette.dark)];
  const summary = reachSummary(reach);
  const probe = layout(model, arch.framework, opts, summary, 1);
  const rows = legendRows(items, probe.width);
  const geom = layout(model, arch.framework, opts, summary, rows.length);
  const title = arch.model.name + ' (' + arch.model.class_name + ')';
  const svg = buildLayeredSvg(document, { model, geom, palette, opts, reach, title, summary, legend: rows, selected, colouring });
  return { svg, model, palette };
}

function infoLine(m: LayeredModel): string {
  const side = m.branches.filter((b) => b.to != null).length;
  const parts = [m.main.length + ' layers on the main path'];
  if (side) parts.push(side + ' side branch' + (side === 1 ? '' : 'es'));
  const stubs = m.branches.length - side;
  if (stubs) parts.push(stubs + ' side output' + (stubs === 1 ? '' : 's'));
  if (m.folded) parts.push(m.folded + ' activation/normalization/dropout layers folded');
  return parts.join(' · ');
}

/** Mount the layered view of `ctx.arch` into `container`. */
export function mountLayeredView(container: HTMLElement, ctx: ViewContext): View {
  installCss(document);
  const arch = ctx.arch;
  const root = h('div', { class: 'avl-root', dataset: { testid: 'layered-view' } });
  container.appendChild(root);
  if (!arch) {
    root.appendChild(errorBox('No architecture to draw.', 'Pick a run and a step.'));
    return { destroy() { root.remove(); } };
  }
  const reach = reachOf(arch);
  const settings = defaults(arch);
  let drawn: Drawn | null = null;
  let selected: string | null = ctx.state.selected;
  const bar = h('div');
  const summaryLine = reachSummary(reach);
  const summary = summaryLine ? h('div', { class: 'avl-summary' + (reach?.status === 'unavailable' ? ' unavailable' : ''),
    dataset: { testid: 'layered-summary' } }, summaryLine) : null;
  const info = h('div', { class: 'avl-info', dataset: { testid: 'layered-info' } });
  const canvas = h('div', { class: 'avl-canvas', dataset: { testid: 'layered-canvas' } });
  const status = h('div', { class: 'avl-info', attrs: { role: 'status' }, dataset: { testid: 'layered-status' } });
  root.append(bar, ...(summary ? [summary] : []), info, canvas, status);
  let colouring: Colouring | null = null;

  const render = () => {
    try {
      drawn = draw(arch, settings, reach, selected, colouring);
      clear(canvas);
      canvas.classList.toggle('fit', settings.fit);
      canvas.appendChild(drawn.svg);
      info.textContent = infoLine(drawn.model);
    } catch (e) {
      clear(canvas);
      canvas.appendChild(errorBox('The layered view failed.', String((e as Error)?.message || e)));
    }
  };
  const hooks = {
    maxDepth: buildLayered(arch, { depth: 1, fold: false }).maxDepth,
    hasReach: reach?.status === 'ok',
    onChange(patch: Partial<LayeredSettings>) { Object.assign(settings, patch); render(); },
    onExportSvg() {
      if (!drawn) return;
      download(document, new Blob([svgText(drawn.svg)], { type: 'image/svg+xml' }), fileBase(arch.model.name) + '.layered.svg');
    },
    onExportPng() { void exportPng(); },
  };
  const exportPng = async () => {
    if (!drawn) return;
    const w = parseFloat(drawn.svg.getAttribute('width') || '1'), hh = parseFloat(drawn.svg.getAttribute('height') || '1');
    const [pw, ph] = pngSize(w, hh, settings.pngWidth);
    status.textContent = 'Rendering a ' + pw + ' × ' + ph + ' PNG…' + (pw !== Math.round(settings.pngWidth) ? ' (reduced to fit the canvas limits)' : '');
    try {
      const blob = await svgToPng(document, svgText(drawn.svg), pw, ph, drawn.palette.bg);
      download(document, blob, fileBase(arch.model.name) + '.layered.png');
      status.textContent = 'PNG ' + pw + ' × ' + ph + ' exported.';
    } catch (e) {
      status.textContent = 'PNG export failed: ' + String((e as Error)?.message || e);
    }
  };
  bar.appendChild(toolbar(settings, hooks));
  // Colour by a figure or a signal (the shared control): redraws the boxes, same layout
  const cb = ctx.state.run != null ? new ColourBy({ source: signalsSource(ctx.runs, ctx.state.run, ctx.state.step), arch,
    onChange: (c) => { colouring = c; if (drawn) render(); } }) : null;
  if (cb) bar.appendChild(h('div', { class: 'avl-toolbar avs-layered-colour', dataset: { testid: 'layered-colour-by' } }, cb.el, cb.legendBox));
  canvas.addEventListener('click', (ev) => {
    const g = (ev.target as Element | null)?.closest?.('[data-testid=layered-box]');
    const unit = g && drawn ? drawn.model.main[parseInt(g.getAttribute('data-index') || '-1', 10)] : undefined;
    if (!unit) return;
    selected = unit.id;
    ctx.setState({ selected }, false);  // the table and the graph open on it
    render();
  });
  render();
  const stopTheme = onThemeChange(() => render());
  return { destroy() { stopTheme(); cb?.destroy(); root.remove(); } };
}
