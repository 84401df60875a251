// Pan, zoom, fit and centre: the transform of the renderer's viewport.
// "Fit" never scales beyond 100 %; a long graph that would shrink below a readable scale is fitted
// across (its width top-down) and the user scrolls along it.
import type { Geometry } from './geometry';
import type { Renderer } from './render';

export const MAX_ZOOM = 4;
export const MIN_ZOOM = 0.01;
/** Below this, "Fit" fits the graph's width only (and aligns its start) instead of all of it. */
export const READABLE_K = 0.4;

/** Canvas margins that "Fit" keeps clear (the legend's column on the left). */
export interface Insets { left: number; right: number }

export class Viewport {
  onChange: (() => void) | null = null;
  /** what "Fit" keeps clear; none by default */
  insets: () => Insets = () => ({ left: 0, right: 0 });

  constructor(private r: Renderer) {}

  get geom(): Geometry | null { return this.r.geom; }
  get k(): number { return this.r.t.k; }

  set(x: number, y: number, k: number): void {
    this.r.setTransform(x, y, k);
    this.onChange?.();
  }

  /** The scale "Fit" uses for this geometry in this canvas (less the insets). */
  fitScale(g: Geometry, w: number, h: number): number {
    const ins = this.insets();
    w = Math.max(1, w - ins.left - ins.right);
    const all = Math.min(w / g.w, h / g.h, 1);
    if (all >= READABLE_K) return all;
    const across = Math.min(1, g.dir === 'TB' ? w / g.w : h / g.h);
    return Math.max(all, Math.min(across, READABLE_K));
  }

  /** Fit the graph (or its width, when it is long); returns false when the canvas has no size. */
  fit(k?: number): boolean {
    const g = this.geom;
    const { w, h } = this.r.size();
    if (!g || w <= 0 || h <= 0) return false;
    const s = k ?? this.fitScale(g, w, h);
    const tb = g.dir === 'TB';
    const ins = this.insets();
    const free = Math.max(1, w - ins.left - ins.right);
    const x = ins.left + (g.w * s <= free ? (free - g.w * s) / 2 : tb ? (free - g.w * s) / 2 : 8);
    const y = g.h * s <= h ? (h - g.h * s) / 2 : tb ? 8 : (h - g.h * s) / 2;
    this.set(x, y, Math.max(MIN_ZOOM, s));
    return true;
  }

  zoomBy(f: number, sx?: number, sy?: number): void {
    const { w, h } = this.r.size();
    const t = this.r.t;
    const k = Math.max(MIN_ZOOM, Math.min(MAX_ZOOM, t.k * f));
    const px = sx ?? w / 2; const py = sy ?? h / 2;
    const wx = (px - t.x) / t.k; const wy = (py - t.y) / t.k;
    this.set(px - wx * k, py - wy * k, k);
  }

  zoomTo100(): void {
    this.zoomBy(1 / this.r.t.k);
  }

  panBy(dx: number, dy: number): void {
    const t = this.r.t;
    this.set(t.x + dx, t.y + dy, t.k);
  }

  /** Centre a box; zoom in to at least minK (a big open group is fitted instead). */
  centerOn(id: string, minK = 0.8): void {
    const b = this.geom?.byId.get(id);
    if (!b) return;
    const { w, h } = this.r.size();
    let k = this.r.t.k;
    if (k < minK) k = Math.min(1, Math.max(minK, k));
    if (b.w * k > w * 0.9 || b.h * k > h * 0.9) k = Math.max(0.05, Math.min(w * 0.9 / b.w, h * 0.9 / b.h, k));
    this.set(w / 2 - (b.x + b.w / 2) * k, h / 2 - (b.y + b.h / 2) * k, k);
  }

  /** Where a box is on screen (top-left), or null. */
  screenOf(id: string): { x: number; y: number } | null {
    const b = this.geom?.byId.get(id);
    if (!b) return null;
    const t = this.r.t;
    return { x: b.x * t.k + t.x, y: b.y * t.k + t.y };
  }

  /** Move so that the box `id` of a new geometry is where `at` was. */
  keep(g: Geometry, id: string, at: { x: number; y: number }): void {
    const b = g.byId.get(id);
    if (!b) return;
    const k = this.r.t.k;
    this.r.setTransform(at.x - b.x * k, at.y - b.y * k, k);
  }
}
