// Connection quality measured on the server: two real Chromium participants; everything to and from one of them
// is dropped for a while (the server's debug hook, MEET_MEDIA__DEBUG_HOOKS): the meeting hears that participant go
// `lost` and come back, and /metrics carries the link figures as histograms.
// Run from the repo root: node --test --test-concurrency=1 tests/browser/connection-quality.test.mjs
import assert from 'node:assert/strict';
import { useHarness } from './lib/harness.mjs';
import { meetingId } from './lib/tokens.mjs';
import { waitForStats, waitForEvents, pick } from './lib/poll.mjs';

const DROP_MS = 10_000;
const { scenario } = useHarness({ env: { MEET_MEDIA__DEBUG_HOOKS: 'true' } });

scenario('a participant whose packets are dropped goes lost and comes back', async ({ open, server }, t) => {
  const id = meetingId('quality');
  const alice = await open('alice');
  const bob = await open('bob');
  await alice.join(id);
  await bob.join(id);
  await alice.startMedia({ audio: true, video: true });
  await bob.startMedia({ audio: true, video: true });
  await waitForStats(bob, (s) => pick(s, { userId: alice.userId, kind: 'video' }).some((c) => c.framesDecoded > 0), { timeoutMs: 25_000, what: 'video from alice' });
  const bobP = bob.you.participantId;
  const of = (events) => events.filter((e) => e.data.participantId === bobP).map((e) => e.data.quality);

  // A clean loopback link: bob is known as excellent (or good) to alice once the start-up (first packets, key
  // exchange on a loaded machine) is behind.
  await waitForEvents(alice, 'connection-quality', (e) => ['excellent', 'good'].includes(of(e).at(-1)), { timeoutMs: 20_000, what: "bob's connection-quality excellent or good" });

  // Bob's recv transport goes dark for 10 s.
  const { recvTransport } = await bob.info();
  const res = await fetch(`${server.url}/debug/media/drop`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ meetingId: id, transportId: recvTransport.id, ms: DROP_MS }),
  });
  assert.equal(res.status, 200, await res.text());
  const dropped = Date.now();
  const before = of(await alice.events('connection-quality')).length;
  await waitForEvents(alice, 'connection-quality', (e) => of(e).slice(before).includes('lost'), { timeoutMs: DROP_MS, what: 'bob lost' });
  const lostAfter = Date.now() - dropped;
  // … and back once the packets flow again.
  await waitForEvents(alice, 'connection-quality', (e) => {
    const q = of(e).slice(before);
    const i = q.indexOf('lost');
    return i >= 0 && q.slice(i + 1).some((x) => x === 'excellent' || x === 'good');
  }, { timeoutMs: DROP_MS + 25_000, what: 'bob back' });
  const backAfter = Date.now() - dropped - DROP_MS;
  const seq = of(await alice.events('connection-quality'));
  t.diagnostic(`bob's qualities at alice: ${seq.join(' → ')}; lost ${lostAfter} ms after the drop, back ${backAfter} ms after it ended`);
  // Bob hears about himself too (the event goes to the whole meeting).
  assert.ok(of(await bob.events('connection-quality')).includes('lost'));

  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  for (const name of ['meet_connection_loss_ratio_bucket', 'meet_connection_rtt_seconds_bucket', 'meet_connection_jitter_seconds_bucket']) {
    assert.ok(metrics.includes(name), `${name} in /metrics`);
  }
  assert.match(metrics, /meet_connection_quality_changes_total\{quality="lost"\} [1-9]/);
  assert.ok(!/meet_connection_[a-z_]+\{[^}]*participant/.test(metrics), 'no per-participant labels');
});
