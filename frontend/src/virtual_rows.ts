// Row virtualisation for a <tbody> in a page that scrolls as a whole (the plugin iframe's
// window): only the entries near the viewport are in the DOM, between two spacer rows whose
// heights stand for the rest. Heights are estimated, then measured once an entry has been shown.

import { h } from './dom';

export interface VirtualSource {
  count(): number;
  /** the <tr>s of entry i (a layer row, plus its details row when open) */
  render(i: number): HTMLElement[];
  /** a first guess of entry i's height in px */
  estimate(i: number): number;
}

const OVERSCAN_PX = 400;
/** Up to this many entries every row is in the DOM (the browser's find-in-page sees them all). */
const ALL_ROWS_UP_TO = 400;

export class VirtualRows {
  private heights: number[] = [];
  private top: HTMLTableRowElement;
  private bottom: HTMLTableRowElement;
  private rendered: { i: number; trs: HTMLElement[] }[] = [];
  private frame = 0;
  private readonly onScroll = () => this.schedule();

  constructor(private readonly tbody: HTMLTableSectionElement, private readonly src: VirtualSource,
              colspan: number) {
    const spacer = () => h('tr', { class: 'av-spacer-row', attrs: { 'aria-hidden': 'true' } },
      h('td', { attrs: { colspan: String(colspan) } }));
    this.top = spacer();
    this.bottom = spacer();
    window.addEventListener('scroll', this.onScroll, { passive: true });
    window.addEventListener('resize', this.onScroll, { passive: true });
  }

  setColspan(n: number): void {
    for (const tr of [this.top, this.bottom]) (tr.firstChild as HTMLElement).setAttribute('colspan', String(n));
  }

  /** The entries changed (search, sort, expand): estimate again and draw. */
  reset(): void {
    const n = this.src.count();
    this.heights = new Array(n);
    for (let i = 0; i < n; i++) this.heights[i] = this.src.estimate(i);
    this.drop();
    this.draw();
  }

  /** Entry i (or every entry) changed its content (details opened): draw it again, keeping the others' heights. */
  refresh(i?: number): void {
    if (i != null && i < this.heights.length) this.heights[i] = this.src.estimate(i);
    this.drop(i);
    this.draw();
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
  }

  private offsetOf(i: number): number {
    let y = 0;
    for (let k = 0; k < i; k++) y += this.heights[k];
    return y;
  }

  private range(): [number, number] {
    const n = this.heights.length;
    if (n <= ALL_ROWS_UP_TO) return [0, n];
    const rect = this.tbody.getBoundingClientRect();
    const viewTop = -rect.top - OVERSCAN_PX, viewBottom = window.innerHeight - rect.top + OVERSCAN_PX;
    let y = 0, start = 0;
    while (start < n && y + this.heights[start] < viewTop) y += this.heights[start++];
    let end = start;
    while (end < n && y < viewBottom) y += this.heights[end++];
    return [start, Math.max(end, Math.min(n, start + 1))];
  }

  /** Put entries [start, end) in the DOM (keeping those already there, so focus stays), measure the new ones, size the spacers. */
  draw(): void {
    const [start, end] = this.range();
    if (this.top.parentNode !== this.tbody) this.tbody.replaceChildren(this.top, this.bottom);
    const kept = new Map<number, HTMLElement[]>();
    for (const r of this.rendered) {
      if (r.i >= start && r.i < end) kept.set(r.i, r.trs);
      else for (const tr of r.trs) tr.remove();
    }
    this.rendered = [];
    const fresh: { i: number; trs: HTMLElement[] }[] = [];
    let cursor: Node = this.top;
    for (let i = start; i < end; i++) {
      let trs = kept.get(i);
      if (!trs) { trs = this.src.render(i); fresh.push({ i, trs }); }
      this.rendered.push({ i, trs });
      for (const tr of trs) {
        if (cursor.nextSibling !== tr) this.tbody.insertBefore(tr, cursor.nextSibling);
        cursor = tr;
      }
    }
    for (const r of fresh) {
      let hgt = 0;
      for (const tr of r.trs) hgt += tr.getBoundingClientRect().height;
      if (hgt > 0) this.heights[r.i] = hgt;
    }
    let below = 0;
    for (let k = end; k < this.heights.length; k++) below += this.heights[k];
    this.size(this.top, this.offsetOf(start));
    this.size(this.bottom, below);
  }

  /** Forget the DOM of every entry (or of entry i) so that the next draw renders it again. */
  private drop(i?: number): void {
    this.rendered = this.rendered.filter((r) => {
      if (i != null && r.i !== i) return true;
      for (const tr of r.trs) tr.remove();
      return false;
    });
  }

  private size(tr: HTMLTableRowElement, px: number): void {
    tr.style.display = px > 0 ? '' : 'none';
    (tr.firstChild as HTMLElement).style.height = px + 'px';
  }

  /** Scroll the page so that entry i is in the middle of the view, and draw it. */
  scrollTo(i: number): void {
    if (i < 0 || i >= this.heights.length) return;
    const rect = this.tbody.getBoundingClientRect();
    const y = window.scrollY + rect.top + this.offsetOf(i) - window.innerHeight / 2;
    window.scrollTo({ top: Math.max(0, y) });
    this.draw();
    const hit = this.rendered.find((r) => r.i === i);
    hit?.trs[0].scrollIntoView({ block: 'center' });
  }

  /** Whether entry i is in the DOM now. */
  isRendered(i: number): boolean {
    return this.rendered.some((r) => r.i === i);
  }

  destroy(): void {
    if (this.frame) cancelAnimationFrame(this.frame);
    window.removeEventListener('scroll', this.onScroll);
    window.removeEventListener('resize', this.onScroll);
  }
}
