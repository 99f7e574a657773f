// Clear diagnostics (issue 13 item 5): when the browser cannot reach the media server at all, the web client tells
// the person "Your network blocks the media connection" with the reason, instead of showing black tiles. Here the
// server announces an address nobody can reach (MEET_MEDIA__ANNOUNCED_IP=192.0.2.1, TEST-NET-1), so neither the
// UDP nor the TCP candidate ever answers.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { useHarness } from './lib/harness.mjs';
import { DESKTOP, until } from './lib/browser.mjs';

const { open, step } = useHarness({ serverEnv: { MEET_MEDIA__ANNOUNCED_IP: '192.0.2.1' } });

step('a network that blocks media: the banner says so and why', async (t) => {
  const ann = await open('ann', { device: DESKTOP, path: `/?m=meeting_blocked_${randomBytes(4).toString('hex')}` });
  await ann.joinMeeting('Ann');
  const banner = ann.page.locator('#banner');
  await banner.filter({ hasText: 'Your network blocks the media connection' }).waitFor({ timeout: 30_000 });
  const text = await banner.innerText();
  t.diagnostic(text);
  assert.match(text, /could not be reached over UDP and TCP/);
  assert.equal((await ann.state()).transports.send === 'connected', false);
  await until(async () => (await ann.state()).mediaBlocked === text, { what: 'mediaBlocked in the client state' });
}, { timeout: 60_000 });
