// The graph's search box: matches on name, id or type, a result list, stepping through matches.
import { h } from '../dom';
import type { GNode, GraphModel } from './model';
import { btn } from './toolbar';

export interface SearchHost {
  model(): GraphModel;
  jump(id: string): void;
  changed(): void;                 // matches changed: restyle
  focusRoot(): void;
}

export class SearchBox {
  readonly wrap: HTMLDivElement;
  readonly parts: HTMLElement[];
  readonly input: HTMLInputElement;
  readonly results: HTMLDivElement;
  readonly count: HTMLSpanElement;
  matches: GNode[] = [];
  matchIds = new Set<string>();
  private idx = -1;
  private last = '';
  private timer = 0;

  constructor(private win: Window, private host: SearchHost, private root: HTMLElement) {
    this.input = h('input', {
      attrs: { type: 'search', placeholder: 'Search name or type  ( / )', 'data-testid': 'graph-search',
        'aria-label': 'Search layers by name or type' },
    });
    this.count = h('span', { class: 'avg-count', attrs: { 'data-testid': 'graph-search-count' } });
    this.results = h('div', { class: 'avg-results', attrs: { 'data-testid': 'graph-search-results' } });
    this.wrap = h('div', { class: 'avg-search' }, this.input, this.results);
    this.parts = [this.wrap,
      btn('‹', 'Previous match (Shift+Enter)', 'graph-search-prev', () => this.step(-1)),
      btn('›', 'Next match (Enter)', 'graph-search-next', () => this.step(1)),
      this.count, h('span', { class: 'avg-sep' })];
    this.input.addEventListener('input', () => {
      this.win.clearTimeout(this.timer);
      this.timer = this.win.setTimeout(() => this.run(), this.host.model().list.length > 3000 ? 150 : 40);
    });
    this.input.addEventListener('keydown', (ev) => this.onKey(ev));
    this.input.addEventListener('focus', () => { if (this.matches.length) this.results.classList.add('avg-open'); });
    this.input.addEventListener('blur', () => this.win.setTimeout(() => this.results.classList.remove('avg-open'), 200));
  }

  get active(): boolean { return this.matches.length > 0 || this.input.value !== ''; }

  private onKey(ev: KeyboardEvent): void {
    if (ev.key === 'Enter') {
      ev.preventDefault();
      this.win.clearTimeout(this.timer);
      if (this.input.value.trim() !== this.last) this.run();
      this.step(ev.shiftKey ? -1 : 1);
    } else if (ev.key === 'Escape') { ev.preventDefault(); this.clear(); this.host.focusRoot(); }
    else if (ev.key === 'ArrowDown') { ev.preventDefault(); this.step(1); }
    else if (ev.key === 'ArrowUp') { ev.preventDefault(); this.step(-1); }
  }

  focus(): void { this.input.focus(); this.input.select(); }

  run(): void {
    const q = this.input.value.trim();
    this.last = q;
    this.matches = this.host.model().search(q);
    this.matchIds = new Set(this.matches.map((g) => g.id));
    this.idx = -1;
    this.results.textContent = '';
    this.root.setAttribute('data-matches', String(this.matches.length));
    if (!q) { this.count.textContent = ''; this.results.classList.remove('avg-open'); this.host.changed(); return; }
    this.count.textContent = this.matches.length ? `${this.matches.length} found` : 'no match';
    const shown = this.matches.slice(0, 200);
    shown.forEach((g, i) => {
      const row = h('div', { title: g.id, attrs: { role: 'option', 'data-id': g.id } },
        String(g.raw.name ?? g.id), h('span', { class: 'avg-type' }, String(g.raw.class_name ?? '')));
      row.addEventListener('mousedown', (ev) => { ev.preventDefault(); this.idx = i; this.go(); });
      this.results.appendChild(row);
    });
    if (this.matches.length > shown.length) {
      this.results.appendChild(h('div', { class: 'avg-type' }, `… ${this.matches.length - shown.length} more (Enter to step through)`));
    }
    this.results.classList.toggle('avg-open', this.matches.length > 0 && this.input.ownerDocument.activeElement === this.input);
    this.host.changed();
  }

  step(d: number): void {
    if (!this.matches.length) return;
    this.idx = (this.idx + d + this.matches.length) % this.matches.length;
    this.go();
  }

  private go(): void {
    const g = this.matches[this.idx];
    if (!g) return;
    this.count.textContent = `${this.idx + 1} / ${this.matches.length}`;
    this.results.querySelectorAll('[aria-selected]').forEach((e) => e.removeAttribute('aria-selected'));
    const row = this.results.children[this.idx] as HTMLElement | undefined;
    if (row) { row.setAttribute('aria-selected', 'true'); row.scrollIntoView({ block: 'nearest' }); }
    this.host.jump(g.id);
  }

  clear(): void {
    this.input.value = '';
    this.last = '';
    this.matches = [];
    this.matchIds = new Set();
    this.idx = -1;
    this.count.textContent = '';
    this.results.textContent = '';
    this.results.classList.remove('avg-open');
    this.root.setAttribute('data-matches', '0');
    this.host.changed();
  }
}
