// A moderator's mute is state of the participant (per kind): with allowSelfUnmute false it holds across
// producer:pause/resume and producer:close + a new produce, until a host/moderator lifts it with participant:unmute
// (which does not resume anything: the person unmutes themselves then). With allowSelfUnmute true nothing holds.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { useServer } from './lib/harness.mjs';
import { ok, expectError, ISO_RE } from './lib/client.mjs';
import { opus, vp8 } from './lib/rtp.mjs';


describe('moderator mute state', () => {
  const ctx = useServer();
  let caps;

  /** host (a), bob (b, with a send transport) and an observer (c, with a recv transport). */
  async function setup(allowSelfUnmute) {
    caps ??= (await ctx.api('GET', '/meeting/x/webrtc-config')).body.rtpCapabilities;
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2, settings: { allowSelfUnmute } });
    await ok(b.socket, 'create-transport', { meetingId, direction: 'send' });
    await ok(c.socket, 'create-transport', { meetingId, direction: 'recv' });
    let mid = 0;
    const produce = async (kind) => {
      mid += 1;
      const rtpParameters = kind === 'audio' ? opus(String(mid), 1000 * mid) : vp8(String(mid), 1000 * mid);
      return ok(b.socket, 'produce', { meetingId, kind, rtpParameters });
    };
    /** Whether the server holds the producer paused: what a new consumer of it is told. */
    const pausedOnServer = async (producerId) =>
      (await ok(c.socket, 'consume', { meetingId, producerId, rtpCapabilities: caps })).producerPaused;
    const mute = (muteType) => ok(a.socket, 'participant:mute', { meetingId, targetUserId: b.user.userId, muteType });
    const unmute = (muteType) => ok(a.socket, 'participant:unmute', { meetingId, targetUserId: b.user.userId, muteType });
    return { meetingId, a, b, c, produce, pausedOnServer, mute, unmute };
  }

  ctx.test('allowSelfUnmute false: producer:resume is FORBIDDEN, also after the muted person pauses it themselves', async () => {
    const { b, c, produce, pausedOnServer, mute } = await setup(false);
    const mic = await produce('audio');
    await mute('audio');
    await c.socket.rec.waitFor('producer:paused', { where: (d) => d.producerId === mic.producerId && d.byModerator === true });
    await expectError(b.socket, 'producer:resume', { producerId: mic.producerId }, 'FORBIDDEN');
    await ok(b.socket, 'producer:pause', { producerId: mic.producerId });
    await expectError(b.socket, 'producer:resume', { producerId: mic.producerId }, 'FORBIDDEN');
    await c.socket.rec.expectNone('producer:resumed');
    assert.equal(await pausedOnServer(mic.producerId), true);
  });

  ctx.test('allowSelfUnmute false: producer:close then a new produce of that kind is created paused on the server', async () => {
    const { b, c, produce, pausedOnServer, mute } = await setup(false);
    const mic = await produce('audio');
    await mute('audio');
    await ok(b.socket, 'producer:close', { producerId: mic.producerId });
    const mark = c.socket.rec.mark();
    const again = await produce('audio');
    assert.equal(again.paused, true, 'produced says it is paused');
    const told = await c.socket.rec.waitFor('producer:paused', { since: mark, where: (d) => d.producerId === again.producerId });
    assert.equal(told.byModerator, true);
    await b.socket.rec.waitFor('producer:paused', { where: (d) => d.producerId === again.producerId });
    assert.equal(await pausedOnServer(again.producerId), true);
    await expectError(b.socket, 'producer:resume', { producerId: again.producerId }, 'FORBIDDEN');
    // the mute is per kind: a camera starts live
    const cam = await produce('video');
    assert.equal(cam.paused, undefined);
    assert.equal(await pausedOnServer(cam.producerId), false);
  });

  ctx.test('participant:unmute (host/moderator) lifts the mute for everyone to see; the person then resumes themselves', async () => {
    const { meetingId, a, b, c, produce, pausedOnServer, mute, unmute } = await setup(false);
    const mic = await produce('audio');
    await mute('audio');
    await expectError(b.socket, 'participant:unmute', { meetingId, targetUserId: b.user.userId, muteType: 'audio' }, 'FORBIDDEN');
    await expectError(c.socket, 'participant:unmute', { meetingId, targetUserId: b.user.userId, muteType: 'audio' }, 'FORBIDDEN');
    await expectError(a.socket, 'participant:unmute', { meetingId, targetUserId: 'user_nobody', muteType: 'audio' }, 'NOT_FOUND');
    await expectError(a.socket, 'participant:unmute', { meetingId, targetUserId: b.user.userId, muteType: 'screen' }, 'VALIDATION_ERROR');
    await expectError(a.socket, 'participant:unmute', { meetingId, muteType: 'audio' }, 'VALIDATION_ERROR');
    await expectError(b.socket, 'producer:resume', { producerId: mic.producerId }, 'FORBIDDEN');

    const ack = await unmute('audio');
    assert.equal(ack.lifted, true);
    for (const m of [a, b, c]) {
      const ev = await m.socket.rec.waitFor('participant:unmuted');
      assert.deepEqual(Object.keys(ev).sort(), ['meetingId', 'moderatorId', 'moderatorName', 'muteType', 'targetUserId', 'timestamp']);
      assert.equal(ev.targetUserId, b.user.userId);
      assert.equal(ev.muteType, 'audio');
      assert.equal(ev.moderatorId, a.user.userId);
      assert.match(ev.timestamp, ISO_RE);
    }
    // lifting does not resume: still paused until bob unmutes himself
    await c.socket.rec.expectNone('producer:resumed');
    assert.equal(await pausedOnServer(mic.producerId), true);
    await ok(b.socket, 'producer:resume', { producerId: mic.producerId });
    await c.socket.rec.waitFor('producer:resumed', { where: (d) => d.producerId === mic.producerId });
    // nothing left to lift: ok, no event
    const mark = c.socket.rec.mark();
    assert.equal((await unmute('audio')).lifted, false);
    await c.socket.rec.expectNone('participant:unmuted', { since: mark });
  });

  ctx.test('a moderator (not only the host) may lift a mute; the mute ends when the participant leaves', async () => {
    const { meetingId, a, b, c, produce, mute } = await setup(false);
    const mic = await produce('audio');
    await mute('audio');
    await ok(a.socket, 'participant:role', { meetingId, targetUserId: c.user.userId, role: 'moderator' });
    await ok(c.socket, 'participant:unmute', { meetingId, targetUserId: b.user.userId, muteType: 'audio' });
    await ok(b.socket, 'producer:resume', { producerId: mic.producerId });

    await mute('audio');
    await ok(b.socket, 'leave-meeting', { meetingId });
    const back = await ctx.addMember(meetingId, b.user, [a, c]);
    await ok(back.socket, 'create-transport', { meetingId, direction: 'send' });
    const fresh = await ok(back.socket, 'produce', { meetingId, kind: 'audio', rtpParameters: opus('0', 777) });
    assert.equal(fresh.paused, undefined, 'a new session starts unmuted');
    await ok(back.socket, 'producer:pause', { producerId: fresh.producerId });
    await ok(back.socket, 'producer:resume', { producerId: fresh.producerId });
  });

  ctx.test('allowSelfUnmute true: the muted person may resume, and a new producer starts live', async () => {
    const { b, c, produce, pausedOnServer, mute } = await setup(true);
    const mic = await produce('audio');
    await mute('audio');
    await c.socket.rec.waitFor('producer:paused', { where: (d) => d.byModerator === true });
    await ok(b.socket, 'producer:resume', { producerId: mic.producerId });
    assert.equal(await pausedOnServer(mic.producerId), false);
    await mute('audio');
    await ok(b.socket, 'producer:close', { producerId: mic.producerId });
    const again = await produce('audio');
    assert.equal(again.paused, undefined);
    assert.equal(await pausedOnServer(again.producerId), false);
  });
});
