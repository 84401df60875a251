// Bundles the dashboard into ../tensorboard_archviz/static/ (no CDN: every library is bundled).
// Entry points: src/index.ts -> index.js (ES module exporting render()),
//               src/graph/layout_worker.ts -> layout_worker.js (graph layout off the main thread).
import * as esbuild from 'esbuild';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import fs from 'node:fs';

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.join(here, '..', 'tensorboard_archviz', 'static');
fs.mkdirSync(outdir, { recursive: true });

const common = {
  bundle: true,
  minify: process.env.ARCHVIZ_DEV ? false : true,
  sourcemap: false,
  target: ['es2020'],
  logLevel: 'warning',
  legalComments: 'none',
};

await esbuild.build({
  ...common,
  entryPoints: [path.join(here, 'src', 'index.ts')],
  outfile: path.join(outdir, 'index.js'),
  format: 'esm',
});
const worker = path.join(here, 'src', 'graph', 'layout_worker.ts');
if (fs.existsSync(worker)) {
  await esbuild.build({
    ...common,
    entryPoints: [worker],
    outfile: path.join(outdir, 'layout_worker.js'),
    format: 'iife',
  });
}
console.log('built dashboard into', outdir);
