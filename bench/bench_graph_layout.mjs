// Layout libraries on real architectures: elkjs (layered) vs dagre vs the graph view's layout
// (dagre per chain-compressed chunk, per container scope, identical scopes laid out once).
//
//   node bench/bench_graph_layout.mjs ARCH.json [ARCH.json ...]
//
// ARCH.json files are Architecture JSON documents (bench_graph_render.py writes them to bench/out/).
// Every figure is one fresh Node process (cold: no JIT warm-up, like a page that lays out once),
// plus the median of 3 warm repeats in that process (the view's chunk cache cleared before each).
// Boxes are 170x70 for every library.
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import fs from 'node:fs';

const here = path.dirname(fileURLToPath(import.meta.url));
const frontend = path.join(here, '..', 'frontend');
const outDir = path.join(here, 'out');
const bundle = path.join(outDir, '.layout_bench_bundle.mjs');

async function ensureBundle() {
  fs.mkdirSync(outDir, { recursive: true });
  const esbuild = await import(pathToFileURL(path.join(frontend, 'node_modules', 'esbuild', 'lib', 'main.js')).href);
  const src = path.join(frontend, 'src', 'graph');
  await esbuild.build({
    stdin: {
      contents: `
        export { GraphModel } from ${JSON.stringify(path.join(src, 'model.ts'))};
        export { buildJob } from ${JSON.stringify(path.join(src, 'geometry.ts'))};
        export { runLayoutJob, layoutScope, clearLayoutCache } from ${JSON.stringify(path.join(src, 'layout.ts'))};
        export { default as dagre } from '@dagrejs/dagre';
        export { default as ELK } from 'elkjs/lib/elk.bundled.js';`,
      resolveDir: frontend, loader: 'ts',
    },
    bundle: true, platform: 'node', format: 'esm', outfile: bundle, logLevel: 'warning',
    nodePaths: [path.join(frontend, 'node_modules')],
  });
}

const W = 170; const H = 70;

/** Leaves (non-containers) and the edges between them: the flat graph every library gets. */
function flat(arch) {
  const parents = new Set(arch.nodes.map((n) => n.parent).filter((p) => p != null));
  const leaves = arch.nodes.filter((n) => !parents.has(n.id));
  const idx = new Map(leaves.map((n, i) => [n.id, i]));
  const edges = [];
  const seen = new Set();
  for (const e of arch.edges) {
    const a = idx.get(e.source); const b = idx.get(e.target);
    if (a === undefined || b === undefined || a === b || seen.has(a + '>' + b)) continue;
    seen.add(a + '>' + b);
    edges.push(a, b);
  }
  return { n: leaves.length, edges };
}

async function measure(lib, file) {
  const m = await import(pathToFileURL(bundle).href);
  const arch = JSON.parse(fs.readFileSync(file, 'utf8'));
  const g = flat(arch);
  const run = async () => {
    m.clearLayoutCache();   // warm = compiled code, not remembered layouts
    const t = performance.now();
    if (lib === 'dagre') {
      const gr = new m.dagre.graphlib.Graph({ multigraph: true });
      gr.setGraph({ rankdir: 'TB', nodesep: 22, ranksep: 34 });
      for (let i = 0; i < g.n; i++) gr.setNode(String(i), { width: W, height: H });
      for (let k = 0; k < g.edges.length; k += 2) gr.setEdge(String(g.edges[k]), String(g.edges[k + 1]), {}, 'e' + k);
      m.dagre.layout(gr);
    } else if (lib === 'elk') {
      const elk = new m.ELK();
      await elk.layout({
        id: 'root', layoutOptions: { 'elk.algorithm': 'layered', 'elk.direction': 'DOWN' },
        children: Array.from({ length: g.n }, (_, i) => ({ id: 'n' + i, width: W, height: H })),
        edges: Array.from({ length: g.edges.length / 2 }, (_, k) => ({ id: 'e' + k, sources: ['n' + g.edges[2 * k]], targets: ['n' + g.edges[2 * k + 1]] })),
      });
    } else if (lib === 'view-flat') {
      // the view's layout of the same flat graph (chains merged, cut at separators)
      const n = g.n;
      m.layoutScope({ key: 'k', n, w: [], h: [], childKey: [], edges: g.edges, hasIn: false, hasOut: false, minW: [] },
        new Array(n).fill(W), new Array(n).fill(H), 'TB', { node: 22, rank: 34, edge: 12 });
    } else if (lib === 'view-default' || lib === 'view-expanded') {
      // the view's hierarchical layout: containers collapsed as on first display, or all expanded
      const model = new m.GraphModel(arch);
      const exp = lib === 'view-default' ? model.defaultExpanded()
        : new Set(model.list.filter((x) => x.isGroup).map((x) => x.id));
      const vis = model.visible(exp);
      const { job } = m.buildJob(vis, 'TB', { box: () => ({ w: W, h: H }), groupMinW: () => 200 }, new Map(), 1);
      m.runLayoutJob(job);
      return { ms: performance.now() - t, scopes: job.scopes.length, visible: vis.items.length };
    }
    return { ms: performance.now() - t };
  };
  const first = await run();
  const warm = [];
  for (let i = 0; i < 3; i++) warm.push((await run()).ms);
  warm.sort((a, b) => a - b);
  return { lib, file: path.basename(file), nodes: g.n, edges: g.edges.length / 2, cold_ms: first.ms, warm_ms: warm[1], ...first, ms: undefined };
}

async function main() {
  const args = process.argv.slice(2);
  if (args[0] === '--one') {
    console.log(JSON.stringify(await measure(args[1], args[2])));
    return;
  }
  if (!args.length) { console.error('usage: node bench/bench_graph_layout.mjs ARCH.json [...]'); process.exit(2); }
  await ensureBundle();
  const rows = [];
  for (const file of args) {
    for (const lib of ['dagre', 'elk', 'view-flat', 'view-default', 'view-expanded']) {
      const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--one', lib, file], { encoding: 'utf8', timeout: 120000 });
      if (r.status !== 0) {
        const why = r.error && r.error.code === 'ETIMEDOUT' ? 'did not finish in 120 s' : (r.stderr || String(r.error)).slice(0, 200);
        rows.push({ lib, file: path.basename(file), error: why });
        console.log(`${path.basename(file).padEnd(24)} ${lib.padEnd(14)} ${why}`);
        continue;
      }
      rows.push(JSON.parse(r.stdout.trim().split('\n').pop()));
      const x = rows[rows.length - 1];
      console.log(`${x.file.padEnd(24)} ${x.lib.padEnd(14)} nodes ${String(x.nodes).padStart(5)} edges ${String(x.edges).padStart(5)}`
        + `  cold ${x.cold_ms.toFixed(0).padStart(6)} ms  warm ${x.warm_ms.toFixed(0).padStart(6)} ms`
        + (x.scopes !== undefined ? `  (${x.visible} boxes visible, ${x.scopes} distinct scopes laid out)` : ''));
    }
  }
  fs.writeFileSync(path.join(outDir, 'layout_libs.json'), JSON.stringify(rows, null, 1));
}

main().catch((e) => { console.error(e); process.exit(1); });
