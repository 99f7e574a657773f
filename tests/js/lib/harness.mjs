// Per-file harness: one server per describe block, users, sockets, REST, and meetings ready to use.
import assert from 'node:assert/strict';
import { before, after, test } from 'node:test';
import { startServer } from './server.mjs';
import { makeUser, claimsFor, signHS256 } from './tokens.mjs';
import { connect, joinState } from './client.mjs';
import { request, describeRes } from './http.mjs';

/** Append the server's diagnostics to a failing test's error. */
export function withDiagnostics(err, servers) {
  const diag = servers.filter(Boolean).map((s) => s.diagnostics()).join('\n---\n');
  if (!diag) return err;
  const text = `\n--- meet-server ---\n${diag}`;
  if (err && typeof err === 'object') {
    try {
      err.message = `${err.message}${text}`;
      // the stack (what the reporter prints) was captured with the original message
      if (typeof err.stack === 'string') err.stack = `${err.stack}${text}`;
    } catch { /* read-only */ }
    return err;
  }
  return new Error(`${String(err)}${text}`);
}

/**
 * Call inside a describe(): starts a server before the block's tests, stops it after.
 * opts are startServer's, plus `sign(claims) => token` for non-HS256 servers.
 */
export function useServer(opts = {}) {
  const ctx = new Ctx(opts);
  before(async () => {
    ctx.server = await startServer(opts);
  });
  after(async () => {
    ctx.closeSockets(ctx.allSockets);
    if (ctx.server) await ctx.server.cleanup();
  });
  return ctx;
}

export class Ctx {
  constructor(opts = {}) {
    this.opts = opts;
    this.server = null;
    this.allSockets = new Set();
    this.testSockets = null;
    this.extraServers = [];
  }

  get url() { return this.server.url; }

  /** A test whose failure message carries the server's stderr tail; sockets it opened are closed after it. */
  test(name, fn, options = {}) {
    return test(name, options, async (t) => {
      this.testSockets = new Set();
      try {
        await fn(t);
      } catch (err) {
        throw withDiagnostics(err, [this.server, ...this.extraServers]);
      } finally {
        this.closeSockets(this.testSockets);
        this.testSockets = null;
      }
    });
  }

  closeSockets(set) {
    for (const s of set) {
      try { s.disconnect(); } catch { /* ignore */ }
      this.allSockets.delete(s);
    }
    set.clear?.();
  }

  tokenFor(user, extraClaims = {}) {
    const claims = claimsFor(user, extraClaims);
    return this.opts.sign ? this.opts.sign(claims) : signHS256(claims, this.server.secret);
  }

  /** A fresh user with a valid token: {userId, userName, email, campusId, token}. */
  user(opts = {}) {
    const u = makeUser(opts);
    u.token = this.tokenFor(u);
    return u;
  }

  /** Connect as a user (or with a raw token string). Resolves with the socket (socket.rec records events). */
  async connect(userOrToken, opts = {}) {
    const token = typeof userOrToken === 'string' ? userOrToken : userOrToken?.token;
    const label = opts.label ?? (typeof userOrToken === 'object' ? userOrToken?.userName : undefined);
    const socket = await connect(this.url, token, { label, ...opts });
    this.allSockets.add(socket);
    this.testSockets?.add(socket);
    return socket;
  }

  api(method, path, { user, token, body, rawBody, headers } = {}) {
    return request(this.url, method, path, { token: token ?? user?.token, body, rawBody, headers });
  }

  /** POST /api/meetings as `user`; asserts 201 and returns the meeting object. */
  async createMeeting(user, body = {}) {
    const res = await this.api('POST', '/api/meetings', { user, body });
    assert.equal(res.status, 201, `create meeting: ${describeRes(res)}`);
    assert.ok(res.body?.meetingId, `create meeting returned no meetingId: ${describeRes(res)}`);
    return res.body;
  }

  /**
   * join-meeting with an ack; asserts success (the ack is {ok, meetingId, participantId, you}) and returns the
   * `meeting-state` snapshot that came with it.
   */
  async join(socket, meetingId) {
    return joinState(socket, { meetingId });
  }

  /**
   * A meeting created over REST by a fresh host, with the host and `participants` more users joined (in order).
   * Waits until every member has seen every later joiner's participant-joined, then clears all recorders.
   * Returns {meetingId, meeting, host, members:[host, ...others]} where each member is
   * {user, socket, state, participantId}.
   */
  async meeting({ participants = 1, settings = {}, names, campusId = 'campus_a', clear = true } = {}) {
    const hostUser = this.user({ name: names?.[0] ?? 'host', campusId });
    const meeting = await this.createMeeting(hostUser, settings);
    const members = [];
    for (let i = 0; i <= participants; i++) {
      const user = i === 0 ? hostUser : this.user({ name: names?.[i] ?? `p${i}`, campusId });
      const member = await this.addMember(meeting.meetingId, user, members);
      members.push(member);
    }
    if (clear) for (const m of members) m.socket.rec.clear();
    return { meetingId: meeting.meetingId, meeting, host: members[0], members };
  }

  /** Connect `user`, join, and wait until `existing` members saw the participant-joined. */
  async addMember(meetingId, user, existing = [], opts = {}) {
    const socket = await this.connect(user, opts);
    const state = await this.join(socket, meetingId);
    const participantId = state.you?.participantId;
    for (const m of existing) {
      await m.socket.rec.waitFor('participant-joined', { where: (d) => d?.participantId === participantId });
    }
    await socket.rec.waitFor('participant-joined', { where: (d) => d?.participantId === participantId });
    return { user, socket, state, participantId };
  }
}
