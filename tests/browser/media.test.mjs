// Media flows browser-to-browser through meet-server: real Chromium pages running the guide's MeetingClient
// (official socket.io-client + mediasoup-client), proven only by the receiving page's getStats().
// Run from the repo root: node --test --test-concurrency=1 tests/browser/
import assert from 'node:assert/strict';
import { useHarness } from './lib/harness.mjs';
import { meetingId } from './lib/tokens.mjs';
import { sample, waitForStats, waitForEvents, assertRising, assertFlat, pick, sleep } from './lib/poll.mjs';

const { scenario } = useHarness();

/** Wait until `receiver` has exactly one consumer per kind from `sender`, each with media arriving. */
function waitReceiving(receiver, sender, kinds = ['audio', 'video'], timeoutMs = 25_000) {
  return waitForStats(receiver, (stats) => kinds.every((kind) => {
    const c = pick(stats, { userId: sender.userId, kind });
    return c.length === 1 && c[0].packetsReceived > 0 && (kind !== 'video' || c[0].framesDecoded > 0);
  }), { timeoutMs, what: `${kinds.join('+')} from ${sender.name}` });
}

function consumerOf(stats, sender, kind) {
  const c = pick(stats, { userId: sender.userId, kind });
  assert.equal(c.length, 1, `one ${kind} consumer from ${sender.name} expected: ${JSON.stringify(stats)}`);
  return c[0];
}

/** Over the samples: video frames decoded rising; audio packets and samples rising with energy > 0. */
function assertReceives(samples, receiver, sender, t, kinds = ['audio', 'video']) {
  const label = `${receiver.name} ← ${sender.name}:`;
  if (kinds.includes('video')) {
    const f = assertRising(samples, { userId: sender.userId, kind: 'video' }, 'framesDecoded', { minDelta: 10, label });
    const last = consumerOf(samples.at(-1).stats, sender, 'video');
    assert.ok(last.frameWidth > 0, `${label} frameWidth should be > 0: ${JSON.stringify(last)}`);
    t.diagnostic(`${label} video framesDecoded ${f[0]} → ${f.at(-1)}, ${last.frameWidth}x${last.frameHeight}`);
  }
  if (kinds.includes('audio')) {
    const p = assertRising(samples, { userId: sender.userId, kind: 'audio' }, 'packetsReceived', { minDelta: 50, label });
    assertRising(samples, { userId: sender.userId, kind: 'audio' }, 'totalSamplesReceived', { minDelta: 1000, label });
    const last = consumerOf(samples.at(-1).stats, sender, 'audio');
    assert.ok(last.totalAudioEnergy > 0, `${label} totalAudioEnergy should be > 0: ${JSON.stringify(last)}`);
    t.diagnostic(`${label} audio packetsReceived ${p[0]} → ${p.at(-1)}, totalAudioEnergy ${last.totalAudioEnergy.toFixed(4)}`);
  }
}

scenario('two participants each produce audio + video and each receives the other', async ({ open }, t) => {
  const id = meetingId('pair');
  const alice = await open('alice');
  const bob = await open('bob');
  await alice.join(id);
  await bob.join(id);
  await alice.startMedia({ audio: true, video: true });
  await bob.startMedia({ audio: true, video: true });
  await Promise.all([waitReceiving(alice, bob), waitReceiving(bob, alice)]);
  const [sa, sb] = await Promise.all([sample(alice, { seconds: 5 }), sample(bob, { seconds: 5 })]);
  assertReceives(sa, alice, bob, t);
  assertReceives(sb, bob, alice, t);
});

scenario('transport-wide-cc feedback reaches the publisher: its bandwidth estimate climbs and its top layer is sent', async ({ open }, t) => {
  // Chrome's send-side estimate starts at ~300 kbps and grows only on transport-cc feedback; without it the
  // 1280x720 layer (r2, ~1.5-2.5 Mbps) would never be switched on.
  const id = meetingId('twcc');
  const alice = await open('alice');
  const bob = await open('bob');
  await alice.join(id);
  await bob.join(id);
  await alice.startMedia();
  await waitReceiving(bob, alice);
  let last = null;
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    last = await alice.sendStats();
    const top = last.video.find((v) => v.frameHeight >= 720);
    if (last.availableOutgoingBitrate > 1_500_000 && top && top.bytesSent > 0) break;
    await sleep(500);
  }
  t.diagnostic(`alice's availableOutgoingBitrate ${Math.round(last.availableOutgoingBitrate / 1000)} kbps; layers ${JSON.stringify(last.video)}`);
  assert.ok(last.availableOutgoingBitrate > 1_500_000, `estimate stayed at ${last.availableOutgoingBitrate} bps: ${JSON.stringify(last)}`);
  assert.ok(last.video.some((v) => v.frameHeight >= 720 && v.bytesSent > 0), `no 720p layer sent: ${JSON.stringify(last.video)}`);
});

