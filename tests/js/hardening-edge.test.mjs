// Hardening at the edge (issue 7): development mode cannot leak into production, tokens must expire and expiring
// sockets are told and disconnected unless they refresh, settings are range-checked at start-up, MEET_CONFIG works,
// display names lose bidi/control characters, a lone participant's dropped hand survives, outsiders learn nothing
// about ended meetings, and two simultaneous screen:start yield one sharer.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { useServer } from './lib/harness.mjs';
import { startServer, createServer, randomSecret } from './lib/server.mjs';
import { connect, connectError, emitAck, expectError, ok, sleep, ISO_RE, assertConnected, joinState } from './lib/client.mjs';
import { makeUser, claimsFor, signHS256, signWith, rsaKeyPair } from './lib/tokens.mjs';
import { request } from './lib/http.mjs';

const nowSec = () => Math.floor(Date.now() / 1000);

/** Start a server that must refuse to start; returns its stderr tail and exit code. */
async function refusedStart(opts) {
  const server = createServer(opts);
  await server.prepare();
  try {
    await assert.rejects(server.start(), /exited before it was ready/);
    return { code: server.exit.code, stderr: server.stderrTail() };
  } finally {
    await server.cleanup();
  }
}

describe('development mode cannot leak into production', () => {
  test('dev mode on a non-loopback address refuses to start (exit 2, naming MEET_HTTP__HOST)', async () => {
    for (const host of ['0.0.0.0', '::']) {
      const { code, stderr } = await refusedStart({ devMode: true, env: { MEET_HTTP__HOST: host } });
      assert.equal(code, 2, stderr);
      assert.match(stderr, /MEET_HTTP__HOST/);
      assert.match(stderr, /loopback/);
    }
  });

  test('a dev token is refused by a production server configured with the same secret', async () => {
    const secret = randomSecret();
    const dev = await startServer({ devMode: true, secret });
    const prod = await startServer({ devMode: false, secret });
    try {
      const res = await request(dev.url, 'POST', '/dev/token', { body: { userName: 'Dev Eve' } });
      assert.equal(res.status, 200, res.text);
      const devToken = res.body.token;
      // the dev server itself accepts it
      const s = await connect(dev.url, devToken);
      s.close();
      // the production server with the same MEET_AUTH__SECRET does not: the dev key is per run, never the secret
      const err = await connectError(prod.url, devToken);
      assert.ok(err.message.startsWith('invalid token: signature'), err.message);
      const rest = await request(prod.url, 'POST', '/api/meetings', { token: devToken, body: { title: 'x' } });
      assert.equal(rest.status, 401, rest.text);
      // and tokens signed with the configured secret keep working in dev mode (the browser harnesses mint those)
      const own = signHS256(claimsFor(makeUser()), secret);
      const s2 = await connect(dev.url, own);
      s2.close();
    } finally {
      await dev.cleanup();
      await prod.cleanup();
    }
  });

  test('with RS256 configured, development mode still mints (its own HS256 key) and accepts configured tokens', async () => {
    const keys = rsaKeyPair();
    const dev = await startServer({ devMode: true, algorithm: 'RS256', publicKeyPem: keys.publicKey });
    try {
      const res = await request(dev.url, 'POST', '/dev/token', { body: { userName: 'Dev Rita' } });
      assert.equal(res.status, 200, res.text);
      const s = await connect(dev.url, res.body.token);
      s.close();
      const own = await connect(dev.url, signWith(claimsFor(makeUser()), keys.privateKey, 'RS256'));
      own.close();
      // an HS256 token signed with anything but the run's dev key is still refused
      const err = await connectError(dev.url, signHS256(claimsFor(makeUser()), randomSecret()));
      assert.ok(err.message.startsWith('invalid token: algorithm'), err.message);
    } finally {
      await dev.cleanup();
    }
  });

  describe('/dev/token judges the TCP peer, and refuses proxied requests', () => {
    const ctx = useServer({ devMode: true });
    for (const header of ['forwarded', 'x-forwarded-for', 'x-real-ip']) {
      ctx.test(`a request carrying ${header} is 404`, async () => {
        const value = header === 'forwarded' ? 'for=127.0.0.1' : '127.0.0.1';
        const res = await ctx.api('POST', '/dev/token', { body: { userName: 'Proxied' }, headers: { [header]: value } });
        assert.equal(res.status, 404, res.text);
        assert.equal(res.body?.error?.code, 'NOT_FOUND');
      });
    }
    ctx.test('the same request without proxy headers works', async () => {
      const res = await ctx.api('POST', '/dev/token', { body: { userName: 'Direct' } });
      assert.equal(res.status, 200, res.text);
    });
    ctx.test('userName loses bidi overrides and control characters; one made only of them is refused', async () => {
      const res = await ctx.api('POST', '/dev/token', { body: { userName: '\u202EAnn\u2066e\u2069\u200F\u0007' } });
      assert.equal(res.status, 200, res.text);
      const claims = JSON.parse(Buffer.from(res.body.token.split('.')[1], 'base64url').toString('utf8'));
      assert.equal(claims.userName, 'Anne');
      const bad = await ctx.api('POST', '/dev/token', { body: { userName: '\u202E\u202C\u0000' } });
      assert.equal(bad.status, 400, bad.text);
      assert.equal(bad.body?.error?.code, 'VALIDATION_ERROR');
    });
  });
});

