// A transport that fails or whose browser goes silent is closed by the server and its owner is told
// (`transport:closed {transportId, direction, reason}`); the others get `consumer-closed` for what they consumed
// of it, nobody leaves the meeting, and /metrics counts it (meet_transports_failed_total{reason}).
// This file's server closes a transport after 6 s without a consent check (MEET_MEDIA__CONSENT_TIMEOUT_MS).
import assert from 'node:assert/strict';
import { useHarness } from './lib/harness.mjs';
import { meetingId } from './lib/tokens.mjs';
import { waitForStats, waitForEvents, pick } from './lib/poll.mjs';

const CONSENT_MS = 6000;
const { scenario } = useHarness({ env: { MEET_MEDIA__CONSENT_TIMEOUT_MS: String(CONSENT_MS) } });

async function failedCount(server, reason) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`meet_transports_failed_total{reason="${reason}"}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

scenario('a connect-transport whose fingerprint is not the browser certificate\'s: transport:closed dtls-failed', async ({ open, server }, t) => {
  const id = meetingId('dtlsfail');
  const alice = await open('alice');
  await alice.join(id);
  const before = await failedCount(server, 'dtls-failed');
  await alice.eval(() => window.meeting.tamperNextFingerprint());
  // The guide's client produces while DTLS runs; the transport may be gone before its produce arrives (then the
  // produce is refused with NOT_FOUND, which rejects startMedia): either way it is told why.
  const started = await alice.startMedia({ audio: true, video: false }).then(() => 'produced', (e) => e.message.split('\n')[0]);
  const sendTransportId = (await alice.info()).sendTransport.id;
  const [closed] = await waitForEvents(alice, 'transport:closed', (e) => e.length > 0, { timeoutMs: 15_000, what: 'transport:closed' });
  t.diagnostic(`startMedia: ${started}`);
  assert.deepEqual(closed.data, { transportId: sendTransportId, direction: 'send', reason: 'dtls-failed' });
  assert.equal(await failedCount(server, 'dtls-failed'), before + 1);
  // Alice is still in the meeting: a request of hers works.
  const ack = await alice.eval((m) => window.meeting.request('hand:raise', { meetingId: m }), id);
  assert.equal(ack.ok, true, JSON.stringify(ack));
  t.diagnostic(`transport:closed ${JSON.stringify(closed.data)}; alice still in the meeting`);
});

scenario('a publisher whose browser goes silent: its transport is closed after the consent timeout, its consumers told', async ({ open, server }, t) => {
  const id = meetingId('silent');
  const alice = await open('alice');
  const bob = await open('bob');
  await alice.join(id);
  await bob.join(id);
  const media = await alice.startMedia({ audio: true, video: true });
  await waitForStats(bob, (stats) => ['audio', 'video'].every((kind) => {
    const c = pick(stats, { userId: alice.userId, kind });
    return c.length === 1 && c[0].packetsReceived > 0;
  }), { timeoutMs: 25_000, what: 'bob receives alice' });
  const before = await failedCount(server, 'ice-timeout');
  const consumers = (await bob.stats()).filter((s) => s.userId === alice.userId).map((s) => s.consumerId).sort();
  const dropped = Date.now();
  await alice.eval(() => window.meeting.dropSendTransport());
  const [closed] = await waitForEvents(alice, 'transport:closed', (e) => e.length > 0, { timeoutMs: CONSENT_MS + 10_000, what: 'transport:closed' });
  const took = Date.now() - dropped;
  t.diagnostic(`transport:closed ${took} ms after the browser went silent (consent timeout ${CONSENT_MS} ms)`);
  assert.deepEqual(closed.data, { transportId: media.sendTransportId, direction: 'send', reason: 'ice-timeout' });
  assert.ok(took >= CONSENT_MS - 3000, `closed too early (${took} ms): a live transport would be at risk`);
  const closedForBob = await waitForEvents(bob, 'consumer-closed', (evs) => evs.length >= 2, { what: 'consumer-closed x2' });
  assert.deepEqual(closedForBob.map((e) => e.data.consumerId).sort(), consumers);
  assert.ok(closedForBob.every((e) => e.data.reason === 'producer-closed'));
  assert.equal(await failedCount(server, 'ice-timeout'), before + 1);
  // Nobody left; bob's own transport (recv, still checked by his browser) is alive.
  assert.equal((await bob.events('participant-left')).length, 0);
  assert.equal((await bob.events('transport:closed')).length, 0);
});
