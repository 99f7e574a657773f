// ICE restart (issue 13 item 3) in the bundled web client: the server's debug hook (MEET_MEDIA__DEBUG_HOOKS, off by
// default; POST /debug/media/drop from loopback) drops every packet of one receiving transport for 5 s, a network
// outage. The client sees the transport go `disconnected`/`failed`, asks `restart-ice`, calls mediasoup-client's
// transport.restartIce, and the video plays again on the same transport, without a rejoin: the participant
// session is unchanged and nobody gets `participant-left`.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { useHarness } from './lib/harness.mjs';
import { DESKTOP, until, sleep } from './lib/browser.mjs';

const DROP_MS = 5000;
const { env, open, step } = useHarness({ serverEnv: { MEET_MEDIA__DEBUG_HOOKS: 'true' } });
const s = { meetingId: `meeting_ice_${randomBytes(4).toString('hex')}` };

async function metric(name) {
  const text = await (await fetch(`${env.server.url}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name)).reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
}

step('two people in a meeting see each other', async () => {
  s.ann = await open('ann', { device: DESKTOP, path: `/?m=${s.meetingId}` });
  await s.ann.joinMeeting('Ann');
  s.ben = await open('ben', { device: DESKTOP, path: `/?m=${s.meetingId}` });
  await s.ben.joinMeeting('Ben', { micOff: true });
  await s.ben.expectVideo('Ann');
}, { timeout: 90_000 });

step('a 5 s outage of one transport: the client restarts ICE and the video plays again, no rejoin', async (t) => {
  const before = await s.ben.state();
  const restartsBefore = await metric('meet_ice_restarts_total');
  const recvId = before.transportIds.recv;
  assert.match(recvId, /^tr_/);
  const res = await fetch(`${env.server.url}/debug/media/drop`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ meetingId: s.meetingId, transportId: recvId, ms: DROP_MS }),
  });
  assert.equal(res.status, 200, await res.text());
  const dropped = Date.now();
  // The outage shows: frames stop.
  await sleep(1500);
  const f1 = await s.ben.frames('Ann');
  await sleep(1500);
  const f2 = await s.ben.frames('Ann');
  assert.ok(f2 - f1 <= 2, `frames should stall during the outage (${f1} → ${f2})`);
  // The client restarts ICE on its own, and the video plays again.
  await until(async () => (await s.ben.state()).iceRestarts > 0, { timeoutMs: 20_000, what: 'an ICE restart by the client' });
  const restartedAfter = Date.now() - dropped;
  await until(async () => (await s.ben.frames('Ann')) > f2 + 10, { timeoutMs: 25_000, what: 'frames rising again' });
  const back = Date.now() - dropped;
  await s.ben.expectVideo('Ann');
  const after = await s.ben.state();
  t.diagnostic(`restart-ice ${restartedAfter} ms after the outage began; frames rising again after ${back} ms; transports ${JSON.stringify(after.transports)}; restarts ${after.iceRestarts}`);
  // Same participant session, same transport (an ICE restart, not a media restart or a rejoin).
  assert.equal(after.you.participantId, before.you.participantId);
  assert.equal(after.transportIds.recv, recvId);
  assert.equal(after.transports.recv, 'connected');
  assert.equal((await s.ben.events('ack:join-meeting')).filter((e) => e.data.ok).length, 1, 'joined once');
  for (const u of [s.ann, s.ben]) assert.equal((await u.events('participant-left')).length, 0, `${u.label} got participant-left`);
  assert.equal((await s.ben.events('transport:closed')).length, 0);
  const acks = await s.ben.events('ack:restart-ice');
  assert.ok(acks.length >= 1 && acks.every((e) => e.data.ok), JSON.stringify(acks));
  assert.ok((await metric('meet_ice_restarts_total')) > restartsBefore);
  // Ann still receives Ben (his send transport was never touched).
  assert.equal(after.transports.send, 'connected');
}, { timeout: 90_000 });