describe('token expiry', () => {
  const GRACE_MS = 1000;
  const ctx = useServer({ env: { MEET_AUTH__EXPIRY_GRACE_SECS: String(GRACE_MS / 1000) } });

  const tokenExpiringIn = (user, secs) => signHS256(claimsFor(user, { exp: nowSec() + secs }), ctx.server.secret);

  ctx.test('a token without exp is refused (socket and REST)', async () => {
    const user = makeUser();
    const { exp, ...claims } = claimsFor(user);
    const token = signHS256(claims, ctx.server.secret);
    const err = await connectError(ctx.url, token);
    assert.ok(err.message.startsWith('invalid token: claims exp is missing'), err.message);
    const res = await ctx.api('POST', '/api/meetings', { token, body: {} });
    assert.equal(res.status, 401, res.text);
  });

  ctx.test('an expiring socket is told auth:expired, then disconnected after the grace; its meeting sees it leave', async () => {
    const { meetingId, members: [host] } = await ctx.meeting({ participants: 0 });
    const user = ctx.user({ name: 'shortlived' });
    user.token = tokenExpiringIn(user, 2);
    const s = await ctx.connect(user);
    await ctx.join(s, meetingId);
    const expired = await s.rec.waitFor('auth:expired', { timeout: 4000 });
    assert.match(expired.expiredAt, ISO_RE);
    assert.equal(expired.graceMs, GRACE_MS);
    const toldAt = Date.now();
    assertConnected(s);
    const reason = await s.rec.waitFor('$disconnect', { timeout: GRACE_MS + 2000 });
    assert.equal(reason, 'io server disconnect');
    assert.ok(Date.now() - toldAt >= GRACE_MS - 150, `disconnected ${Date.now() - toldAt} ms after auth:expired`);
    const left = await host.socket.rec.waitFor('participant-left', { where: (d) => d.userId === user.userId });
    assert.equal(left.reason, 'disconnected');
  });

  ctx.test('auth:refresh with a fresh token of the same user keeps the socket (after auth:expired, or before it)', async () => {
    const { meetingId } = await ctx.meeting({ participants: 0 });
    const user = ctx.user({ name: 'refresher' });
    user.token = tokenExpiringIn(user, 1);
    const s = await ctx.connect(user);
    await ctx.join(s, meetingId);
    await s.rec.waitFor('auth:expired', { timeout: 3000 });
    const fresh = tokenExpiringIn(user, 3);
    const ack = await emitAck(s, 'auth:refresh', { token: fresh });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    assert.match(ack.expiresAt, ISO_RE);
    assert.ok(Math.abs(Date.parse(ack.expiresAt) / 1000 - (nowSec() + 3)) <= 2, ack.expiresAt);
    // before the new expiry: refresh again, so neither the old grace nor the second token's exp ends the socket
    const mark = s.rec.mark();
    await ok(s, 'auth:refresh', { token: tokenExpiringIn(user, 3600) });
    await sleep(GRACE_MS + 3000);
    assertConnected(s);
    assert.equal(s.rec.count('auth:expired', { since: mark }), 0, 'no auth:expired after the refresh');
    await ok(s, 'hand:raise', { meetingId }); // still in its meeting
  });

  ctx.test('auth:refresh with a bad token or another user\'s is a coded error and changes nothing', async () => {
    const user = ctx.user({ name: 'victim' });
    user.token = tokenExpiringIn(user, 2);
    const s = await ctx.connect(user);
    const other = makeUser({ name: 'intruder' });
    const { ack } = await expectError(s, 'auth:refresh', { token: signHS256(claimsFor(other), ctx.server.secret) }, 'FORBIDDEN');
    assert.match(ack.message, /another user/);
    await expectError(s, 'auth:refresh', { token: 'garbage' }, 'VALIDATION_ERROR');
    await expectError(s, 'auth:refresh', { token: signHS256(claimsFor(user), 'another-secret-that-is-long-enough-1234567890') }, 'VALIDATION_ERROR');
    await expectError(s, 'auth:refresh', {}, 'VALIDATION_ERROR');
    await expectError(s, 'auth:refresh', 'not an object', 'VALIDATION_ERROR');
    // the original expiry still holds
    await s.rec.waitFor('auth:expired', { timeout: 4000 });
    await s.rec.waitFor('$disconnect', { timeout: GRACE_MS + 2000 });
  });
});

