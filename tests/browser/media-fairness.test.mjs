// One client looping on media requests cannot starve the media worker other meetings share (issue 7, item 5):
// with one media worker, a meeting's forwarding (measured at its receiver: frames decoded and audio packets per
// second) keeps its rate while clients in another meeting hammer create-transport as fast as they get answers;
// the hammering gets RATE_LIMIT_EXCEEDED (10 create-transport per 10 s per participant).
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { useHarness } from './lib/harness.mjs';
import { meetingId, makeUser, mintToken } from './lib/tokens.mjs';
import { waitForStats, sample, series, pick } from './lib/poll.mjs';

const HAMMERS = 6;
const HAMMER_MS = 6000;
const { scenario } = useHarness({ env: { MEET_MEDIA__WORKERS: '1' } });

/** Frames decoded and audio packets per second at `receiver` from `sender`, over the samples. */
function rates(samples, sender) {
  const secs = (samples.at(-1).t - samples[0].t) / 1000;
  const delta = (kind, field) => {
    const v = series(samples, { userId: sender.userId, kind }, field);
    return (v.at(-1) - v[0]) / secs;
  };
  return { fps: delta('video', 'framesDecoded'), audioPps: delta('audio', 'packetsReceived') };
}

async function hammer(server, meeting, until) {
  const socket = io(server.url, { auth: { token: mintToken(server.secret, makeUser('hammer')) }, transports: ['websocket'] });
  await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('connect_error', reject); });
  const join = await socket.timeout(10_000).emitWithAck('join-meeting', { meetingId: meeting });
  assert.equal(join.ok, true, JSON.stringify(join));
  const counts = { ok: 0, limited: 0, other: 0 };
  let i = 0;
  while (Date.now() < until) {
    const ack = await socket.timeout(10_000).emitWithAck('create-transport', { meetingId: meeting, direction: i++ % 2 ? 'send' : 'recv' });
    if (ack.ok) counts.ok++;
    else if (ack.error?.code === 'RATE_LIMIT_EXCEEDED') counts.limited++;
    else counts.other++;
  }
  socket.disconnect();
  return counts;
}

scenario('a client hammering create-transport in another meeting does not slow this meeting\'s forwarding', async ({ open, server }, t) => {
  const id = meetingId('fair');
  const alice = await open('alice');
  const bob = await open('bob');
  await alice.join(id);
  await bob.join(id);
  await alice.startMedia({ audio: true, video: true });
  await waitForStats(bob, (stats) => ['audio', 'video'].every((kind) => {
    const c = pick(stats, { userId: alice.userId, kind });
    return c.length === 1 && c[0].framesDecoded + c[0].packetsReceived > 0 && (kind !== 'video' || c[0].framesDecoded > 30);
  }), { timeoutMs: 25_000, what: 'bob receives alice' });
  const base = rates(await sample(bob, { seconds: 4 }), alice);

  const other = meetingId('hammered');
  const until = Date.now() + HAMMER_MS;
  const hammering = Promise.all(Array.from({ length: HAMMERS }, () => hammer(server, other, until)));
  await new Promise((r) => setTimeout(r, 1000)); // the hammering is under way
  const during = rates(await sample(bob, { seconds: 4 }), alice);
  const counts = await hammering;
  const total = counts.reduce((a, c) => ({ ok: a.ok + c.ok, limited: a.limited + c.limited, other: a.other + c.other }), { ok: 0, limited: 0, other: 0 });
  t.diagnostic(`before: ${base.fps.toFixed(1)} fps, ${base.audioPps.toFixed(1)} audio pkt/s; while ${HAMMERS} clients hammered create-transport: ${during.fps.toFixed(1)} fps, ${during.audioPps.toFixed(1)} audio pkt/s; hammer answers ${JSON.stringify(total)}`);
  assert.equal(total.other, 0, `unexpected answers: ${JSON.stringify(counts)}`);
  assert.ok(total.limited > 0, 'the hammering clients were never limited');
  assert.ok(total.ok <= HAMMERS * 10, `at most 10 transports per participant per 10 s: ${JSON.stringify(counts)}`);
  assert.ok(during.fps >= 0.7 * base.fps, `frame rate fell from ${base.fps.toFixed(1)} to ${during.fps.toFixed(1)} fps`);
  assert.ok(during.audioPps >= 0.8 * base.audioPps, `audio fell from ${base.audioPps.toFixed(1)} to ${during.audioPps.toFixed(1)} pkt/s`);
});
