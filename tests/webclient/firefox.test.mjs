// A Chromium user and a Firefox user (Debian's firefox-esr via puppeteer-core over WebDriver BiDi;
// mediasoup-client picks its Firefox handler itself) meet through the web client's UI: each one's camera and
// microphone reach the other — decoded frames rising in the tile's <video>, and the receiving browser's getStats():
// inbound video framesDecoded, audio packets and bytes rising (Chromium, which plays the audio, also measures energy).
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { useHarness } from './lib/harness.mjs';
import { expectMediaFrom, inboundFrom, until } from './lib/browser.mjs';
import { FirefoxUser, launchFirefox } from './lib/firefox.mjs';

const { env, open, step } = useHarness();
const s = {};
after(async () => {
  await s.firefox?.close().catch(() => {});
});

step('a Chromium user starts a meeting; a Firefox user joins it by its link at once', async () => {
  s.chrome = await open('chromium');
  await s.chrome.createMeeting('Chromium Chris');
  const meetingId = new URL(s.chrome.page.url()).searchParams.get('m');
  s.firefox = await launchFirefox();
  s.fox = await FirefoxUser.open(s.firefox, env.server, 'firefox', { path: `/?m=${meetingId}` });
  env.users.push(s.fox);
  await s.fox.fillName('Firefox Fiona');
  await s.fox.page.click('#join-btn');
  await s.fox.inMeeting();
  const ua = await s.fox.page.evaluate(() => navigator.userAgent);
  assert.match(ua, /Firefox\//);
  await until(async () => (await s.fox.state()).producers.map((p) => p.source).sort().join() === 'camera,mic', { what: 'Firefox produces camera and mic' });
}, { timeout: 90_000 });

step('Chromium sees and hears Firefox', async () => {
  await s.chrome.expectVideo('Firefox Fiona');
  await expectMediaFrom(s.chrome, s.fox.you.userId, { what: 'Chromium receives Firefox' });
  // Chromium plays the audio: its received energy rises too (the fake microphone's tone).
  const energy = async () => (await inboundFrom(s.chrome.page, s.fox.you.userId)).filter((x) => x.kind === 'audio').reduce((n, x) => n + (x.totalAudioEnergy ?? 0), 0);
  let e0 = await energy();
  await until(async () => {
    const e1 = await energy();
    const ok = e1 > e0;
    e0 = e1;
    return ok;
  }, { timeoutMs: 10_000, intervalMs: 1000, what: 'audio energy from Firefox rising on Chromium' });
});

step('Firefox sees and hears Chromium', async () => {
  // The tile's <video> on Firefox shows Chris: its painted frame count rises.
  let last = await s.fox.frames('Chromium Chris');
  await until(async () => {
    const now = await s.fox.frames('Chromium Chris');
    const ok = last > 0 && now > last;
    last = now;
    return ok;
  }, { timeoutMs: 20_000, intervalMs: 1000, what: "Firefox: Chris's tile video playing (frames rising)" });
  await expectMediaFrom(s.fox, s.chrome.you.userId, { what: 'Firefox receives Chromium' });
  // The remote audio is played by an <audio> element that is not paused.
  const playing = await s.fox.page.evaluate(() => [...document.querySelectorAll('#audio-sink audio')].map((a) => !a.paused));
  assert.ok(playing.length >= 1 && playing.every(Boolean), `audio playing on Firefox: ${JSON.stringify(playing)}`);
  // Neither side's send watchdog saw a problem (Firefox's getStats feeds it as Chromium's does).
  for (const u of [s.chrome, s.fox]) {
    assert.equal(await u.page.evaluate(() => document.querySelector('#media-alert').hidden && document.body.dataset.sending !== 'failed'), true, `${u.label}: no media alert`);
  }
});
