// Two graph views side by side for compare mode, linked: one scale for both (the smaller of the
// two "Fit" scales, so the same layer is as wide on screen in A as in B), and panning or zooming
// one moves the other so that the matched layer nearest the centre stays level in both.
// Selecting a layer in one pane centres its match in the other. The panes fit the window.
import type { Architecture, DiffResponse } from '../types';
import { GraphView } from './view';
import type { NodeBox } from './draw';

export interface LinkedGraphs {
  a: { destroy(): void; focusNode(id: string): void };
  b: { destroy(): void; focusNode(id: string): void };
  destroy(): void;
}

/** The visible box nearest the centre of the view, and its screen centre. */
function centreBox(v: GraphView): { b: NodeBox; sx: number; sy: number } | null {
  const g = v.geom;
  if (!g) return null;
  const { w, h } = v.renderer.size();
  const t = v.renderer.t;
  const cx = (w / 2 - t.x) / t.k; const cy = (h / 2 - t.y) / t.k;
  let best: NodeBox | null = null; let bd = Infinity;
  for (const b of g.boxes) {
    if (b.open) continue;
    const d = Math.hypot(b.x + b.w / 2 - cx, b.y + b.h / 2 - cy);
    if (d < bd) { bd = d; best = b; }
  }
  if (!best) return null;
  return { b: best, sx: (best.x + best.w / 2) * t.k + t.x, sy: (best.y + best.h / 2) * t.k + t.y };
}

/** The box standing for `id` in a view (itself, or the collapsed group hiding it). */
function boxFor(v: GraphView, id: string | undefined): NodeBox | null {
  if (!id || !v.vis || !v.geom) return null;
  const r = v.vis.rep.get(id);
  return r ? v.geom.byId.get(r.id) || null : null;
}

function follow(from: GraphView, to: GraphView, match: Map<string, string>): void {
  const t = from.renderer.t;
  const c = centreBox(from);
  let ob: NodeBox | null = null;
  if (c) for (let g: typeof c.b.g | null = c.b.g; g && !ob; g = g.parent) ob = boxFor(to, match.get(g.id) ?? g.id);
  if (c && ob) {
    to.vp.set(c.sx - (ob.x + ob.w / 2) * t.k, c.sy - (ob.y + ob.h / 2) * t.k, t.k);
  } else {
    to.vp.set(t.x, t.y, t.k);
  }
}

/** The pair (the panes' parent) as tall as the window below its top. */
function fitWindow(pane: HTMLElement): void {
  const box = pane.parentElement || pane;
  if (!box.isConnected) return;
  const top = box.getBoundingClientRect().top;
  const win = pane.ownerDocument.defaultView || window;
  box.style.height = Math.max(360, Math.floor(win.innerHeight - Math.max(0, top) - 12)) + 'px';
}

export function mountLinkedGraphs(paneA: HTMLElement, paneB: HTMLElement, archA: Architecture, archB: Architecture,
                                  diff: DiffResponse, aToB: Map<string, string>, bToA: Map<string, string>): LinkedGraphs {
  let syncing = false;
  let fitted = false;
  const views: GraphView[] = [];
  const other = (v: GraphView): GraphView => (v === views[0] ? views[1] : views[0]);
  const matchOf = (v: GraphView): Map<string, string> => (v === views[0] ? aToB : bToA);
  const onSelect = (side: 0 | 1) => (id: string): void => {
    const o = (side === 0 ? aToB : bToA).get(id);
    if (o && views[1 - side]) views[1 - side].focusNode(o);
  };
  fitWindow(paneA);
  views.push(new GraphView(paneA, archA, { diff, side: 'a', compact: true, onSelectNode: onSelect(0) }));
  views.push(new GraphView(paneB, archB, { diff, side: 'b', compact: true, onSelectNode: onSelect(1) }));
  const sharedFit = (): void => {
    const [a, b] = views;
    if (!a.geom || !b.geom) return;
    const sa = a.renderer.size(); const sb = b.renderer.size();
    if (!sa.w || !sb.w) return;
    const k = Math.min(a.vp.fitScale(a.geom, sa.w, sa.h), b.vp.fitScale(b.geom, sb.w, sb.h));
    syncing = true;
    a.vp.fit(k); b.vp.fit(k);
    a.needsFit = false; b.needsFit = false;
    syncing = false;
    fitted = true;
  };
  for (const v of views) {
    v.onView = () => {
      if (syncing || !fitted) return;
      syncing = true;
      try { follow(v, other(v), matchOf(v)); } finally { syncing = false; }
    };
    v.onLayout = () => { if (!fitted) sharedFit(); };
    v.fitOverride = () => sharedFit();
  }
  const win = paneA.ownerDocument.defaultView || window;
  const onResize = (): void => fitWindow(paneA);
  win.addEventListener('resize', onResize);
  const handle = (v: GraphView) => ({ destroy: () => v.destroy(), focusNode: (id: string) => v.focusNode(id) });
  return {
    a: handle(views[0]), b: handle(views[1]),
    destroy: () => { win.removeEventListener('resize', onResize); for (const v of views) v.destroy(); },
  };
}
