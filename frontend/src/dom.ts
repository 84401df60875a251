// Safe DOM helpers: elements are created with createElement and text is set with textContent.
// Nothing here (or anywhere in the dashboard) assigns innerHTML: every string may come from a
// user's model (layer names, class names, run names, config values) and is rendered as text.

export type Child = Node | string | number | null | undefined | false | Child[];

export interface Attrs {
  class?: string;
  title?: string;
  style?: Partial<Record<string, string>>;
  dataset?: Record<string, string>;
  attrs?: Record<string, string>;          // plain attributes (aria-*, role, type, ...)
  on?: { [K in keyof HTMLElementEventMap]?: (ev: HTMLElementEventMap[K]) => void };
}

const FORBIDDEN_ATTRS = /^(on|srcdoc$|innerhtml$|outerhtml$)/i;

/** Create an element with attributes and children (strings become text nodes). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    if (attrs.class) el.className = attrs.class;
    if (attrs.title != null) el.title = attrs.title;
    if (attrs.style) {
      for (const [k, v] of Object.entries(attrs.style)) {
        if (v != null) el.style.setProperty(k, v);
      }
    }
    if (attrs.dataset) {
      for (const [k, v] of Object.entries(attrs.dataset)) el.dataset[k] = v;
    }
    if (attrs.attrs) {
      for (const [k, v] of Object.entries(attrs.attrs)) {
        if (FORBIDDEN_ATTRS.test(k)) throw new Error('refusing to set attribute ' + k);
        el.setAttribute(k, v);
      }
    }
    if (attrs.on) {
      for (const [k, fn] of Object.entries(attrs.on)) {
        if (fn) el.addEventListener(k, fn as EventListener);
      }
    }
  }
  append(el, ...children);
  return el;
}

/** Append children (strings as text nodes; null/false skipped; arrays flattened). */
export function append(parent: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(parent, ...c);
    else if (c instanceof Node) parent.appendChild(c);
    else parent.appendChild(document.createTextNode(String(c)));
  }
}

/** Remove every child of an element. */
export function clear(el: Node): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

/** Replace an element's children. */
export function replaceChildren(el: Node, ...children: Child[]): void {
  clear(el);
  append(el, ...children);
}

/** A text node (for symmetry with h()). */
export function text(s: unknown): Text {
  return document.createTextNode(s == null ? '' : String(s));
}

/** A <button type="button"> with a click handler. */
export function button(label: Child, onClick: (ev: MouseEvent) => void,
                       attrs: Attrs = {}): HTMLButtonElement {
  const b = h('button', { ...attrs, attrs: { type: 'button', ...(attrs.attrs || {}) } }, label);
  b.addEventListener('click', onClick);
  return b;
}

/** A <select> filled with options (values and labels are set as text). */
export function select(options: { value: string; label: string; disabled?: boolean }[],
                       value: string | null, onChange: (v: string) => void,
                       attrs: Attrs = {}): HTMLSelectElement {
  const s = h('select', attrs);
  for (const o of options) {
    const opt = h('option', null, o.label);
    opt.value = o.value;
    if (o.disabled) opt.disabled = true;
    s.appendChild(opt);
  }
  if (value != null) s.value = value;
  s.addEventListener('change', () => onChange(s.value));
  return s;
}

// ---------------------------------------------------------------------------------------------
// common pieces: loading / error messages, a copyable code snippet

export function loading(what: string): HTMLElement {
  return h('div', { class: 'av-loading', attrs: { role: 'status' } }, what);
}

export function errorBox(title: string, message: string): HTMLElement {
  return h('div', { class: 'av-msg error', attrs: { role: 'alert' } }, h('span', { class: 'title' }, title), message);
}

export function snippet(code: string): HTMLElement {
  const pre = h('pre', null, h('code', null, code));
  const copy = button('Copy', () => {
    const done = () => { copy.textContent = 'Copied'; setTimeout(() => { copy.textContent = 'Copy'; }, 1500); };
    if (navigator.clipboard?.writeText) navigator.clipboard.writeText(code).then(done, () => selectText(pre));
    else selectText(pre);
  }, { title: 'copy to the clipboard' });
  return h('div', { class: 'av-snippet' }, pre, copy);
}

function selectText(el: HTMLElement) {
  const r = document.createRange();
  r.selectNodeContents(el);
  const s = getSelection();
  s?.removeAllRanges();
  s?.addRange(r);
}
