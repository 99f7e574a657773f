// Debian's Chromium (never a downloaded browser) driven by playwright-core; one browser context per user, and a
// small vocabulary of UI actions (type a name, click buttons) and DOM observations used by the tests.
import { chromium } from 'playwright-core';
import { existsSync } from 'node:fs';

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

export const DESKTOP = { viewport: { width: 1280, height: 800 } };
export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value; throws with `what` (and the last value) after `timeoutMs`. */
export async function until(fn, { timeoutMs = 15_000, intervalMs = 200, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = `error: ${e.message.split('\n')[0]}`;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(last)}`);
    await sleep(intervalMs);
  }
}

export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: run tests/webclient/setup.sh (installs Debian's chromium package)`);
  }
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/** One person using the web client in their own browser context. */
export class User {
  constructor(label, context, page) {
    this.label = label;
    this.context = context;
    this.page = page;
    this.console = [];
  }

  static async open(browser, server, label, { device = DESKTOP, path = '/' } = {}) {
    const context = await browser.newContext({ ...device });
    const page = await context.newPage();
    const u = new User(label, context, page);
    const t0 = Date.now();
    const stamp = () => `+${((Date.now() - t0) / 1000).toFixed(2)}s`;
    page.on('console', (m) => u.console.push(`${stamp()} [${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => u.console.push(`${stamp()} [pageerror] ${e.stack || e.message}`));
    page.on('crash', () => u.console.push(`${stamp()} [crash] page crashed`));
    await page.goto(new URL(path, server.url).toString());
    await page.locator('#lobby').waitFor({ state: 'visible' });
    return u;
  }

  // ---- lobby ----

  async fillName(name) {
    await this.page.fill('#name-input', name);
  }

  async inMeeting() {
    await this.page.locator('#meeting').waitFor({ state: 'visible', timeout: 20_000 });
    await until(() => this.page.evaluate(() => window.meetDebug?.state().state === 'joined'), { what: `${this.label} joined` });
    this.you = await this.page.evaluate(() => window.meetDebug.state().you);
  }

  /** Types a name, opens the meeting options, and clicks "New meeting". */
  async createMeeting(name, { allowRecording = false, title } = {}) {
    await this.fillName(name);
    await this.page.click('.options summary');
    if (title) await this.page.fill('#title-input', title);
    if (allowRecording) await this.page.check('#allow-recording');
    await this.page.click('#create-btn');
    await this.inMeeting();
    return new URL(this.page.url()).searchParams.get('m');
  }

  /** Types a name (the meeting comes from the link), optionally turns camera / mic off in the preview, joins. */
  async joinMeeting(name, { camOff = false, micOff = false, meetingId } = {}) {
    await this.fillName(name);
    if (meetingId) await this.page.fill('#meeting-input', meetingId);
    await this.page.locator('#preview-frame[data-camera="on"]').waitFor({ timeout: 10_000 });
    if (camOff) await this.page.click('#preview-cam');
    if (micOff) await this.page.click('#preview-mic');
    await this.page.click('#join-btn');
    await this.inMeeting();
  }

  // ---- meeting view ----

  tile(name, source = 'camera') {
    return this.page.locator(`#stage .tile[data-source="${source}"]`).filter({ has: this.page.locator('.tile-name', { hasText: name }) });
  }

  /** Decoded frames of the tile's <video> (getVideoPlaybackQuality().totalVideoFrames). */
  async frames(name, source = 'camera') {
    return this.tile(name, source).locator('video').evaluate((v) => v.getVideoPlaybackQuality().totalVideoFrames, null, { timeout: 2000 });
  }

  /** Waits until `name`'s tile shows video whose decoded frame count keeps rising. */
  async expectVideo(name, source = 'camera', { timeoutMs = 25_000 } = {}) {
    const tile = this.tile(name, source);
    await tile.waitFor({ timeout: timeoutMs });
    await until(async () => (await tile.getAttribute('data-cam')) === 'on' && (await this.frames(name, source)) > 0, {
      timeoutMs,
      what: `${this.label}: first decoded frame of ${name}'s ${source}`,
    });
    // A shared screen is sent at a low, content-driven frame rate (contentHint 'detail'): sample it longer.
    const [windowMs, minFrames] = source === 'screen' ? [2500, 2] : [1000, 3];
    const a = await this.frames(name, source);
    await sleep(windowMs);
    const b = await this.frames(name, source);
    if (!(b - a >= minFrames)) throw new Error(`${this.label}: ${name}'s ${source} video is not playing (frames ${a} → ${b} over ${windowMs} ms)`);
    return b - a;
  }

  async openPanel(which) {
    const tab = which === 'chat' ? '#chat-panel' : '#people-panel';
    if (await this.page.locator(tab).isVisible()) return;
    await this.page.click(which === 'chat' ? '#btn-chat' : '#btn-people');
    await this.page.locator(tab).waitFor({ state: 'visible' });
  }

  async closePanel() {
    if (await this.page.locator('#side-panel').isVisible()) await this.page.click('#panel-close');
  }

  /** Sends a chat message to `to` (the recipient picker's label: 'Everyone', 'Hosts and moderators', 'Bob (private)'). */
  async sendChat(text, to = 'Everyone') {
    await this.openPanel('chat');
    await this.page.selectOption('#chat-to', { label: to });
    await this.page.fill('#chat-input', text);
    await this.page.press('#chat-input', 'Enter');
    await this.chatMessage(text).waitFor({ timeout: 10_000 });
  }

  chatMessage(text) {
    return this.page.locator('#chat-list .msg', { hasText: text });
  }

  person(name) {
    return this.page.locator('#people-list .person').filter({ has: this.page.locator('.person-name', { hasText: name }) });
  }

  events(name) {
    return this.page.evaluate((n) => window.meetDebug?.events(n) ?? [], name);
  }

  state() {
    return this.page.evaluate(() => window.meetDebug?.state());
  }

  async screenshot(file) {
    await this.page.screenshot({ path: file, timeout: 10_000 });
  }

  async diagnostics(lines = 50) {
    let extra = '';
    try {
      const st = await this.page.evaluate(() => {
        const d = window.meetDebug;
        if (!d) return null;
        const s = d.state();
        return { ...s, people: s.people.map((p) => ({ name: p.userName, pid: p.participantId, role: p.role, hand: p.handRaised, producers: p.producers })) };
      });
      const ev = await this.page.evaluate(() => (window.meetDebug?.events() ?? []).slice(-30).map((e) => `${e.t} ${e.event} ${JSON.stringify(e.data).slice(0, 240)}`));
      const toasts = await this.page.locator('#toasts .toast').allInnerTexts().catch(() => []);
      extra = `\n  state: ${JSON.stringify(st)}\n  toasts: ${JSON.stringify(toasts)}\n  last events:\n    ${ev.join('\n    ')}`;
    } catch (err) {
      extra = `\n  (page state unavailable: ${err.message.split('\n')[0]})`;
    }
    const cons = this.console.slice(-lines);
    return `--- ${this.label} console, last ${cons.length} lines ---\n  ${cons.join('\n  ') || '(empty)'}${extra}`;
  }

  async close() {
    await this.context.close().catch(() => {});
  }
}
