// REST API: meetings, participants, messages (validation), roles, health endpoints.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { useServer } from './lib/harness.mjs';
import { ok, ISO_RE } from './lib/client.mjs';

const MEETING_FIELDS = [
  'meetingId', 'title', 'hostUserId', 'campusId', 'maxParticipants', 'recordingEnabled', 'allowSelfUnmute',
  'allowedCampuses', 'invitedUserIds', 'status', 'createdAt', 'endedAt',
];

describe('REST API', () => {
  const ctx = useServer();

  ctx.test('GET /healthz and /readyz', async () => {
    const h = await ctx.api('GET', '/healthz');
    assert.equal(h.status, 200);
    assert.equal(h.text.trim(), 'ok');
    const r = await ctx.api('GET', '/readyz');
    assert.equal(r.status, 200, r.text);
  });

  ctx.test('POST /api/meetings with defaults → 201 meeting object; the creator is host', async () => {
    const user = ctx.user({ campusId: 'campus_rest' });
    const res = await ctx.api('POST', '/api/meetings', { user, body: {} });
    assert.equal(res.status, 201, res.text);
    const m = res.body;
    for (const f of MEETING_FIELDS) assert.ok(f in m, `meeting object lacks ${f}: ${res.text}`);
    assert.match(m.meetingId, /^[A-Za-z0-9_-]{1,128}$/);
    assert.equal(m.hostUserId, user.userId);
    assert.equal(m.campusId, 'campus_rest');
    assert.equal(m.maxParticipants, 100);
    assert.equal(m.recordingEnabled, false);
    assert.equal(m.allowSelfUnmute, true);
    assert.deepEqual(m.allowedCampuses, []);
    assert.deepEqual(m.invitedUserIds, []);
    assert.equal(m.status, 'active');
    assert.match(m.createdAt, ISO_RE);
    assert.equal(m.endedAt, null);
    const again = await ctx.api('POST', '/api/meetings', { user, body: {} });
    assert.notEqual(again.body.meetingId, m.meetingId, 'ids are unique');

    const s = await ctx.connect(user);
    const state = await ctx.join(s, m.meetingId);
    assert.equal(state.you.role, 'host');
  });

  ctx.test('POST /api/meetings with every setting', async () => {
    const user = ctx.user();
    const invited = ctx.user({ campusId: 'campus_x' });
    const body = {
      title: 'Board meeting', maxParticipants: 10000, recordingEnabled: true, allowSelfUnmute: false,
      allowedCampuses: ['campus_b', 'campus_c'], invitedUserIds: [invited.userId],
    };
    const res = await ctx.api('POST', '/api/meetings', { user, body });
    assert.equal(res.status, 201, res.text);
    for (const [k, v] of Object.entries(body)) assert.deepEqual(res.body[k], v, k);
    const get = await ctx.api('GET', `/api/meetings/${res.body.meetingId}`, { user: invited });
    assert.equal(get.status, 200, get.text);
    for (const [k, v] of Object.entries(body)) assert.deepEqual(get.body[k], v, k);
    assert.equal(get.body.participantCount, 0);
    const s = await ctx.connect(user);
    const state = await ctx.join(s, res.body.meetingId);
    assert.equal(state.title, 'Board meeting');
    assert.deepEqual(state.settings, { maxParticipants: 10000, recordingEnabled: true, allowSelfUnmute: false });
  });

  ctx.test('POST /api/meetings validation → 400 VALIDATION_ERROR', async () => {
    const user = ctx.user();
    const bodies = [
      { maxParticipants: 0 },
      { maxParticipants: 10001 },
      { maxParticipants: -5 },
      { maxParticipants: 'ten' },
      { maxParticipants: 2.5 },
      { title: 42 },
      { recordingEnabled: 'yes' },
      { allowSelfUnmute: 1 },
      { allowedCampuses: 'campus_b' },
      { allowedCampuses: [1, 2] },
      { invitedUserIds: {} },
    ];
    for (const body of bodies) {
      const res = await ctx.api('POST', '/api/meetings', { user, body });
      assert.equal(res.status, 400, `${JSON.stringify(body)} → ${res.status} ${res.text}`);
      assert.equal(res.body?.error?.code, 'VALIDATION_ERROR', `${JSON.stringify(body)} → ${res.text}`);
      assert.equal(typeof res.body.error.message, 'string');
    }
    for (const rawBody of ['{not json', '[1,2]', '"str"', '42']) {
      const res = await ctx.api('POST', '/api/meetings', { user, rawBody });
      assert.equal(res.status, 400, `${rawBody} → ${res.status} ${res.text}`);
      assert.equal(res.body?.error?.code, 'VALIDATION_ERROR', `${rawBody} → ${res.text}`);
    }
    const ok1 = await ctx.api('POST', '/api/meetings', { user, body: { maxParticipants: 1 } });
    assert.equal(ok1.status, 201, ok1.text);
    const ok2 = await ctx.api('POST', '/api/meetings', { user, body: { title: 'x', unknownField: true } });
    assert.equal(ok2.status, 201, `unknown fields are ignored: ${ok2.text}`);
  });

  ctx.test('GET /api/meetings/{id}: 200 with participantCount, 404 MEETING_NOT_FOUND, 403 ACCESS_DENIED', async () => {
    const { meetingId, host, members } = await ctx.meeting({ participants: 1 });
    const res = await ctx.api('GET', `/api/meetings/${meetingId}`, { user: host.user });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.meetingId, meetingId);
    assert.equal(res.body.participantCount, 2);
    assert.equal(res.body.hostUserId, host.user.userId);
    members[1].socket.disconnect();
    await host.socket.rec.waitFor('participant-left');
    const res2 = await ctx.api('GET', `/api/meetings/${meetingId}`, { user: host.user });
    assert.equal(res2.body.participantCount, 1);
    const nf = await ctx.api('GET', '/api/meetings/meeting_doesNotExist', { user: host.user });
    assert.equal(nf.status, 404, nf.text);
    assert.equal(nf.body?.error?.code, 'MEETING_NOT_FOUND');
    const other = await ctx.api('GET', `/api/meetings/${meetingId}`, { user: ctx.user({ campusId: 'campus_other' }) });
    assert.equal(other.status, 403, other.text);
    assert.equal(other.body?.error?.code, 'ACCESS_DENIED');
  });

  ctx.test('GET /api/meetings/{id}/participants', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    await ok(b.socket, 'hand:raise', { meetingId });
    const res = await ctx.api('GET', `/api/meetings/${meetingId}/participants`, { user: b.user });
    assert.equal(res.status, 200, res.text);
    const ps = res.body.participants;
    assert.equal(ps.length, 2);
    const pa = ps.find((p) => p.userId === a.user.userId);
    const pb = ps.find((p) => p.userId === b.user.userId);
    for (const k of ['handRaised', 'joinedAt', 'participantId', 'role', 'userId', 'userName']) assert.ok(k in pb, `participant lacks ${k}: ${res.text}`);
    assert.equal(pa.role, 'host');
    assert.equal(pa.participantId, a.participantId);
    assert.equal(pb.role, 'participant');
    assert.equal(pb.handRaised, true);
    assert.equal(pa.handRaised, false);
    assert.equal(pb.userName, b.user.userName);
    assert.match(pb.joinedAt, ISO_RE);
    const other = await ctx.api('GET', `/api/meetings/${meetingId}/participants`, { user: ctx.user({ campusId: 'campus_other' }) });
    assert.equal(other.status, 403);
    const nf = await ctx.api('GET', '/api/meetings/meeting_nope/participants', { user: a.user });
    assert.equal(nf.status, 404);
    assert.equal(nf.body?.error?.code, 'MEETING_NOT_FOUND');
  });

  ctx.test('GET /api/meetings/{id}/messages: limit validation and errors', async () => {
    const { meetingId, members: [a] } = await ctx.meeting({ participants: 0 });
    const base = `/api/meetings/${meetingId}/messages`;
    const empty = await ctx.api('GET', base, { user: a.user });
    assert.equal(empty.status, 200, empty.text);
    assert.deepEqual(empty.body, { messages: [], nextBefore: null });
    for (const q of ['?limit=0', '?limit=101', '?limit=abc', '?limit=-1']) {
      const res = await ctx.api('GET', base + q, { user: a.user });
      assert.equal(res.status, 400, `${q}: ${res.text}`);
      assert.equal(res.body?.error?.code, 'VALIDATION_ERROR', `${q}: ${res.text}`);
    }
    for (const q of ['?limit=1', '?limit=100']) {
      const res = await ctx.api('GET', base + q, { user: a.user });
      assert.equal(res.status, 200, `${q}: ${res.text}`);
    }
    const nf = await ctx.api('GET', '/api/meetings/meeting_nope/messages', { user: a.user });
    assert.equal(nf.status, 404);
    const denied = await ctx.api('GET', base, { user: ctx.user({ campusId: 'campus_other' }) });
    assert.equal(denied.status, 403);
  });

  ctx.test('GET /api/meetings/{id}/messages: paging with before/limit (default 50)', async () => {
    const { meetingId, members } = await ctx.meeting({ participants: 6 });
    const sent = [];
    // 60 messages: 10 per user (the per-user limit), interleaved
    for (let round = 0; round < 10; round++) {
      for (const m of members.slice(1)) {
        const ack = await ok(m.socket, 'send-message', { meetingId, message: `r${round} ${m.user.userName}` });
        sent.push(ack.id);
      }
    }
    const base = `/api/meetings/${meetingId}/messages`;
    const viewer = members[0].user;
    const def = await ctx.api('GET', base, { user: viewer });
    assert.equal(def.body.messages.length, 50, 'default limit is 50');
    assert.deepEqual(def.body.messages.map((m) => m.id), sent.slice(-50), 'the newest 50, oldest first');
    assert.equal(def.body.nextBefore, sent[10], 'nextBefore is the oldest id of the page');
    const rest = await ctx.api('GET', `${base}?before=${encodeURIComponent(def.body.nextBefore)}`, { user: viewer });
    assert.deepEqual(rest.body.messages.map((m) => m.id), sent.slice(0, 10));
    const pages = [];
    let before = null;
    for (let i = 0; i < 20; i++) {
      const q = `?limit=7${before ? `&before=${encodeURIComponent(before)}` : ''}`;
      const res = await ctx.api('GET', base + q, { user: viewer });
      assert.equal(res.status, 200, res.text);
      assert.ok(res.body.messages.length <= 7);
      if (res.body.messages.length) pages.unshift(res.body.messages.map((m) => m.id));
      before = res.body.nextBefore;
      if (!before) break;
    }
    assert.equal(before, null, 'paging must end with nextBefore null');
    assert.deepEqual(pages.flat(), sent, 'pages concatenate to the full history without gaps or duplicates');
    assert.deepEqual(pages[pages.length - 1], sent.slice(-7));
  });

  ctx.test('unknown route → 404', async () => {
    const res = await ctx.api('GET', '/api/definitely-not-a-route', { user: ctx.user() });
    assert.equal(res.status, 404);
  });
});
