// DESIGN §4: a dropped connection that rejoins within the grace period keeps its raised hand (and its role, which is
// stored); leaving on purpose lowers the hand; after the grace the hand is gone. The grace is 2 s here (30 s default).
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { useServer } from './lib/harness.mjs';
import { ok, sleep, emitAck, expectError, joinState } from './lib/client.mjs';

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

  ctx.test('a rejoin naming its previous session (previousParticipantId) replaces it at once: participant-left, that socket closed, the hand kept', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    await ok(b.socket, 'hand:raise', { meetingId });
    await a.socket.rec.waitFor('hand:raised');
    a.socket.rec.clear();
    // b's connection "drops" without the server noticing (the old socket stays open): the client reconnects on a
    // new socket and says which session it was.
    const b2 = await ctx.connect(b.user);
    const state = await joinState(b2, { meetingId, previousParticipantId: b.participantId });
    const me = state.participants.find((p) => p.participantId === state.you.participantId);
    assert.equal(me.handRaised, true, 'the raised hand carried over');
    assert.deepEqual(state.participants.map((p) => p.userId).sort(), [a.user.userId, b.user.userId].sort(), 'the old session is gone from the snapshot');

    const left = await a.socket.rec.waitFor('participant-left', { where: (d) => d.participantId === b.participantId });
    assert.equal(left.reason, 'replaced');
    assert.equal(left.participantCount, 1);
    const joined = await a.socket.rec.waitFor('participant-joined', { where: (d) => d.participantId === state.you.participantId });
    assert.equal(joined.participantCount, 2);
    const order = a.socket.rec.events.map((e) => e.event);
    assert.ok(order.indexOf('participant-left') < order.indexOf('participant-joined'), `left before joined: ${order}`);
    await a.socket.rec.waitFor('hand:raised', { where: (d) => d.participantId === state.you.participantId });
    const reason = await b.socket.rec.waitFor('$disconnect');
    assert.equal(reason, 'io server disconnect', 'the replaced socket is closed by the server');
    const res = await ctx.api('GET', `/api/meetings/${meetingId}/participants`, { user: a.user });
    assert.deepEqual(res.body.participants.map((p) => p.participantId).sort(), [a.participantId, state.you.participantId].sort());
  });

  ctx.test('previousParticipantId cannot remove anyone else: another user\'s session stays; a malformed one is VALIDATION_ERROR', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    const c = await ctx.connect(ctx.user({ name: 'c' }));
    await expectError(c, 'join-meeting', { meetingId, previousParticipantId: 'not an id!' }, 'VALIDATION_ERROR');
    await expectError(c, 'join-meeting', { meetingId, previousParticipantId: 42 }, 'VALIDATION_ERROR');
    const state = await joinState(c, { meetingId, previousParticipantId: a.participantId });
    assert.equal(state.participants.length, 3, 'nobody was replaced');
    await b.socket.rec.waitFor('participant-joined', { where: (d) => d.participantId === state.you.participantId });
    await b.socket.rec.expectNone('participant-left');
    assert.equal(a.socket.connected, true);
    // An unknown (say, long gone) previous session: an ordinary join.
    const d = await ctx.connect(ctx.user({ name: 'd' }));
    const s2 = await joinState(d, { meetingId, previousParticipantId: 'participant_gone' });
    assert.equal(s2.participants.length, 4);
  });
});
