// Nothing sent that nobody receives (issue 11 item 3): when the only subscriber of a simulcast camera asks
// `quality:change low`, the server tells the publisher `producer:layers-needed {spatialLayers: 1}` and a publisher
// that honours it (as the bundled web client does; the guide's class ignores it) stops sending r2 — its
// outbound-rtp bytesSent stays flat — and sends it again when the subscriber asks `high`. Proven by the
// publisher's own getStats() and the subscriber's decoded frames.
// Run from the repo root: node --test --test-concurrency=1 tests/browser/layers-needed.test.mjs
import assert from 'node:assert/strict';
import { useHarness } from './lib/harness.mjs';
import { meetingId } from './lib/tokens.mjs';
import { waitForStats, waitForEvents, pick, sleep } from './lib/poll.mjs';

const { scenario } = useHarness();

const r2Bytes = async (p) => (await p.sendStats()).video.find((v) => v.rid === 'r2')?.bytesSent ?? 0;

async function until(fn, { timeoutMs, what }) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(500);
  }
}

scenario('the publisher stops sending r2 while its only subscriber wants low, and resumes for high', async ({ open }, t) => {
  const id = meetingId('layers');
  const alice = await open('alice');
  const bob = await open('bob');
  await alice.join(id);
  await bob.join(id);
  await alice.eval(() => window.meeting.honourLayersNeeded());
  await alice.startMedia({ audio: false, video: true });
  await waitForStats(bob, (s) => pick(s, { userId: alice.userId, kind: 'video' }).some((c) => c.framesDecoded > 0), { timeoutMs: 25_000, what: 'video from alice' });
  // r2 flows (Chrome's send-side estimate has to grow first).
  let b0 = await r2Bytes(alice);
  await until(async () => (await r2Bytes(alice)) > b0 + 20_000, { timeoutMs: 25_000, what: 'r2 sending' });

  const quality = (q) => bob.eval(([m, pid, q]) => window.meeting.request('quality:change', { meetingId: m, participantId: pid, quality: q }), [id, alice.you.participantId, q]);
  const asked = Date.now();
  await quality('low');
  await waitForEvents(alice, 'producer:layers-needed', (e) => e.some((x) => x.data.spatialLayers === 1), { timeoutMs: 5_000, what: 'layers-needed 1' });
  await sleep(1_500);
  b0 = await r2Bytes(alice);
  const f0 = pick(await bob.stats(), { userId: alice.userId, kind: 'video' })[0].framesDecoded;
  await sleep(3_000);
  const b1 = await r2Bytes(alice);
  const f1 = pick(await bob.stats(), { userId: alice.userId, kind: 'video' })[0];
  t.diagnostic(`r2 bytesSent over 3 s while low: ${b0} → ${b1}; bob decoding ${f1.frameWidth}x${f1.frameHeight}, frames ${f0} → ${f1.framesDecoded}`);
  assert.ok(b1 - b0 < 2_000, `r2 kept sending while nobody needs it: ${b0} → ${b1}`);
  assert.ok(f1.framesDecoded > f0 + 20, 'bob still receives video (the low layer)');
  assert.ok(f1.frameWidth > 0 && f1.frameWidth <= 400, `bob gets the low layer: ${f1.frameWidth}`);

  // Bob's client was told which layer it receives (mediasoup's layerschange).
  const videoConsumer = pick(await bob.stats(), { userId: alice.userId, kind: 'video' })[0].consumerId;
  const changed = (await bob.events('consumer:layers-changed')).filter((e) => e.data.consumerId === videoConsumer);
  assert.equal(changed.at(-1)?.data.spatialLayer, 0, JSON.stringify(changed));

  await quality('high');
  await waitForEvents(alice, 'producer:layers-needed', (e) => e.some((x) => x.data.spatialLayers === 3), { timeoutMs: 5_000, what: 'layers-needed 3' });
  const resumed = Date.now();
  await until(async () => (await r2Bytes(alice)) > b1 + 20_000, { timeoutMs: 20_000, what: 'r2 sending again' });
  await until(async () => pick(await bob.stats(), { userId: alice.userId, kind: 'video' })[0].frameWidth >= 1000, { timeoutMs: 20_000, what: 'bob back on the top layer' });
  await waitForEvents(bob, 'consumer:layers-changed', (e) => e.filter((x) => x.data.consumerId === videoConsumer).at(-1)?.data.spatialLayer === 2, { timeoutMs: 5_000, what: 'layers-changed to 2' });
  t.diagnostic(`r2 flowing again ${Date.now() - resumed} ms after high (low asked at +0, high at +${resumed - asked} ms)`);
});