scenario('a third participant who joins later receives both', async ({ open }, t) => {
  const id = meetingId('late');
  const alice = await open('alice');
  const bob = await open('bob');
  await alice.join(id);
  await bob.join(id);
  await alice.startMedia();
  await bob.startMedia();
  await Promise.all([waitReceiving(alice, bob), waitReceiving(bob, alice)]);

  const carol = await open('carol');
  await carol.join(id); // no media of her own: she only receives
  await Promise.all([waitReceiving(carol, alice), waitReceiving(carol, bob)]);
  const s = await sample(carol, { seconds: 5 });
  assertReceives(s, carol, alice, t);
  assertReceives(s, carol, bob, t);
  assert.equal(s.at(-1).stats.length, 4, 'carol has exactly 4 consumers');
});

scenario('audio first and video later on the same send transport are both received', async ({ open }, t) => {
  const id = meetingId('staged');
  const alice = await open('alice');
  const bob = await open('bob');
  await alice.join(id);
  await bob.join(id);
  const first = await alice.startMedia({ audio: true, video: false });
  await waitReceiving(bob, alice, ['audio']);
  const s1 = await sample(bob, { seconds: 2 });
  assertReceives(s1, bob, alice, t, ['audio']);

  const second = await alice.startMedia({ audio: false, video: true });
  assert.equal(second.sendTransportId, first.sendTransportId, 'video produced on the same send transport');
  assert.deepEqual(second.producers.map((p) => p.kind).sort(), ['audio', 'video']);
  await waitReceiving(bob, alice, ['audio', 'video']);
  const s2 = await sample(bob, { seconds: 5 });
  assertReceives(s2, bob, alice, t);
});

scenario('when a participant leaves, the others get consumer-closed for its consumers and participant-left', async ({ open }) => {
  const id = meetingId('leave');
  const alice = await open('alice');
  const bob = await open('bob');
  await alice.join(id);
  await bob.join(id);
  await alice.startMedia();
  await bob.startMedia();
  await Promise.all([waitReceiving(alice, bob), waitReceiving(bob, alice)]);

  const bobsConsumers = pick(await alice.stats(), { userId: bob.userId }).map((c) => c.consumerId);
  assert.equal(bobsConsumers.length, 2);
  const bobParticipantId = bob.you.participantId;
  await bob.leave();

  const closed = await waitForEvents(alice, 'consumer-closed',
    (evs) => bobsConsumers.every((cid) => evs.some((e) => e.data.consumerId === cid)),
    { what: `consumer-closed for ${bobsConsumers.join(', ')}` });
  for (const e of closed) {
    assert.ok(['participant-left', 'producer-closed'].includes(e.data.reason), `consumer-closed reason: ${JSON.stringify(e.data)}`);
    assert.ok(e.data.producerId, `consumer-closed carries producerId: ${JSON.stringify(e.data)}`);
  }
  await waitForEvents(alice, 'participant-left', (evs) => evs.some((e) => e.data.participantId === bobParticipantId && e.data.userId === bob.userId));
  const remaining = await alice.consumerIds();
  assert.ok(bobsConsumers.every((cid) => !remaining.includes(cid)), `alice closed bob's consumers: ${remaining}`);
});

