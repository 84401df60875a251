// Stored metadata never sizes the page: the grid layout of a filters document (tile size,
// margin, rows, cols) is checked against the real decoded PNG (naturalWidth / naturalHeight)
// and clamped to what it can hold, and every tile entry is checked before anything reads it
// (an entry that is not an object, lacks its index/row/col or lies outside the grid is an
// "unreadable tile" with the reason in words). The server does the same checks
// (`reader.check_layout`: `png_size`, `layout_problems`, `unreadable` entries); this is the
// page's own guard, so an older server or a hand-made answer cannot size a canvas either.

import type { FilterTile, FiltersResponse } from './types';

/** The layout actually used to cut tiles out of the PNG. */
export interface GridLayout {
  tileSize: number;
  margin: number;
  rows: number;
  cols: number;
  /** The decoded PNG's own size. */
  width: number;
  height: number;
  /** One sentence per stored value that did not fit (the server's and this page's). */
  problems: string[];
}

/** A tile entry after checking: readable (a FilterTile with whole index/row/col inside the
 *  grid) or unreadable with the reason. */
export type CheckedTile =
  | { readable: true; tile: FilterTile }
  | { readable: false; index: number; reason: string };

function whole(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) ? v : null;
}

/** The document's layout clamped to a PNG of `width` × `height` px. */
export function checkLayout(resp: FiltersResponse, width: number, height: number): GridLayout {
  const w = Math.max(1, Math.floor(width) || 1), hgt = Math.max(1, Math.floor(height) || 1);
  const server = Array.isArray(resp.layout_problems)
    ? resp.layout_problems.filter((p): p is string => typeof p === 'string').slice(0, 20) : [];
  const problems: string[] = [...server];
  const clamp = (key: string, value: unknown, lo: number, hi: number, dflt: number): number => {
    const v = whole(value);
    const used = v == null ? dflt : Math.min(Math.max(v, lo), hi);
    if (v !== used) {
      const shown = v == null ? (value === undefined ? 'missing' : 'not a whole number') : String(v);
      problems.push(`${key} ${shown} does not fit the ${w}×${hgt} PNG: ${used} used`);
    }
    return used;
  };
  const margin = clamp('margin', resp.margin, 0, Math.floor(Math.min(w, hgt) / 2), 0);
  const cols = clamp('cols', resp.cols, 1, w, 1);
  const rows = clamp('rows', resp.rows, 1, hgt, 1);
  const fit = Math.max(1, Math.min(Math.floor((w - (cols - 1) * margin) / cols),
    Math.floor((hgt - (rows - 1) * margin) / rows)));
  const tileSize = clamp('tile_size', resp.tile_size, 1, fit, fit);
  const png = resp.png_size;
  if (Array.isArray(png) && (png[0] !== w || png[1] !== hgt)) {
    problems.push(`the server read the PNG as ${String(png[0])}×${String(png[1])}, the browser decoded ${w}×${hgt}: the decoded size is used`);
  }
  return { tileSize, margin, rows, cols, width: w, height: hgt, problems };
}

function finiteOrNull(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** Check one tile entry (position `k` in the document's list) against the layout. */
export function checkTile(raw: unknown, k: number, lay: GridLayout): CheckedTile {
  const bad = (reason: string, index: unknown = null): CheckedTile =>
    ({ readable: false, index: whole(index) ?? k, reason: `tile entry ${k} ${reason}` });
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return bad(`is not an object (${raw === null ? 'null' : Array.isArray(raw) ? 'array' : typeof raw})`);
  }
  const t = raw as Record<string, unknown>;
  if (typeof t.unreadable === 'string') return { readable: false, index: whole(t.index) ?? k, reason: t.unreadable };
  const index = whole(t.index), row = whole(t.row), col = whole(t.col);
  if (index == null || row == null || col == null) return bad('lacks a whole-number index, row or col', t.index);
  if (row < 0 || row >= lay.rows || col < 0 || col >= lay.cols) {
    return bad(`is outside the ${lay.rows}×${lay.cols} grid (row ${row}, col ${col})`, index);
  }
  const fires = t.fires === 'yes' || t.fires === 'after_norm' || t.fires === 'never' ? t.fires : undefined;
  const tile: FilterTile = {
    ...(t as unknown as FilterTile), index, row, col,
    score: finiteOrNull(t.score) as number, dead: t.dead === true, fires,
    post_score: finiteOrNull(t.post_score) ?? undefined,
    pre_score: finiteOrNull(t.pre_score) ?? undefined,
    dead_reason: typeof t.dead_reason === 'string' ? t.dead_reason : null,
    kernel: kernelOk(t.kernel) ? t.kernel as number[][][] : undefined,
  };
  return { readable: true, tile };
}

/** A [height][width][channels] array of finite numbers, at most 64 a side. */
function kernelOk(k: unknown): boolean {
  if (!Array.isArray(k) || k.length === 0 || k.length > 64) return false;
  const width = Array.isArray(k[0]) ? k[0].length : -1;
  if (width < 1 || width > 64) return false;
  const depth = Array.isArray(k[0][0]) ? k[0][0].length : -1;
  if (depth < 1 || depth > 64) return false;
  return k.every((row) => Array.isArray(row) && row.length === width && row.every((px) =>
    Array.isArray(px) && px.length === depth && px.every((v) => typeof v === 'number' && Number.isFinite(v))));
}

/** Every entry of the document's `tiles` checked (a missing or non-list `tiles` is empty). */
export function checkTiles(resp: FiltersResponse, lay: GridLayout): CheckedTile[] {
  const raw: unknown = resp.tiles;
  return Array.isArray(raw) ? raw.map((t, k) => checkTile(t, k, lay)) : [];
}

/** Where tile (row, col) sits in the PNG: the stored grid centred in the image (margins inside,
 *  and outside if the PNG has them), the rectangle cut to the PNG's own bounds. */
export function tileRect(lay: GridLayout, t: { row: number; col: number }) {
  const ts = lay.tileSize, m = lay.margin;
  const inner = (n: number) => n * ts + Math.max(0, n - 1) * m;
  const offX = Math.max(0, Math.round((lay.width - inner(lay.cols)) / 2));
  const offY = Math.max(0, Math.round((lay.height - inner(lay.rows)) / 2));
  const x = Math.min(offX + t.col * (ts + m), lay.width - 1);
  const y = Math.min(offY + t.row * (ts + m), lay.height - 1);
  return { x, y, w: Math.max(1, Math.min(ts, lay.width - x)), h: Math.max(1, Math.min(ts, lay.height - y)) };
}
