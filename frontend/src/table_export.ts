// The layer table as CSV (raw numbers, for spreadsheets) and Markdown (the table's own text,
// for issues and notes). Layer names are untrusted: CSV cells that a spreadsheet would run as a
// formula are prefixed with ', Markdown cells have | \ < > escaped and no line breaks.

import type { CellEnv, Column } from './table_columns';
import type { ArchNode } from './types';

function csvText(t: string): string {
  if (/^[=+\-@\t\r]/.test(t)) t = "'" + t;
  return /[",\r\n]/.test(t) ? '"' + t.replace(/"/g, '""') + '"' : t;
}

function csvValue(c: Column, n: ArchNode, env: CellEnv): string {
  if (c.num) {
    const v = c.sortValue(n, env);
    return v == null ? '' : String(v);
  }
  return csvText(c.text(n, env));
}

export function toCSV(cols: Column[], nodes: ArchNode[], env: CellEnv): string {
  const lines = [cols.map((c) => csvText(c.label)).join(',')];
  for (const n of nodes) lines.push(cols.map((c) => csvValue(c, n, env)).join(','));
  return lines.join('\r\n') + '\r\n';
}

function mdCell(t: string): string {
  return t.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    .replace(/[\r\n]+/g, ' ').trim();
}

export function toMarkdown(cols: Column[], nodes: ArchNode[], env: CellEnv): string {
  const out = ['| ' + cols.map((c) => mdCell(c.label)).join(' | ') + ' |',
    '|' + cols.map((c) => (c.num ? ' ---: ' : ' --- ')).join('|') + '|'];
  for (const n of nodes) out.push('| ' + cols.map((c) => mdCell(c.text(n, env))).join(' | ') + ' |');
  return out.join('\n') + '\n';
}

/** Offer `text` as a file download. */
export function downloadText(text: string, filename: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** A file name from a model name: letters, digits, - _ . only. */
export function safeFileBase(name: string): string {
  return (name.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '') || 'model').slice(0, 80);
}
