// Webhooks (issue 12 item 4): meeting.started / participant.joined / participant.left / meeting.ended are POSTed,
// signed with HMAC-SHA256, to a receiver; in order per meeting; retried after the receiver answers 500; and events
// queued while the receiver was down survive a server restart (the outbox is in the database). On SQLite and on a
// fresh PostgreSQL database.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import http from 'node:http';
import { createHmac, timingSafeEqual, randomBytes } from 'node:crypto';
import pg from 'pg';
import { startServer, randomSecret } from './lib/server.mjs';
import { withDiagnostics, Ctx } from './lib/harness.mjs';
import { sleep, ok } from './lib/client.mjs';

const HOOK_SECRET = 'whsec_' + randomBytes(16).toString('hex');

/** The receiver-side check documented in docs/webhooks.md. */
function verify(secret, header, rawBody, toleranceSec = 300) {
  const parts = Object.fromEntries(String(header ?? '').split(',').map((kv) => kv.split('=', 2)));
  const t = Number(parts.t);
  if (!Number.isInteger(t) || !parts.v1) return false;
  if (Math.abs(Date.now() / 1000 - t) > toleranceSec) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${rawBody}`).digest();
  const got = Buffer.from(parts.v1, 'hex');
  return got.length === expected.length && timingSafeEqual(got, expected);
}

/** A webhook receiver on a free port. `failFirst(pred, n)` answers 500 to the first n deliveries matching pred. */
async function receiver() {
  const r = {
    attempts: [], // every request: {event, id, attempt, signature, raw, body, status}
    failRules: [],
    server: null,
    port: 0,
    url: '',
    failFirst(pred, n) { this.failRules.push({ pred, left: n }); },
    delivered() { return this.attempts.filter((a) => a.status === 200); },
    of(meetingId) { return this.delivered().filter((a) => a.body.meetingId === meetingId); },
    async waitFor(pred, timeoutMs = 10_000) {
      const until = Date.now() + timeoutMs;
      while (Date.now() < until) {
        if (pred()) return;
        await sleep(50);
      }
      assert.fail(`receiver: condition not met within ${timeoutMs} ms; got ${JSON.stringify(this.attempts.map((a) => [a.event, a.status]))}`);
    },
    async listen(port = 0) {
      this.server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          let body = null;
          try { body = JSON.parse(raw); } catch { /* recorded as null */ }
          const a = {
            event: req.headers['x-meet-event'],
            id: req.headers['x-meet-delivery'],
            attempt: Number(req.headers['x-meet-attempt']),
            signature: req.headers['x-meet-signature'],
            contentType: req.headers['content-type'],
            method: req.method,
            path: req.url,
            raw,
            body,
            status: 200,
          };
          const rule = this.failRules.find((f) => f.left > 0 && f.pred(a));
          if (rule) { rule.left -= 1; a.status = 500; }
          this.attempts.push(a);
          res.writeHead(a.status, { 'content-type': 'text/plain' });
          res.end(a.status === 200 ? 'ok' : 'try again');
        });
      });
      await new Promise((resolve) => this.server.listen(port, '127.0.0.1', resolve));
      this.port = this.server.address().port;
      this.url = `http://127.0.0.1:${this.port}/hooks/meet`;
    },
    async close() {
      if (!this.server) return;
      this.server.closeAllConnections?.();
      await new Promise((resolve) => this.server.close(resolve));
      this.server = null;
    },
  };
  await r.listen();
  return r;
}

function hookEnv(url) {
  return {
    MEET_WEBHOOKS__URLS: url,
    MEET_WEBHOOKS__SECRET: HOOK_SECRET,
    MEET_WEBHOOKS__RETRY_BASE_MS: '200',
    MEET_WEBHOOKS__RETRY_MAX_MS: '1000',
    MEET_WEBHOOKS__TIMEOUT_MS: '2000',
    MEET_WEBHOOKS__MAX_ATTEMPTS: '30',
  };
}

/** A Ctx (users, sockets, REST) bound to an already started server. */
function ctxFor(server) {
  const ctx = new Ctx({});
  ctx.server = server;
  return ctx;
}

