// Rate limits: boundaries, error shape, silent drops, per user per meeting.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { useServer } from './lib/harness.mjs';
import { ok, expectError, expectSilentError, emitAck, sleep } from './lib/client.mjs';

describe('rate limits', () => {
  const ctx = useServer();

  ctx.test('send-message: 10 per minute pass, the 11th → RATE_LIMIT_EXCEEDED with event and retryAfterMs', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    for (let i = 1; i <= 10; i++) {
      await ok(b.socket, 'send-message', { meetingId, message: `msg ${i}` });
    }
    const { ack, err } = await expectError(b.socket, 'send-message', { meetingId, message: 'msg 11' }, 'RATE_LIMIT_EXCEEDED');
    for (const e of [ack, err]) {
      assert.equal(e.event, 'send-message');
      assert.equal(typeof e.retryAfterMs, 'number', JSON.stringify(e));
      assert.ok(e.retryAfterMs > 0 && e.retryAfterMs <= 60_000, `retryAfterMs out of range: ${e.retryAfterMs}`);
      assert.ok(e.retryAfterMs > 50_000, `the oldest message is only seconds old: retryAfterMs ${e.retryAfterMs}`);
    }
    // the 11th was neither delivered nor stored
    await a.socket.rec.expectNone('new-message', { where: (m) => m.message === 'msg 11' });
    assert.equal(a.socket.rec.count('new-message'), 10);
    const hist = await ctx.api('GET', `/api/meetings/${meetingId}/messages?limit=100`, { user: b.user });
    assert.equal(hist.body.messages.length, 10);
    // still limited (and validation-clean messages keep failing)
    await expectError(b.socket, 'send-message', { meetingId, message: 'msg 12' }, 'RATE_LIMIT_EXCEEDED');
    // another user in the same meeting is unaffected
    await ok(a.socket, 'send-message', { meetingId, message: 'host is fine' });
    await b.socket.rec.waitFor('new-message', { where: (m) => m.message === 'host is fine' });
  });

  ctx.test('send-message limit is per user: a second tab of the same user is limited too; another meeting is not', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    const tab2 = await ctx.addMember(meetingId, b.user, [a, b], { label: 'bob tab 2' });
    for (let i = 1; i <= 5; i++) await ok(b.socket, 'send-message', { meetingId, message: `tab1 ${i}` });
    for (let i = 1; i <= 5; i++) await ok(tab2.socket, 'send-message', { meetingId, message: `tab2 ${i}` });
    await expectError(tab2.socket, 'send-message', { meetingId, message: 'tab2 over' }, 'RATE_LIMIT_EXCEEDED');
    await expectError(b.socket, 'send-message', { meetingId, message: 'tab1 over' }, 'RATE_LIMIT_EXCEEDED');
    // the same user in another meeting (third socket) has a fresh budget
    const other = await ctx.meeting({ participants: 0 });
    const s3 = await ctx.addMember(other.meetingId, b.user, [other.host], { label: 'bob in meeting 2' });
    for (let i = 1; i <= 3; i++) await ok(s3.socket, 'send-message', { meetingId: other.meetingId, message: `m2 ${i}` });
  });

  ctx.test('reaction:send: 3 pass, the 4th fails; after ~1.1 s one passes again', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    for (const emoji of ['👍', '🎉', '🔥']) await ok(b.socket, 'reaction:send', { meetingId, emoji });
    const { ack, err } = await expectError(b.socket, 'reaction:send', { meetingId, emoji: '👏' }, 'RATE_LIMIT_EXCEEDED');
    for (const e of [ack, err]) {
      assert.equal(e.event, 'reaction:send');
      assert.ok(typeof e.retryAfterMs === 'number' && e.retryAfterMs > 0 && e.retryAfterMs <= 1000,
        `retryAfterMs: ${JSON.stringify(e)}`);
    }
    await a.socket.rec.expectNone('reaction:received', { where: (r) => r.emoji === '👏' });
    assert.equal(a.socket.rec.count('reaction:received'), 3);
    // another user is not affected
    await ok(a.socket, 'reaction:send', { meetingId, emoji: '❤️' });
    await sleep(1100);
    await ok(b.socket, 'reaction:send', { meetingId, emoji: '😂' });
    await a.socket.rec.waitFor('reaction:received', { where: (r) => r.emoji === '😂' });
  });

  ctx.test('reaction:send is a sliding window: 3 spread over ~0.6 s, then the 4th fails until the first ages out', async () => {
    const { meetingId, members: [, b] } = await ctx.meeting({ participants: 1 });
    await ok(b.socket, 'reaction:send', { meetingId, emoji: '👍' });
    const t0 = Date.now();
    await sleep(300);
    await ok(b.socket, 'reaction:send', { meetingId, emoji: '👍' });
    await sleep(300);
    await ok(b.socket, 'reaction:send', { meetingId, emoji: '👍' });
    const { ack } = await expectError(b.socket, 'reaction:send', { meetingId, emoji: '👍' }, 'RATE_LIMIT_EXCEEDED');
    const elapsed = Date.now() - t0;
    assert.ok(ack.retryAfterMs <= 1000 - elapsed + 100, `retryAfterMs ${ack.retryAfterMs} vs elapsed ${elapsed}`);
    await sleep(ack.retryAfterMs + 100);
    await ok(b.socket, 'reaction:send', { meetingId, emoji: '👍' });
    // only the first one aged out: the next is over the limit again
    await expectError(b.socket, 'reaction:send', { meetingId, emoji: '👍' }, 'RATE_LIMIT_EXCEEDED');
  });

  ctx.test('typing: the 2nd within a second is dropped silently (no delivery, no error event; ack says so)', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2 });
    await ok(b.socket, 'typing', { meetingId, typing: true });
    await a.socket.rec.waitFor('user-typing');
    const e = await expectSilentError(b.socket, 'typing', { meetingId, typing: false }, 'RATE_LIMIT_EXCEEDED');
    assert.equal(e.event, 'typing');
    // without an ack as well (the guide's plain emit)
    const mark = b.socket.rec.mark();
    b.socket.emit('typing', { meetingId, typing: true });
    await b.socket.rec.expectNone('error', { since: mark });
    assert.equal(a.socket.rec.count('user-typing'), 1, 'over-limit typing must not be delivered');
    assert.equal(c.socket.rec.count('user-typing'), 1);
    // another user is unaffected
    await ok(c.socket, 'typing', { meetingId, typing: true });
    await a.socket.rec.waitFor('user-typing', { where: (d) => d.userId === c.user.userId });
    // after the window it is delivered again
    await sleep(1100);
    await ok(b.socket, 'typing', { meetingId, typing: false });
    const d = await a.socket.rec.waitFor('user-typing', { where: (x) => x.userId === b.user.userId && x.typing === false });
    assert.equal(d.participantId, b.participantId);
  });

  ctx.test('stats:report: the 2nd within 5 s → ack RATE_LIMIT_EXCEEDED, no error event; other users unaffected', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    const stats = { rtt: 45, packetLoss: 0.5, jitter: 10, bitrate: 1500000 };
    assert.deepEqual(await emitAck(b.socket, 'stats:report', { meetingId, stats }), { ok: true });
    const e = await expectSilentError(b.socket, 'stats:report', { meetingId, stats }, 'RATE_LIMIT_EXCEEDED');
    assert.equal(e.event, 'stats:report');
    const mark = b.socket.rec.mark();
    b.socket.emit('stats:report', { meetingId, stats });
    await b.socket.rec.expectNone('error', { since: mark });
    assert.deepEqual(await emitAck(a.socket, 'stats:report', { meetingId, stats }), { ok: true });
  });
});
