// IPv6 (issue 13 item 4). The server listens for HTTP/Socket.IO and for media on ::1 only (UDP and TCP: two
// candidates, UDP first). The page is loaded from http://[::1]:port; the receiving page gets audio and video
// (getStats() rising) over a selected candidate pair whose remote address is ::1. Several addresses at once (IPv6 +
// IPv4) are in multi-address.test.mjs: with both offered, which pair Chromium selects is its choice (under load it
// was once the IPv4 one), so the IPv6 path is proven here with IPv6 alone.
import assert from 'node:assert/strict';
import { useHarness } from './lib/harness.mjs';
import { meetingId } from './lib/tokens.mjs';
import { sample, waitForStats, assertRising, pick } from './lib/poll.mjs';

const { scenario } = useHarness({
  env: { MEET_HTTP__HOST: '::1', MEET_MEDIA__LISTEN_IP: '::1' },
});

scenario('signaling and media over IPv6 (::1): media arrives, the selected pair is IPv6', async ({ open, server }, t) => {
  assert.match(server.url, /^http:\/\/\[::1\]:\d+$/);
  const id = meetingId('ipv6');
  const alice = await open('alice');
  const bob = await open('bob');
  await alice.join(id);
  await bob.join(id);
  const p = (await bob.events('transport-created')).at(-1).data.params;
  assert.deepEqual(p.iceCandidates.map((c) => [c.protocol, c.ip]), [['udp', '::1'], ['tcp', '::1']]);
  assert.deepEqual([...p.iceCandidates].sort((x, y) => y.priority - x.priority), p.iceCandidates, 'in priority order');
  await alice.startMedia({ audio: true, video: true });
  await waitForStats(bob, (stats) => ['audio', 'video'].every((kind) => {
    const c = pick(stats, { userId: alice.userId, kind });
    return c.length === 1 && c[0].packetsReceived > 0 && (kind !== 'video' || c[0].framesDecoded > 0);
  }), { timeoutMs: 25_000, what: 'bob receives alice over IPv6' });
  const samples = await sample(bob, { seconds: 3 });
  const f = assertRising(samples, { userId: alice.userId, kind: 'video' }, 'framesDecoded', { minDelta: 10, label: 'bob ← alice' });
  assertRising(samples, { userId: alice.userId, kind: 'audio' }, 'packetsReceived', { minDelta: 30, label: 'bob ← alice' });
  const recv = await bob.selectedPath('recv');
  t.diagnostic(`video frames ${f[0]} → ${f.at(-1)}; bob recv ${JSON.stringify(recv)}`);
  assert.equal(recv?.remote?.address, '::1', JSON.stringify(recv));
});
