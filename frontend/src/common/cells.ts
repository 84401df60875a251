// Table cells shared by the tables of the dashboard (layer table, compare table).
import { h } from '../dom';
import { fmtInt } from '../format';

/** A right-aligned number cell: "zero" when 0, "muted" when unknown (null), `title` on hover. */
export function numCell(v: number | null | undefined, text = fmtInt(v), title?: string): HTMLElement {
  const td = h('td', { class: 'num' }, text);
  if (v === 0) td.classList.add('zero');
  if (v == null) td.classList.add('muted');
  if (title) td.title = title;
  return td;
}
