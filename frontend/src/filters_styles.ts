// The Filters view's own styles (enlarged tile, firing labels, unreadable tiles, step strip,
// "show more"), installed once through the one CSS injector (common/css.ts).

import { injectCss } from './common/css';

const CSS = `
.av-tile { cursor: zoom-in; }
.av-tile:focus-visible { outline: 2px solid var(--accent, #1976d2); }
.av-tile.after-norm { border-color: #f9a825; }
.av-tile .norm-label { color: #000; background: #fdd835; font-size: 10px; font-weight: 600; padding: 0 5px; border-radius: 3px; }
.av-tile.unreadable { cursor: default; max-width: 120px; border-color: var(--border); border-style: dashed; }
.av-tile .unreadable-box { width: 64px; height: 64px; display: flex; align-items: center; justify-content: center; text-align: center; font-size: 11px; color: var(--muted); border: 1px dashed var(--border); }
.av-tile.unreadable .reason { font-size: 10px; color: var(--muted); overflow-wrap: anywhere; }
.av-tiles-more { margin: 12px 0; display: flex; gap: 8px; align-items: center; }
.av-filter-detail-backdrop { position: fixed; inset: 0; background: rgba(0,0,0,0.35); z-index: 50; display: flex; align-items: flex-start; justify-content: center; overflow: auto; padding: 24px; }
.av-filter-detail { background: var(--bg, #fff); color: var(--fg, #000); border: 1px solid var(--border); border-radius: 6px; padding: 14px 16px; max-width: min(1100px, 96vw); box-shadow: 0 8px 24px rgba(0,0,0,0.3); }
.av-filter-detail header { display: flex; gap: 12px; align-items: baseline; margin-bottom: 8px; }
.av-filter-detail header .title { font-weight: 600; }
.av-filter-detail header .close { margin-left: auto; }
.av-filter-detail .main { display: flex; gap: 16px; flex-wrap: wrap; align-items: flex-start; }
.av-filter-detail canvas { image-rendering: pixelated; border: 1px solid var(--border); background: var(--panel); display: block; }
.av-filter-detail dl { display: grid; grid-template-columns: auto auto; gap: 2px 10px; margin: 0; font-size: 12px; }
.av-filter-detail dt { color: var(--muted); }
.av-filter-detail dd { margin: 0; font-variant-numeric: tabular-nums; }
.av-filter-detail .reason { max-width: 360px; font-size: 12px; margin-top: 6px; }
.av-filter-detail figure { margin: 0; display: flex; flex-direction: column; align-items: center; gap: 2px; font-size: 11px; color: var(--muted); }
.av-filter-steps { display: flex; gap: 8px; flex-wrap: wrap; margin-top: 12px; }
.av-filter-steps .av-step-tile.current canvas { outline: 2px solid var(--accent, #1976d2); }
`;

export function installFilterStyles(doc: Document = document): void {
  injectCss(doc, 'filters', CSS);
}
