// Several addresses (issue 13 item 4): media listens on ::1 (MEET_MEDIA__LISTEN_IP) and 127.0.0.1
// (MEET_MEDIA__EXTRA_IPS), UDP and TCP on each: four candidates, UDP ones first, ::1 first, in priority order. The
// receiving page gets audio and video (getStats() rising) over a pair whose remote address is one of them (which one
// is Chromium's choice; the IPv6-only path is in ipv6.test.mjs).
import assert from 'node:assert/strict';
import { useHarness } from './lib/harness.mjs';
import { meetingId } from './lib/tokens.mjs';
import { sample, waitForStats, assertRising, pick } from './lib/poll.mjs';

const { scenario } = useHarness({
  env: { MEET_HTTP__HOST: '::1', MEET_MEDIA__LISTEN_IP: '::1', MEET_MEDIA__EXTRA_IPS: '127.0.0.1' },
});

scenario('IPv6 and IPv4 media addresses at once: four candidates in priority order, media arrives', async ({ open, server }, t) => {
  assert.match(server.url, /^http:\/\/\[::1\]:\d+$/);
  const id = meetingId('multiaddr');
  const alice = await open('alice');
  const bob = await open('bob');
  await alice.join(id);
  await bob.join(id);
  const p = (await bob.events('transport-created')).at(-1).data.params;
  assert.deepEqual(p.iceCandidates.map((c) => [c.protocol, c.ip]), [['udp', '::1'], ['udp', '127.0.0.1'], ['tcp', '::1'], ['tcp', '127.0.0.1']]);
  assert.deepEqual([...p.iceCandidates].sort((x, y) => y.priority - x.priority), p.iceCandidates, 'in priority order');
  await alice.startMedia({ audio: true, video: true });
  await waitForStats(bob, (stats) => ['audio', 'video'].every((kind) => {
    const c = pick(stats, { userId: alice.userId, kind });
    return c.length === 1 && c[0].packetsReceived > 0 && (kind !== 'video' || c[0].framesDecoded > 0);
  }), { timeoutMs: 25_000, what: 'bob receives alice' });
  const samples = await sample(bob, { seconds: 3 });
  const f = assertRising(samples, { userId: alice.userId, kind: 'video' }, 'framesDecoded', { minDelta: 10, label: 'bob ← alice' });
  assertRising(samples, { userId: alice.userId, kind: 'audio' }, 'packetsReceived', { minDelta: 30, label: 'bob ← alice' });
  const recv = await bob.selectedPath('recv');
  t.diagnostic(`video frames ${f[0]} → ${f.at(-1)}; bob recv ${JSON.stringify(recv)}`);
  assert.ok(['::1', '127.0.0.1'].includes(recv?.remote?.address), JSON.stringify(recv));
});
