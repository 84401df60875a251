// Words for a diff (the `diff` route's answer): the changed fields as "a → b" lines, used by the
// compare view's table and the timeline. The server computes what changed; this only formats it.

import { fmtShape, fmtValue } from './format';

/** "units: 32 → 64" lines for a change's fields (objects are expanded one level). */
export function fieldLines(fields: Record<string, { a: unknown; b: unknown }>): [string, string, string][] {
  const out: [string, string, string][] = [];
  for (const [k, v] of Object.entries(fields)) {
    const a = v?.a, b = v?.b;
    if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
      const keys = new Set([...Object.keys(a as object), ...Object.keys(b as object)]);
      for (const kk of keys) {
        const x = (a as Record<string, unknown>)[kk], y = (b as Record<string, unknown>)[kk];
        if (JSON.stringify(x) !== JSON.stringify(y)) out.push([k + '.' + kk, fmtField(x), fmtField(y)]);
      }
    } else {
      out.push([k, fmtField(a), fmtField(b)]);
    }
  }
  return out;
}

export function fmtField(v: unknown): string {
  if (Array.isArray(v) && v.every((d) => d === null || typeof d === 'number')) return fmtShape(v as (number | null)[]);
  if (Array.isArray(v) && v.every((s) => s === null || Array.isArray(s))) {
    return v.map((s) => (s == null ? '?' : fmtShape(s as (number | null)[]))).join(' ');
  }
  return fmtValue(v);
}