scenario('a consumer paused then resumed stops then restarts frames', async ({ open }, t) => {
  const id = meetingId('pause');
  const alice = await open('alice');
  const bob = await open('bob');
  await alice.join(id);
  await bob.join(id);
  await alice.startMedia();
  await waitReceiving(bob, alice);
  const video = { userId: alice.userId, kind: 'video' };
  const audio = { userId: alice.userId, kind: 'audio' };
  const vid = consumerOf(await bob.stats(), alice, 'video').consumerId;
  assertRising(await sample(bob, { seconds: 3 }), video, 'framesDecoded', { minDelta: 10, label: 'before pause:' });

  const pauseAck = await bob.pauseConsumer(vid);
  assert.equal(pauseAck?.ok, true, `pause-consumer ack: ${JSON.stringify(pauseAck)}`);
  await sleep(1000); // frames already in flight
  const paused = await sample(bob, { seconds: 3 });
  const flat = assertFlat(paused, video, 'framesDecoded', { label: 'while paused:' });
  assertFlat(paused, video, 'packetsReceived', { label: 'while paused:' });
  assertRising(paused, audio, 'packetsReceived', { minDelta: 50, label: 'audio while video paused:' });
  t.diagnostic(`paused: framesDecoded stayed at ${flat[0]}`);

  const resumeAck = await bob.resumeConsumer(vid);
  assert.equal(resumeAck?.ok, true, `resume-consumer ack: ${JSON.stringify(resumeAck)}`);
  const resumed = await sample(bob, { seconds: 5 });
  const r = assertRising(resumed, video, 'framesDecoded', { minDelta: 10, minFraction: 0.5, label: 'after resume:' });
  t.diagnostic(`resumed: framesDecoded ${r[0]} → ${r.at(-1)}`);
});

scenario('a moderator mutes a participant\'s audio: receivers stop getting its audio packets', async ({ open }, t) => {
  const id = meetingId('mute');
  const host = await open('host');
  const bob = await open('bob');
  const carol = await open('carol');
  const h = await host.join(id);
  assert.equal(h.you.role, 'host', `first joiner is host in dev mode: ${JSON.stringify(h.you)}`);
  await bob.join(id);
  await carol.join(id);
  await bob.startMedia();
  await Promise.all([waitReceiving(host, bob), waitReceiving(carol, bob)]);
  const audio = { userId: bob.userId, kind: 'audio' };
  const video = { userId: bob.userId, kind: 'video' };
  const before = await Promise.all([sample(host, { seconds: 2 }), sample(carol, { seconds: 2 })]);
  for (const s of before) assertRising(s, audio, 'packetsReceived', { minDelta: 20, label: 'before mute:' });

  const ack = await host.mute(bob.userId, 'audio');
  assert.equal(ack?.ok, true, `participant:mute ack: ${JSON.stringify(ack)}`);
  for (const p of [bob, carol]) {
    await waitForEvents(p, 'participant:muted', (evs) => evs.some((e) => e.data.targetUserId === bob.userId && e.data.muteType === 'audio'));
  }
  await sleep(1000); // packets already in flight
  const after = await Promise.all([sample(host, { seconds: 4 }), sample(carol, { seconds: 4 })]);
  for (const [i, s] of after.entries()) {
    const who = i === 0 ? 'host' : 'carol';
    const v = assertFlat(s, audio, 'packetsReceived', { label: `${who} after mute:` });
    assertRising(s, video, 'framesDecoded', { minDelta: 10, label: `${who} video after audio mute:` });
    t.diagnostic(`${who}: bob's audio packetsReceived held at ${v[0]} after the mute`);
  }
});

scenario('benchmark: subscriber join → first decoded remote video frame (printed, not asserted)', async ({ open }, t) => {
  const id = meetingId('bench');
  const alice = await open('alice');
  await alice.join(id);
  await alice.startMedia();
  await sleep(2000); // publisher settled (all simulcast layers up)
  const runs = [];
  for (let i = 1; i <= 3; i++) {
    const sub = await open(`sub${i}`);
    await sub.join(id);
    await sub.page.waitForFunction(() => window.meeting.marks().firstVideoFrame !== undefined, null, { timeout: 20_000, polling: 50 });
    const m = await sub.eval(() => window.meeting.marks());
    const rel = (k) => (m[k] === undefined ? 'n/a' : `${(m[k] - m.joinStart).toFixed(0)}`);
    runs.push(m.firstVideoFrame - m.joinStart);
    const line = `run ${i}: join → first decoded frame ${rel('firstVideoFrame')} ms ` +
      `(connected ${rel('connected')}, participant-joined ${rel('joined')}, recv transport ${rel('recvTransport')}, ` +
      `first new-producer ${rel('firstNewProducer')}, first subscribed ${rel('firstSubscribed')})`;
    t.diagnostic(line);
    console.log(`[benchmark] ${line}`);
    await sub.close();
  }
  const sorted = [...runs].sort((a, b) => a - b);
  const summary = `join → first decoded remote video frame: median ${sorted[1].toFixed(0)} ms, min ${sorted[0].toFixed(0)}, max ${sorted[2].toFixed(0)} (3 runs)`;
  t.diagnostic(summary);
  console.log(`[benchmark] ${summary}`);
});
