// Simulcast layer selection: a subscriber's `quality:change` moves its consumer between the publisher's three
// layers (r0 ≈ 320 px wide, r1 ≈ 640, r2 ≈ 1280 from the fake 1280×720 camera), switching on keyframes without
// freezing. Proven by the receiving page's getStats (frameWidth, framesDecoded).
import assert from 'node:assert/strict';
import { useHarness } from './lib/harness.mjs';
import { meetingId } from './lib/tokens.mjs';
import { waitForStats, sample, assertRising, pick } from './lib/poll.mjs';

const { scenario } = useHarness();

function videoFrom(stats, sender) {
  return pick(stats, { userId: sender.userId, kind: 'video' })[0];
}

scenario('quality:change switches the forwarded simulcast layer (low → high) and frames keep coming', async ({ open }, t) => {
  const id = meetingId('simulcast');
  const alice = await open('alice');
  const bob = await open('bob');
  await alice.join(id);
  await bob.join(id);
  await alice.startMedia({ audio: false, video: true });
  await waitForStats(bob, (s) => videoFrom(s, alice)?.framesDecoded > 0, { timeoutMs: 25_000, what: 'video from alice' });

  const low = await bob.eval((p) => window.meeting.request('quality:change', p), { meetingId: id, participantId: alice.you.participantId, quality: 'low' });
  assert.equal(low.ok, true, JSON.stringify(low));
  const atLow = await waitForStats(bob, (s) => { const v = videoFrom(s, alice); return v && v.frameWidth > 0 && v.frameWidth <= 400; },
    { timeoutMs: 15_000, what: 'low layer (≤ 400 px wide)' });
  t.diagnostic(`low: ${videoFrom(atLow, alice).frameWidth}x${videoFrom(atLow, alice).frameHeight}`);
  assertRising(await sample(bob, { seconds: 2 }), { userId: alice.userId, kind: 'video' }, 'framesDecoded', { minDelta: 5, label: 'at low' });

  const high = await bob.eval((p) => window.meeting.request('quality:change', p), { meetingId: id, participantId: alice.you.participantId, quality: 'high' });
  assert.equal(high.ok, true, JSON.stringify(high));
  const atHigh = await waitForStats(bob, (s) => { const v = videoFrom(s, alice); return v && v.frameWidth >= 900; },
    { timeoutMs: 25_000, what: 'high layer (≥ 900 px wide)' });
  t.diagnostic(`high: ${videoFrom(atHigh, alice).frameWidth}x${videoFrom(atHigh, alice).frameHeight}`);
  assertRising(await sample(bob, { seconds: 2 }), { userId: alice.userId, kind: 'video' }, 'framesDecoded', { minDelta: 5, label: 'at high' });
});
