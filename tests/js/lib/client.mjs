// socket.io-client helpers: connect, once, emitAck, an event recorder, and error assertions.
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';

export const ACK_TIMEOUT_MS = 5000;
export const DEFAULT_WAIT_MS = 3000;
export const QUIET_MS = 300;
/** Pass as payload to send an event with no payload argument at all. */
export const NO_PAYLOAD = Symbol('no payload');

export const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export { sleep };

const describeEvents = (events) =>
  events.length
    ? events.map((e) => `${e.event} ${safeJson(e.args[0])}`.slice(0, 200)).join('\n    ')
    : '(none)';

function safeJson(v) {
  try { return JSON.stringify(v); } catch { return String(v); }
}

/**
 * Records every event a socket receives (socket.onAny) plus `$disconnect` / `$connect_error` pseudo events, so a
 * test can wait for an event that may already have arrived, and assert that something was NOT received.
 */
export class Recorder {
  constructor(socket) {
    this.socket = socket;
    this.events = []; // {seq, event, args, at}
    this.seq = 0;
    this.waiters = new Set();
    socket.onAny((event, ...args) => this.push(event, args));
    socket.on('disconnect', (reason) => this.push('$disconnect', [reason]));
    socket.on('connect_error', (err) => this.push('$connect_error', [err]));
  }

  push(event, args) {
    this.seq += 1;
    const entry = { seq: this.seq, event, args: args.filter((a) => typeof a !== 'function'), at: Date.now() };
    this.events.push(entry);
    for (const w of [...this.waiters]) w(entry);
  }

  /** A position: events recorded after it have seq > mark. */
  mark() { return this.seq; }

  clear() { this.events = []; }

  /** Entries of `event` (recorded after `since`) matching `where(payload, entry)`. */
  entries(event, { since = 0, where } = {}) {
    return this.events.filter((e) => e.event === event && e.seq > since && (!where || where(e.args[0], e)));
  }

  /** Payloads (first argument) of `event`. */
  all(event, opts) { return this.entries(event, opts).map((e) => e.args[0]); }

  count(event, opts) { return this.entries(event, opts).length; }

  names(opts = {}) { return this.events.filter((e) => e.seq > (opts.since ?? 0)).map((e) => e.event); }

  /** Resolve with the payload of the first matching event (already recorded or arriving within timeout). */
  waitFor(event, { since = 0, where, timeout = DEFAULT_WAIT_MS } = {}) {
    return this.waitForEntry(event, { since, where, timeout }).then((e) => e.args[0]);
  }

  waitForEntry(event, { since = 0, where, timeout = DEFAULT_WAIT_MS } = {}) {
    const existing = this.entries(event, { since, where })[0];
    if (existing) return Promise.resolve(existing);
    return new Promise((resolve, reject) => {
      const waiter = (entry) => {
        if (entry.event === event && entry.seq > since && (!where || where(entry.args[0], entry))) {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(entry);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(
          `timed out after ${timeout} ms waiting for '${event}'${where ? ' (matching a condition)' : ''} on ` +
          `${this.label ?? 'socket'}; received since mark:\n    ${describeEvents(this.events.filter((e) => e.seq > since))}`,
        ));
      }, timeout);
      this.waiters.add(waiter);
    });
  }

  /** Wait `ms`, then assert no matching `event` was recorded after `since`. */
  async expectNone(event, { since = 0, where, ms = QUIET_MS, message } = {}) {
    await sleep(ms);
    const got = this.entries(event, { since, where });
    assert.equal(got.length, 0,
      `${message ?? `${this.label ?? 'socket'} must not receive '${event}'`}; got:\n    ${describeEvents(got)}`);
  }
}

/**
 * Connect with a token. Resolves with the connected socket (socket.rec is its Recorder); rejects with the
 * connect_error Error. Every socket gets its own Manager (forceNew) and never reconnects on its own.
 */
export function connect(url, token, opts = {}) {
  const { label, auth, ...rest } = opts;
  const socket = io(url, {
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    timeout: 10_000,
    auth: auth !== undefined ? auth : (token === undefined ? undefined : { token }),
    ...rest,
  });
  socket.rec = new Recorder(socket);
  socket.rec.label = label;
  socket.label = label;
  return new Promise((resolve, reject) => {
    const onConnect = () => { cleanup(); resolve(socket); };
    const onError = (err) => { cleanup(); socket.close(); reject(err); };
    const cleanup = () => { socket.off('connect', onConnect); socket.off('connect_error', onError); };
    socket.on('connect', onConnect);
    socket.on('connect_error', onError);
  });
}

/** Connect and expect a connect_error; resolves with that Error (fails if the socket connects). */
export async function connectError(url, token, opts = {}) {
  let socket;
  try {
    socket = await connect(url, token, opts);
  } catch (err) {
    return err;
  }
  socket.close();
  assert.fail(`connection with token ${String(token).slice(0, 40)}… was accepted but must be refused`);
}

