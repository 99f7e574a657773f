// ICE over TCP (issue 13 item 1): with UDP switched off (MEET_MEDIA__UDP=false) the server offers only `tcp passive`
// candidates; Chromium running the guide's client connects to them (RFC 4571 framing in crates/media/src/tcp.rs)
// and receives audio and video. Proven by the receiving page's getStats(): media rising, and the selected
// candidate pair of its recv transport is TCP.
import assert from 'node:assert/strict';
import { useHarness } from './lib/harness.mjs';
import { meetingId } from './lib/tokens.mjs';
import { sample, waitForStats, assertRising, pick } from './lib/poll.mjs';

const { scenario } = useHarness({ env: { MEET_MEDIA__UDP: 'false' } });

scenario('UDP off: only tcp passive candidates, and media arrives over TCP', async ({ open }, t) => {
  const id = meetingId('icetcp');
  const alice = await open('alice');
  const bob = await open('bob');
  await alice.join(id);
  await bob.join(id);
  await alice.startMedia({ audio: true, video: true });
  const created = (await bob.events('transport-created')).map((e) => e.data.params);
  assert.ok(created.length >= 1);
  for (const p of created) {
    assert.ok(p.iceCandidates.length >= 1 && p.iceCandidates.every((c) => c.protocol === 'tcp' && c.tcpType === 'passive'), JSON.stringify(p.iceCandidates));
  }
  await waitForStats(bob, (stats) => ['audio', 'video'].every((kind) => {
    const c = pick(stats, { userId: alice.userId, kind });
    return c.length === 1 && c[0].packetsReceived > 0 && (kind !== 'video' || c[0].framesDecoded > 0);
  }), { timeoutMs: 25_000, what: 'bob receives alice over TCP' });
  const samples = await sample(bob, { seconds: 3 });
  const f = assertRising(samples, { userId: alice.userId, kind: 'video' }, 'framesDecoded', { minDelta: 10, label: 'bob ← alice' });
  const a = assertRising(samples, { userId: alice.userId, kind: 'audio' }, 'packetsReceived', { minDelta: 30, label: 'bob ← alice' });
  const recv = await bob.selectedPath('recv');
  const send = await alice.selectedPath('send');
  t.diagnostic(`video frames ${f[0]} → ${f.at(-1)}, audio packets ${a[0]} → ${a.at(-1)}; bob recv path ${JSON.stringify(recv)}; alice send path ${JSON.stringify(send)}`);
  assert.equal(recv?.local?.protocol, 'tcp', JSON.stringify(recv));
  assert.equal(recv?.remote?.protocol, 'tcp', JSON.stringify(recv));
  assert.equal(send?.remote?.protocol, 'tcp', JSON.stringify(send));
});
