// join-meeting / leave-meeting / disconnect, meeting-state, access control and join errors.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { useServer } from './lib/harness.mjs';
import {
  once, emitAck, ok, expectError, assertConnected, ISO_RE, sleep, assertFields,
} from './lib/client.mjs';

const MEETING_ID_RE = /^[A-Za-z0-9_-]{1,128}$/;

describe('join and leave', () => {
  const ctx = useServer();

  ctx.test("the guide's example flow: emit join-meeting, then once('participant-joined')", async () => {
    const host = ctx.user({ name: 'alice' });
    const meeting = await ctx.createMeeting(host, { title: 'Guide flow' });
    const socket = await ctx.connect(host);
    // exactly as the guide's MeetingClient.joinMeeting: no ack, wait for participant-joined
    const joined = new Promise((resolve, reject) => {
      socket.emit('join-meeting', { meetingId: meeting.meetingId });
      socket.once('participant-joined', resolve);
      socket.once('error', reject);
    });
    const data = await Promise.race([
      joined,
      sleep(3000).then(() => { throw new Error('participant-joined did not arrive within 3 s'); }),
    ]);
    assert.equal(data.userId, host.userId);
    assert.equal(data.userName, host.userName);
    assert.equal(data.meetingId, meeting.meetingId);
    assert.equal(typeof data.participantId, 'string');
    assert.equal(data.participantCount, 1);
    assert.equal(data.role, 'host');
    // the joiner also got meeting-state, before participant-joined
    const state = socket.rec.entries('meeting-state')[0];
    assert.ok(state, `the joiner must receive meeting-state; got ${socket.rec.names().join(', ')}`);
    const pj = socket.rec.entries('participant-joined')[0];
    assert.ok(state.seq < pj.seq, 'meeting-state must arrive before participant-joined');
    assert.equal(state.args[0].you.participantId, data.participantId);
    assert.equal(socket.rec.count('error'), 0);
  });

  ctx.test('the guide example also works with the optional userId/userName fields (identity comes from the JWT)', async () => {
    const host = ctx.user();
    const meeting = await ctx.createMeeting(host, {});
    const socket = await ctx.connect(host);
    socket.emit('join-meeting', { meetingId: meeting.meetingId, userId: 'user_123', userName: 'John Doe' });
    const data = await once(socket, 'participant-joined');
    assert.equal(data.userId, host.userId, 'identity must come from the JWT, not the payload');
    assert.equal(data.userName, host.userName);
  });

  ctx.test('two clients: meeting-state, participant-joined to everyone incl. the joiner, a small ack', async () => {
    const alice = ctx.user({ name: 'alice' });
    const bob = ctx.user({ name: 'bob' });
    const meeting = await ctx.createMeeting(alice, { title: 'Standup' });
    assert.match(meeting.meetingId, MEETING_ID_RE);
    const sa = await ctx.connect(alice);
    const sb = await ctx.connect(bob);

    // The ack is small: {ok, meetingId, participantId, you}; the snapshot comes only in meeting-state (DESIGN §4).
    const mark0 = sa.rec.mark();
    const smallAck = await emitAck(sa, 'join-meeting', { meetingId: meeting.meetingId });
    const ackA = await sa.rec.waitFor('meeting-state', { since: mark0 });
    assert.deepEqual(smallAck, {
      ok: true, meetingId: meeting.meetingId, participantId: ackA.you.participantId, you: ackA.you,
    });
    assert.equal(ackA.meetingId, meeting.meetingId);
    assert.equal(ackA.title, 'Standup');
    assert.equal(ackA.you.userId, alice.userId);
    assert.equal(ackA.you.role, 'host');
    assert.equal(typeof ackA.you.participantId, 'string');
    assert.deepEqual(ackA.participants.map((p) => p.userId), [alice.userId]);
    assert.ok(['grid', 'speaker', 'presentation'].includes(ackA.layout), `layout: ${ackA.layout}`);
    assert.equal(ackA.spotlight, null);
    assert.equal(ackA.screenShare, null);
    assert.deepEqual(ackA.recording, { state: 'idle' });
    assert.equal(ackA.settings.maxParticipants, 100);
    assert.equal(ackA.settings.recordingEnabled, false);
    assert.equal(ackA.settings.allowSelfUnmute, true);
    assert.deepEqual(ackA.recentMessages, []);
    assert.equal(ackA.rtpCapabilities, undefined, 'router capabilities come from GET /meeting/{id}/webrtc-config');
    await sa.rec.waitFor('participant-joined', { where: (d) => d.userId === alice.userId });

    const markA = sa.rec.mark();
    const ackB = await ctx.join(sb, meeting.meetingId);
    assert.equal(ackB.you.userId, bob.userId);
    assert.equal(ackB.you.role, 'participant');
    assert.notEqual(ackB.you.participantId, ackA.you.participantId);
    assert.equal(ackB.participants.length, 2);
    const pa = ackB.participants.find((p) => p.userId === alice.userId);
    const pb = ackB.participants.find((p) => p.userId === bob.userId);
    assert.ok(pa && pb, JSON.stringify(ackB.participants));
    assert.equal(pa.role, 'host');
    assert.equal(pa.participantId, ackA.you.participantId);
    assert.equal(pa.userName, alice.userName);
    assert.equal(pa.handRaised, false);
    assert.match(pa.joinedAt, ISO_RE);
    assert.deepEqual(pa.producers, []);
    assert.equal(pb.role, 'participant');

    const toAlice = await sa.rec.waitFor('participant-joined', { since: markA });
    const toBob = await sb.rec.waitFor('participant-joined', { where: (d) => d.userId === bob.userId });
    for (const d of [toAlice, toBob]) {
      assertFields(d, {
        meetingId: meeting.meetingId,
        participantId: ackB.you.participantId,
        userId: bob.userId,
        userName: bob.userName,
        role: 'participant',
        participantCount: 2,
      });
    }
    assert.equal(sb.rec.count('meeting-state'), 1);
    assert.equal(sa.rec.count('meeting-state'), 1, 'meeting-state goes to the joiner only');

    // REST agrees
    const res = await ctx.api('GET', `/api/meetings/${meeting.meetingId}/participants`, { user: bob });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body.participants.map((p) => p.userId).sort(), [alice.userId, bob.userId].sort());
    const info = await ctx.api('GET', `/api/meetings/${meeting.meetingId}`, { user: bob });
    assert.equal(info.body.participantCount, 2);
  });

  ctx.test('leave-meeting: others get participant-left (reason left), the leaver does not', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2 });
    const ack = await ok(b.socket, 'leave-meeting', { meetingId });
    assert.deepEqual(ack, { ok: true });
    for (const m of [a, c]) {
      const d = await m.socket.rec.waitFor('participant-left');
      assertFields(d, {
        meetingId,
        participantId: b.participantId,
        userId: b.user.userId,
        userName: b.user.userName,
        participantCount: 2,
        reason: 'left',
      });
    }
    await b.socket.rec.expectNone('participant-left');
    assertConnected(b.socket);
    // after leaving, meeting events are NOT_IN_MEETING and leaving again too
    await expectError(b.socket, 'hand:raise', { meetingId }, 'NOT_IN_MEETING');
    await expectError(b.socket, 'leave-meeting', { meetingId }, 'NOT_IN_MEETING');
    // and the leaver can join again
    const again = await ctx.join(b.socket, meetingId);
    assert.equal(again.participants.length, 3);
  });

  ctx.test('disconnect = leave: others get participant-left with reason disconnected', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    b.socket.disconnect();
    const d = await a.socket.rec.waitFor('participant-left');
    assert.equal(d.reason, 'disconnected');
    assert.equal(d.userId, b.user.userId);
    assert.equal(d.participantId, b.participantId);
    assert.equal(d.participantCount, 1);
    const res = await ctx.api('GET', `/api/meetings/${meetingId}/participants`, { user: a.user });
    assert.deepEqual(res.body.participants.map((p) => p.userId), [a.user.userId]);
  });

  ctx.test('events of one meeting do not reach another meeting', async () => {
    const m1 = await ctx.meeting({ participants: 1 });
    const m2 = await ctx.meeting({ participants: 1 });
    const joiner = await ctx.addMember(m1.meetingId, ctx.user({ name: 'late' }), m1.members);
    await ok(joiner.socket, 'leave-meeting', { meetingId: m1.meetingId });
    await m1.host.socket.rec.waitFor('participant-left');
    for (const m of m2.members) {
      await m.socket.rec.expectNone('participant-joined', { ms: 100 });
      await m.socket.rec.expectNone('participant-left', { ms: 100 });
    }
  });

  ctx.test('a user in two tabs is two participants', async () => {
    const { meetingId, host, members: [a] } = await ctx.meeting({ participants: 0 });
    const tab2 = await ctx.connect(host.user, { label: 'host tab 2' });
    const state = await ctx.join(tab2, meetingId);
    assert.equal(state.you.userId, host.user.userId);
    assert.notEqual(state.you.participantId, a.participantId);
    assert.equal(state.participants.length, 2);
    assert.equal(state.participants.filter((p) => p.userId === host.user.userId).length, 2);
    assert.equal(state.you.role, 'host');
    const d = await a.socket.rec.waitFor('participant-joined');
    assert.equal(d.participantCount, 2);
    assert.equal(d.participantId, state.you.participantId);
    const res = await ctx.api('GET', `/api/meetings/${meetingId}/participants`, { user: host.user });
    assert.equal(res.body.participants.length, 2);
    // closing one tab leaves the other in the meeting
    tab2.disconnect();
    const left = await a.socket.rec.waitFor('participant-left');
    assert.equal(left.participantId, state.you.participantId);
    assert.equal(left.participantCount, 1);
    await ok(a.socket, 'hand:raise', { meetingId });
  });

  ctx.test('joining the same meeting again on the same socket → VALIDATION_ERROR, nothing changes', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    await expectError(b.socket, 'join-meeting', { meetingId }, 'VALIDATION_ERROR');
    await a.socket.rec.expectNone('participant-joined');
    await a.socket.rec.expectNone('participant-left', { ms: 0 });
    const res = await ctx.api('GET', `/api/meetings/${meetingId}/participants`, { user: a.user });
    assert.equal(res.body.participants.length, 2);
  });

  ctx.test('joining another meeting leaves the first one', async () => {
    const m1 = await ctx.meeting({ participants: 1 });
    const m2 = await ctx.meeting({ participants: 0 });
    const b = m1.members[1];
    // m2's host invites nobody, same campus: b may join
    const state = await ctx.join(b.socket, m2.meetingId);
    assert.equal(state.meetingId, m2.meetingId);
    const left = await m1.host.socket.rec.waitFor('participant-left');
    assert.equal(left.userId, b.user.userId);
    assert.equal(left.meetingId, m1.meetingId);
    await m2.host.socket.rec.waitFor('participant-joined', { where: (d) => d.userId === b.user.userId });
    await expectError(b.socket, 'hand:raise', { meetingId: m1.meetingId }, 'NOT_IN_MEETING');
    await ok(b.socket, 'hand:raise', { meetingId: m2.meetingId });
  });

  ctx.test('NOT_IN_MEETING: never joined, and using another meeting’s id', async () => {
    const m1 = await ctx.meeting({ participants: 1 });
    const m2 = await ctx.meeting({ participants: 0 });
    const outsider = await ctx.connect(ctx.user({ name: 'outsider' }));
    await expectError(outsider, 'hand:raise', { meetingId: m1.meetingId }, 'NOT_IN_MEETING');
    await expectError(outsider, 'send-message', { meetingId: m1.meetingId, message: 'hi' }, 'NOT_IN_MEETING');
    await expectError(outsider, 'leave-meeting', { meetingId: m1.meetingId }, 'NOT_IN_MEETING');
    const b = m1.members[1];
    for (const [event, payload] of [
      ['hand:raise', {}],
      ['send-message', { message: 'wrong room' }],
      ['typing', { typing: true }],
      ['reaction:send', { emoji: '👍' }],
      ['screen:start', {}],
      ['leave-meeting', {}],
      ['layout:change', { layout: 'speaker' }],
      ['participant:pin', { targetUserId: m2.host.user.userId }],
      ['stats:report', { stats: { rtt: 1 } }],
    ]) {
      await expectError(b.socket, event, { meetingId: m2.meetingId, ...payload }, 'NOT_IN_MEETING');
    }
    // nothing reached m2
    await m2.host.socket.rec.expectNone('new-message', { ms: 0 });
    await m2.host.socket.rec.expectNone('hand:raised', { ms: 0 });
    await m2.host.socket.rec.expectNone('user-typing', { ms: 0 });
    await m2.host.socket.rec.expectNone('screen:started', { ms: 0 });
    // and b is still in m1
    await ok(b.socket, 'hand:raise', { meetingId: m1.meetingId });
  });

  ctx.test('MEETING_NOT_FOUND for an unknown (well-formed) id', async () => {
    const s = await ctx.connect(ctx.user());
    const { err } = await expectError(s, 'join-meeting', { meetingId: 'meeting_doesNotExist123' }, 'MEETING_NOT_FOUND');
    assert.equal(err.event, 'join-meeting');
    assertConnected(s);
  });

  ctx.test('ACCESS_DENIED for another campus; allowedCampuses and invitedUserIds let users in', async () => {
    const host = ctx.user({ name: 'host', campusId: 'campus_a' });
    const stranger = ctx.user({ name: 'stranger', campusId: 'campus_b' });
    const allowedCampusUser = ctx.user({ name: 'allowed', campusId: 'campus_c' });
    const invited = ctx.user({ name: 'invited', campusId: 'campus_d' });
    const notInvited = ctx.user({ name: 'uninvited', campusId: 'campus_d' });
    const closed = await ctx.createMeeting(host, {});
    const open = await ctx.createMeeting(host, {
      allowedCampuses: ['campus_c'],
      invitedUserIds: [invited.userId],
    });
    const hs = await ctx.connect(host);
    await ctx.join(hs, open.meetingId);
    hs.rec.clear();

    const ss = await ctx.connect(stranger);
    await expectError(ss, 'join-meeting', { meetingId: closed.meetingId }, 'ACCESS_DENIED');
    await expectError(ss, 'join-meeting', { meetingId: open.meetingId }, 'ACCESS_DENIED');
    const ns = await ctx.connect(notInvited);
    await expectError(ns, 'join-meeting', { meetingId: open.meetingId }, 'ACCESS_DENIED');
    await hs.rec.expectNone('participant-joined', { ms: 100 });

    const as = await ctx.connect(allowedCampusUser);
    const st1 = await ctx.join(as, open.meetingId);
    assert.equal(st1.you.role, 'participant');
    await expectError(as, 'join-meeting', { meetingId: closed.meetingId }, 'ACCESS_DENIED');
    const is = await ctx.connect(invited);
    await ctx.join(is, open.meetingId);
    await hs.rec.waitFor('participant-joined', { where: (d) => d.userId === invited.userId });

    // REST follows the same rule
    assert.equal((await ctx.api('GET', `/api/meetings/${closed.meetingId}`, { user: stranger })).status, 403);
    const denied = await ctx.api('GET', `/api/meetings/${open.meetingId}`, { user: notInvited });
    assert.equal(denied.status, 403);
    assert.equal(denied.body?.error?.code, 'ACCESS_DENIED');
    assert.equal((await ctx.api('GET', `/api/meetings/${open.meetingId}`, { user: invited })).status, 200);
    assert.equal((await ctx.api('GET', `/api/meetings/${open.meetingId}`, { user: allowedCampusUser })).status, 200);
  });

  ctx.test('MEETING_FULL when maxParticipants is reached; a slot frees up after a leave', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1, settings: { maxParticipants: 2 } });
    const c = await ctx.connect(ctx.user({ name: 'carol' }));
    await expectError(c, 'join-meeting', { meetingId }, 'MEETING_FULL');
    await a.socket.rec.expectNone('participant-joined');
    await ok(b.socket, 'leave-meeting', { meetingId });
    await a.socket.rec.waitFor('participant-left');
    const st = await ctx.join(c, meetingId);
    assert.equal(st.participants.length, 2);
  });

  ctx.test('VALIDATION_ERROR for bad meeting ids; nothing joined', async () => {
    const s = await ctx.connect(ctx.user());
    for (const meetingId of ['', 'has space', 'semi;colon', 'ünïcode', 'x'.repeat(129), '../etc/passwd']) {
      await expectError(s, 'join-meeting', { meetingId }, 'VALIDATION_ERROR');
    }
    for (const payload of [{}, { meetingId: 42 }, { meetingId: null }, { meetingId: ['a'] }, { meetingId: { id: 'a' } }]) {
      await expectError(s, 'join-meeting', payload, 'VALIDATION_ERROR');
    }
    assertConnected(s);
  });

  ctx.test('a 128-char meeting id is well-formed (MEETING_NOT_FOUND, not VALIDATION_ERROR)', async () => {
    const s = await ctx.connect(ctx.user());
    await expectError(s, 'join-meeting', { meetingId: 'a'.repeat(128) }, 'MEETING_NOT_FOUND');
    await expectError(s, 'join-meeting', { meetingId: 'A-b_9' }, 'MEETING_NOT_FOUND');
  });

  ctx.test('join over the polling transport', async () => {
    const { meetingId, host } = await ctx.meeting({ participants: 0 });
    const user = ctx.user({ name: 'poller' });
    const s = await ctx.connect(user, { transports: ['polling'] });
    assert.equal(s.io.engine.transport.name, 'polling');
    const state = await ctx.join(s, meetingId);
    assert.equal(state.you.userId, user.userId);
    await s.rec.waitFor('participant-joined', { where: (d) => d.userId === user.userId });
    await host.socket.rec.waitFor('participant-joined', { where: (d) => d.userId === user.userId });
    // and a broadcast reaches the polling client
    await ok(host.socket, 'hand:raise', { meetingId });
    const raised = await s.rec.waitFor('hand:raised');
    assert.equal(raised.userId, host.user.userId);
    s.disconnect();
    const left = await host.socket.rec.waitFor('participant-left');
    assert.equal(left.reason, 'disconnected');
  });

  ctx.test('requests of one socket are answered in the order they were sent', async () => {
    const { meetingId, host } = await ctx.meeting({ participants: 0 });
    const s = await ctx.connect(ctx.user({ name: 'fast' }));
    const order = [];
    const track = (name, p) => p.then((ack) => { order.push(name); return ack; });
    const acks = await Promise.all([
      track('join', emitAck(s, 'join-meeting', { meetingId })),
      track('raise', emitAck(s, 'hand:raise', { meetingId })),
      track('msg', emitAck(s, 'send-message', { meetingId, message: 'in order' })),
      track('lower', emitAck(s, 'hand:lower', { meetingId })),
      track('leave', emitAck(s, 'leave-meeting', { meetingId })),
      track('raise-after-leave', emitAck(s, 'hand:raise', { meetingId })),
    ]);
    assert.deepEqual(order, ['join', 'raise', 'msg', 'lower', 'leave', 'raise-after-leave']);
    assert.deepEqual(acks.slice(0, 5).map((a) => a.ok), [true, true, true, true, true]);
    assert.equal(acks[5].ok, false);
    assert.equal(acks[5].error.code, 'NOT_IN_MEETING');
    await host.socket.rec.waitFor('participant-left');
    const names = host.socket.rec.names();
    assert.deepEqual(names, ['participant-joined', 'hand:raised', 'new-message', 'hand:lowered', 'participant-left']);
  });
});
