// The persistence scenario shared by the SQLite and PostgreSQL tests: meetings and chat survive a restart.
import assert from 'node:assert/strict';
import { Ctx } from './harness.mjs';
import { ok, expectError } from './client.mjs';

const strip = ({ ok: _ok, ...m }) => m;

/**
 * Runs against `server` (already started). Creates a meeting over REST, sends chat (all, private, host), ends a
 * second meeting, restarts the server on the same database, then checks REST, history, paging and meeting-state.
 */
export async function persistenceScenario(server) {
  const ctx = new Ctx();
  ctx.server = server;
  ctx.testSockets = new Set();
  try {
    const alice = ctx.user({ name: 'alice' });
    const bob = ctx.user({ name: 'bob' });
    const carol = ctx.user({ name: 'carol' });
    const meeting = await ctx.createMeeting(alice, {
      title: 'Persisted meeting', maxParticipants: 42, recordingEnabled: true, allowSelfUnmute: false,
      allowedCampuses: ['campus_p'], invitedUserIds: ['u_guest'],
    });
    const meetingId = meeting.meetingId;
    const ended = await ctx.createMeeting(alice, { title: 'Ended before restart' });

    const sa = await ctx.connect(alice);
    const sb = await ctx.connect(bob);
    const sc = await ctx.connect(carol);
    for (const s of [sa, sb, sc]) await ctx.join(s, meetingId);

    const sent = []; // acks in send order
    const send = async (socket, payload) => {
      const msg = strip(await ok(socket, 'send-message', { meetingId, ...payload }));
      sent.push(msg);
      return msg;
    };
    await send(sa, { message: 'welcome 1' });
    await send(sb, { message: 'hi from bob' });
    const priv = await send(sb, { message: 'bob → carol, private', recipientType: 'private', recipientId: carol.userId });
    const hostMsg = await send(sc, { message: 'carol → hosts', recipientType: 'host' });
    for (let i = 2; i <= 8; i++) await send(sa, { message: `welcome ${i}` });
    await send(sc, { message: 'ünïcødé ✓ 👍 "quotes" \\ and\nnewline' });

    const res = await ctx.api('POST', `/api/meetings/${ended.meetingId}/end`, { user: alice });
    assert.equal(res.status, 200, res.text);

    const visible = (user) => sent.filter((m) =>
      m.recipient_type === 'all'
      || m.sender_id === user.userId
      || (m.recipient_type === 'private' && m.recipient_id === user.userId)
      || (m.recipient_type === 'host' && user === alice));
    assert.ok(visible(alice).includes(hostMsg) && !visible(alice).includes(priv));

    ctx.closeSockets(ctx.testSockets);
    // ---- restart on the same database ----
    const stop = await server.restart();
    assert.equal(stop.killed, false, 'the server should stop on SIGTERM');
    assert.equal(stop.code, 0, `exit code on SIGTERM: ${stop.code}`);

    // the meeting is still there, with its settings
    const get = await ctx.api('GET', `/api/meetings/${meetingId}`, { user: bob });
    assert.equal(get.status, 200, get.text);
    for (const k of ['meetingId', 'title', 'hostUserId', 'campusId', 'maxParticipants', 'recordingEnabled',
      'allowSelfUnmute', 'allowedCampuses', 'invitedUserIds', 'status', 'createdAt', 'endedAt']) {
      assert.deepEqual(get.body[k], meeting[k], `meeting.${k} after restart`);
    }
    const getEnded = await ctx.api('GET', `/api/meetings/${ended.meetingId}`, { user: alice });
    assert.equal(getEnded.body.status, 'ended');
    assert.ok(getEnded.body.endedAt);

    // history per viewer (private ones only to sender/recipient; host ones to hosts + sender)
    const history = async (user, q = '') => {
      const r = await ctx.api('GET', `/api/meetings/${meetingId}/messages${q}`, { user });
      assert.equal(r.status, 200, r.text);
      return r.body;
    };
    const dave = ctx.user({ name: 'dave' });
    for (const user of [alice, bob, carol, dave]) {
      const h = await history(user);
      assert.deepEqual(h.messages, visible(user), `history for ${user.userName}`);
    }
    assert.ok(!(await history(alice)).messages.some((m) => m.id === priv.id));
    assert.ok((await history(bob)).messages.some((m) => m.id === priv.id));
    assert.ok((await history(carol)).messages.some((m) => m.id === priv.id));
    assert.ok(!(await history(dave)).messages.some((m) => m.id === priv.id || m.id === hostMsg.id));

    // paging
    const all = visible(carol);
    const p1 = await history(carol, '?limit=4');
    assert.deepEqual(p1.messages, all.slice(-4));
    assert.equal(p1.nextBefore, all[all.length - 4].id);
    const p2 = await history(carol, `?limit=4&before=${encodeURIComponent(p1.nextBefore)}`);
    assert.deepEqual(p2.messages, all.slice(-8, -4));
    const p3 = await history(carol, `?limit=4&before=${encodeURIComponent(p2.nextBefore)}`);
    assert.deepEqual(p3.messages, all.slice(0, -8));
    assert.equal(p3.nextBefore, null);

    // joiners see the recent messages they may see; the host is still host
    const sa2 = await ctx.connect(alice);
    const stA = await ctx.join(sa2, meetingId);
    assert.equal(stA.you.role, 'host');
    assert.deepEqual(stA.recentMessages, visible(alice));
    assert.equal(stA.title, 'Persisted meeting');
    assert.deepEqual(stA.settings, { maxParticipants: 42, recordingEnabled: true, allowSelfUnmute: false });
    const sb2 = await ctx.connect(bob);
    const stB = await ctx.join(sb2, meetingId);
    assert.equal(stB.you.role, 'participant');
    assert.deepEqual(stB.recentMessages, visible(bob));
    const sd = await ctx.connect(dave);
    const stD = await ctx.join(sd, meetingId);
    assert.deepEqual(stD.recentMessages, visible(dave));

    // chat keeps working and new ids do not collide with old ones
    const fresh = strip(await ok(sb2, 'send-message', { meetingId, message: 'after restart' }));
    assert.ok(!sent.some((m) => m.id === fresh.id), 'message ids must stay unique across restarts');
    const h2 = await history(dave);
    assert.deepEqual(h2.messages.at(-1), fresh);

    // the ended meeting stays ended
    await expectError(sd, 'join-meeting', { meetingId: ended.meetingId }, 'MEETING_ENDED');
  } finally {
    ctx.closeSockets(ctx.testSockets);
  }
}
