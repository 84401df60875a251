// Export the current view (expanded containers, labels, direction, highlights) as a standalone SVG
// or a PNG, and the architecture as JSON. Downloads go through a Blob and an <a download> link,
// which works inside TensorBoard's plugin iframe (it is not sandboxed; blob: is allowed in img-src).
import type { Geometry } from './geometry';
import { drawEdge, drawGroup, drawMarkers, drawNode, el, EdgePath, EdgeState, NodeBox, NodeState } from './draw';
import type { Palette } from './style';
import { FONT_FAMILY } from './style';

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

// Characters XML 1.0 forbids (C0 controls but tab / newline / return, U+FFFE/U+FFFF, lone
// surrogates): a layer may be named "conv\x01a" (torch accepts it).
const NOT_XML = /[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Text made valid XML: a C0 control becomes its visible symbol (U+2401 for \x01), others U+FFFD. */
export function xmlSafe(s: string): string {
  return s.replace(NOT_XML, (c) => {
    const n = c.charCodeAt(0);
    return n < 0x20 ? String.fromCharCode(0x2400 + n) : '\uFFFD';
  });
}

export function svgText(svg: SVGSVGElement): string {
  return xmlSafe('<?xml version="1.0" encoding="UTF-8"?>\n' + new XMLSerializer().serializeToString(svg));
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

export function download(doc: Document, blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = doc.createElement('a');
  a.href = url;
  a.download = filename;
  a.rel = 'noopener';
  a.style.display = 'none';
  doc.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30000);
}

/** A file name from a model name: letters, digits, dot, dash and underscore only. */
export function fileBase(name: string): string {
  const s = String(name || 'model').replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+|_+$/g, '');
  return s || 'model';
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

/** Rasterise SVG text to a PNG blob of exactly `cw` x `ch` pixels on a `bg` background. */
export function rasterize(doc: Document, svg: string, cw: number, ch: number, bg: string): Promise<Blob> {
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
    const img = new Image();
    img.onload = () => {
      try {
        const c = doc.createElement('canvas');
        c.width = cw; c.height = ch;
        const ctx = c.getContext('2d');
        if (!ctx) throw new Error('no 2d canvas');
        ctx.fillStyle = bg;
        ctx.fillRect(0, 0, cw, ch);
        ctx.drawImage(img, 0, 0, cw, ch);
        URL.revokeObjectURL(url);
        c.toBlob((b) => (b ? resolve(b) : reject(new Error('PNG encoding failed'))), 'image/png');
      } catch (e) {
        URL.revokeObjectURL(url);
        reject(e);
      }
    };
    img.onerror = () => { URL.revokeObjectURL(url); reject(new Error('could not render the SVG')); };
    img.src = url;
  });
}
