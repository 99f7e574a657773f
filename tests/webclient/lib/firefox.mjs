// Debian's firefox-esr (never a downloaded browser) driven by puppeteer-core over WebDriver BiDi, with fake
// camera / microphone (../shared/DESIGN.md §5, beside the repository). A FirefoxUser offers the few UI actions and observations the
// cross-browser test needs, with the same shape as a Chromium User where the harness relies on it (label, page,
// diagnostics(), close()).
import puppeteer from 'puppeteer-core';
import { existsSync } from 'node:fs';
import { until } from './browser.mjs';

export const FIREFOX = process.env.FIREFOX_BIN || '/usr/bin/firefox-esr';

export const FIREFOX_PREFS = {
  // Fake devices without a permission prompt. `permission.fake` also makes Firefox gather loopback candidates.
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  'media.navigator.permission.fake': true,
  'media.peerconnection.ice.loopback': true,
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  // Remote audio plays without a user gesture (as Chromium's --autoplay-policy=no-user-gesture-required).
  'media.autoplay.default': 0,
  'media.autoplay.blocking_policy': 0,
};

export async function launchFirefox() {
  if (!existsSync(FIREFOX)) {
    throw new Error(`${FIREFOX} not found: run tests/webclient/setup.sh (installs Debian's firefox-esr package)`);
  }
  return puppeteer.launch({ browser: 'firefox', executablePath: FIREFOX, headless: true, extraPrefsFirefox: FIREFOX_PREFS });
}

export class FirefoxUser {
  constructor(label, browser, page) {
    this.label = label;
    this.browser = browser;
    this.page = page;
    this.console = [];
  }

  /** A private window (own cookies and storage) on `path` of the server, lobby shown. */
  static async open(browser, server, label, { path = '/' } = {}) {
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    const u = new FirefoxUser(label, browser, page);
    u.context = context;
    const t0 = Date.now();
    const stamp = () => `+${((Date.now() - t0) / 1000).toFixed(2)}s`;
    page.on('console', (m) => u.console.push(`${stamp()} [${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => u.console.push(`${stamp()} [pageerror] ${e.stack || e.message}`));
    await page.setViewport({ width: 1280, height: 800 });
    await page.goto(new URL(path, server.url).toString());
    await page.waitForSelector('#lobby', { visible: true });
    return u;
  }

  async fillName(name) {
    await this.page.$eval('#name-input', (el, v) => {
      el.value = v;
      el.dispatchEvent(new Event('input', { bubbles: true }));
    }, name);
  }

  async inMeeting() {
    await this.page.waitForSelector('#meeting', { visible: true, timeout: 20_000 });
    await until(() => this.page.evaluate(() => window.meetDebug?.state().state === 'joined'), { what: `${this.label} joined` });
    this.you = await this.page.evaluate(() => window.meetDebug.state().you);
  }

  state() {
    return this.page.evaluate(() => window.meetDebug?.state());
  }

  /**
   * Frames shown by `name`'s camera tile, or -1. Firefox 153's getVideoPlaybackQuality().totalVideoFrames stays 0
   * for a MediaStream <video>, so its painted-frame counter (mozPaintedFrames) is read instead.
   */
  frames(name) {
    return this.page.evaluate((n) => {
      for (const tile of document.querySelectorAll('#stage .tile[data-source="camera"]')) {
        if (tile.querySelector('.tile-name')?.textContent.includes(n)) {
          const v = tile.querySelector('video');
          return v ? v.getVideoPlaybackQuality().totalVideoFrames || v.mozPaintedFrames || 0 : -1;
        }
      }
      return -1;
    }, name);
  }

  async screenshot(file) {
    await this.page.screenshot({ path: file });
  }

  async diagnostics(lines = 50) {
    let extra = '';
    try {
      const st = await this.state();
      const toasts = await this.page.evaluate(() => [...document.querySelectorAll('#toasts .toast')].map((t) => t.textContent));
      extra = `\n  state: ${JSON.stringify(st)}\n  toasts: ${JSON.stringify(toasts)}`;
    } catch (err) {
      extra = `\n  (page state unavailable: ${err.message.split('\n')[0]})`;
    }
    const cons = this.console.slice(-lines);
    return `--- ${this.label} (firefox) console, last ${cons.length} lines ---\n  ${cons.join('\n  ') || '(empty)'}${extra}`;
  }

  async close() {
    await this.context?.close().catch(() => {});
  }
}