/** Resolve with the first argument of the next `event` on `socket`; reject after timeoutMs. */
export function once(socket, event, timeoutMs = DEFAULT_WAIT_MS) {
  return new Promise((resolve, reject) => {
    const handler = (...args) => { clearTimeout(timer); resolve(args[0]); };
    const timer = setTimeout(() => {
      socket.off(event, handler);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for '${event}' on ${socket.label ?? 'socket'}`));
    }, timeoutMs);
    socket.once(event, handler);
  });
}

/** emit with an ack callback (5 s timeout). Pass NO_PAYLOAD (or nothing) to send no payload argument. */
export function emitAck(socket, event, ...args) {
  const payload = args.filter((a) => a !== NO_PAYLOAD);
  return socket.timeout(ACK_TIMEOUT_MS).emitWithAck(event, ...payload).catch((err) => {
    throw new Error(`no ack for '${event}' within ${ACK_TIMEOUT_MS} ms (${err.message}); ` +
      `socket connected=${socket.connected}; payload=${safeJson(payload[0])?.slice(0, 200)}`);
  });
}

/**
 * join-meeting (payload as given) on a socket with a Recorder: asserts the ack is `{ok:true, meetingId,
 * participantId, you}` without the snapshot (DESIGN §4), and returns the `meeting-state` snapshot sent with it.
 */
export async function joinState(socket, payload) {
  const mark = socket.rec.mark();
  const ack = await emitAck(socket, 'join-meeting', payload);
  assert.equal(ack?.ok, true, `join-meeting by ${socket.label ?? 'socket'}: ${safeJson(ack)}`);
  assert.equal(typeof ack.participantId, 'string', `the join ack names the participant: ${safeJson(ack)}`);
  assert.equal(ack.participants, undefined, 'the join ack carries no snapshot');
  return socket.rec.waitFor('meeting-state', {
    since: mark,
    where: (s) => s?.you?.participantId === ack.participantId,
  });
}

/** emitAck and assert success; returns the ack. */
export async function ok(socket, event, payload) {
  const ack = await emitAck(socket, event, payload);
  assert.equal(ack?.ok, true, `'${event}' by ${socket.label ?? 'socket'} should succeed; ack: ${safeJson(ack)}`);
  return ack;
}

function checkErrorShape(e, event, code, where) {
  assert.equal(e.code, code, `${where}: expected code ${code}, got ${safeJson(e)}`);
  assert.equal(typeof e.message, 'string', `${where}: message must be a string: ${safeJson(e)}`);
  assert.ok(e.message.length > 0, `${where}: message must not be empty`);
  assert.equal(e.event, event, `${where}: error.event must name the request: ${safeJson(e)}`);
}

/**
 * Send a request that must fail with `code`: checks the ack {ok:false, error:{code, message, event}} AND the
 * `error` event {code, message, event} sent to this socket. Returns {ack: ack.error, err: errorEventPayload}.
 */
export async function expectError(socket, event, payload, code) {
  const mark = socket.rec.mark();
  const ack = await emitAck(socket, event, payload);
  assert.equal(ack?.ok, false, `'${event}' ${safeJson(payload)?.slice(0, 120)} must fail with ${code}; ack: ${safeJson(ack)}`);
  assert.ok(ack.error && typeof ack.error === 'object', `ack.error must be an object: ${safeJson(ack)}`);
  checkErrorShape(ack.error, event, code, `ack of '${event}'`);
  const err = await socket.rec.waitFor('error', { since: mark, where: (e) => e?.event === event, timeout: 2000 });
  checkErrorShape(err, event, code, `'error' event for '${event}'`);
  return { ack: ack.error, err };
}

/** Send (with an ack) a request whose failure must be silent: ack has `code`, no `error` event arrives. */
export async function expectSilentError(socket, event, payload, code) {
  const mark = socket.rec.mark();
  const ack = await emitAck(socket, event, payload);
  assert.equal(ack?.ok, false, `'${event}' must fail with ${code}; ack: ${safeJson(ack)}`);
  assert.equal(ack.error?.code, code, `ack of '${event}': ${safeJson(ack)}`);
  await socket.rec.expectNone('error', { since: mark, message: `'${event}' over the limit must not emit an 'error' event` });
  return ack.error;
}

/** Assert the socket is still connected and was never disconnected. */
export function assertConnected(socket) {
  assert.equal(socket.connected, true, `${socket.label ?? 'socket'} must still be connected`);
  assert.equal(socket.rec.count('$disconnect'), 0,
    `${socket.label ?? 'socket'} was disconnected: ${safeJson(socket.rec.all('$disconnect'))}`);
}

/** Assert that `actual` has every field of `expected` with that value (extra fields are allowed). */
export function assertFields(actual, expected, label = 'payload') {
  assert.ok(actual && typeof actual === 'object', `${label} must be an object: ${safeJson(actual)}`);
  for (const [k, v] of Object.entries(expected)) {
    assert.deepEqual(actual[k], v, `${label}.${k}: expected ${safeJson(v)}, got ${safeJson(actual[k])} in ${safeJson(actual)}`);
  }
}
