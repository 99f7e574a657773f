// VP9 SVC (issue 11 item 2): a Chromium publisher sends VP9 k-SVC in one stream (mediasoup-client `produce` with
// `encodings: [{scalabilityMode: 'L3T3_KEY'}]`, a 1280×720 canvas); two subscribers consume it. The consumer is
// `svc` (no longer forwarded as "simple"), and the one that asks `quality:change low` gets spatial layer 0 only:
// its receiver decodes a lower resolution than the other's, and keeps decoding. Proven by each receiving page's
// getStats (inbound-rtp frameWidth, framesDecoded).
// Run from the repo root: node --test --test-concurrency=1 tests/browser/vp9-svc.test.mjs
import assert from 'node:assert/strict';
import { useHarness } from './lib/harness.mjs';
import { meetingId } from './lib/tokens.mjs';
import { waitForStats, waitForEvents, sample, assertRising, pick } from './lib/poll.mjs';

const { scenario } = useHarness();

const videoFrom = (stats, sender) => pick(stats, { userId: sender.userId, kind: 'video' })[0];

scenario('VP9 SVC: the subscriber that asks low decodes a lower resolution than the other, and keeps decoding', async ({ open }, t) => {
  const id = meetingId('vp9svc');
  const alice = await open('alice');
  const bob = await open('bob');
  const carol = await open('carol');
  await alice.join(id);
  await bob.join(id);
  await carol.join(id);
  const codecs = await alice.eval(() => window.meeting.deviceCodecs());
  assert.ok(codecs.some((c) => c.toLowerCase() === 'video/vp9'), `the device has no VP9: ${codecs.join(', ')}`);
  await alice.eval(() => window.meeting.startCanvasShare({
    source: 'camera', width: 1280, height: 720, codec: 'video/VP9', encodings: [{ scalabilityMode: 'L3T3_KEY' }],
  }));
  for (const p of [bob, carol]) {
    await waitForStats(p, (s) => videoFrom(s, alice)?.framesDecoded > 0, { timeoutMs: 25_000, what: `${p.name}: video from alice` });
  }
  const send = await alice.sendStats();
  t.diagnostic(`publisher outbound-rtp: ${JSON.stringify(send.video)}`);
  assert.equal(send.video.length, 1, 'one VP9 stream, not simulcast');

  // The consumer is SVC (mediasoup's type) with the producer's mode, as mediasoup-client got it.
  const subscribed = (await carol.events('subscribed')).map((e) => e.data).find((d) => d.kind === 'video');
  assert.equal(subscribed?.type, 'svc', JSON.stringify(subscribed));
  assert.equal(subscribed.rtpParameters.encodings[0].scalabilityMode, 'L3T3_KEY');

  // Bob, at the top, gets the full resolution once Chrome's estimate lets the encoder send all three layers.
  const atTop = await waitForStats(bob, (s) => videoFrom(s, alice)?.frameWidth >= 1000, { timeoutMs: 30_000, what: 'bob at 1280 wide' });
  t.diagnostic(`bob: ${videoFrom(atTop, alice).frameWidth}x${videoFrom(atTop, alice).frameHeight}`);

  const low = await carol.eval((p) => window.meeting.request('quality:change', p), { meetingId: id, participantId: alice.you.participantId, quality: 'low' });
  assert.equal(low.ok, true, JSON.stringify(low));
  const asked = Date.now();
  const atLow = await waitForStats(carol, (s) => { const v = videoFrom(s, alice); return v && v.frameWidth > 0 && v.frameWidth <= 400; },
    { timeoutMs: 15_000, what: 'carol at spatial layer 0 (≤ 400 px wide)' });
  const c = videoFrom(atLow, alice);
  t.diagnostic(`carol after low: ${c.frameWidth}x${c.frameHeight} in ${Date.now() - asked} ms`);
  const changed = await waitForEvents(carol, 'consumer:layers-changed', (e) => e.some((x) => x.data.spatialLayer === 0), { timeoutMs: 5_000, what: 'layers-changed to spatial 0' });
  t.diagnostic(`carol layers-changed: ${JSON.stringify(changed.map((e) => e.data))}`);

  // Both keep decoding for 4 s: carol low, bob high.
  const cs = await sample(carol, { seconds: 4 });
  assertRising(cs, { userId: alice.userId, kind: 'video' }, 'framesDecoded', { minDelta: 5, label: 'carol at low' });
  const bs = await sample(bob, { seconds: 2 });
  assertRising(bs, { userId: alice.userId, kind: 'video' }, 'framesDecoded', { minDelta: 5, label: 'bob at high' });
  const cw = videoFrom(cs.at(-1).stats, alice);
  const bw = videoFrom(bs.at(-1).stats, alice);
  t.diagnostic(`end: carol ${cw.frameWidth}x${cw.frameHeight} ${cw.framesPerSecond} fps freezes ${cw.freezeCount}; bob ${bw.frameWidth}x${bw.frameHeight} ${bw.framesPerSecond} fps freezes ${bw.freezeCount}`);
  const bobChanges = (await bob.events('consumer:layers-changed')).map((e) => `${e.data.spatialLayer}/${e.data.temporalLayer}`);
  t.diagnostic(`bob layers-changed: ${bobChanges.join(' ')}; publisher now ${JSON.stringify((await alice.sendStats()).video)}`);
  assert.ok(cw.frameWidth > 0 && cw.frameWidth < bw.frameWidth, `carol ${cw.frameWidth} < bob ${bw.frameWidth}`);
  assert.ok(cw.frameWidth <= 400, `carol still at the low layer: ${cw.frameWidth}`);

  // And back: high brings carol to the top resolution again.
  const high = await carol.eval((p) => window.meeting.request('quality:change', p), { meetingId: id, participantId: alice.you.participantId, quality: 'high' });
  assert.equal(high.ok, true, JSON.stringify(high));
  // With bandwidth estimation on, carol's estimate fell to what the low layer needs while she asked low: the climb
  // waits for probes (at most 2x the estimate each) and the allocator's hold.
  const askedHigh = Date.now();
  await waitForStats(carol, (s) => videoFrom(s, alice)?.frameWidth >= 1000, { timeoutMs: 15_000, what: 'carol back at 1280 wide' });
  t.diagnostic(`carol back at 1280 wide ${Date.now() - askedHigh} ms after asking high`);
});
