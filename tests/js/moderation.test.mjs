// Moderation and permissions: FORBIDDEN for plain participants, moderator grants via socket and REST.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { useServer } from './lib/harness.mjs';
import { ok, expectError, assertConnected, assertFields } from './lib/client.mjs';

/** Every host/moderator-only action, as [event, payload builder, code when forbidden]. */
function moderatedActions(meetingId, target) {
  return [
    ['participant:mute', { meetingId, targetUserId: target, muteType: 'audio' }, 'FORBIDDEN'],
    ['participant:mute', { meetingId, targetUserId: target, muteType: 'video' }, 'FORBIDDEN'],
    ['layout:change', { meetingId, layout: 'presentation' }, 'FORBIDDEN'],
    ['participant:spotlight', { meetingId, targetUserId: target }, 'FORBIDDEN'],
    ['participant:spotlight', { meetingId, targetUserId: null }, 'FORBIDDEN'],
    ['recording:start', { meetingId }, 'UNAUTHORIZED_RECORDING'],
    ['recording:stop', { meetingId }, 'UNAUTHORIZED_RECORDING'],
    ['recording:pause', { meetingId }, 'UNAUTHORIZED_RECORDING'],
    ['recording:resume', { meetingId }, 'UNAUTHORIZED_RECORDING'],
  ];
}

