// DESIGN §4: a dropped connection that rejoins within the grace period keeps its raised hand (and its role, which is
// stored); leaving on purpose lowers the hand; after the grace the hand is gone. The grace is 2 s here (30 s default).
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { useServer } from './lib/harness.mjs';
import { ok, sleep } from './lib/client.mjs';

const GRACE_SECS = 2;

describe('rejoin grace', () => {
  const ctx = useServer({ env: { MEET_MEETINGS__REJOIN_GRACE_SECS: String(GRACE_SECS) } });

  /** b's own entry in its join snapshot. */
  const self = (member) => member.state.participants.find((p) => p.participantId === member.participantId);

  ctx.test('a dropped connection that rejoins in time gets its raised hand and its role back; the others are told', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    await ok(a.socket, 'participant:role', { meetingId, targetUserId: b.user.userId, role: 'moderator' });
    await b.socket.rec.waitFor('participant:role-changed');
    await ok(b.socket, 'hand:raise', { meetingId });
    await a.socket.rec.waitFor('hand:raised');

    b.socket.disconnect();
    const left = await a.socket.rec.waitFor('participant-left', { where: (d) => d.userId === b.user.userId });
    assert.equal(left.reason, 'disconnected');
    a.socket.rec.clear();

    const back = await ctx.addMember(meetingId, b.user, [a]);
    assert.notEqual(back.participantId, b.participantId, 'a rejoin is a new participant session');
    assert.equal(self(back).handRaised, true, 'the hand is still raised in the rejoiner\'s snapshot');
    assert.equal(back.state.you.role, 'moderator', 'the role survives too');
    const raised = await a.socket.rec.waitFor('hand:raised', { where: (d) => d.userId === b.user.userId });
    assert.equal(raised.participantId, back.participantId);
    assert.equal(raised.meetingId, meetingId);
    assert.equal(raised.userName, b.user.userName);
    // A later joiner sees it as well, and lowering works as usual.
    const late = await ctx.addMember(meetingId, ctx.user({ name: 'late' }), [a, back]);
    assert.equal(late.state.participants.find((p) => p.userId === b.user.userId).handRaised, true);
    const lower = await ok(back.socket, 'hand:lower', { meetingId });
    assert.equal(lower.handRaised, false);
    await a.socket.rec.waitFor('hand:lowered', { where: (d) => d.userId === b.user.userId });
  });

  ctx.test('leaving on purpose lowers the hand: a rejoin starts with it down and nobody hears hand:raised', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    await ok(b.socket, 'hand:raise', { meetingId });
    await a.socket.rec.waitFor('hand:raised');
    await ok(b.socket, 'leave-meeting', { meetingId });
    await a.socket.rec.waitFor('participant-left', { where: (d) => d.userId === b.user.userId });
    a.socket.rec.clear();
    const state = await ctx.join(b.socket, meetingId);
    assert.equal(state.participants.find((p) => p.participantId === state.you.participantId).handRaised, false);
    await a.socket.rec.waitFor('participant-joined', { where: (d) => d.userId === b.user.userId });
    await a.socket.rec.expectNone('hand:raised');
  });

  ctx.test('after the grace period the hand is gone', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    await ok(b.socket, 'hand:raise', { meetingId });
    await a.socket.rec.waitFor('hand:raised');
    b.socket.disconnect();
    await a.socket.rec.waitFor('participant-left', { where: (d) => d.userId === b.user.userId });
    a.socket.rec.clear();
    await sleep(GRACE_SECS * 1000 + 700);
    const back = await ctx.addMember(meetingId, b.user, [a]);
    assert.equal(self(back).handRaised, false);
    await a.socket.rec.expectNone('hand:raised');
  });

  ctx.test('another user\'s dropped hand is not handed to someone else', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    await ok(b.socket, 'hand:raise', { meetingId });
    await a.socket.rec.waitFor('hand:raised');
    b.socket.disconnect();
    await a.socket.rec.waitFor('participant-left', { where: (d) => d.userId === b.user.userId });
    a.socket.rec.clear();
    const c = await ctx.addMember(meetingId, ctx.user({ name: 'c' }), [a]);
    assert.equal(self(c).handRaised, false);
    await a.socket.rec.expectNone('hand:raised');
  });
});
