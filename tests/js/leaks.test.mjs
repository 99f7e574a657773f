// Nothing stays behind over uptime (issue 7, item 7): media objects made for a participant who was removed while
// the request ran are closed, an ended meeting's in-memory state expires, the new-producer pacer does not bring
// back a meeting everyone left. Checked through /metrics: meet_meeting_states (meetings with in-memory state) and
// meet_media_{transports,producers,consumers} (published by each media worker every second).
// The soak in the load tool (`meet-load --soak-secs`, run by scripts/test) does the same over many cycles.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { useServer } from './lib/harness.mjs';
import { ok, emitAck, sleep } from './lib/client.mjs';
import { opus } from './lib/rtp.mjs';


async function metric(ctx, name) {
  const text = (await ctx.api('GET', '/metrics')).text;
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
}

/** Polls until every named metric is `value` (the workers publish their counts once a second). */
async function until(ctx, names, value, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  let got;
  for (;;) {
    got = Object.fromEntries(await Promise.all(names.map(async (n) => [n, await metric(ctx, n)])));
    if (Object.values(got).every((v) => v === value)) return got;
    if (Date.now() > end) assert.fail(`metrics did not reach ${value}: ${JSON.stringify(got)}`);
    await sleep(200);
  }
}

const MEDIA = ['meet_media_transports', 'meet_media_producers', 'meet_media_consumers'];

describe('leaks over uptime', () => {
  const ctx = useServer({ env: { MEET_MEETINGS__ENDED_STATE_SECS: '1' } });

  ctx.test('an ended meeting\'s in-memory state expires', async () => {
    await until(ctx, ['meet_meeting_states'], 0);
    const { meetingId, host } = await ctx.meeting({ participants: 1 });
    assert.equal(await metric(ctx, 'meet_meeting_states'), 1);
    await ok(host.socket, 'meeting:end', { meetingId });
    assert.equal(await metric(ctx, 'meet_meeting_states'), 1, 'the ended meeting is kept a moment (joins racing the end)');
    await until(ctx, ['meet_meeting_states'], 0, 4000);
  });

  ctx.test('the new-producer pacer does not bring back a meeting everyone left', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    await ok(a.socket, 'create-transport', { meetingId, direction: 'recv' });
    await ok(b.socket, 'create-transport', { meetingId, direction: 'send' });
    await ok(b.socket, 'produce', { meetingId, kind: 'audio', rtpParameters: opus('0', 1111), appData: {} });
    await ok(b.socket, 'produce', { meetingId, kind: 'audio', rtpParameters: opus('1', 2222), appData: {} });
    // a has one announcement outstanding and one queued: the pacer is watching this meeting.
    await a.socket.rec.waitFor('new-producer');
    a.socket.disconnect();
    b.socket.disconnect();
    await sleep(800); // three pacer ticks
    await until(ctx, ['meet_meeting_states', 'meet_participants', ...MEDIA], 0);
  });

  ctx.test('transports requested while the meeting ends are closed, not left in the media worker', async () => {
    for (let round = 0; round < 6; round++) {
      const { meetingId, host, members } = await ctx.meeting({ participants: 5 });
      const others = members.slice(1);
      // Every participant asks for both transports at once while the host ends the meeting.
      const asks = others.flatMap((m) => ['send', 'recv'].map((direction) => emitAck(m.socket, 'create-transport', { meetingId, direction })));
      await sleep(round % 3); // vary which side wins
      const ended = emitAck(host.socket, 'meeting:end', { meetingId });
      const acks = await Promise.all(asks);
      assert.equal((await ended).ok, true);
      for (const ack of acks) {
        assert.ok(ack.ok === true || ack.error?.code === 'NOT_IN_MEETING', JSON.stringify(ack));
      }
    }
    await until(ctx, [...MEDIA, 'meet_participants'], 0);
  });
});