describe('MEET_AUTH__ALLOW_NO_EXP=true', () => {
  const ctx = useServer({ env: { MEET_AUTH__ALLOW_NO_EXP: 'true' } });
  ctx.test('a token without exp is accepted when the operator opts in', async () => {
    const { exp, ...claims } = claimsFor(makeUser());
    const s = await ctx.connect(signHS256(claims, ctx.server.secret));
    assertConnected(s);
  });
});

describe('start-up refuses zero or absurd settings with a message', () => {
  const cases = [
    ['MEET_SOCKET__PING_INTERVAL_MS', '0'],
    ['MEET_SOCKET__PING_TIMEOUT_MS', '0'],
    ['MEET_SOCKET__MAX_PAYLOAD_BYTES', '999999999999'],
    ['MEET_MEETINGS__RECENT_MESSAGES', '1000000'],
    ['MEET_SHUTDOWN__GRACE_MS', '0'],
    ['MEET_AUTH__EXPIRY_GRACE_SECS', '0'],
  ];
  for (const [key, value] of cases) {
    test(`${key}=${value}`, async () => {
      const { code, stderr } = await refusedStart({ env: { [key]: value } });
      assert.equal(code, 2, stderr);
      assert.match(stderr, new RegExp(`invalid configuration: .*${key}`));
    });
  }
});

describe('MEET_CONFIG names the configuration file', () => {
  test('settings from the file apply, the environment still overrides it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'meet-config-'));
    const file = path.join(dir, 'meet.toml');
    await writeFile(file, '[metrics]\ntoken = "from-the-file"\n');
    const servers = [];
    try {
      const server = await startServer({ env: { MEET_CONFIG: file } });
      servers.push(server);
      const anon = await request(server.url, 'GET', '/metrics');
      assert.equal(anon.status, 401, anon.text);
      const authed = await request(server.url, 'GET', '/metrics', { token: 'from-the-file' });
      assert.equal(authed.status, 200, authed.text);
      const overridden = await startServer({ env: { MEET_CONFIG: file, MEET_METRICS__TOKEN: 'from-the-env' } });
      servers.push(overridden);
      const fileToken = await request(overridden.url, 'GET', '/metrics', { token: 'from-the-file' });
      assert.equal(fileToken.status, 401, fileToken.text);
      const envToken = await request(overridden.url, 'GET', '/metrics', { token: 'from-the-env' });
      assert.equal(envToken.status, 200, envToken.text);
    } finally {
      for (const s of servers) await s.cleanup();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a missing file stops the server with a message', async () => {
    const { code, stderr } = await refusedStart({ env: { MEET_CONFIG: '/nonexistent/meet.toml' } });
    assert.equal(code, 2, stderr);
    assert.match(stderr, /meet\.toml does not exist/);
  });
});

