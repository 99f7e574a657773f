// Chat: send-message to all / private / host, typing, validation, recentMessages.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { useServer } from './lib/harness.mjs';
import { ok, expectError, emitAck, ISO_RE, assertFields } from './lib/client.mjs';

function assertMessageShape(m, { meetingId, sender, message, recipientType, recipientId = null }) {
  assert.equal(typeof m.id, 'string', `id: ${JSON.stringify(m)}`);
  assert.ok(m.id.length > 0);
  assert.equal(m.meeting_id, meetingId);
  assert.equal(m.sender_id, sender.userId);
  assert.equal(m.sender_name, sender.userName);
  assert.equal(m.message, message);
  assert.equal(m.message_type, 'text');
  assert.equal(m.recipient_type, recipientType);
  assert.equal(m.recipient_id ?? null, recipientId);
  assert.match(m.timestamp, ISO_RE);
}

describe('chat', () => {
  const ctx = useServer();

  ctx.test('send-message to all reaches everyone; ack carries the stored message', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2 });
    const ack = await ok(b.socket, 'send-message', { meetingId, message: 'Hello everyone!', recipientType: 'all' });
    assertMessageShape(ack, { meetingId, sender: b.user, message: 'Hello everyone!', recipientType: 'all' });
    for (const m of [a, b, c]) {
      const msg = await m.socket.rec.waitFor('new-message');
      const { ok: _ok, ...rest } = ack;
      assert.deepEqual(msg, rest);
    }
    // recipientType defaults to 'all'
    const ack2 = await ok(c.socket, 'send-message', { meetingId, message: 'default recipients' });
    assert.equal(ack2.recipient_type, 'all');
    await a.socket.rec.waitFor('new-message', { where: (m) => m.id === ack2.id });
    await b.socket.rec.waitFor('new-message', { where: (m) => m.id === ack2.id });
    assert.notEqual(ack.id, ack2.id);
  });

  ctx.test('the guide’s plain emit (no ack) works and keeps text as is (unicode, html, newlines)', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    const text = 'Grüße 👋 <b>not html</b>\nsecond line "quoted" \\ back';
    b.socket.emit('send-message', { meetingId, message: text, recipientType: 'all' });
    const msg = await a.socket.rec.waitFor('new-message');
    assert.equal(msg.message, text);
    await b.socket.rec.waitFor('new-message');
    assert.equal(b.socket.rec.count('error'), 0);
  });

  ctx.test('private message: only sender and recipient (all of the recipient’s tabs) receive it', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2, names: ['host', 'bob', 'carol'] });
    const carolTab2 = await ctx.addMember(meetingId, c.user, [a, b, c], { label: 'carol tab 2' });
    for (const m of [a, b, c, carolTab2]) m.socket.rec.clear();
    const ack = await ok(b.socket, 'send-message', {
      meetingId, message: 'psst', recipientType: 'private', recipientId: c.user.userId,
    });
    assertMessageShape(ack, { meetingId, sender: b.user, message: 'psst', recipientType: 'private', recipientId: c.user.userId });
    for (const m of [b, c, carolTab2]) {
      const msg = await m.socket.rec.waitFor('new-message');
      assert.equal(msg.id, ack.id);
      assert.equal(msg.recipient_id, c.user.userId);
    }
    await a.socket.rec.expectNone('new-message', { message: 'the host must not see a private message between others' });
    // a private message from the host to bob: carol sees nothing
    const ack2 = await ok(a.socket, 'send-message', {
      meetingId, message: 'to bob', recipientType: 'private', recipientId: b.user.userId,
    });
    await b.socket.rec.waitFor('new-message', { where: (m) => m.id === ack2.id });
    await a.socket.rec.waitFor('new-message', { where: (m) => m.id === ack2.id });
    await c.socket.rec.expectNone('new-message', { where: (m) => m.id === ack2.id });
    await carolTab2.socket.rec.expectNone('new-message', { where: (m) => m.id === ack2.id, ms: 0 });
  });

  ctx.test('host message: hosts, moderators and the sender only', async () => {
    const { meetingId, members: [a, b, c, d] } = await ctx.meeting({ participants: 3, names: ['host', 'bob', 'carol', 'dave'] });
    const ack = await ok(c.socket, 'send-message', { meetingId, message: 'question for the host', recipientType: 'host' });
    assertMessageShape(ack, { meetingId, sender: c.user, message: 'question for the host', recipientType: 'host' });
    await a.socket.rec.waitFor('new-message', { where: (m) => m.id === ack.id });
    await c.socket.rec.waitFor('new-message', { where: (m) => m.id === ack.id });
    await b.socket.rec.expectNone('new-message');
    await d.socket.rec.expectNone('new-message', { ms: 0 });

    // bob becomes moderator → receives host messages; dave still does not
    await ok(a.socket, 'participant:role', { meetingId, targetUserId: b.user.userId, role: 'moderator' });
    await b.socket.rec.waitFor('participant:role-changed');
    const ack2 = await ok(d.socket, 'send-message', { meetingId, message: 'dave asks', recipientType: 'host' });
    for (const m of [a, b, d]) await m.socket.rec.waitFor('new-message', { where: (x) => x.id === ack2.id });
    await c.socket.rec.expectNone('new-message', { where: (x) => x.id === ack2.id });
  });

  ctx.test('private/host/all messages in a joiner’s meeting-state.recentMessages: only what the joiner may see', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2, names: ['host', 'bob', 'carol'] });
    const all1 = await ok(a.socket, 'send-message', { meetingId, message: 'one' });
    const priv = await ok(b.socket, 'send-message', { meetingId, message: 'bob→carol', recipientType: 'private', recipientId: c.user.userId });
    const host = await ok(c.socket, 'send-message', { meetingId, message: 'carol→hosts', recipientType: 'host' });
    const all2 = await ok(b.socket, 'send-message', { meetingId, message: 'two' });
    const strip = ({ ok: _ok, ...m }) => m;

    const dave = await ctx.addMember(meetingId, ctx.user({ name: 'dave' }), [a, b, c]);
    assert.deepEqual(dave.state.recentMessages, [strip(all1), strip(all2)]);
    // carol's second tab sees the private message to her and her own host message
    const carol2 = await ctx.addMember(meetingId, c.user, [a, b, c, dave]);
    assert.deepEqual(carol2.state.recentMessages, [strip(all1), strip(priv), strip(host), strip(all2)]);
    // the host's second tab sees host messages but not the private one
    const host2 = await ctx.addMember(meetingId, a.user, [a, b, c, dave, carol2]);
    assert.deepEqual(host2.state.recentMessages, [strip(all1), strip(host), strip(all2)]);
  });

  ctx.test('send-message validation → VALIDATION_ERROR, nothing broadcast', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    const bad = [
      { meetingId, message: 'x'.repeat(2001) },
      { meetingId, message: '' },
      { meetingId, message: '   ' },
      { meetingId, message: '\n\t ' },
      { meetingId, message: 42 },
      { meetingId, message: null },
      { meetingId, message: ['hi'] },
      { meetingId },
      { meetingId, message: 'hi', recipientType: 'everyone' },
      { meetingId, message: 'hi', recipientType: 7 },
      { meetingId, message: 'hi', recipientType: 'private' },
      { meetingId, message: 'hi', recipientType: 'private', recipientId: 12 },
    ];
    for (const payload of bad) {
      await expectError(b.socket, 'send-message', payload, 'VALIDATION_ERROR');
    }
    await a.socket.rec.expectNone('new-message');
    // exactly 2000 chars is fine
    const ack = await ok(b.socket, 'send-message', { meetingId, message: 'y'.repeat(2000) });
    assert.equal(ack.message.length, 2000);
    await a.socket.rec.waitFor('new-message', { where: (m) => m.id === ack.id });
  });

  ctx.test('private message to someone not in the meeting → NOT_FOUND', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    const outsider = ctx.user({ name: 'outsider' });
    await expectError(b.socket, 'send-message', {
      meetingId, message: 'hello?', recipientType: 'private', recipientId: outsider.userId,
    }, 'NOT_FOUND');
    await a.socket.rec.expectNone('new-message');
    const hist = await ctx.api('GET', `/api/meetings/${meetingId}/messages`, { user: b.user });
    assert.deepEqual(hist.body.messages, [], 'a refused message is not stored');
  });

  ctx.test('typing: delivered to the others, never echoed to the sender', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2 });
    const ack = await emitAck(b.socket, 'typing', { meetingId, typing: true });
    assert.equal(ack.ok, true);
    for (const m of [a, c]) {
      const d = await m.socket.rec.waitFor('user-typing');
      assertFields(d, {
        meetingId, participantId: b.participantId, userId: b.user.userId, userName: b.user.userName, typing: true,
      });
    }
    await b.socket.rec.expectNone('user-typing');
    // the guide's plain emit, typing:false, after the 1/s window
    await new Promise((r) => setTimeout(r, 1100));
    b.socket.emit('typing', { meetingId, typing: false });
    const d = await a.socket.rec.waitFor('user-typing', { where: (x) => x.typing === false });
    assert.equal(d.userId, b.user.userId);
    await b.socket.rec.expectNone('user-typing');
  });

  ctx.test('typing validation → VALIDATION_ERROR', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    for (const payload of [{ meetingId }, { meetingId, typing: 'yes' }, { meetingId, typing: 1 }, { meetingId, typing: null }]) {
      await expectError(b.socket, 'typing', payload, 'VALIDATION_ERROR');
    }
    await a.socket.rec.expectNone('user-typing');
  });

  ctx.test('history over REST as seen by different users', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2 });
    const m1 = await ok(a.socket, 'send-message', { meetingId, message: 'public' });
    const m2 = await ok(b.socket, 'send-message', { meetingId, message: 'secret', recipientType: 'private', recipientId: c.user.userId });
    const m3 = await ok(b.socket, 'send-message', { meetingId, message: 'to hosts', recipientType: 'host' });
    const ids = async (user) => {
      const res = await ctx.api('GET', `/api/meetings/${meetingId}/messages`, { user });
      assert.equal(res.status, 200, res.text);
      return res.body.messages.map((m) => m.id);
    };
    assert.deepEqual(await ids(a.user), [m1.id, m3.id]);
    assert.deepEqual(await ids(b.user), [m1.id, m2.id, m3.id]);
    assert.deepEqual(await ids(c.user), [m1.id, m2.id]);
    assert.deepEqual(await ids(ctx.user({ name: 'same campus, never joined' })), [m1.id]);
    const other = await ctx.api('GET', `/api/meetings/${meetingId}/messages`, { user: ctx.user({ campusId: 'campus_z' }) });
    assert.equal(other.status, 403);
    assert.equal(other.body?.error?.code, 'ACCESS_DENIED');
  });
});
