// Bundles the test page (page/index.html + page/client.js with the official socket.io-client and mediasoup-client)
// into dist/, which the server serves at `/` (MEET_WEB__DIR). Run by setup.sh; the test harness calls
// ensureBuilt() so a stale dist/ is rebuilt before a run.
import { build as esbuild } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync, statSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BROWSER_DIR = path.dirname(fileURLToPath(import.meta.url));
export const PAGE_DIR = path.join(BROWSER_DIR, 'page');
export const DIST_DIR = path.join(BROWSER_DIR, 'dist');

export async function build({ quiet = false } = {}) {
  mkdirSync(DIST_DIR, { recursive: true });
  await esbuild({
    entryPoints: [path.join(PAGE_DIR, 'client.js')],
    bundle: true,
    format: 'esm',
    target: 'chrome120',
    sourcemap: 'inline', // stack traces in the page console point at page/client.js and the packages' sources
    outfile: path.join(DIST_DIR, 'client.js'),
    logLevel: quiet ? 'error' : 'info',
  });
  copyFileSync(path.join(PAGE_DIR, 'index.html'), path.join(DIST_DIR, 'index.html'));
}

function newestMtime(dir) {
  let newest = 0;
  for (const name of readdirSync(dir)) newest = Math.max(newest, statSync(path.join(dir, name)).mtimeMs);
  return newest;
}

/** Rebuild dist/ when it is missing or older than page/ or the installed packages. */
export async function ensureBuilt() {
  const out = path.join(DIST_DIR, 'client.js');
  const lock = path.join(BROWSER_DIR, 'node_modules', '.package-lock.json');
  const inputs = Math.max(newestMtime(PAGE_DIR), existsSync(lock) ? statSync(lock).mtimeMs : 0);
  if (!existsSync(out) || !existsSync(path.join(DIST_DIR, 'index.html')) || statSync(out).mtimeMs < inputs) {
    await build({ quiet: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await build({ quiet: process.argv.includes('--quiet') });
}
