// Export the current view (expanded containers, labels, direction, highlights) as a standalone SVG
// or a PNG, and the architecture as JSON (downloads: common/export.ts).
import type { Geometry } from './geometry';
import { download, fileBase, rasterize, svgText } from '../common/export';
import { drawEdge, drawGroup, drawMarkers, drawNode, el, EdgePath, EdgeState, NodeBox, NodeState } from './draw';
import type { Palette } from '../common/palette';
import { FONT_FAMILY } from '../common/palette';

export interface ExportHost {
  palette(): Palette;
  nodeState(b: NodeBox): NodeState;
  edgeState(e: EdgePath): EdgeState;
  edgeLabels(): boolean;
}

/** A standalone <svg> of the whole laid-out graph, colours as attributes (no CSS needed). */
export function buildSvg(doc: Document, g: Geometry, host: ExportHost, title: string): SVGSVGElement {
  const p = host.palette();
  const svg = el(doc, 'svg', {
    xmlns: 'http://www.w3.org/2000/svg', version: '1.1',
    width: Math.ceil(g.w), height: Math.ceil(g.h), viewBox: `0 0 ${Math.ceil(g.w)} ${Math.ceil(g.h)}`,
    'font-family': FONT_FAMILY, 'font-size': 12,
  });
  const t = el(doc, 'title', {});
  t.textContent = title;
  svg.appendChild(t);
  svg.appendChild(drawMarkers(doc, p, 'avgx'));
  svg.appendChild(el(doc, 'rect', { width: Math.ceil(g.w), height: Math.ceil(g.h), fill: p.bg }));
  const groups = el(doc, 'g', {});
  const edges = el(doc, 'g', {});
  const nodes = el(doc, 'g', {});
  for (const b of g.boxes) {
    if (b.open) groups.appendChild(drawGroup(doc, b, p, host.nodeState(b)));
    else nodes.appendChild(drawNode(doc, b, p, host.nodeState(b)));
  }
  const labels = host.edgeLabels();
  for (const e of g.edges) edges.appendChild(drawEdge(doc, e, p, host.edgeState(e), 'avgx', labels));
  svg.append(groups, edges, nodes);
  return svg;
}

export interface ExportView extends ExportHost {
  doc: Document;
  geom: Geometry | null;
  arch: { model?: { name?: unknown } };
  status_(msg: string | null): void;
}

function modelName(v: ExportView): string {
  return String(v.arch.model?.name ?? 'model');
}

export function exportSvg(v: ExportView): void {
  if (!v.geom) return;
  const svg = buildSvg(v.doc, v.geom, v, modelName(v));
  download(v.doc, new Blob([svgText(svg)], { type: 'image/svg+xml' }), fileBase(modelName(v)) + '.svg');
}

export async function exportPng(v: ExportView): Promise<void> {
  const g = v.geom;
  if (!g) return;
  const svg = buildSvg(v.doc, g, v, modelName(v));
  v.status_('Rendering PNG…');
  try {
    const blob = await svgToPng(v.doc, svgText(svg), g.w, g.h, v.palette().bg);
    download(v.doc, blob, fileBase(modelName(v)) + '.png');
    v.status_(null);
  } catch (e) {
    v.status_('PNG export failed: ' + String((e as Error)?.message || e));
  }
}

export function exportJson(v: ExportView): void {
  download(v.doc, new Blob([JSON.stringify(v.arch, null, 2)], { type: 'application/json' }), fileBase(modelName(v)) + '.architecture.json');
}

// Canvas limits: Chromium allows 32767 px a side and ~268M px in all; stay well under.
const MAX_SIDE = 16384;
const MAX_AREA = 64e6;

/** Rasterise the SVG export to a PNG blob (scale 2 when it fits the canvas limits). */
export function svgToPng(doc: Document, svg: string, w: number, h: number, bg: string): Promise<Blob> {
  let scale = 2;
  scale = Math.min(scale, MAX_SIDE / w, MAX_SIDE / h, Math.sqrt(MAX_AREA / (w * h)));
  return rasterize(doc, svg, Math.max(1, Math.floor(w * scale)), Math.max(1, Math.floor(h * scale)), bg);
}
