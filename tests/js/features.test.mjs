// Meeting features: screen share, hand raise, reactions, layout, pin, spotlight, mute, stats, recording, media.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { useServer } from './lib/harness.mjs';
import { ok, expectError, emitAck, ISO_RE, assertConnected, sleep } from './lib/client.mjs';

const EMOJI = ['👍', '❤️', '😂', '😮', '😢', '👏', '🎉', '🤔', '👎', '🔥'];

describe('meeting features', () => {
  const ctx = useServer();

  ctx.test('screen share: start/stop reach everyone; a second sharer gets SCREEN_SHARE_ACTIVE', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2 });
    const ack = await ok(b.socket, 'screen:start', { meetingId });
    for (const m of [a, b, c]) {
      const d = await m.socket.rec.waitFor('screen:started');
      assert.equal(d.meetingId, meetingId);
      assert.equal(d.participantId, b.participantId);
      assert.equal(d.userId, b.user.userId);
      assert.equal(d.userName, b.user.userName);
      assert.match(d.timestamp, ISO_RE);
    }
    assert.equal(ack.ok, true);

    await expectError(c.socket, 'screen:start', { meetingId }, 'SCREEN_SHARE_ACTIVE');
    await expectError(a.socket, 'screen:start', { meetingId }, 'SCREEN_SHARE_ACTIVE');
    await a.socket.rec.expectNone('screen:started', { where: (d) => d.userId !== b.user.userId });

    // a late joiner sees the share in meeting-state
    const late = await ctx.addMember(meetingId, ctx.user({ name: 'late' }), [a, b, c]);
    assert.deepEqual(late.state.screenShare, {
      participantId: b.participantId, userId: b.user.userId, userName: b.user.userName,
    });

    await ok(b.socket, 'screen:stop', { meetingId });
    for (const m of [a, b, c, late]) {
      const d = await m.socket.rec.waitFor('screen:stopped');
      assert.equal(d.participantId, b.participantId);
      assert.equal(d.userId, b.user.userId);
      assert.equal(d.userName, b.user.userName);
      assert.match(d.timestamp, ISO_RE);
    }
    await expectError(b.socket, 'screen:stop', { meetingId }, 'NOT_FOUND');
    // now someone else may share
    await ok(c.socket, 'screen:start', { meetingId });
    const late2 = await ctx.addMember(meetingId, ctx.user({ name: 'late2' }), [a, b, c, late]);
    assert.equal(late2.state.screenShare.userId, c.user.userId);
  });

  ctx.test('screen:stop of someone else’s share: FORBIDDEN for a participant, allowed for the host', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2 });
    await ok(b.socket, 'screen:start', { meetingId });
    await a.socket.rec.waitFor('screen:started');
    await expectError(c.socket, 'screen:stop', { meetingId }, 'FORBIDDEN');
    await a.socket.rec.expectNone('screen:stopped');
    await ok(a.socket, 'screen:stop', { meetingId });
    for (const m of [a, b, c]) {
      const d = await m.socket.rec.waitFor('screen:stopped');
      assert.equal(d.userId, b.user.userId, 'screen:stopped names the sharer');
    }
  });

  ctx.test('screen share stops when the sharer leaves or disconnects', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2 });
    await ok(b.socket, 'screen:start', { meetingId });
    await a.socket.rec.waitFor('screen:started');
    await ok(b.socket, 'leave-meeting', { meetingId });
    const d = await a.socket.rec.waitFor('screen:stopped');
    assert.equal(d.userId, b.user.userId);
    await ok(c.socket, 'screen:start', { meetingId });
    await a.socket.rec.waitFor('screen:started', { where: (x) => x.userId === c.user.userId });
    c.socket.disconnect();
    const d2 = await a.socket.rec.waitFor('screen:stopped', { where: (x) => x.userId === c.user.userId });
    assert.equal(d2.participantId, c.participantId);
    await ok(a.socket, 'screen:start', { meetingId });
  });

  ctx.test('hand raise / lower: events only on change, ack carries handRaised', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2 });
    const ack = await ok(b.socket, 'hand:raise', { meetingId });
    assert.equal(ack.handRaised, true);
    for (const m of [a, b, c]) {
      const d = await m.socket.rec.waitFor('hand:raised');
      assert.equal(d.meetingId, meetingId);
      assert.equal(d.participantId, b.participantId);
      assert.equal(d.userId, b.user.userId);
      assert.equal(d.userName, b.user.userName);
      assert.match(d.timestamp, ISO_RE);
    }
    const again = await ok(b.socket, 'hand:raise', { meetingId });
    assert.equal(again.handRaised, true);
    await sleep(300);
    assert.equal(a.socket.rec.count('hand:raised'), 1, 'raising a raised hand must not broadcast again');

    const late = await ctx.addMember(meetingId, ctx.user({ name: 'late' }), [a, b, c]);
    const bInState = late.state.participants.find((p) => p.userId === b.user.userId);
    assert.equal(bInState.handRaised, true);
    assert.equal(late.state.participants.find((p) => p.userId === a.user.userId).handRaised, false);

    const lower = await ok(b.socket, 'hand:lower', { meetingId });
    assert.equal(lower.handRaised, false);
    for (const m of [a, b, c, late]) {
      const d = await m.socket.rec.waitFor('hand:lowered');
      assert.equal(d.userId, b.user.userId);
      assert.equal(d.participantId, b.participantId);
      assert.match(d.timestamp, ISO_RE);
    }
    const lowerAgain = await ok(b.socket, 'hand:lower', { meetingId });
    assert.equal(lowerAgain.handRaised, false);
    await sleep(300);
    assert.equal(a.socket.rec.count('hand:lowered'), 1);
    // lowering a hand that was never raised: no event either
    await ok(c.socket, 'hand:lower', { meetingId });
    await a.socket.rec.expectNone('hand:lowered', { where: (d) => d.userId === c.user.userId });
  });

  ctx.test('reactions: every one of the ten emoji reaches everyone', async () => {
    const { meetingId, members } = await ctx.meeting({ participants: 1 });
    // the 3/s limit is per user: alternate two senders and pause between pairs
    let i = 0;
    for (const emoji of EMOJI) {
      const sender = i % 2 === 0 ? members[0] : members[1];
      i += 1;
      const mark = members.map((m) => m.socket.rec.mark());
      await ok(sender.socket, 'reaction:send', { meetingId, emoji });
      for (const [k, m] of members.entries()) {
        const d = await m.socket.rec.waitFor('reaction:received', { since: mark[k] });
        assert.equal(d.emoji, emoji);
        assert.equal(d.meetingId, meetingId);
        assert.equal(d.userId, sender.user.userId);
        assert.equal(d.participantId, sender.participantId);
        assert.equal(d.userName, sender.user.userName);
        assert.match(d.timestamp, ISO_RE);
      }
      if (i % 2 === 0) await sleep(400); // stay well under 3/s per user
    }
  });

  ctx.test('reactions: bad emoji → VALIDATION_ERROR and nothing is broadcast', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    for (const emoji of ['💩', 'thumbsup', '', '👍👍', 42, null]) {
      await expectError(b.socket, 'reaction:send', { meetingId, emoji }, 'VALIDATION_ERROR');
    }
    await expectError(b.socket, 'reaction:send', { meetingId }, 'VALIDATION_ERROR');
    await a.socket.rec.expectNone('reaction:received');
  });

  ctx.test('layout:change by the host reaches everyone and is in the next meeting-state', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    for (const layout of ['speaker', 'presentation', 'grid', 'speaker']) {
      const marks = [a, b].map((m) => m.socket.rec.mark());
      await ok(a.socket, 'layout:change', { meetingId, layout });
      for (const [k, m] of [a, b].entries()) {
        const d = await m.socket.rec.waitFor('layout:changed', { since: marks[k] });
        assert.equal(d.meetingId, meetingId);
        assert.equal(d.layout, layout);
        assert.deepEqual(d.changedBy, { userId: a.user.userId, userName: a.user.userName });
        assert.match(d.timestamp, ISO_RE);
      }
    }
    const late = await ctx.addMember(meetingId, ctx.user({ name: 'late' }), [a, b]);
    assert.equal(late.state.layout, 'speaker');
    await expectError(a.socket, 'layout:change', { meetingId, layout: 'tiles' }, 'VALIDATION_ERROR');
    await expectError(a.socket, 'layout:change', { meetingId }, 'VALIDATION_ERROR');
  });

  ctx.test('participant:pin is told to the requester only', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2 });
    await ok(c.socket, 'participant:pin', { meetingId, targetUserId: b.user.userId });
    const d = await c.socket.rec.waitFor('participant:pinned');
    assert.equal(d.meetingId, meetingId);
    assert.equal(d.targetUserId, b.user.userId);
    assert.match(d.timestamp, ISO_RE);
    await a.socket.rec.expectNone('participant:pinned', { ms: 300 });
    await b.socket.rec.expectNone('participant:pinned', { ms: 0 });
    // a plain participant may pin; an unknown target is NOT_FOUND
    await expectError(c.socket, 'participant:pin', { meetingId, targetUserId: 'u_nobody_here' }, 'NOT_FOUND');
    await expectError(c.socket, 'participant:pin', { meetingId }, 'VALIDATION_ERROR');
  });

  ctx.test('participant:spotlight reaches everyone; null clears it; meeting-state follows', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2 });
    await ok(a.socket, 'participant:spotlight', { meetingId, targetUserId: b.user.userId });
    for (const m of [a, b, c]) {
      const d = await m.socket.rec.waitFor('participant:spotlighted');
      assert.equal(d.meetingId, meetingId);
      assert.equal(d.targetUserId, b.user.userId);
      assert.equal(d.userName, b.user.userName);
      assert.deepEqual(d.changedBy, { userId: a.user.userId, userName: a.user.userName });
      assert.match(d.timestamp, ISO_RE);
    }
    const late = await ctx.addMember(meetingId, ctx.user({ name: 'late' }), [a, b, c]);
    assert.deepEqual(late.state.spotlight, { userId: b.user.userId });

    const marks = [a, b, c].map((m) => m.socket.rec.mark());
    await ok(a.socket, 'participant:spotlight', { meetingId, targetUserId: null });
    for (const [k, m] of [a, b, c].entries()) {
      const d = await m.socket.rec.waitFor('participant:spotlighted', { since: marks[k] });
      assert.equal(d.targetUserId, null);
    }
    const late2 = await ctx.addMember(meetingId, ctx.user({ name: 'late2' }), [a, b, c, late]);
    assert.equal(late2.state.spotlight, null);
    await expectError(a.socket, 'participant:spotlight', { meetingId, targetUserId: 'u_nobody_here' }, 'NOT_FOUND');
  });

  ctx.test('participant:mute by the host reaches everyone', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2 });
    for (const muteType of ['audio', 'video']) {
      const marks = [a, b, c].map((m) => m.socket.rec.mark());
      await ok(a.socket, 'participant:mute', { meetingId, targetUserId: b.user.userId, muteType });
      for (const [k, m] of [a, b, c].entries()) {
        const d = await m.socket.rec.waitFor('participant:muted', { since: marks[k] });
        assert.equal(d.meetingId, meetingId);
        assert.equal(d.targetUserId, b.user.userId);
        assert.equal(d.muteType, muteType);
        assert.equal(d.moderatorId, a.user.userId);
        assert.equal(d.moderatorName, a.user.userName);
        assert.match(d.timestamp, ISO_RE);
      }
    }
    await expectError(a.socket, 'participant:mute', { meetingId, targetUserId: 'u_nobody_here', muteType: 'audio' }, 'NOT_FOUND');
    await expectError(a.socket, 'participant:mute', { meetingId, targetUserId: b.user.userId, muteType: 'screen' }, 'VALIDATION_ERROR');
    await expectError(a.socket, 'participant:mute', { meetingId, targetUserId: b.user.userId }, 'VALIDATION_ERROR');
    await expectError(a.socket, 'participant:mute', { meetingId, muteType: 'audio' }, 'VALIDATION_ERROR');
  });

  ctx.test('stats:report is stored silently (ack ok, no event to anyone)', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    const ack = await emitAck(b.socket, 'stats:report', {
      meetingId, stats: { rtt: 45, packetLoss: 0.5, jitter: 10, bitrate: 1500000 },
    });
    assert.deepEqual(ack, { ok: true });
    const ack2 = await emitAck(a.socket, 'stats:report', { meetingId, stats: { rtt: 12 } });
    assert.deepEqual(ack2, { ok: true }, 'any stat may be omitted');
    await a.socket.rec.expectNone('error');
    assert.deepEqual(a.socket.rec.names(), [], 'stats:report must not produce events');
    assert.deepEqual(b.socket.rec.names(), []);
  });

  ctx.test('recording when the meeting allows it: host passes the permission check (nothing to stop → RECORDING_NOT_ACTIVE), participant → UNAUTHORIZED_RECORDING', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1, settings: { recordingEnabled: true } });
    assert.equal(a.state.settings.recordingEnabled, true);
    assert.deepEqual(a.state.recording, { state: 'idle' });
    for (const event of ['recording:stop', 'recording:pause', 'recording:resume']) {
      await expectError(a.socket, event, { meetingId }, 'RECORDING_NOT_ACTIVE');
    }
    for (const event of ['recording:start', 'recording:stop', 'recording:pause', 'recording:resume']) {
      await expectError(b.socket, event, { meetingId }, 'UNAUTHORIZED_RECORDING');
    }
    for (const m of [a, b]) {
      assert.equal(m.socket.rec.names().filter((n) => n.startsWith('recording:')).length, 0,
        'a refused request sends no recording:* event');
    }
  });

  ctx.test('recording when the meeting disallows it: RECORDING_DISABLED for everyone (checked first)', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    for (const event of ['recording:start', 'recording:stop', 'recording:pause', 'recording:resume']) {
      await expectError(a.socket, event, { meetingId }, 'RECORDING_DISABLED');
      await expectError(b.socket, event, { meetingId }, 'RECORDING_DISABLED');
    }
  });

  ctx.test('GET /meeting/{id}/webrtc-config needs no token and answers the router capabilities, the same for every id', async () => {
    const res = await ctx.api('GET', '/meeting/meeting_abc123/webrtc-config');
    assert.equal(res.status, 200, res.text);
    const caps = res.body.rtpCapabilities;
    const mimes = caps.codecs.map((c) => c.mimeType);
    for (const m of ['audio/opus', 'video/VP8', 'video/VP9', 'video/H264', 'video/AV1']) assert.ok(mimes.includes(m), m);
    const vp8 = caps.codecs.find((c) => c.mimeType === 'video/VP8');
    const rtx = caps.codecs.find((c) => c.mimeType === 'video/rtx' && c.parameters.apt === vp8.preferredPayloadType);
    assert.ok(rtx, 'VP8 has RTX');
    assert.ok(caps.headerExtensions.some((h) => h.uri.endsWith('transport-wide-cc-extensions-01') && h.kind === 'audio'));
    const res2 = await ctx.api('GET', '/meeting/anything-else/webrtc-config');
    assert.equal(res2.status, 200);
    assert.deepEqual(res2.body, res.body, 'same answer for every id');
  });
});
