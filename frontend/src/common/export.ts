// Exports shared by the views: text made valid XML, an SVG serialised as a file, a Blob downloaded
// through an <a download> link (works inside TensorBoard's plugin iframe: it is not sandboxed and
// blob: is allowed in img-src), a file name from a model name, and SVG rasterised to a PNG.

// Characters XML 1.0 forbids (C0 controls but tab / newline / return, U+FFFE/U+FFFF, lone
// surrogates): a layer may be named "conv\x01a" (torch accepts it).
const NOT_XML = /[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Text made valid XML: a C0 control becomes its visible symbol (U+2401 for \x01), others U+FFFD. */
export function xmlSafe(s: unknown): string {
  return String(s ?? '').replace(NOT_XML, (c) => {
    const n = c.charCodeAt(0);
    return n < 0x20 ? String.fromCharCode(0x2400 + n) : '\uFFFD';
  });
}

/** A standalone SVG file's text: XML declaration + the serialised element, valid XML 1.0. */
export function svgText(svg: SVGSVGElement): string {
  return xmlSafe('<?xml version="1.0" encoding="UTF-8"?>\n' + new XMLSerializer().serializeToString(svg));
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
