// Debian's Chromium (never a downloaded browser) driven by playwright-core; one browser context per user, and a
// small vocabulary of UI actions (type a name, click buttons) and DOM observations used by the tests.
import { chromium } from 'playwright-core';
import { existsSync } from 'node:fs';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  // Three fake cameras, so that switching the camera in a meeting can be tested: fake_device_0 (I420, the default),
  // fake_device_1 (Y16, a depth-camera format whose frames Chromium's video encoder does not take: a sender switched
  // to it encodes nothing) and fake_device_2 (MJPEG, like most USB webcams). The fake audio devices are three inputs
  // (default + 2) and three outputs already.
  '--use-fake-device-for-media-stream=device-count=3',
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

  /**
   * `slowDevicesMs`: getUserMedia resolves this much later (a camera / microphone that takes a while to open, as
   * real ones do) — the page's own getUserMedia, wrapped before any script runs. `micBusy`: audio getUserMedia fails
   * with NotReadableError ("in use by another application") until the page sets `window.__micBusy = false`.
   */
  static async open(browser, server, label, { device = DESKTOP, path = '/', slowDevicesMs = 0, micBusy = false } = {}) {
    const context = await browser.newContext({ ...device });
    if (slowDevicesMs || micBusy) {
      await context.addInitScript(({ slowDevicesMs, micBusy }) => {
        const md = navigator.mediaDevices;
        const real = md.getUserMedia.bind(md);
        window.__micBusy = micBusy;
        md.getUserMedia = async (constraints) => {
          if (slowDevicesMs) await new Promise((r) => setTimeout(r, slowDevicesMs));
          if (constraints?.audio && window.__micBusy) throw new DOMException('Could not start audio source', 'NotReadableError');
          return real(constraints);
        };
      }, { slowDevicesMs, micBusy });
    }
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
    return this.tile(name, source).locator('video').evaluate((v) => v.getVideoPlaybackQuality().totalVideoFrames, null, { timeout: 10_000 }); // generous: a loaded machine can take seconds to answer
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

  /** The inbound-rtp stats of what this page receives from `userId` (window.meetDebug.inbound(): getStats()). */
  inboundFrom(userId) {
    return inboundFrom(this.page, userId);
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

/** The receiving page's getStats() (inbound-rtp per consumer) for what comes from `userId` (camera and mic). */
export function inboundFrom(page, userId) {
  return page.evaluate(async (uid) => (await window.meetDebug.inbound()).filter((s) => s.userId === uid && s.source !== 'screen'), userId);
}

const sum = (list, kind, key) => list.filter((s) => s.kind === kind).reduce((n, s) => n + Number(s[key] ?? 0), 0);

/**
 * Proves from the receiver's getStats() that `senderUserId`'s camera and microphone arrive: video framesDecoded > 0
 * and rising, audio packetsReceived and bytesReceived rising, all within one window of `windowMs`. Windows are
 * sampled until one shows it or `timeoutMs` passes (a loaded machine may stall a decoder for a moment; media that
 * does not flow never passes). `audio` / `video`: false to skip one.
 */
export async function expectMediaFrom(receiver, senderUserId, { timeoutMs = 20_000, windowMs = 1000, audio = true, video = true, what = '' } = {}) {
  const label = what || `${receiver.label} receives ${senderUserId}`;
  const deadline = Date.now() + timeoutMs;
  let a = await inboundFrom(receiver.page, senderUserId);
  let report = '';
  for (;;) {
    await sleep(windowMs);
    const b = await inboundFrom(receiver.page, senderUserId);
    const grew = (kind, key) => sum(b, kind, key) > sum(a, kind, key);
    const videoOk = !video || (sum(b, 'video', 'framesDecoded') > 0 && grew('video', 'framesDecoded'));
    const audioOk = !audio || (grew('audio', 'packetsReceived') && grew('audio', 'bytesReceived'));
    if (videoOk && audioOk) return { before: a, after: b };
    report = `${video ? `video ${videoOk ? 'ok' : 'framesDecoded not rising'}` : ''} ${audio ? `audio ${audioOk ? 'ok' : 'packets/bytes not rising'}` : ''}: ${JSON.stringify(a)} → ${JSON.stringify(b)}`;
    if (Date.now() > deadline) throw new Error(`${label} (getStats, ${timeoutMs} ms): ${report}`);
    a = b;
  }
}

/** The texts of the page's toasts (notifications). */
export function toasts(page) {
  return page.evaluate(() => [...document.querySelectorAll('#toasts .toast')].map((t) => t.textContent));
}
