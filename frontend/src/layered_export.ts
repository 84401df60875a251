// Exports of the layered view: the SVG as a file (XML declaration + serialised standalone SVG)
// and a PNG of a chosen width at print resolution (the SVG rasterised on a canvas). Downloads
// go through a Blob and an <a download> link, which works inside TensorBoard's plugin iframe.

// Chromium's canvas limits are 32767 px a side and ~268M px in all; stay well under.
export const MAX_PNG_SIDE = 16384;
export const MAX_PNG_AREA = 120e6;

export function svgText(svg: SVGSVGElement): string {
  return '<?xml version="1.0" encoding="UTF-8"?>\n' + new XMLSerializer().serializeToString(svg);
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
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
    const img = new Image();
    img.onload = () => {
      try {
        const c = doc.createElement('canvas');
        c.width = w; c.height = h;
        const ctx = c.getContext('2d');
        if (!ctx) throw new Error('no 2d canvas');
        ctx.fillStyle = bg;
        ctx.fillRect(0, 0, w, h);
        ctx.drawImage(img, 0, 0, w, h);
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
