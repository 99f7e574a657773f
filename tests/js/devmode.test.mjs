// Development mode: POST /dev/token, auto-created meetings with the first joiner as host.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { useServer } from './lib/harness.mjs';
import { expectError, ok } from './lib/client.mjs';
import { decodePayload } from './lib/tokens.mjs';

describe('dev mode on (MEET_DEV_MODE=true)', () => {
  const ctx = useServer({ devMode: true });

  const devToken = async (body) => {
    const res = await ctx.api('POST', '/dev/token', { body });
    assert.equal(res.status, 200, `POST /dev/token: ${res.status} ${res.text}`);
    assert.equal(typeof res.body.token, 'string');
    assert.equal(typeof res.body.userId, 'string');
    return res.body;
  };

  ctx.test('POST /dev/token from loopback mints a working token (defaults and explicit ids)', async () => {
    const a = await devToken({ userName: 'Dev Alice' });
    const claims = decodePayload(a.token);
    assert.equal(claims.userName, 'Dev Alice');
    assert.equal(claims.user_id, a.userId);
    assert.equal(claims.campus_id, 'campus_dev');
    assert.ok(typeof claims.exp === 'number' && claims.exp > Date.now() / 1000);
    const b = await devToken({ userName: 'Dev Bob', userId: 'dev_bob_1', campusId: 'campus_x', email: 'bob@dev.test' });
    assert.equal(b.userId, 'dev_bob_1');
    const cb = decodePayload(b.token);
    assert.equal(cb.campus_id, 'campus_x');
    assert.equal(cb.email, 'bob@dev.test');
    const s = await ctx.connect(a.token);
    assert.equal(s.connected, true);
    // and it works for REST
    const res = await ctx.api('POST', '/api/meetings', { token: b.token, body: { title: 'dev' } });
    assert.equal(res.status, 201, res.text);
    assert.equal(res.body.hostUserId, 'dev_bob_1');
  });

  ctx.test('joining an unknown meeting creates it; the first joiner is host, the next a participant', async () => {
    const a = await devToken({ userName: 'First' });
    const b = await devToken({ userName: 'Second' });
    const meetingId = `dev-room-${Date.now()}`;
    const sa = await ctx.connect(a.token);
    const stA = await ctx.join(sa, meetingId);
    assert.equal(stA.meetingId, meetingId);
    assert.equal(stA.you.role, 'host');
    assert.equal(stA.you.userId, a.userId);
    const sb = await ctx.connect(b.token);
    const stB = await ctx.join(sb, meetingId);
    assert.equal(stB.you.role, 'participant');
    assert.equal(stB.participants.find((p) => p.userId === a.userId).role, 'host');
    const joined = await sa.rec.waitFor('participant-joined', { where: (d) => d.userId === b.userId });
    assert.equal(joined.role, 'participant');
    const res = await ctx.api('GET', `/api/meetings/${meetingId}`, { token: a.token });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.hostUserId, a.userId);
    assert.equal(res.body.status, 'active');
    // the host can moderate it
    await ok(sa, 'layout:change', { meetingId, layout: 'speaker' });
    await sb.rec.waitFor('layout:changed');
  });

  ctx.test('the guide flow works against an auto-created meeting', async () => {
    const a = await devToken({ userName: 'Guide User' });
    const s = await ctx.connect(a.token);
    const meetingId = `meeting_dev${Date.now()}`;
    const joined = new Promise((resolve) => s.once('participant-joined', resolve));
    s.emit('join-meeting', { meetingId });
    const d = await Promise.race([joined, new Promise((_, rej) => setTimeout(() => rej(new Error('no participant-joined')), 3000))]);
    assert.equal(d.userId, a.userId);
    assert.equal(d.role, 'host');
  });

  ctx.test('dev mode still validates meeting ids and ended meetings', async () => {
    const a = await devToken({ userName: 'Validator' });
    const s = await ctx.connect(a.token);
    await expectError(s, 'join-meeting', { meetingId: 'bad id!' }, 'VALIDATION_ERROR');
    const meetingId = `dev-end-${Date.now()}`;
    await ctx.join(s, meetingId);
    await ok(s, 'meeting:end', { meetingId });
    await s.rec.waitFor('meeting:ended');
    await expectError(s, 'join-meeting', { meetingId }, 'MEETING_ENDED');
  });
});

describe('dev mode off (MEET_DEV_MODE=false)', () => {
  const ctx = useServer({ devMode: false });

  ctx.test('POST /dev/token is 404', async () => {
    const res = await ctx.api('POST', '/dev/token', { body: { userName: 'Nope' } });
    assert.equal(res.status, 404, res.text);
  });

  ctx.test('joining an unknown meeting is MEETING_NOT_FOUND (no auto-create)', async () => {
    const s = await ctx.connect(ctx.user());
    await expectError(s, 'join-meeting', { meetingId: `dev-room-${Date.now()}` }, 'MEETING_NOT_FOUND');
  });
});
