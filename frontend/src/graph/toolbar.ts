// The graph view's chrome: toolbar (search, fit, expand / collapse, direction, view and label
// menus, export, help), the legend of layer types and the keyboard-shortcut overlay.
import { h } from '../dom';
import type { DeriveOpts } from './derive';
import type { LabelOpts } from './labels';
import { LABEL_NAMES } from './labels';
import type { GraphModel } from './model';
import type { DiffMark } from './draw';
import { diffColor } from './draw';
import { CATEGORY_LABELS, Category } from '../common/categories';
import type { Palette } from '../common/palette';

export interface ToolbarHost {
  fit(): void;
  expandAll(): void;
  collapseAll(): void;
  toggleDir(): void;
  setLabel(key: keyof LabelOpts, on: boolean): void;
  setDerive(key: keyof DeriveOpts, on: boolean): void;
  exportSvg(): void;
  exportPng(): void;
  exportJson(): void;
  toggleHelp(): void;
  labels(): LabelOpts;
  derive(): DeriveOpts;
  keras: boolean;
  compact: boolean;
  info: { text: string; title: string };
}

export function btn(label: string, title: string, testid: string, fn: () => void): HTMLButtonElement {
  const b = h('button', { class: 'avg-btn', title, attrs: { type: 'button', 'data-testid': testid } }, label);
  b.addEventListener('click', (ev) => { ev.stopPropagation(); fn(); });
  return b;
}

/** A button with a drop-down; one open at a time; closed by any click elsewhere. */
export function menu(root: HTMLElement, label: string, testid: string, fill: (pop: HTMLElement) => void,
                     disposers: (() => void)[]): HTMLElement {
  const pop = h('div', { class: 'avg-menu-pop', attrs: { 'data-testid': testid + '-menu' } });
  const b = btn(label, label.replace(' ▾', ''), testid, () => {
    const open = !pop.classList.contains('avg-open');
    root.querySelectorAll('.avg-menu-pop.avg-open').forEach((e) => e.classList.remove('avg-open'));
    pop.classList.toggle('avg-open', open);
  });
  fill(pop);
  pop.addEventListener('click', (ev) => ev.stopPropagation());
  const doc = root.ownerDocument;
  const close = (): void => pop.classList.remove('avg-open');
  doc.addEventListener('click', close);
  disposers.push(() => doc.removeEventListener('click', close));
  return h('div', { class: 'avg-menu' }, b, pop);
}

function check(label: string, on: boolean, attr: Record<string, string>, change: (on: boolean) => void): HTMLElement {
  const cb = h('input', { attrs: { type: 'checkbox', ...attr } });
  cb.checked = on;
  cb.addEventListener('change', () => change(cb.checked));
  return h('label', null, cb, label);
}

const DERIVE_NAMES: [keyof DeriveOpts, string, string][] = [
  ['fold', 'Fold repeated blocks', 'graph-opt-fold'],
  ['nameGroups', 'Group layers by name (flat Keras models)', 'graph-opt-name-groups'],
  ['allOps', 'Show every op (view, reshape, transpose, …)', 'graph-opt-all-ops'],
];

export function buildToolbar(root: HTMLElement, search: HTMLElement[], host: ToolbarHost,
                             disposers: (() => void)[]): { bar: HTMLElement; dirBtn: HTMLButtonElement } {
  const bar = h('div', { class: 'avg-toolbar' });
  bar.append(...search);
  const c = host.compact;
  bar.append(
    btn('Fit', 'Fit to screen (F)', 'graph-fit', () => host.fit()),
    btn(c ? '⊞' : 'Expand all', 'Expand every container (Shift+E)', 'graph-expand-all', () => host.expandAll()),
    btn(c ? '⊟' : 'Collapse all', 'Collapse every container (Shift+C)', 'graph-collapse-all', () => host.collapseAll()),
  );
  const dirBtn = btn('', 'Direction: top-to-bottom or left-to-right (L)', 'graph-direction', () => host.toggleDir());
  bar.append(dirBtn);
  bar.append(menu(root, 'View ▾', 'graph-view-opts', (pop) => {
    for (const [key, name, testid] of DERIVE_NAMES) {
      if (key === 'nameGroups' && !host.keras) continue;
      pop.appendChild(check(name, host.derive()[key], { 'data-testid': testid }, (on) => host.setDerive(key, on)));
    }
  }, disposers));
  bar.append(menu(root, 'Labels ▾', 'graph-labels', (pop) => {
    for (const [key, name] of LABEL_NAMES) {
      pop.appendChild(check(name, host.labels()[key], { 'data-label': key }, (on) => host.setLabel(key, on)));
    }
  }, disposers));
  bar.append(menu(root, c ? '⤓ ▾' : 'Export ▾', 'graph-export', (pop) => {
    pop.append(
      btn('SVG (current view)', 'Download the graph as SVG', 'graph-export-svg', () => host.exportSvg()),
      btn('PNG (current view)', 'Download the graph as PNG', 'graph-export-png', () => host.exportPng()),
      btn('Architecture JSON', 'Download the architecture as JSON', 'graph-export-json', () => host.exportJson()),
    );
  }, disposers));
  bar.append(btn('?', 'Keyboard shortcuts (?)', 'graph-help', () => host.toggleHelp()));
  const info = h('span', { class: 'avg-count avg-info', title: host.info.title, attrs: { 'data-testid': 'graph-info' } }, host.info.text);
  bar.append(info);
  return { bar, dirBtn };
}