describe('moderation and permissions', () => {
  const ctx = useServer();

  ctx.test('a plain participant gets FORBIDDEN for every host/moderator-only action, and nothing changes', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2, settings: { recordingEnabled: true } });
    for (const [event, payload, code] of moderatedActions(meetingId, c.user.userId)) {
      await expectError(b.socket, event, payload, code);
    }
    await expectError(b.socket, 'participant:role', { meetingId, targetUserId: c.user.userId, role: 'moderator' }, 'FORBIDDEN');
    await expectError(b.socket, 'participant:role', { meetingId, targetUserId: b.user.userId, role: 'moderator' }, 'FORBIDDEN');
    await expectError(b.socket, 'meeting:end', { meetingId }, 'FORBIDDEN');
    for (const m of [a, c]) {
      for (const n of ['participant:muted', 'layout:changed', 'participant:spotlighted', 'participant:role-changed', 'meeting:ended']) {
        assert.equal(m.socket.rec.count(n), 0, `${n} must not be broadcast after a refused request`);
      }
      assert.equal(m.socket.rec.count('error'), 0, 'errors go to the requesting socket only');
    }
    await a.socket.rec.expectNone('layout:changed');
    // the meeting is untouched: a new joiner sees the original layout, no spotlight, b still a participant
    const late = await ctx.addMember(meetingId, ctx.user({ name: 'late' }), [a, b, c]);
    assert.equal(late.state.layout, a.state.layout);
    assert.equal(late.state.spotlight, null);
    assert.equal(late.state.participants.find((p) => p.userId === b.user.userId).role, 'participant');
    const info = await ctx.api('GET', `/api/meetings/${meetingId}`, { user: b.user });
    assert.equal(info.body.status, 'active');
  });

  ctx.test('a forbidden layout change leaves the old layout for the next joiner', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    await ok(a.socket, 'layout:change', { meetingId, layout: 'speaker' });
    await b.socket.rec.waitFor('layout:changed');
    await expectError(b.socket, 'layout:change', { meetingId, layout: 'presentation' }, 'FORBIDDEN');
    await a.socket.rec.expectNone('layout:changed', { where: (d) => d.layout === 'presentation' });
    const late = await ctx.addMember(meetingId, ctx.user({ name: 'late' }), [a, b]);
    assert.equal(late.state.layout, 'speaker');
  });

  ctx.test('host grants moderator via participant:role → moderator may moderate; demoted → FORBIDDEN again', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2, settings: { recordingEnabled: true } });
    const ack = await ok(a.socket, 'participant:role', { meetingId, targetUserId: b.user.userId, role: 'moderator' });
    assert.equal(ack.ok, true);
    for (const m of [a, b, c]) {
      const d = await m.socket.rec.waitFor('participant:role-changed');
      assertFields(d, {
        meetingId,
        targetUserId: b.user.userId,
        role: 'moderator',
        changedBy: { userId: a.user.userId, userName: a.user.userName },
      });
    }
    // now b may do every host/moderator action
    await ok(b.socket, 'participant:mute', { meetingId, targetUserId: c.user.userId, muteType: 'audio' });
    const muted = await c.socket.rec.waitFor('participant:muted');
    assert.equal(muted.moderatorId, b.user.userId);
    assert.equal(muted.moderatorName, b.user.userName);
    await ok(b.socket, 'layout:change', { meetingId, layout: 'presentation' });
    const lc = await c.socket.rec.waitFor('layout:changed');
    assert.deepEqual(lc.changedBy, { userId: b.user.userId, userName: b.user.userName });
    await ok(b.socket, 'participant:spotlight', { meetingId, targetUserId: c.user.userId });
    await c.socket.rec.waitFor('participant:spotlighted');
    // recording passes the permission check (nothing is being recorded; recording.test.mjs records)
    await expectError(b.socket, 'recording:stop', { meetingId }, 'RECORDING_NOT_ACTIVE');
    // a moderator may stop someone else's screen share
    await ok(c.socket, 'screen:start', { meetingId });
    await b.socket.rec.waitFor('screen:started');
    await ok(b.socket, 'screen:stop', { meetingId });
    await c.socket.rec.waitFor('screen:stopped');
    // but still may not change roles or end the meeting
    await expectError(b.socket, 'participant:role', { meetingId, targetUserId: c.user.userId, role: 'moderator' }, 'FORBIDDEN');
    await expectError(b.socket, 'meeting:end', { meetingId }, 'FORBIDDEN');
    // meeting-state and REST show the role
    const late = await ctx.addMember(meetingId, ctx.user({ name: 'late' }), [a, b, c]);
    assert.equal(late.state.participants.find((p) => p.userId === b.user.userId).role, 'moderator');
    assert.equal(late.state.layout, 'presentation');
    assert.deepEqual(late.state.spotlight, { userId: c.user.userId });
    const parts = await ctx.api('GET', `/api/meetings/${meetingId}/participants`, { user: a.user });
    assert.equal(parts.body.participants.find((p) => p.userId === b.user.userId).role, 'moderator');

    // demote
    const marks = [a, b, c].map((m) => m.socket.rec.mark());
    await ok(a.socket, 'participant:role', { meetingId, targetUserId: b.user.userId, role: 'participant' });
    for (const [k, m] of [a, b, c].entries()) {
      const d = await m.socket.rec.waitFor('participant:role-changed', { since: marks[k] });
      assert.equal(d.role, 'participant');
      assert.equal(d.targetUserId, b.user.userId);
    }
    for (const [event, payload, code] of moderatedActions(meetingId, c.user.userId)) {
      await expectError(b.socket, event, payload, code);
    }
  });

  ctx.test('host grants moderator via REST PUT /roles → participants are told and the moderator may moderate', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2 });
    await expectError(c.socket, 'layout:change', { meetingId, layout: 'speaker' }, 'FORBIDDEN');
    const res = await ctx.api('PUT', `/api/meetings/${meetingId}/roles/${encodeURIComponent(c.user.userId)}`, {
      user: a.user, body: { role: 'moderator' },
    });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, { ok: true, userId: c.user.userId, role: 'moderator' });
    for (const m of [a, b, c]) {
      const d = await m.socket.rec.waitFor('participant:role-changed');
      assert.equal(d.targetUserId, c.user.userId);
      assert.equal(d.role, 'moderator');
      assert.equal(d.meetingId, meetingId);
      assert.deepEqual(d.changedBy, { userId: a.user.userId, userName: a.user.userName });
    }
    await ok(c.socket, 'layout:change', { meetingId, layout: 'speaker' });
    const d = await b.socket.rec.waitFor('layout:changed');
    assert.equal(d.layout, 'speaker');
    await ok(c.socket, 'participant:mute', { meetingId, targetUserId: b.user.userId, muteType: 'video' });
    await b.socket.rec.waitFor('participant:muted');

    // back to participant via REST
    const res2 = await ctx.api('PUT', `/api/meetings/${meetingId}/roles/${encodeURIComponent(c.user.userId)}`, {
      user: a.user, body: { role: 'participant' },
    });
    assert.equal(res2.status, 200, res2.text);
    await c.socket.rec.waitFor('participant:role-changed', { where: (x) => x.role === 'participant' });
    await expectError(c.socket, 'layout:change', { meetingId, layout: 'grid' }, 'FORBIDDEN');
  });

  ctx.test('REST PUT /roles: non-host 403 FORBIDDEN, bad role 400, unknown meeting 404; nothing changes', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2 });
    const path = `/api/meetings/${meetingId}/roles/${encodeURIComponent(c.user.userId)}`;
    const forbidden = await ctx.api('PUT', path, { user: b.user, body: { role: 'moderator' } });
    assert.equal(forbidden.status, 403, forbidden.text);
    assert.equal(forbidden.body?.error?.code, 'FORBIDDEN');
    for (const body of [{ role: 'host' }, { role: 'admin' }, {}, { role: 1 }]) {
      const bad = await ctx.api('PUT', path, { user: a.user, body });
      assert.equal(bad.status, 400, `${JSON.stringify(body)}: ${bad.text}`);
      assert.equal(bad.body?.error?.code, 'VALIDATION_ERROR');
    }
    const nf = await ctx.api('PUT', `/api/meetings/meeting_missing999/roles/${c.user.userId}`, {
      user: a.user, body: { role: 'moderator' },
    });
    assert.equal(nf.status, 404, nf.text);
    assert.equal(nf.body?.error?.code, 'MEETING_NOT_FOUND');
    await c.socket.rec.expectNone('participant:role-changed');
    await expectError(c.socket, 'layout:change', { meetingId, layout: 'speaker' }, 'FORBIDDEN');
  });

  ctx.test('participant:role: the host cannot be targeted; bad role → VALIDATION_ERROR', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    await expectError(a.socket, 'participant:role', { meetingId, targetUserId: a.user.userId, role: 'participant' }, 'FORBIDDEN');
    await ok(a.socket, 'participant:role', { meetingId, targetUserId: b.user.userId, role: 'moderator' });
    await b.socket.rec.waitFor('participant:role-changed');
    // a moderator cannot demote the host either
    await expectError(b.socket, 'participant:role', { meetingId, targetUserId: a.user.userId, role: 'participant' }, 'FORBIDDEN');
    for (const role of ['host', 'owner', '', 5, null]) {
      await expectError(a.socket, 'participant:role', { meetingId, targetUserId: b.user.userId, role }, 'VALIDATION_ERROR');
    }
    await expectError(a.socket, 'participant:role', { meetingId, role: 'moderator' }, 'VALIDATION_ERROR');
    const late = await ctx.addMember(meetingId, ctx.user({ name: 'late' }), [a, b]);
    assert.equal(late.state.participants.find((p) => p.userId === a.user.userId).role, 'host');
    assertConnected(a.socket);
  });

  ctx.test('a participant may mute nobody, but the spotlight/mute target must be in the meeting even for the host', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    const outsider = ctx.user({ name: 'outsider' });
    await expectError(a.socket, 'participant:mute', { meetingId, targetUserId: outsider.userId, muteType: 'audio' }, 'NOT_FOUND');
    await expectError(a.socket, 'participant:spotlight', { meetingId, targetUserId: outsider.userId }, 'NOT_FOUND');
    await expectError(b.socket, 'participant:mute', { meetingId, targetUserId: a.user.userId, muteType: 'audio' }, 'FORBIDDEN');
  });
});
