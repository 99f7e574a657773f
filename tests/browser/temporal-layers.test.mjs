// VP8 temporal layers (issue 11 item 2): Chromium sends each simulcast encoding as L1T3; a consumer held at
// temporal layer 0 (the debug hook `POST /debug/media/temporal`, what the bandwidth allocator does when even the
// lowest spatial layer does not fit) gets only TL0 pictures — its receiver's framesPerSecond falls to about a quarter
// while framesDecoded keeps growing (no freeze: sequence numbers and picture ids stay continuous) — and climbs back
// to the full frame rate. The client is told (`consumer:layers-changed` with temporalLayer 0).
// Run from the repo root: node --test --test-concurrency=1 tests/browser/temporal-layers.test.mjs
import assert from 'node:assert/strict';
import { useHarness } from './lib/harness.mjs';
import { meetingId } from './lib/tokens.mjs';
import { waitForStats, waitForEvents, sample, assertRising, pick, sleep } from './lib/poll.mjs';

const { scenario } = useHarness({ env: { MEET_MEDIA__DEBUG_HOOKS: 'true' } });

const videoFrom = (stats, sender) => pick(stats, { userId: sender.userId, kind: 'video' })[0];

/** The receiver's decoded frame rate, averaged over `seconds` from framesDecoded. */
async function fps(p, sender, seconds = 3) {
  const s = await sample(p, { seconds, intervalMs: 1000 });
  const a = videoFrom(s[0].stats, sender);
  const b = videoFrom(s.at(-1).stats, sender);
  return { fps: (b.framesDecoded - a.framesDecoded) / ((s.at(-1).t - s[0].t) / 1000), samples: s, last: b };
}

scenario('a VP8 consumer held at temporal layer 0 decodes fewer frames per second, without freezing, and climbs back', async ({ open, server }, t) => {
  const id = meetingId('temporal');
  const alice = await open('alice');
  const bob = await open('bob');
  await alice.join(id);
  await bob.join(id);
  await alice.startMedia({ audio: false, video: true });
  await waitForStats(bob, (s) => videoFrom(s, alice)?.framesDecoded > 30, { timeoutMs: 25_000, what: 'video from alice' });
  const before = await fps(bob, alice);
  t.diagnostic(`all temporal layers: ${before.fps.toFixed(1)} fps decoded (${before.last.frameWidth}x${before.last.frameHeight}, getStats framesPerSecond ${before.last.framesPerSecond})`);

  const consumerId = videoFrom(await bob.stats(), alice).consumerId;
  const hook = (temporalLayer) => fetch(`${server.url}/debug/media/temporal`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ meetingId: id, consumerId, temporalLayer }),
  });
  const res = await hook(0);
  assert.equal(res.status, 200, await res.text());
  await waitForEvents(bob, 'consumer:layers-changed', (e) => e.some((x) => x.data.consumerId === consumerId && x.data.temporalLayer === 0),
    { timeoutMs: 5_000, what: 'layers-changed to temporal layer 0' });
  await sleep(1_000);
  const low = await fps(bob, alice, 4);
  t.diagnostic(`temporal layer 0: ${low.fps.toFixed(1)} fps decoded (getStats framesPerSecond ${low.last.framesPerSecond}), freezes ${before.last.freezeCount} → ${low.last.freezeCount}`);
  assertRising(low.samples, { userId: alice.userId, kind: 'video' }, 'framesDecoded', { minDelta: 2, minFraction: 0.75, label: 'at temporal 0' });
  assert.ok(low.fps <= before.fps * 0.6, `frame rate at temporal 0 (${low.fps.toFixed(1)}) is not clearly below the full one (${before.fps.toFixed(1)})`);
  assert.ok(low.fps >= 2, `frames keep coming at temporal 0: ${low.fps.toFixed(1)} fps`);
  assert.ok(low.last.freezeCount <= before.last.freezeCount + 1, `no freeze: ${before.last.freezeCount} → ${low.last.freezeCount}`);

  assert.equal((await hook(2)).status, 200);
  await waitForEvents(bob, 'consumer:layers-changed', (e) => e.filter((x) => x.data.consumerId === consumerId).at(-1)?.data.temporalLayer === 2,
    { timeoutMs: 5_000, what: 'layers-changed back to temporal layer 2' });
  await sleep(1_000);
  const back = await fps(bob, alice);
  t.diagnostic(`back to every temporal layer: ${back.fps.toFixed(1)} fps decoded`);
  assert.ok(back.fps >= low.fps * 1.5, `frame rate back up: ${low.fps.toFixed(1)} → ${back.fps.toFixed(1)}`);
});