const KEYS: [string, string][] = [
  ['F', 'fit the graph to the screen'], ['/', 'search by name or type'],
  ['Enter / Shift+Enter', 'next / previous match'], ['Esc', 'clear search, trace, selection; close'],
  ['+ / −, 0', 'zoom in / out, 100 %'], ['← ↑ → ↓', 'pan'],
  ['Shift+↑ / Shift+↓', 'select an input / an output of the selected node'],
  ['E', 'expand / collapse the selected container'], ['Shift+E / Shift+C', 'expand all / collapse all'],
  ['[ / ]', 'previous / next copy of a folded block'],
  ['U / D / T', 'trace inputs / outputs / both of the selection'], ['L', 'top-to-bottom / left-to-right'],
  ['?', 'this help'],
];

export function buildHelp(onClose: () => void): HTMLElement {
  const tbl = h('table', null, KEYS.map(([k, d]) => h('tr', null, h('td', null, h('kbd', null, k)), h('td', null, d))));
  const help = h('div', { class: 'avg-help', attrs: { 'data-testid': 'graph-help-overlay' } },
    h('div', null, h('h3', null, 'Keyboard shortcuts'), tbl,
      h('p', { class: 'avg-count' }, 'Drag to pan, wheel to zoom, click a node for details, double-click a container to expand or collapse it.')));
  help.addEventListener('click', onClose);
  return help;
}

export interface LegendState {
  model: GraphModel;
  pal: Palette;
  focusCat: Category | null;
  side: 'a' | 'b' | null;
  reach: { label: string; colour: string }[];   // gradient reach states present
  onFocus(c: Category | null): void;
}

/** The legend: layer types (click to highlight one) and, in compare mode, the change marks. */
export function fillLegend(lg: HTMLElement, st: LegendState): void {
  const wasClosed = lg.classList.contains('avg-closed');
  const act = lg.ownerDocument.activeElement;
  const refocus = act && lg.contains(act) ? act.getAttribute('data-cat') || 'title' : null;
  lg.textContent = '';
  const title = h('button', { class: 'avg-lt', attrs: { type: 'button', 'aria-expanded': String(!wasClosed), 'data-cat': 'title' } },
    h('span', null, 'Layer types'), h('span', { attrs: { 'aria-hidden': 'true' } }, wasClosed ? '▸' : '▾'));
  title.addEventListener('click', () => { lg.classList.toggle('avg-closed'); fillLegend(lg, st); });
  lg.appendChild(title);
  const counts = new Map<Category, number>();
  for (const g of st.model.list) counts.set(g.cat, (counts.get(g.cat) || 0) + 1);
  for (const c of (Object.keys(CATEGORY_LABELS) as Category[]).filter((x) => counts.get(x))) {
    const li = h('button', {
      class: 'avg-li', title: 'Highlight this layer type',
      attrs: { type: 'button', 'data-cat': c, 'aria-pressed': String(st.focusCat === c) },
    }, h('span', { class: 'avg-sw', style: { background: st.pal.cat[c] } }), `${CATEGORY_LABELS[c]} (${counts.get(c)})`);
    li.addEventListener('click', () => st.onFocus(st.focusCat === c ? null : c));
    lg.appendChild(li);
  }
  if (refocus) (lg.querySelector(`[data-cat="${refocus}"]`) as HTMLElement | null)?.focus();
  if (st.reach.length) {
    lg.appendChild(h('div', { class: 'avg-lt', style: { 'margin-top': '6px' } }, 'Gradient'));
    for (const r of st.reach) {
      lg.appendChild(h('div', { class: 'avg-li avg-mark' },
        h('span', { class: 'avg-sw', style: { background: r.colour, 'border-radius': '50%' } }), r.label));
    }
  }
  if (!st.side) return;
  const marks: [DiffMark, string][] = st.side === 'a'
    ? [['removed', 'only in A (removed)'], ['changed', 'changed'], ['renamed', 'renamed'], ['inside', 'contains changes']]
    : [['added', 'only in B (added)'], ['changed', 'changed'], ['renamed', 'renamed'], ['inside', 'contains changes']];
  lg.appendChild(h('div', { class: 'avg-lt', style: { 'margin-top': '6px' } }, 'Compare'));
  for (const [mk, txt] of marks) {
    const border = `2px ${mk === 'inside' ? 'dashed' : 'solid'} ${diffColor(st.pal, mk)}`;
    lg.appendChild(h('div', { class: 'avg-li avg-mark' }, h('span', { class: 'avg-sw', style: { background: 'transparent', border } }), txt));
  }
}
