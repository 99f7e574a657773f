// A meeting bigger than one media worker (issue 8 item 3), in Chromium: the server runs two media workers and
// spills a meeting's recv transports to the other worker past one per meeting (MEET_MEDIA__PIPE_THRESHOLD=1), so
// bob's recv transport lives on the worker that does not hold alice's producers, which reach it through an
// in-process pipe. Bob and carol must both decode alice's video and receive her audio (their getStats()), and bob's
// selected ICE path must end at another port than alice's send transport (the other worker's socket).
// Run from the repo root: node --test --test-concurrency=1 tests/browser/media-pipe.test.mjs
import assert from 'node:assert/strict';
import { useHarness } from './lib/harness.mjs';
import { meetingId } from './lib/tokens.mjs';
import { waitForStats, pick, sample, assertRising } from './lib/poll.mjs';

const { scenario } = useHarness({ env: { MEET_MEDIA__WORKERS: '2', MEET_MEDIA__PIPE_THRESHOLD: '1' } });

scenario('subscribers on two media workers both receive one publisher (in-process pipe)', async ({ open }, t) => {
  const id = meetingId('pipe');
  const alice = await open('alice');
  const bob = await open('bob');
  const carol = await open('carol');
  for (const p of [alice, bob, carol]) await p.join(id);
  await alice.startMedia({ audio: true, video: true });
  for (const p of [bob, carol]) {
    await waitForStats(p, (stats) => ['audio', 'video'].every((kind) => {
      const c = pick(stats, { userId: alice.userId, kind });
      return c.length === 1 && c[0].packetsReceived > 0 && (kind !== 'video' || c[0].framesDecoded > 0);
    }), { timeoutMs: 25_000, what: `${p.name} receives alice` });
  }
  const home = (await alice.selectedPath('send'))?.remote?.port;
  const ports = {};
  for (const p of [bob, carol]) {
    const samples = await sample(p, { seconds: 3 });
    const f = assertRising(samples, { userId: alice.userId, kind: 'video' }, 'framesDecoded', { minDelta: 10, label: `${p.name} ← alice` });
    const a = assertRising(samples, { userId: alice.userId, kind: 'audio' }, 'packetsReceived', { minDelta: 30, label: `${p.name} ← alice` });
    ports[p.name] = (await p.selectedPath('recv'))?.remote?.port;
    t.diagnostic(`${p.name}: video frames ${f[0]} → ${f.at(-1)}, audio packets ${a[0]} → ${a.at(-1)}, recv transport at port ${ports[p.name]}`);
  }
  t.diagnostic(`alice's send transport (the home worker) at port ${home}`);
  assert.ok(home > 0, 'alice has a selected send path');
  assert.notEqual(ports.bob, home, `bob's recv transport should be on the other worker (port ${ports.bob} vs home ${home})`);
});
