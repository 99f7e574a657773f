// One server and one Chromium per test file. `open(label, opts)` gives a User (own browser context) on the
// served client; a failing step screenshots every page into artifacts/failures/, and its error
// carries the server's last log lines and each page's console, client state and last socket events.
import { before, after, test } from 'node:test';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Server, TESTS_DIR } from './server.mjs';
import { launchBrowser, User } from './browser.mjs';

export const ARTIFACTS = path.join(TESTS_DIR, 'artifacts');

export function useHarness({ serverEnv = {} } = {}) {
  const env = { server: null, browser: null, users: [] };
  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    env.server = await new Server(serverEnv).start();
    env.browser = await launchBrowser();
  });
  after(async () => {
    for (const u of env.users) await u.close();
    await env.browser?.close().catch(() => {});
    await env.server?.stop();
  });

  const open = async (label, opts) => {
    const u = await User.open(env.browser, env.server, label, opts);
    env.users.push(u);
    return u;
  };

  /** A test step; the users stay open across steps of one file (one meeting story). */
  function step(name, fn, { timeout = 60_000 } = {}) {
    test(name, { timeout }, async (t) => {
      let failed = false;
      try {
        await fn(t);
      } catch (err) {
        failed = true;
        const pages = [];
        for (const u of env.users) pages.push(await u.diagnostics());
        const diag = `\n===== diagnostics =====\n--- ${env.server.tail(30)}\n${pages.join('\n')}\n===== end diagnostics =====`;
        if (err instanceof Error) {
          err.message += diag;
          throw err;
        }
        throw new Error(String(err) + diag);
      } finally {
        if (failed) mkdirSync(path.join(ARTIFACTS, 'failures'), { recursive: true });
        const slug = name.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 50).toLowerCase();
        for (const u of failed ? env.users : []) {
          if (!u.page.isClosed()) await u.page.screenshot({ path: path.join(ARTIFACTS, `failures/${slug}--${u.label}.png`), timeout: 10_000 }).catch(() => {});
        }
      }
    });
  }

  return { env, open, step, artifact: (f) => path.join(ARTIFACTS, f) };
}
