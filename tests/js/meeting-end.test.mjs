// Ending a meeting via REST and via meeting:end.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { useServer } from './lib/harness.mjs';
import { ok, expectError, assertConnected, ISO_RE } from './lib/client.mjs';

async function assertEnded(ctx, { meetingId, members, endedBy }) {
  for (const m of members) {
    const d = await m.socket.rec.waitFor('meeting:ended');
    assert.equal(d.meetingId, meetingId);
    assert.deepEqual(d.endedBy, { userId: endedBy.userId, userName: endedBy.userName });
    assert.match(d.timestamp, ISO_RE);
  }
  for (const m of members) {
    // everyone was removed from the meeting, but the sockets stay connected
    await expectError(m.socket, 'hand:raise', { meetingId }, 'NOT_IN_MEETING');
    await expectError(m.socket, 'send-message', { meetingId, message: 'anyone?' }, 'NOT_IN_MEETING');
    await expectError(m.socket, 'join-meeting', { meetingId }, 'MEETING_ENDED');
  }
  await members[0].socket.rec.expectNone('$disconnect');
  for (const m of members) assertConnected(m.socket);
  // a new socket cannot join either
  const fresh = await ctx.connect(ctx.user({ name: 'newcomer' }));
  await expectError(fresh, 'join-meeting', { meetingId }, 'MEETING_ENDED');
  // REST shows it ended
  const res = await ctx.api('GET', `/api/meetings/${meetingId}`, { user: endedBy });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.status, 'ended');
  assert.match(res.body.endedAt, ISO_RE);
  assert.equal(res.body.participantCount, 0);
  const parts = await ctx.api('GET', `/api/meetings/${meetingId}/participants`, { user: endedBy });
  assert.deepEqual(parts.body.participants, []);
  // the sockets can still join another meeting
  const other = await ctx.meeting({ participants: 0 });
  const st = await ctx.join(members[members.length - 1].socket, other.meetingId);
  assert.equal(st.meetingId, other.meetingId);
}

describe('ending a meeting', () => {
  const ctx = useServer();

  ctx.test('POST /api/meetings/{id}/end by the host: everyone gets meeting:ended and is removed', async () => {
    const { meetingId, host, members } = await ctx.meeting({ participants: 2 });
    const res = await ctx.api('POST', `/api/meetings/${meetingId}/end`, { user: host.user });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, { ok: true });
    await assertEnded(ctx, { meetingId, members, endedBy: host.user });
    const again = await ctx.api('POST', `/api/meetings/${meetingId}/end`, { user: host.user });
    assert.equal(again.status, 409, again.text);
    assert.equal(again.body?.error?.code, 'MEETING_ENDED');
  });

  ctx.test('meeting:end by the host: same result; ack ok', async () => {
    const { meetingId, host, members } = await ctx.meeting({ participants: 2 });
    const ack = await ok(host.socket, 'meeting:end', { meetingId });
    assert.equal(ack.ok, true);
    await assertEnded(ctx, { meetingId, members, endedBy: host.user });
  });

  ctx.test('ending reaches a host’s second tab and participants of that meeting only', async () => {
    const m1 = await ctx.meeting({ participants: 1 });
    const m2 = await ctx.meeting({ participants: 1 });
    const tab2 = await ctx.addMember(m1.meetingId, m1.host.user, m1.members, { label: 'host tab 2' });
    await ok(tab2.socket, 'meeting:end', { meetingId: m1.meetingId });
    for (const m of [...m1.members, tab2]) {
      const d = await m.socket.rec.waitFor('meeting:ended');
      assert.equal(d.meetingId, m1.meetingId);
    }
    for (const m of m2.members) await m.socket.rec.expectNone('meeting:ended', { ms: 150 });
    await ok(m2.members[1].socket, 'hand:raise', { meetingId: m2.meetingId });
  });

  ctx.test('end by a non-host: REST 403 FORBIDDEN, meeting:end FORBIDDEN; the meeting goes on', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    const res = await ctx.api('POST', `/api/meetings/${meetingId}/end`, { user: b.user });
    assert.equal(res.status, 403, res.text);
    assert.equal(res.body?.error?.code, 'FORBIDDEN');
    await expectError(b.socket, 'meeting:end', { meetingId }, 'FORBIDDEN');
    const outsider = await ctx.api('POST', `/api/meetings/${meetingId}/end`, { user: ctx.user({ campusId: 'campus_q' }) });
    assert.ok([403].includes(outsider.status), outsider.text);
    const nf = await ctx.api('POST', '/api/meetings/meeting_nope/end', { user: a.user });
    assert.equal(nf.status, 404, nf.text);
    assert.equal(nf.body?.error?.code, 'MEETING_NOT_FOUND');
    await a.socket.rec.expectNone('meeting:ended');
    await ok(b.socket, 'hand:raise', { meetingId });
    const info = await ctx.api('GET', `/api/meetings/${meetingId}`, { user: a.user });
    assert.equal(info.body.status, 'active');
  });

  ctx.test('an ended meeting with nobody in it is MEETING_ENDED to join', async () => {
    const host = ctx.user();
    const meeting = await ctx.createMeeting(host, {});
    const res = await ctx.api('POST', `/api/meetings/${meeting.meetingId}/end`, { user: host });
    assert.equal(res.status, 200, res.text);
    const s = await ctx.connect(host);
    await expectError(s, 'join-meeting', { meetingId: meeting.meetingId }, 'MEETING_ENDED');
  });
});
