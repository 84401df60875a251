// Pointer and keyboard input of the graph view: drag to pan, wheel to zoom, click to select or
// toggle, double-click to expand; the keyboard shortcuts listed in the help overlay.
import type { Renderer } from './render';
import type { Viewport } from './viewport';

export interface InputHost {
  vp: Viewport;
  renderer: Renderer;
  toggleGroup(id: string): void;
  foldStep(id: string, d: number | 'all'): void;
  select(id: string | null, notify?: boolean): void;
  isGroup(id: string): boolean;
  fit(): void;
}

const OVERLAYS = '.avg-legend,.avg-zoom,.avg-status,.avg-minimap';

/** The node under the pointer: from the DOM in detail mode, by geometry in overview. */
export function pick(canvas: HTMLElement, r: Renderer, ev: MouseEvent): string | null {
  const target = ev.target as Element;
  const hit = target.closest('.avg-node,.avg-group-head');
  if (hit) return hit.getAttribute('data-id');
  if (target.closest('.avg-group')) return null;
  if (r.mode === 'overview') {
    const rect = canvas.getBoundingClientRect();
    const [wx, wy] = r.toWorld(ev.clientX - rect.left, ev.clientY - rect.top);
    const b = r.hit(wx, wy);
    return b ? b.g.id : null;
  }
  return null;
}

export function bindPointer(c: HTMLElement, host: InputHost): void {
  let drag: { x: number; y: number; tx: number; ty: number; moved: boolean; id: number } | null = null;
  let suppressClick = false;
  c.addEventListener('pointerdown', (ev) => {
    if (ev.button !== 0 || (ev.target as Element).closest(OVERLAYS)) return;
    const t = host.renderer.t;
    drag = { x: ev.clientX, y: ev.clientY, tx: t.x, ty: t.y, moved: false, id: ev.pointerId };
    suppressClick = false;
  });
  c.addEventListener('pointermove', (ev) => {
    if (!drag || ev.pointerId !== drag.id) return;
    const dx = ev.clientX - drag.x; const dy = ev.clientY - drag.y;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) > 4) {
      drag.moved = true;
      c.classList.add('avg-dragging');
      try { c.setPointerCapture(ev.pointerId); } catch (_) { /* ignore */ }
    }
    if (drag.moved) host.vp.set(drag.tx + dx, drag.ty + dy, host.renderer.t.k);
  });
  const end = (ev: PointerEvent): void => {
    if (!drag || ev.pointerId !== drag.id) return;
    suppressClick = drag.moved;
    drag = null;
    c.classList.remove('avg-dragging');
  };
  c.addEventListener('pointerup', end);
  c.addEventListener('pointercancel', end);
  c.addEventListener('wheel', (ev) => onWheel(c, host, ev), { passive: false });
  c.addEventListener('click', (ev) => {
    if (suppressClick) { suppressClick = false; return; }
    onClick(c, host, ev);
  });
  c.addEventListener('dblclick', (ev) => {
    const target = ev.target as Element;
    if (target.closest('.avg-legend,.avg-zoom,[data-toggle],[data-fold]')) return;
    const id = pick(c, host.renderer, ev);
    if (id && host.isGroup(id)) host.toggleGroup(id);
    else if (!id) host.fit();
  });
}

function onWheel(c: HTMLElement, host: InputHost, ev: WheelEvent): void {
  ev.preventDefault();
  const rect = c.getBoundingClientRect();
  let dy = ev.deltaY;
  if (ev.deltaMode === 1) dy *= 16; else if (ev.deltaMode === 2) dy *= 400;
  if (ev.ctrlKey || ev.metaKey || !ev.shiftKey) {
    host.vp.zoomBy(Math.exp(-dy * (ev.ctrlKey ? 0.01 : 0.0015)), ev.clientX - rect.left, ev.clientY - rect.top);
  } else {
    host.vp.panBy(-ev.deltaX, -dy);
  }
}

function onClick(c: HTMLElement, host: InputHost, ev: MouseEvent): void {
  const target = ev.target as Element;
  // a legend button rebuilt by its own click handler is detached by now: not a canvas click
  if (!target.isConnected || target.closest('.avg-legend,.avg-zoom,.avg-status')) return;
  c.focus({ preventScroll: true });
  const fold = target.closest('[data-fold]');
  if (fold) {
    const d = fold.getAttribute('data-step')!;
    host.foldStep(fold.getAttribute('data-fold')!, d === 'all' ? 'all' : Number(d));
    return;
  }
  const tg = target.closest('[data-toggle]');
  if (tg) { host.toggleGroup(tg.getAttribute('data-toggle')!); return; }
  host.select(pick(c, host.renderer, ev), true);
}

export interface KeyHost {
  root: HTMLElement;
  destroyed(): boolean;
  selected(): string | null;
  actions: Record<string, () => void>;          // by name, see KEYMAP
  walk(key: string): void;
}

// key -> action name ('sel:' actions need a selection)
const KEYMAP: Record<string, string> = {
  f: 'fit', F: 'fit', '/': 'search', '?': 'help', Escape: 'escape', '+': 'zoomIn', '=': 'zoomIn',
  '-': 'zoomOut', _: 'zoomOut', 0: 'zoom100', E: 'expandAll', C: 'collapseAll', e: 'sel:toggle',
  u: 'sel:up', U: 'sel:up', d: 'sel:down', D: 'sel:down', t: 'sel:both', T: 'sel:both',
  l: 'dir', L: 'dir', n: 'next', N: 'prev', '[': 'foldPrev', ']': 'foldNext',
};
const PAN: Record<string, [number, number]> = { ArrowLeft: [1, 0], ArrowRight: [-1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] };

function inField(t: HTMLElement | null): boolean {
  return !!t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable);
}

/** Keyboard shortcuts while this view is shown (and no other graph view has the focus). */
export function bindKeys(doc: Document, host: KeyHost, vp: Viewport): () => void {
  const onKey = (ev: KeyboardEvent): void => {
    const root = host.root;
    if (host.destroyed() || !root.isConnected || !root.getClientRects().length) return;
    if (inField(ev.target as HTMLElement | null) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const active = doc.activeElement;
    if (active && active.closest('.avg-root') && !root.contains(active)) return;
    const k = ev.key;
    let handled = true;
    const sel = host.selected();
    if (PAN[k] && ev.shiftKey && sel) host.walk(k);
    else if (PAN[k]) { const s = ev.shiftKey ? 200 : 60; vp.panBy(PAN[k][0] * s, PAN[k][1] * s); }
    else if (KEYMAP[k] && (!KEYMAP[k].startsWith('sel:') || sel)) host.actions[KEYMAP[k]]();
    else handled = false;
    if (handled) { ev.preventDefault(); ev.stopPropagation(); }
  };
  doc.addEventListener('keydown', onKey);
  return () => doc.removeEventListener('keydown', onKey);
}