describe('meetings at the edge', () => {
  const ctx = useServer({ env: { MEET_MEETINGS__REJOIN_GRACE_SECS: '2' } });
  const self = (state) => state.participants.find((p) => p.participantId === state.you.participantId);
  /** Until the server has handled the dropped connection's leave (the meeting has nobody in it). */
  const waitUntilEmpty = async (meetingId, user) => {
    for (let i = 0; i < 50; i++) {
      const res = await ctx.api('GET', `/api/meetings/${meetingId}/participants`, { user });
      assert.equal(res.status, 200, res.text);
      if (res.body.participants.length === 0) return;
      await sleep(50);
    }
    assert.fail('the dropped participant never left');
  };

  ctx.test('the only participant\'s raised hand survives a dropped connection', async () => {
    const { meetingId, members: [host] } = await ctx.meeting({ participants: 0 });
    await ok(host.socket, 'hand:raise', { meetingId });
    host.socket.disconnect();
    await waitUntilEmpty(meetingId, host.user);
    const s = await ctx.connect(host.user);
    const state = await ctx.join(s, meetingId);
    assert.equal(state.participants.length, 1);
    assert.equal(self(state).handRaised, true, 'the hand must come back');
  });

  ctx.test('the only participant\'s raised hand survives a replaced session (previousParticipantId)', async () => {
    const { meetingId, members: [host] } = await ctx.meeting({ participants: 0 });
    await ok(host.socket, 'hand:raise', { meetingId });
    const s = await ctx.connect(host.user);
    const state = await joinState(s, { meetingId, previousParticipantId: host.participantId });
    assert.equal(state.participants.length, 1);
    assert.equal(self(state).handRaised, true, 'the hand must be carried over');
    await host.socket.rec.waitFor('$disconnect');
  });

  ctx.test('after the grace period the lone participant\'s hand is gone', async () => {
    const { meetingId, members: [host] } = await ctx.meeting({ participants: 0 });
    await ok(host.socket, 'hand:raise', { meetingId });
    host.socket.disconnect();
    await waitUntilEmpty(meetingId, host.user);
    await sleep(2000 + 700);
    const s = await ctx.connect(host.user);
    const state = await ctx.join(s, meetingId);
    assert.equal(self(state).handRaised, false);
  });

  ctx.test('a user of another campus gets ACCESS_DENIED for an ended meeting, not MEETING_ENDED', async () => {
    const host = ctx.user({ name: 'host', campusId: 'campus_a' });
    const meeting = await ctx.createMeeting(host, { title: 'private' });
    const end = await ctx.api('POST', `/api/meetings/${meeting.meetingId}/end`, { user: host });
    assert.equal(end.status, 200, end.text);
    const outsider = await ctx.connect(ctx.user({ name: 'outsider', campusId: 'campus_b' }));
    await expectError(outsider, 'join-meeting', { meetingId: meeting.meetingId }, 'ACCESS_DENIED');
    // a member of the campus is still told it ended
    const member = await ctx.connect(ctx.user({ name: 'member', campusId: 'campus_a' }));
    await expectError(member, 'join-meeting', { meetingId: meeting.meetingId }, 'MEETING_ENDED');
  });

  ctx.test('userName from the token loses bidi overrides and control characters', async () => {
    const { meetingId, members: [host] } = await ctx.meeting({ participants: 0 });
    const user = makeUser({ name: 'mallory' });
    user.userName = '\u202EMallory\u202C\u2067 gpj.exe\u2069\u0008';
    user.token = signHS256(claimsFor(user), ctx.server.secret);
    const s = await ctx.connect(user);
    const state = await ctx.join(s, meetingId);
    assert.equal(self(state).userName, 'Mallory gpj.exe');
    const joined = await host.socket.rec.waitFor('participant-joined', { where: (d) => d.userId === user.userId });
    assert.equal(joined.userName, 'Mallory gpj.exe');
    // a name made only of such characters is refused at the handshake
    const empty = makeUser();
    empty.userName = '\u202E\u200F\u0000';
    const err = await connectError(ctx.url, signHS256(claimsFor(empty), ctx.server.secret));
    assert.ok(err.message.startsWith('invalid token: claims'), err.message);
  });

  ctx.test('two screen:start at the same moment: exactly one sharer', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    const [ra, rb] = await Promise.all([
      emitAck(a.socket, 'screen:start', { meetingId }),
      emitAck(b.socket, 'screen:start', { meetingId }),
    ]);
    const acks = [ra, rb];
    assert.equal(acks.filter((x) => x.ok === true).length, 1, JSON.stringify(acks));
    const refused = acks.filter((x) => x.ok === false);
    assert.equal(refused.length, 1, JSON.stringify(acks));
    assert.equal(refused[0].error.code, 'SCREEN_SHARE_ACTIVE');
    const winner = ra.ok ? a : b;
    for (const m of [a, b]) {
      const started = await m.socket.rec.waitFor('screen:started');
      assert.equal(started.participantId, winner.participantId);
      await m.socket.rec.expectNone('screen:started', { where: (d) => d.participantId !== winner.participantId });
      assert.equal(m.socket.rec.count('screen:started'), 1);
    }
  });
});
