// Bundles the widget into ONE classic script (IIFE) that pages embed with a <script> tag.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

const outfile = fileURLToPath(new URL('../tokens/static/widget.js', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));

await build({
  entryPoints: [fileURLToPath(new URL('./src/index.ts', import.meta.url))],
  outfile,
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: ['es2020', 'chrome90', 'firefox90', 'safari15'],
  minify: true,
  sourcemap: false,
  legalComments: 'eof',
  define: { __WIDGET_VERSION__: JSON.stringify(pkg.version) },
  logLevel: 'warning',
});

const bytes = readFileSync(outfile);
console.log(`built ${outfile}: ${bytes.length} bytes, ${gzipSync(bytes).length} bytes gzip`);
