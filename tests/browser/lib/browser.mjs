// Debian's Chromium (never a downloaded browser) driven by playwright-core; one browser context per participant.
import { chromium } from 'playwright-core';
import { existsSync } from 'node:fs';
import { mintToken, makeUser } from './tokens.mjs';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: run tests/browser/setup.sh (installs Debian's chromium package)`);
  }
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/** One meeting participant: its own browser context and page, driving window.meeting (page/client.js). */
export class Participant {
  constructor(name, user, context, page) {
    this.name = name;
    this.user = user;
    this.context = context;
    this.page = page;
    this.console = []; // the page's console lines and errors
    this.you = null; // {participantId, userId, role} after join
  }

  static async open(browser, server, name) {
    const user = makeUser(name);
    const context = await browser.newContext({ viewport: { width: 1100, height: 500 } });
    const page = await context.newPage();
    const p = new Participant(name, user, context, page);
    p.token = mintToken(server.secret, user);
    const t0 = Date.now();
    const stamp = () => `+${((Date.now() - t0) / 1000).toFixed(2)}s`;
    page.on('console', (m) => p.console.push(`${stamp()} [${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => p.console.push(`${stamp()} [pageerror] ${e.stack || e.message}`));
    page.on('crash', () => p.console.push(`${stamp()} [crash] page crashed`));
    await page.goto(`${server.url}/index.html`);
    await page.waitForFunction(() => window.meeting !== undefined, null, { timeout: 15_000 });
    return p;
  }

  get userId() { return this.user.userId; }

  eval(fn, arg) { return this.page.evaluate(fn, arg); }

  async join(meetingId) {
    const r = await this.eval(([token, id]) => window.meeting.join(token, id), [this.token, meetingId]);
    this.you = r.you;
    return r;
  }
  /** After socket.io-client reconnected on its own (to another node): join again on the new connection. */
  rejoinAfterReconnect(timeoutMs = 30000) {
    return this.eval((ms) => window.meeting.rejoinAfterReconnect({ timeoutMs: ms }), timeoutMs);
  }
  startMedia(opts = { audio: true, video: true }) { return this.eval((o) => window.meeting.startMedia(o), opts); }
  stats() { return this.eval(() => window.meeting.stats()); }
  sendStats() { return this.eval(() => window.meeting.sendStats()); }
  selectedPath(which = 'recv') { return this.eval((w) => window.meeting.selectedPath(w), which); }
  consumerIds() { return this.eval(() => window.meeting.consumerIds()); }
  pauseConsumer(id) { return this.eval((i) => window.meeting.pauseConsumer(i), id); }
  resumeConsumer(id) { return this.eval((i) => window.meeting.resumeConsumer(i), id); }
  mute(targetUserId, muteType = 'audio') { return this.eval(([u, k]) => window.meeting.mute(u, k), [targetUserId, muteType]); }
  leave() { return this.eval(() => window.meeting.leave()); }
  events(name) { return this.eval((n) => window.meeting.events(n), name ?? null); }
  info() { return this.eval(() => window.meeting.info()); }

  async diagnostics(lines = 60) {
    let extra = '';
    try {
      const info = await this.eval(() => window.meeting.info());
      const events = await this.eval(() => window.meeting.events().map((e) => `${e.t} ${e.event} ${JSON.stringify(e.data).slice(0, 300)}`));
      extra = `\n  state: ${JSON.stringify(info)}\n  last socket events:\n    ${events.slice(-25).join('\n    ')}`;
    } catch (err) {
      extra = `\n  (page state unavailable: ${err.message.split('\n')[0]})`;
    }
    const cons = this.console.slice(-lines);
    return `--- page ${this.name} (${this.userId}) console, last ${cons.length} lines ---\n  ${cons.join('\n  ') || '(empty)'}${extra}`;
  }

  async close() {
    await this.context.close().catch(() => {});
  }
}
