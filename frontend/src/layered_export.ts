// Exports of the layered view: the SVG as a file (XML declaration + serialised standalone SVG)
// and a PNG of a chosen width at print resolution (the SVG rasterised on a canvas). Downloads
// go through a Blob and an <a download> link, which works inside TensorBoard's plugin iframe.
import { download, fileBase, rasterize, svgText } from './common/export';

export { download, fileBase, svgText };

// Chromium's canvas limits are 32767 px a side and ~268M px in all; stay well under.
export const MAX_PNG_SIDE = 16384;
export const MAX_PNG_AREA = 120e6;

/** The PNG size for a requested width: [width, height], within the canvas limits. */
export function pngSize(svgW: number, svgH: number, width: number): [number, number] {
  let w = Math.max(1, Math.round(width));
  w = Math.min(w, MAX_PNG_SIDE, Math.floor(MAX_PNG_SIDE * svgW / svgH));
  const area = w * (w * svgH / svgW);
  if (area > MAX_PNG_AREA) w = Math.floor(Math.sqrt(MAX_PNG_AREA * svgW / svgH));
  return [Math.max(1, w), Math.max(1, Math.round(w * svgH / svgW))];
}

/** Rasterise SVG text to a PNG blob of exactly `w` x `h` pixels. */
export function svgToPng(doc: Document, svg: string, w: number, h: number, bg: string): Promise<Blob> {
  return rasterize(doc, svg, w, h, bg);
}
