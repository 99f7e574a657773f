// One server and one Chromium per test file; each scenario opens its participants (one browser context each),
// saves a screenshot of every page into tests/browser/artifacts/, and on failure appends the server's last log
// lines and every page's console log (plus its socket events and transport state) to the error.
import { before, after, test } from 'node:test';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ensureBuilt, BROWSER_DIR } from '../build.mjs';
import { Server } from './server.mjs';
import { launchBrowser, Participant } from './browser.mjs';

export const ARTIFACTS = path.join(BROWSER_DIR, 'artifacts');

/** `env`: extra MEET_* settings for this file's server. */
export function useHarness({ env: serverEnv = {} } = {}) {
  const env = { server: null, browser: null };
  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    await ensureBuilt();
    env.server = await new Server(serverEnv).start();
    env.browser = await launchBrowser();
  });
  after(async () => {
    await env.browser?.close().catch(() => {});
    await env.server?.stop();
  });

  /** test(name) with participants: fn({open, server}, t); `open(name)` loads the page for a new participant. */
  function scenario(name, fn, { timeout = 120_000 } = {}) {
    test(name, { timeout }, async (t) => {
      if (env.server.exit) { // a crash in an earlier test must not fail every later one
        env.server = await new Server(serverEnv).start();
      }
      const participants = [];
      const open = async (pname) => {
        const p = await Participant.open(env.browser, env.server, pname);
        participants.push(p);
        return p;
      };
      const slug = name.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60).toLowerCase();
      try {
        await fn({ open, server: env.server, participants }, t);
      } catch (err) {
        const pages = [];
        for (const p of participants) pages.push(await p.diagnostics());
        const diag = `\n===== diagnostics =====\n--- ${env.server.tail(40)}\n${pages.join('\n')}\n===== end diagnostics =====`;
        if (err instanceof Error) {
          err.message += diag;
          throw err;
        }
        throw new Error(String(err) + diag);
      } finally {
        for (const p of participants) {
          await p.page.screenshot({ path: path.join(ARTIFACTS, `${slug}--${p.name}.png`), timeout: 10_000 }).catch(() => {});
          await p.close();
        }
      }
    });
  }
  return { scenario, env };
}