/** Signatures, shapes and order per meeting, then a retry after two 500s. */
async function orderAndRetryScenario(server, rx) {
  const ctx = ctxFor(server);
  try {
    // 1. one meeting: host + p1 join, p1 leaves, the host ends it
    const { meetingId, members } = await ctx.meeting({ participants: 1 });
    const [host, p1] = members;
    await ok(p1.socket, 'leave-meeting', { meetingId });
    await rx.waitFor(() => rx.of(meetingId).some((a) => a.event === 'participant.left'));
    await ok(host.socket, 'meeting:end', { meetingId });
    await rx.waitFor(() => rx.of(meetingId).some((a) => a.event === 'meeting.ended'));
    await sleep(300); // anything late (the host's own participant.left) arrives
    const got = rx.of(meetingId);
    for (const a of got) {
      assert.equal(a.method, 'POST');
      assert.equal(a.path, '/hooks/meet');
      assert.match(a.contentType, /^application\/json/);
      assert.ok(verify(HOOK_SECRET, a.signature, a.raw), `signature of ${a.event} verifies: ${a.signature}`);
      assert.ok(!verify('another-secret-of-16+', a.signature, a.raw), 'a wrong secret must not verify');
      assert.ok(!verify(HOOK_SECRET, a.signature, a.raw.replace('}', ' }')), 'a changed body must not verify');
      assert.equal(a.body.event, a.event);
      assert.equal(a.body.id, a.id);
      assert.match(a.body.id, /^evt_/);
      assert.match(a.body.createdAt, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
    }
    const events = got.map((a) => a.event);
    assert.equal(events[0], 'meeting.started', events.join(' '));
    assert.equal(events.filter((e) => e === 'meeting.started').length, 1, events.join(' '));
    const joined = got.filter((a) => a.event === 'participant.joined').map((a) => a.body.participant);
    assert.deepEqual(joined.map((p) => p.userId), [host.user.userId, p1.user.userId], 'joins in order');
    assert.deepEqual(Object.keys(joined[0]).sort(), ['participantId', 'role', 'userId', 'userName']);
    assert.equal(joined[0].participantId, host.participantId);
    assert.equal(joined[0].role, 'host');
    const p1Left = events.indexOf('participant.left');
    assert.ok(p1Left > events.lastIndexOf('participant.joined'), `p1 left after both joined: ${events.join(' ')}`);
    assert.equal(got[p1Left].body.participant.userId, p1.user.userId);
    const ended = got.find((a) => a.event === 'meeting.ended').body;
    assert.equal(ended.meeting.meetingId, meetingId);
    assert.equal(ended.meeting.hostUserId, host.user.userId);
    assert.match(ended.meeting.endedAt, /Z$/);
    const started = got[0].body;
    assert.equal(started.meeting.title.length > 0, true);
    // createdAt never goes back within a meeting
    for (let i = 1; i < got.length; i++) assert.ok(got[i].body.createdAt >= got[i - 1].body.createdAt, events.join(' '));

    // 2. retries: the receiver answers 500 twice to the next meeting's meeting.started; its participant.joined
    //    waits behind it (order per meeting), then both arrive; the same event id on every attempt
    const hostUser = ctx.user({ name: 'retry host' });
    const m3 = await ctx.createMeeting(hostUser);
    rx.failFirst((a) => a.event === 'meeting.started' && a.body?.meetingId === m3.meetingId, 2);
    const s = await ctx.connect(hostUser);
    await ctx.join(s, m3.meetingId);
    await rx.waitFor(() => rx.of(m3.meetingId).some((a) => a.event === 'participant.joined'), 15_000);
    const tries = rx.attempts.filter((a) => a.body?.meetingId === m3.meetingId && a.event === 'meeting.started');
    assert.deepEqual(tries.map((a) => [a.status, a.attempt]), [[500, 1], [500, 2], [200, 3]]);
    assert.equal(new Set(tries.map((a) => a.id)).size, 1, 'one event id across retries');
    const firstJoinedAt = rx.attempts.findIndex((a) => a.body?.meetingId === m3.meetingId && a.event === 'participant.joined');
    const startedOkAt = rx.attempts.indexOf(tries[2]);
    assert.ok(firstJoinedAt > startedOkAt, 'participant.joined is not sent before meeting.started was delivered');
  } finally {
    ctx.closeSockets(ctx.allSockets);
  }
}

describe('webhooks on SQLite', () => {
  test('signed, ordered per meeting, retried after 500s; events queued while the receiver is down survive a restart', async () => {
    const rx = await receiver();
    let server;
    try {
      server = await startServer({ env: hookEnv(rx.url) });
      await orderAndRetryScenario(server, rx);

      // 3. the receiver goes away; events are queued (the delivery fails); the server restarts; the receiver
      //    comes back on the same port: the queued events arrive
      const port = rx.port;
      await rx.close();
      const ctx = ctxFor(server);
      const hostUser = ctx.user({ name: 'durable host' });
      const m = await ctx.createMeeting(hostUser);
      const s = await ctx.connect(hostUser);
      await ctx.join(s, m.meetingId);
      s.disconnect();
      await sleep(500);
      await server.restart();
      assert.equal(rx.of(m.meetingId).length, 0);
      await rx.listen(port);
      await rx.waitFor(() => rx.of(m.meetingId).some((a) => a.event === 'participant.left'), 15_000);
      assert.deepEqual(rx.of(m.meetingId).map((a) => a.event), ['meeting.started', 'participant.joined', 'participant.left']);
    } catch (err) {
      throw withDiagnostics(err, [server]);
    } finally {
      if (server) await server.cleanup();
      await rx.close();
    }
  });

  test('a receiver URL without a secret, or a bad URL, stops the server at start-up with a message', async () => {
    for (const [env, re] of [
      [{ MEET_WEBHOOKS__URLS: 'http://127.0.0.1:9/x' }, /MEET_WEBHOOKS__SECRET/],
      [{ MEET_WEBHOOKS__URLS: 'ftp://example.com/x', MEET_WEBHOOKS__SECRET: HOOK_SECRET }, /MEET_WEBHOOKS__URLS/],
    ]) {
      await assert.rejects(startServer({ env }), re);
    }
  });
});

describe('webhooks on PostgreSQL', () => {
  test('the same order and retries on a fresh PostgreSQL database', async () => {
    const admin = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 5000 });
    await admin.connect();
    const db = `meet_test_hooks_${Date.now()}_${randomBytes(4).toString('hex')}`;
    await admin.query(`CREATE DATABASE ${db}`);
    const rx = await receiver();
    let server;
    try {
      server = await startServer({ databaseUrl: `postgres://postgres@127.0.0.1:5432/${db}`, env: hookEnv(rx.url), secret: randomSecret() });
      await orderAndRetryScenario(server, rx);
    } catch (err) {
      throw withDiagnostics(err, [server]);
    } finally {
      if (server) await server.cleanup();
      await rx.close();
      await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => {});
      await admin.end();
    }
  });
});
