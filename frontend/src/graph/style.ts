// The graph view's CSS and the CSS custom properties of its chrome (categories and palettes are
// shared by every view: common/categories.ts, common/palette.ts).
import { injectCss } from '../common/css';
import { FONT_FAMILY, MONO_FAMILY } from '../common/palette';
import type { Palette } from '../common/palette';

const CSS = `
.avg-root{position:relative;display:flex;flex-direction:column;width:100%;height:100%;min-height:420px;
  font:13px ${FONT_FAMILY};color:var(--avg-text);background:var(--avg-bg);overflow:hidden;box-sizing:border-box}
.avg-root *{box-sizing:border-box}
.avg-toolbar{display:flex;flex-wrap:wrap;align-items:center;gap:6px;padding:6px 8px;border-bottom:1px solid var(--avg-border);
  background:var(--avg-panel);z-index:3}
.avg-toolbar .avg-sep{width:1px;height:22px;background:var(--avg-border);margin:0 2px}
.avg-btn{font:inherit;font-size:12px;color:var(--avg-text);background:var(--avg-btn);border:1px solid var(--avg-border);
  border-radius:4px;padding:3px 8px;cursor:pointer;line-height:18px;white-space:nowrap}
.avg-btn:hover{background:var(--avg-btn-hover)}
.avg-btn[aria-pressed="true"]{background:var(--avg-btn-on);border-color:var(--avg-accent)}
.avg-btn:disabled{opacity:.5;cursor:default}
.avg-search{display:flex;align-items:center;gap:4px;position:relative}
.avg-search input{font:inherit;font-size:12px;width:200px;padding:3px 6px;border:1px solid var(--avg-border);border-radius:4px;
  background:var(--avg-bg);color:var(--avg-text)}
.avg-search .avg-count{font-size:11px;color:var(--avg-text2);min-width:52px}
.avg-results{position:absolute;top:28px;left:0;width:320px;max-height:320px;overflow:auto;background:var(--avg-panel);
  border:1px solid var(--avg-border);border-radius:4px;box-shadow:0 4px 14px rgba(0,0,0,.25);z-index:10;display:none}
.avg-results.avg-open{display:block}
.avg-results div{padding:4px 8px;cursor:pointer;font-size:12px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.avg-results div[aria-selected="true"],.avg-results div:hover{background:var(--avg-btn-hover)}
.avg-results .avg-type{color:var(--avg-text2);margin-left:6px}
.avg-menu{position:relative}
.avg-menu-pop{position:absolute;top:28px;left:0;background:var(--avg-panel);border:1px solid var(--avg-border);border-radius:4px;
  padding:6px 8px;box-shadow:0 4px 14px rgba(0,0,0,.25);z-index:10;display:none;min-width:170px}
.avg-menu-pop.avg-open{display:block}
.avg-menu-pop label{display:flex;align-items:center;gap:6px;font-size:12px;padding:2px 0;white-space:nowrap;cursor:pointer}
.avg-menu-pop .avg-btn{display:block;width:100%;text-align:left;margin:2px 0}
.avg-main{position:relative;flex:1;min-height:0;display:flex}
.avg-canvas{position:relative;flex:1;min-width:0;overflow:hidden;outline:none;cursor:grab;touch-action:none}
.avg-canvas.avg-dragging{cursor:grabbing}
.avg-canvas svg{position:absolute;left:0;top:0;width:100%;height:100%;display:block;user-select:none}
.avg-status{position:absolute;left:50%;top:12px;transform:translateX(-50%);background:var(--avg-panel);border:1px solid var(--avg-border);
  border-radius:4px;padding:4px 10px;font-size:12px;color:var(--avg-text2);display:none;z-index:2}
.avg-status.avg-open{display:block}
.avg-legend{position:absolute;left:8px;bottom:8px;background:var(--avg-panel);border:1px solid var(--avg-border);border-radius:4px;
  padding:6px 8px;font-size:11px;z-index:2;max-height:45%;overflow:auto}
.avg-legend .avg-li,.avg-legend .avg-lt{font:inherit;color:inherit;background:none;border:0;margin:0;text-align:left;width:100%}
.avg-legend .avg-li{display:flex;align-items:center;gap:6px;padding:1px 0;cursor:pointer;white-space:nowrap}
.avg-legend .avg-li.avg-mark{cursor:default}
.avg-legend button:focus-visible{outline:2px solid var(--avg-link);outline-offset:1px;border-radius:2px}
.avg-legend .avg-li[aria-pressed="true"]{font-weight:600}
.avg-legend .avg-sw{width:12px;height:12px;border-radius:2px;flex:none}
.avg-legend .avg-lt{font-weight:600;margin-bottom:3px;padding:0;display:flex;justify-content:space-between;gap:8px;cursor:pointer}
.avg-legend.avg-closed .avg-li{display:none}
.avg-minimap{position:absolute;right:46px;bottom:8px;border:1px solid var(--avg-border);border-radius:3px;z-index:2;
  cursor:crosshair;box-shadow:0 1px 4px rgba(0,0,0,.2)}
.avg-zoom{position:absolute;right:8px;bottom:8px;display:flex;flex-direction:column;gap:4px;z-index:2}
.avg-zoom .avg-btn{width:30px;padding:3px 0;text-align:center}
.avg-panel{width:340px;flex:none;border-left:1px solid var(--avg-border);background:var(--avg-panel);overflow:auto;padding:10px 12px;
  font-size:12px;display:none}
.avg-panel.avg-open{display:block}
.avg-panel h3{font-size:14px;margin:0 0 2px 0;word-break:break-all}
.avg-panel h4{font-size:12px;margin:12px 0 4px 0;color:var(--avg-text2);text-transform:uppercase;letter-spacing:.04em}
.avg-panel table{border-collapse:collapse;width:100%}
.avg-panel td,.avg-panel th{text-align:left;padding:2px 4px;vertical-align:top;border-bottom:1px solid var(--avg-border);word-break:break-all}
.avg-panel th{color:var(--avg-text2);font-weight:500;width:38%}
.avg-panel .avg-mono{font-family:${MONO_FAMILY};font-size:11px}
.avg-panel pre{font-family:${MONO_FAMILY};font-size:11px;white-space:pre-wrap;word-break:break-all;margin:0;
  background:var(--avg-bg);border:1px solid var(--avg-border);border-radius:4px;padding:6px;max-height:320px;overflow:auto}
.avg-panel .avg-actions{display:flex;flex-wrap:wrap;gap:4px;margin:8px 0}
.avg-panel .avg-link{color:var(--avg-link);cursor:pointer;text-decoration:underline}
.avg-panel .avg-close{float:right}
.avg-panel .avg-sub{color:var(--avg-text2);margin-bottom:6px;word-break:break-all}
.avg-panel .avg-badge{display:inline-block;border-radius:3px;padding:0 5px;font-size:11px;color:#fff;margin-right:4px}
.avg-help{position:absolute;inset:0;background:rgba(0,0,0,.45);display:none;align-items:center;justify-content:center;z-index:20}
.avg-help.avg-open{display:flex}
.avg-help>div{background:var(--avg-panel);color:var(--avg-text);border-radius:6px;padding:16px 20px;min-width:340px;
  box-shadow:0 8px 30px rgba(0,0,0,.4)}
.avg-help h3{margin:0 0 8px 0;font-size:15px}
.avg-help td{padding:3px 10px 3px 0;font-size:12px}
.avg-help kbd{font-family:${MONO_FAMILY};border:1px solid var(--avg-border);border-radius:3px;padding:0 5px;background:var(--avg-bg)}
.avg-info{margin-left:auto;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;min-width:0}
.avg-compact .avg-toolbar{flex-wrap:nowrap;gap:4px;padding:4px 6px}
.avg-compact .avg-search input{width:110px}
.avg-compact .avg-search .avg-count{min-width:0}
.avg-compact .avg-btn{padding:3px 6px}
.avg-compact .avg-panel{width:250px}
.avg-compact .avg-legend{display:none}
.avg-reach-summary{font-size:12px;color:var(--avg-text);padding:2px 8px}
.avg-reach-summary.avg-unavailable{font-style:italic;color:var(--avg-text2)}
.avg-warn{font-size:11px;color:var(--avg-removed);padding:2px 8px}
.avg-edge-hit{cursor:default}
.avg-node,.avg-group-head{cursor:pointer}
.avg-toggle{cursor:pointer}
.avg-preparing{padding:12px 14px;font-size:13px;opacity:.75}
`;

/** Install the graph view's stylesheet (once per document). */
export function installGraphCss(doc: Document): void {
  injectCss(doc, 'graph', CSS);
}

/** CSS custom properties of the chrome (toolbar, panels) for a palette. */
export function chromeVars(p: Palette): Record<string, string> {
  return {
    '--avg-bg': p.bg,
    '--avg-text': p.text,
    '--avg-text2': p.text2,
    '--avg-panel': p.dark ? '#353535' : '#fafafa',
    '--avg-border': p.dark ? '#4a4a4a' : '#dcdfe3',
    '--avg-btn': p.dark ? '#3a3a3a' : '#ffffff',
    '--avg-btn-hover': p.dark ? '#45484d' : '#eef1f4',
    '--avg-btn-on': p.dark ? '#4a3b28' : '#fff3e0',
    '--avg-accent': p.accent,
    '--avg-link': p.dark ? '#8ab4f8' : '#1a73e8',
    '--avg-removed': p.removed,
  };
}
