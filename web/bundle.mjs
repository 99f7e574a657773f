// Bundles src/main.ts (with socket.io-client and mediasoup-client) into dist/main.js and copies index.html and
// styles.css next to it. `npm run build` runs the type check (tsc --noEmit) first.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(root, 'dist');
const dev = process.env.NODE_ENV === 'development';

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
await build({
  entryPoints: [path.join(root, 'src', 'main.ts')],
  bundle: true,
  format: 'esm',
  target: ['chrome100', 'firefox100', 'safari15'],
  minify: !dev,
  sourcemap: true,
  legalComments: 'linked',
  define: { 'process.env.NODE_ENV': JSON.stringify(dev ? 'development' : 'production') },
  outfile: path.join(dist, 'main.js'),
  logLevel: 'warning',
});
for (const f of ['index.html', 'styles.css']) copyFileSync(path.join(root, f), path.join(dist, f));
console.log(`web client built into ${path.relative(process.cwd(), dist) || dist}`);
