// Validation and robustness: non-object payloads, wrong types, junk, unknown events, huge and nested payloads.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { useServer } from './lib/harness.mjs';
import { ok, expectError, assertConnected, NO_PAYLOAD, sleep } from './lib/client.mjs';

const REQUEST_EVENTS = [
  'join-meeting', 'leave-meeting', 'screen:start', 'screen:stop', 'hand:raise', 'hand:lower', 'participant:mute',
  'reaction:send', 'layout:change', 'participant:pin', 'participant:spotlight', 'participant:role', 'meeting:end',
  'stats:report', 'send-message', 'typing',
];

function nested(depth) {
  let v = { leaf: true };
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
}

describe('validation and robustness', () => {
  const ctx = useServer();

  ctx.test('non-object payloads → VALIDATION_ERROR for every request event (ack and error event)', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    for (const event of REQUEST_EVENTS) {
      for (const payload of ['string', 42, true, [meetingId], null]) {
        await expectError(b.socket, event, payload, 'VALIDATION_ERROR');
      }
    }
    assertConnected(b.socket);
    // nothing happened in the meeting
    const allowed = new Set(['error']);
    assert.deepEqual(a.socket.rec.names().filter((n) => !allowed.has(n)), []);
    await ok(b.socket, 'hand:raise', { meetingId });
  });

  ctx.test('missing payload (only an ack callback) → VALIDATION_ERROR', async () => {
    const { meetingId, members: [, b] } = await ctx.meeting({ participants: 1 });
    for (const event of ['join-meeting', 'hand:raise', 'send-message', 'typing', 'reaction:send', 'leave-meeting']) {
      await expectError(b.socket, event, NO_PAYLOAD, 'VALIDATION_ERROR');
    }
    await ok(b.socket, 'hand:raise', { meetingId });
  });

  ctx.test('wrong types, missing fields and bad enums → VALIDATION_ERROR; the meeting is unchanged', async () => {
    const { meetingId, members: [a, b], host } = await ctx.meeting({ participants: 1 });
    const t = b.user.userId;
    const cases = [
      [host, 'hand:raise', { meetingId: 123 }],
      [host, 'hand:raise', {}],
      [host, 'screen:start', { meetingId: ['x'] }],
      [host, 'layout:change', { meetingId, layout: 'mosaic' }],
      [host, 'layout:change', { meetingId, layout: 1 }],
      [host, 'layout:change', { meetingId, layout: 'GRID' }],
      [host, 'participant:mute', { meetingId, targetUserId: t, muteType: 'both' }],
      [host, 'participant:mute', { meetingId, targetUserId: 5, muteType: 'audio' }],
      [host, 'participant:spotlight', { meetingId, targetUserId: 5 }],
      [host, 'participant:pin', { meetingId, targetUserId: { id: t } }],
      [host, 'participant:role', { meetingId, targetUserId: t, role: 'superuser' }],
      [host, 'stats:report', { meetingId }],
      [host, 'stats:report', { meetingId, stats: 'good' }],
      [host, 'stats:report', { meetingId, stats: { rtt: -1 } }],
      [host, 'stats:report', { meetingId, stats: { rtt: 'fast' } }],
      [host, 'stats:report', { meetingId, stats: { packetLoss: null, jitter: [] } }],
      [b, 'reaction:send', { meetingId, emoji: '🦀' }],
      [b, 'typing', { meetingId, typing: 'true' }],
      [b, 'send-message', { meetingId, message: { text: 'hi' } }],
      [b, 'send-message', { meetingId, message: 'x', recipientType: 'moderators' }],
    ];
    for (const [who, event, payload] of cases) {
      await expectError(who.socket, event, payload, 'VALIDATION_ERROR');
    }
    for (const m of [a, b]) {
      const broadcast = m.socket.rec.names().filter((n) => n !== 'error');
      assert.deepEqual(broadcast, [], `${m.user.userName} got broadcasts after invalid requests`);
    }
    const late = await ctx.addMember(meetingId, ctx.user({ name: 'late' }), [a, b]);
    assert.equal(late.state.layout, a.state.layout);
    assert.equal(late.state.spotlight, null);
    assert.equal(late.state.participants.find((p) => p.userId === t).role, 'participant');
  });

  ctx.test('unknown fields are ignored', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    await ok(b.socket, 'hand:raise', { meetingId, extra: 1, nested: { x: [1, 2] } });
    await a.socket.rec.waitFor('hand:raised');
    const msg = await ok(b.socket, 'send-message', { meetingId, message: 'hi', color: 'red', sender_id: 'spoofed' });
    assert.equal(msg.sender_id, b.user.userId, 'sender comes from the token, not the payload');
  });

  ctx.test('junk of every kind: the socket stays connected and the next request is answered', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    const s = b.socket;
    const huge = 'x'.repeat(60_000);
    const junk = [
      ['hand:raise', 12345],
      ['hand:raise', [1, 2, 3]],
      ['send-message', huge],
      ['send-message', { meetingId, message: huge }],
      ['join-meeting', { meetingId: huge }],
      ['send-message', nested(60)],
      ['send-message', { meetingId, message: nested(60) }],
      ['layout:change', { meetingId, layout: { $ne: null } }],
      ['hand:raise'],
      ['typing'],
      ['hand:raise', undefined],
      ['hand:raise', Buffer.from([1, 2, 3, 4])],
      ['reaction:send', { meetingId, emoji: '👍'.repeat(5000) }],
      ['totally-unknown-event', { meetingId }],
      ['unknown:with:colons', 1, 2, 3],
      ['__proto__', { meetingId }],
      ['constructor', {}],
      ['error', { code: 'FAKE' }],
      ['participant-joined', { meetingId }],
      ['send-message', { meetingId, message: '\u0000\uFFFF\u202E\u200B' }],
      ['send-message', { meetingId: meetingId + '\u0000', message: 'nul in id' }],
    ];
    for (const [event, ...args] of junk) s.emit(event, ...args);
    // junk with ack callbacks too (the server may answer or not; it must not hang the socket)
    for (const [event, ...args] of junk.slice(0, 8)) s.emit(event, ...args, () => {});
    await sleep(300);
    assertConnected(s);
    const ack = await ok(s, 'hand:raise', { meetingId });
    assert.equal(ack.handRaised, true);
    await a.socket.rec.waitFor('hand:raised');
    // every `error` the socket got answers one of its own requests
    for (const e of s.rec.all('error')) {
      assert.equal(typeof e.code, 'string');
      assert.equal(typeof e.event, 'string');
    }
    // the other participant saw no junk broadcast
    const seen = a.socket.rec.names().filter((n) => n !== 'hand:raised');
    assert.ok(!seen.includes('participant-joined') && !seen.includes('error'), `other socket saw: ${seen.join(', ')}`);
    await ok(s, 'send-message', { meetingId, message: 'still alive' });
  });

  ctx.test('a 100-level nested payload does not disconnect the socket', async () => {
    const { meetingId, members: [, b] } = await ctx.meeting({ participants: 1 });
    b.socket.emit('hand:raise', nested(100));
    b.socket.emit('send-message', { meetingId, message: 'hi', extra: nested(100) });
    await sleep(300);
    assertConnected(b.socket);
    await ok(b.socket, 'hand:lower', { meetingId });
  });

  ctx.test('junk before joining: the socket can still join afterwards', async () => {
    const { meetingId, host } = await ctx.meeting({ participants: 0 });
    const s = await ctx.connect(ctx.user({ name: 'junky' }));
    s.emit('join-meeting', 'not an object');
    s.emit('join-meeting', [meetingId]);
    s.emit('join-meeting');
    s.emit('whatever', { a: 1 });
    await expectError(s, 'join-meeting', 17, 'VALIDATION_ERROR');
    const st = await ctx.join(s, meetingId);
    assert.equal(st.meetingId, meetingId);
    await host.socket.rec.waitFor('participant-joined');
    assertConnected(s);
  });

  ctx.test('error events only ever answer the requesting socket', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2 });
    await expectError(b.socket, 'layout:change', { meetingId, layout: 'speaker' }, 'FORBIDDEN');
    await expectError(b.socket, 'reaction:send', { meetingId, emoji: 'nope' }, 'VALIDATION_ERROR');
    await a.socket.rec.expectNone('error');
    await c.socket.rec.expectNone('error', { ms: 0 });
  });
});
