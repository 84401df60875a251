// The one place that puts CSS into the page. TensorBoard's CSP for plugin_entry.html has
// style-src 'self' 'unsafe-inline' (verified in tensorboard/backend/http_util.py), so a <style>
// element works; each sheet is installed once per document, under its own id.

/** Install `css` into `doc` once, as <style id="archviz-css-{id}">; later calls with the same id
 *  do nothing. Every view's stylesheet goes through here (the shell's, the graph's, the layered
 *  view's, the filters view's, ...). */
export function injectCss(doc: Document, id: string, css: string): void {
  const elId = 'archviz-css-' + id;
  if (doc.getElementById(elId)) return;
  const style = doc.createElement('style');
  style.id = elId;
  style.dataset.owner = id;
  style.textContent = css;
  (doc.head || doc.documentElement).appendChild(style);
}
