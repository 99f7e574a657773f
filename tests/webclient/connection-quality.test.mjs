// Connection quality on tiles in the bundled web client: the server measures each participant's link and sends
// `connection-quality`; the client shows bars on that person's tile while it is poor or lost. The server's debug
// hook (MEET_MEDIA__DEBUG_HOOKS) drops everything to and from Ben's receiving transport for 8 s.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { useHarness } from './lib/harness.mjs';
import { DESKTOP, until } from './lib/browser.mjs';

const DROP_MS = 8000;
const { env, open, step } = useHarness({ serverEnv: { MEET_MEDIA__DEBUG_HOOKS: 'true' } });
const s = { meetingId: `meeting_cq_${randomBytes(4).toString('hex')}` };

const bensTile = () => s.ann.page.locator('#stage .tile[data-local="false"][data-source="camera"]');

step('two people in a meeting see each other', async () => {
  s.ann = await open('ann', { device: DESKTOP, path: `/?m=${s.meetingId}` });
  await s.ann.joinMeeting('Ann');
  s.ben = await open('ben', { device: DESKTOP, path: `/?m=${s.meetingId}` });
  await s.ben.joinMeeting('Ben', { micOff: true });
  await s.ben.expectVideo('Ann');
}, { timeout: 90_000 });

step("Ben's outage shows on his tile at Ann's, and goes away", async (t) => {
  const { transportIds } = await s.ben.state();
  const res = await fetch(`${env.server.url}/debug/media/drop`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ meetingId: s.meetingId, transportId: transportIds.recv, ms: DROP_MS }),
  });
  assert.equal(res.status, 200, await res.text());
  const dropped = Date.now();
  await until(async () => ['poor', 'lost'].includes(await bensTile().getAttribute('data-quality')), { timeoutMs: DROP_MS, what: "Ben's tile marked poor or lost" });
  const shownAfter = Date.now() - dropped;
  assert.ok(await bensTile().locator('.tile-quality').isVisible(), 'the quality bars are visible');
  assert.match(await bensTile().getAttribute('aria-label'), /connection (poor|lost)/);
  await until(async () => ['good', 'excellent'].includes(await bensTile().getAttribute('data-quality')), { timeoutMs: DROP_MS + 30_000, what: "Ben's tile back to good" });
  t.diagnostic(`marked ${shownAfter} ms after the drop began; cleared ${Date.now() - dropped - DROP_MS} ms after it ended`);
  assert.ok(!(await bensTile().locator('.tile-quality').isVisible()), 'the bars are hidden again');
}, { timeout: 90_000 });
