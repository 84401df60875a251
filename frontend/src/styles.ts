// The dashboard's stylesheet (the shell and the table / compare / timeline views); installed
// through common/css.ts, the one place that puts CSS into the page.
import { injectCss } from './common/css';

const CSS = `
:root {
  --bg: #ffffff; --fg: #212121; --muted: #616161; --faint: #6b6b6b;
  --border: #e0e0e0; --panel: #f5f5f5; --panel2: #fafafa; --hover: #f0f4ff;
  --accent: #ef6c00; --accent-fg: #a84300; --link: #1565c0; --sel: #fff3e0; --focus: #1976d2;
  --code-bg: #f5f5f5;
  --add-bg: #e8f5e9; --add-fg: #1b5e20; --add-line: #43a047;
  --rem-bg: #ffebee; --rem-fg: #b71c1c; --rem-line: #e53935;
  --chg-bg: #fff8e1; --chg-fg: #8d5a00; --chg-line: #f9a825;
  --ren-bg: #ede7f6; --ren-fg: #4527a0; --ren-line: #7e57c2;
  --dead: #d32f2f; --dead-bg: #c62828; --err-bg: #ffebee; --err-fg: #b71c1c; --warn-bg: #fff8e1; --warn-fg: #6d4c00;
  color-scheme: light;
}
:root[data-theme="dark"] {
  --bg: #303030; --fg: #e8e8e8; --muted: #c2c2c2; --faint: #b0b0b0;
  --border: #4a4a4a; --panel: #3a3a3a; --panel2: #353535; --hover: #3d4250;
  --accent: #ff9800; --accent-fg: #ffb74d; --link: #90caf9; --sel: #4a3b28; --focus: #90caf9;
  --code-bg: #262626;
  --add-bg: #1e3a22; --add-fg: #a5d6a7; --add-line: #66bb6a;
  --rem-bg: #4a2020; --rem-fg: #ef9a9a; --rem-line: #ef5350;
  --chg-bg: #45391a; --chg-fg: #ffe082; --chg-line: #fbc02d;
  --ren-bg: #352c4a; --ren-fg: #d1c4e9; --ren-line: #9575cd;
  --dead: #ef5350; --dead-bg: #c62828; --err-bg: #4a2020; --err-fg: #ffcdd2; --warn-bg: #45391a; --warn-fg: #ffe082;
  color-scheme: dark;
}
html, body { margin: 0; padding: 0; background: var(--bg); color: var(--fg); height: 100%; }
body { font: 13px/1.45 Roboto, "Helvetica Neue", Arial, sans-serif; }
button, select, input { font: inherit; color: inherit; }
button {
  background: var(--panel); border: 1px solid var(--border); border-radius: 4px;
  padding: 3px 10px; cursor: pointer;
}
button:hover:not(:disabled) { border-color: var(--accent); }
button:disabled { opacity: .5; cursor: default; }
button:focus-visible, select:focus-visible, input:focus-visible, summary:focus-visible,
a:focus-visible, [tabindex]:focus-visible {
  outline: 2px solid var(--focus); outline-offset: 1px;
}
tr[tabindex]:focus-visible { outline-offset: -2px; }
.av-sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
select, input[type="search"], input[type="text"] {
  background: var(--bg); border: 1px solid var(--border); border-radius: 4px; padding: 3px 6px;
}
code, pre, .mono { font-family: "Roboto Mono", Menlo, Consolas, monospace; font-size: 12px; }
a.link, button.link {
  color: var(--link); background: none; border: none; padding: 0; cursor: pointer;
  text-decoration: underline; text-underline-offset: 2px;
}

.av-app { display: flex; flex-direction: column; min-height: 100%; }
.av-header {
  position: sticky; top: 0; z-index: 5; background: var(--bg);
  border-bottom: 1px solid var(--border); padding: 8px 16px 0;
}
.av-bar { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 16px; }
.av-bar label { display: inline-flex; align-items: center; gap: 6px; color: var(--muted); }
.av-bar select { max-width: 40ch; color: var(--fg); }
.av-totals { display: flex; flex-wrap: wrap; gap: 4px 20px; margin: 8px 0 4px; align-items: baseline; }
.av-totals .model-name { font-size: 16px; font-weight: 500; overflow-wrap: anywhere; }
.av-totals .stat { color: var(--muted); }
.av-totals .stat b { color: var(--fg); font-weight: 500; font-variant-numeric: tabular-nums; }
.av-tabs { display: flex; gap: 4px; margin-top: 6px; }
.av-tabs button {
  border: none; border-bottom: 2px solid transparent; border-radius: 0; background: none;
  padding: 6px 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em;
  font-size: 12px; font-weight: 500;
}
.av-tabs button[aria-selected="true"] { color: var(--accent-fg); border-bottom-color: var(--accent); }
.av-main { padding: 12px 16px 24px; flex: 1; min-height: 0; }
.av-spacer { flex: 1; }

.av-msg { padding: 10px 14px; border-radius: 4px; margin: 8px 0; overflow-wrap: anywhere; }
.av-msg.error { background: var(--err-bg); color: var(--err-fg); border-left: 4px solid var(--rem-line); }
.av-msg.warn { background: var(--warn-bg); color: var(--warn-fg); border-left: 4px solid var(--chg-line); }
.av-msg.info { background: var(--panel); color: var(--muted); }
.av-msg .title { font-weight: 500; display: block; }
.av-loading { color: var(--muted); padding: 16px 0; }
.av-loading::before {
  content: ""; display: inline-block; width: 12px; height: 12px; margin-right: 8px;
  border: 2px solid var(--border); border-top-color: var(--accent); border-radius: 50%;
  vertical-align: -2px; animation: av-spin .8s linear infinite;
}
@keyframes av-spin { to { transform: rotate(360deg); } }
.av-empty { max-width: 760px; margin: 48px auto; }
.av-empty h2 { font-weight: 400; font-size: 20px; }
.av-snippet { position: relative; }
.av-snippet pre {
  background: var(--code-bg); border: 1px solid var(--border); border-radius: 4px;
  padding: 12px; overflow-x: auto; white-space: pre; margin: 6px 0 14px;
}
.av-snippet button { position: absolute; top: 6px; right: 6px; font-size: 11px; }

/* toolbar inside a view */
.av-toolbar { display: flex; flex-wrap: wrap; gap: 8px 12px; align-items: center; margin-bottom: 10px; }
.av-toolbar .count { color: var(--muted); }
.av-toolbar input[type="search"] { min-width: 320px; }

/* the layer table */
.av-reach-summary { font-size: 12px; padding: 4px 8px; margin: 0 0 6px; border: 1px solid var(--border); border-radius: 4px; }
.av-reach-summary.unavailable { font-style: italic; color: var(--muted); }
.av-reach { display: inline-flex; align-items: baseline; gap: 5px; }
.av-reach::before { content: ""; flex: none; width: 9px; height: 9px; border-radius: 50%; background: var(--reach-light); }
:root[data-theme="dark"] .av-reach::before { background: var(--reach-dark); }
table.av-table { border-collapse: collapse; width: 100%; table-layout: auto; }
.av-table th, .av-table td {
  text-align: left; vertical-align: top; padding: 4px 8px; border-bottom: 1px solid var(--border);
  white-space: normal; overflow-wrap: anywhere; word-break: normal;
}
.av-table th {
  position: sticky; top: var(--av-header-h, 0px); background: var(--panel); z-index: 2;
  font-weight: 500; color: var(--muted); user-select: none; white-space: nowrap;
}
.av-table th.sortable { cursor: pointer; }
.av-table th button.sort {
  background: none; border: none; padding: 0; color: inherit; font-weight: inherit; cursor: pointer;
  white-space: nowrap; border-radius: 2px;
}
.av-table tr.av-spacer-row td { padding: 0; border: 0; }
.av-col-menu { position: relative; }
.av-col-menu summary {
  cursor: pointer; list-style: none; background: var(--panel); border: 1px solid var(--border);
  border-radius: 4px; padding: 3px 10px;
}
.av-col-menu summary::-webkit-details-marker { display: none; }
.av-col-menu summary::after { content: " ▾"; color: var(--muted); }
.av-col-menu .av-col-list {
  position: absolute; z-index: 10; top: calc(100% + 4px); left: 0; background: var(--bg);
  border: 1px solid var(--border); border-radius: 4px; padding: 6px 10px; display: flex;
  flex-direction: column; gap: 2px; white-space: nowrap; box-shadow: 0 2px 8px rgba(0,0,0,.2);
}
.av-table th.sortable:hover { color: var(--fg); }
.av-table th .arrow { display: inline-block; width: 1em; color: var(--accent-fg); }
.av-table td.num, .av-table th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.av-table td.shape { font-family: "Roboto Mono", Menlo, Consolas, monospace; font-size: 12px; }
.av-table td.shape div { white-space: pre; }
.av-table tr.row:hover { background: var(--hover); }
.av-table tr.row.selected { background: var(--sel); }
.av-table tr.row.container td.name .nm { font-weight: 500; }
.av-table td.name { min-width: 12em; }
.av-table td.name .cell { display: flex; align-items: flex-start; gap: 4px; }
.av-table td.name .nm { overflow-wrap: anywhere; }
.av-table .twisty {
  flex: none; width: 18px; height: 18px; padding: 0; border: none; background: none;
  color: var(--muted); font-size: 11px; line-height: 18px; text-align: center;
}
.av-table .twisty-pad { flex: none; width: 18px; }
.av-table .path-prefix { color: var(--faint); }
.av-table .zero { color: var(--faint); }
.av-table .muted { color: var(--faint); }
.av-table .conn div { overflow-wrap: anywhere; }
.av-table .pill {
  flex: none; font-size: 11px; padding: 0 6px; border-radius: 9px; border: 1px solid var(--accent);
  color: var(--accent-fg); background: none; margin-left: 4px; line-height: 16px;
}
.av-table .pill:hover { background: var(--accent-fg); color: var(--bg); }
.av-table .badge {
  font-size: 11px; padding: 0 5px; border-radius: 3px;
  border: 1px solid var(--border); color: var(--muted); margin-left: 4px; line-height: 15px; flex: none;
}
.av-table tr.details td { background: var(--panel2); padding: 8px 12px 10px 40px; }
.av-details { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; }
.av-details dt { color: var(--muted); }
.av-details dd { margin: 0; overflow-wrap: anywhere; }
.av-details .mono { white-space: pre-wrap; }

/* diff marks */
.mark { display: inline-block; font-size: 11px; font-weight: 500; padding: 0 6px; border-radius: 3px; line-height: 17px; white-space: nowrap; }
.mark.added { background: var(--add-bg); color: var(--add-fg); border: 1px solid var(--add-line); }
.mark.removed { background: var(--rem-bg); color: var(--rem-fg); border: 1px solid var(--rem-line); }
.mark.changed { background: var(--chg-bg); color: var(--chg-fg); border: 1px solid var(--chg-line); }
.mark.renamed { background: var(--ren-bg); color: var(--ren-fg); border: 1px solid var(--ren-line); }
.av-table tr.row.d-added { background: var(--add-bg); box-shadow: inset 4px 0 0 var(--add-line); }
.av-table tr.row.d-removed { background: var(--rem-bg); box-shadow: inset 4px 0 0 var(--rem-line); }
.av-table tr.row.d-removed td { text-decoration: line-through; text-decoration-color: var(--rem-line); }
.av-table tr.row.d-removed td.mark-cell { text-decoration: none; }
.av-table td.mark-cell { width: 1%; white-space: nowrap; }
.av-table td.mark-cell .mark + .mark { margin-left: 4px; }
.av-table tr.row.d-changed { background: var(--chg-bg); box-shadow: inset 4px 0 0 var(--chg-line); }
.av-table tr.row.d-renamed { background: var(--ren-bg); box-shadow: inset 4px 0 0 var(--ren-line); }
.av-table tr.row.current { outline: 2px solid var(--focus); outline-offset: -2px; }
.av-table .was { color: var(--faint); text-decoration: line-through; }
.av-table .fields div { overflow-wrap: anywhere; }
.av-table .fields .k { color: var(--muted); }
.av-legend { display: flex; flex-wrap: wrap; gap: 6px 12px; align-items: center; color: var(--muted); }
.av-summary { font-size: 15px; font-weight: 500; margin: 4px 0 8px; overflow-wrap: anywhere; }
.av-totals-delta { display: flex; flex-wrap: wrap; gap: 4px 20px; color: var(--muted); margin-bottom: 8px; }
.av-totals-delta b { color: var(--fg); font-weight: 500; font-variant-numeric: tabular-nums; }
.av-pickers { display: flex; flex-wrap: wrap; gap: 8px 24px; align-items: center; margin-bottom: 10px; }
.av-pickers fieldset { border: 1px solid var(--border); border-radius: 4px; padding: 4px 10px 8px; display: flex; gap: 8px; align-items: center; }
.av-pickers legend { color: var(--muted); padding: 0 4px; }
.av-graph-pair { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; height: 80vh; min-height: 420px; }
.av-graph-pair > div { border: 1px solid var(--border); border-radius: 4px; position: relative; overflow: hidden; min-width: 0; }
.av-graph-pair .side-label { position: absolute; top: 4px; left: 8px; z-index: 3; color: var(--muted); background: var(--bg); padding: 0 4px; pointer-events: none; overflow-wrap: anywhere; max-width: 90%; }
.av-graph-single { height: calc(100vh - var(--av-header-h, 120px) - 40px); min-height: 360px; position: relative; border: 1px solid var(--border); border-radius: 4px; overflow: hidden; }

/* filters */
.av-tiles { display: flex; flex-wrap: wrap; gap: 12px; }
.av-tile { display: flex; flex-direction: column; align-items: center; gap: 2px; padding: 4px; border: 2px solid transparent; border-radius: 4px; }
.av-tile canvas { display: block; image-rendering: pixelated; background: var(--panel); border: 1px solid var(--border); }
.av-tile .idx { color: var(--muted); font-size: 11px; }
.av-tile .score { font-variant-numeric: tabular-nums; font-size: 12px; }
.av-tile.dead { border-color: var(--dead); }
.av-tile .dead-label { color: #fff; background: var(--dead-bg); font-size: 10px; font-weight: 600; text-transform: uppercase; padding: 0 5px; border-radius: 3px; }
.av-slider { display: inline-flex; align-items: center; gap: 8px; }
.av-slider input[type="range"] { width: 220px; accent-color: var(--accent); }

/* timeline */
ol.av-timeline { list-style: none; margin: 0; padding: 0 0 0 14px; border-left: 2px solid var(--border); }
ol.av-timeline li { position: relative; padding: 4px 0 14px 16px; }
ol.av-timeline li::before {
  content: ""; position: absolute; left: -21px; top: 9px; width: 10px; height: 10px;
  border-radius: 50%; background: var(--bg); border: 2px solid var(--accent);
}
ol.av-timeline li.nochange::before { border-color: var(--faint); }
ol.av-timeline .step { font-weight: 500; }
ol.av-timeline .what { overflow-wrap: anywhere; }
ol.av-timeline ul { margin: 4px 0 6px; padding-left: 18px; color: var(--muted); }
ol.av-timeline ul li { padding: 0; }
ol.av-timeline ul li::before { display: none; }
`;

/** Install the dashboard's stylesheet once into the document. */
export function installStyles(doc: Document = document): void {
  injectCss(doc, 'dashboard', CSS);
}
