// A small overview of the whole graph with the viewport drawn on it; click or drag to move there.
// Shown only when the graph does not fit the screen.
import type { Geometry } from './geometry';
import type { Palette } from '../common/palette';

const MAX_W = 150;
const MAX_H = 190;

export class Minimap {
  readonly el: HTMLCanvasElement;
  private base: HTMLCanvasElement | null = null;   // the boxes, drawn once per geometry / palette
  private scale = 1;
  private ox = 0;
  private geom: Geometry | null = null;

  constructor(doc: Document, private pal: () => Palette, private moveTo: (wx: number, wy: number) => void) {
    const c = doc.createElement('canvas');
    c.className = 'avg-minimap';
    c.setAttribute('data-testid', 'graph-minimap');
    c.title = 'Overview: click or drag to move';
    this.el = c;
    let drag = false;
    const go = (ev: PointerEvent): void => {
      const r = c.getBoundingClientRect();
      this.moveTo((ev.clientX - r.left - this.ox) / this.scale, (ev.clientY - r.top) / this.scale);
    };
    c.addEventListener('pointerdown', (ev) => {
      ev.stopPropagation();
      drag = true;
      try { c.setPointerCapture(ev.pointerId); } catch (_) { /* ignore */ }
      go(ev);
    });
    c.addEventListener('pointermove', (ev) => { if (drag) { ev.stopPropagation(); go(ev); } });
    const up = (): void => { drag = false; };
    c.addEventListener('pointerup', up);
    c.addEventListener('pointercancel', up);
    c.addEventListener('click', (ev) => ev.stopPropagation());
    c.addEventListener('dblclick', (ev) => ev.stopPropagation());
  }

  setGeometry(g: Geometry | null): void {
    this.geom = g;
    this.base = null;
  }

  invalidate(): void {
    this.base = null;
  }

  private build(): void {
    const g = this.geom!;
    const p = this.pal();
    this.scale = Math.min(MAX_W / g.w, MAX_H / g.h);
    const w = Math.max(24, Math.ceil(g.w * this.scale));
    const h = Math.max(8, Math.ceil(g.h * this.scale));
    this.ox = (w - g.w * this.scale) / 2;
    const dpr = (this.el.ownerDocument.defaultView?.devicePixelRatio) || 1;
    const base = this.el.ownerDocument.createElement('canvas');
    base.width = Math.ceil(w * dpr); base.height = Math.ceil(h * dpr);
    const ctx = base.getContext('2d');
    if (ctx) {
      ctx.scale(dpr, dpr);
      ctx.fillStyle = p.bg;
      ctx.fillRect(0, 0, w, h);
      const s = this.scale;
      for (const b of g.boxes) {
        const x = this.ox + b.x * s; const y = b.y * s;
        const bw = Math.max(1, b.w * s); const bh = Math.max(1, b.h * s);
        if (b.open) {
          ctx.strokeStyle = p.groupStroke;
          ctx.lineWidth = 1;
          ctx.strokeRect(x, y, bw, bh);
        } else {
          ctx.fillStyle = p.cat[b.g.cat];
          ctx.fillRect(x, y, bw, bh);
        }
      }
    }
    this.base = base;
    this.el.width = base.width; this.el.height = base.height;
    this.el.style.width = w + 'px'; this.el.style.height = h + 'px';
  }

  /** Redraw with the viewport (world rectangle); hidden when everything is in view. */
  draw(view: { x0: number; y0: number; x1: number; y1: number }): void {
    const g = this.geom;
    const fits = !g || (view.x0 <= 1 && view.y0 <= 1 && view.x1 >= g.w - 1 && view.y1 >= g.h - 1);
    this.el.style.display = fits ? 'none' : '';
    if (fits || !g) return;
    if (!this.base) this.build();
    const ctx = this.el.getContext('2d');
    if (!ctx || !this.base) return;
    const dpr = this.base.width / parseFloat(this.el.style.width);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.drawImage(this.base, 0, 0);
    ctx.scale(dpr, dpr);
    const s = this.scale;
    const x = this.ox + view.x0 * s; const y = view.y0 * s;
    const w = Math.max(4, (view.x1 - view.x0) * s); const h = Math.max(4, (view.y1 - view.y0) * s);
    const p = this.pal();
    ctx.fillStyle = p.accent;
    ctx.globalAlpha = 0.15;
    ctx.fillRect(x, y, w, h);
    ctx.globalAlpha = 1;
    ctx.strokeStyle = p.accent;
    ctx.lineWidth = 1.5;
    ctx.strokeRect(x, y, w, h);
  }
}
