// Connectivity (issue 13) at the signaling and socket level, no browser: `restart-ice` (acks, ownership, validation,
// rate limit, and that the old ICE credentials stop working while the new ones work), ICE over TCP (candidates,
// RFC 4571 framing: a real STUN binding request over TCP gets its answer), TURN credentials in
// `transport-created.params` and `webrtc-config`, several addresses (IPv4 + IPv6). Media through all of it is
// proven in Chromium: tests/browser/connectivity.test.mjs and tests/webclient/ice-restart.test.mjs.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import net from 'node:net';
import dgram from 'node:dgram';
import { createHmac, randomBytes } from 'node:crypto';
import { useServer } from './lib/harness.mjs';
import { ok, expectError } from './lib/client.mjs';

// ---- a minimal STUN binding request (RFC 5389) as a browser sends it, and its parsing

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function attr(type, value) {
  const pad = (4 - (value.length % 4)) % 4;
  const out = Buffer.alloc(4 + value.length + pad);
  out.writeUInt16BE(type, 0);
  out.writeUInt16BE(value.length, 2);
  value.copy(out, 4);
  return out;
}
/** A binding request from a controlling agent, signed with the server's ICE password. */
function bindingRequest(username, pwd) {
  const txid = randomBytes(12);
  const prio = Buffer.alloc(4); prio.writeUInt32BE(1845501695);
  let body = Buffer.concat([
    attr(0x0006, Buffer.from(username)),
    attr(0x802a, randomBytes(8)), // ICE-CONTROLLING
    attr(0x0024, prio),
  ]);
  const header = (len) => {
    const h = Buffer.alloc(20);
    h.writeUInt16BE(0x0001, 0);
    h.writeUInt16BE(len, 2);
    h.writeUInt32BE(0x2112a442, 4);
    txid.copy(h, 8);
    return h;
  };
  const mi = createHmac('sha1', pwd).update(Buffer.concat([header(body.length + 24), body])).digest();
  body = Buffer.concat([body, attr(0x0008, mi)]);
  const fpInput = Buffer.concat([header(body.length + 8), body]);
  const fp = Buffer.alloc(4); fp.writeUInt32BE((crc32(fpInput) ^ 0x5354554e) >>> 0);
  body = Buffer.concat([body, attr(0x8028, fp)]);
  return { txid, bytes: Buffer.concat([header(body.length), body]) };
}
const isSuccessFor = (msg, txid) => msg.length >= 20 && msg.readUInt16BE(0) === 0x0101 && msg.subarray(8, 20).equals(txid);

/** Sends one binding request over an ICE-TCP connection (RFC 4571 framing); resolves with the answer or null. */
function stunOverTcp(host, port, username, pwd, timeoutMs = 1500) {
  return new Promise((resolve, reject) => {
    const { txid, bytes } = bindingRequest(username, pwd);
    const sock = net.connect({ host, port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => { sock.destroy(); resolve(null); }, timeoutMs);
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
    sock.on('connect', () => {
      const len = Buffer.alloc(2); len.writeUInt16BE(bytes.length);
      // Split the frame across two writes: the server must reassemble it.
      sock.write(Buffer.concat([len, bytes.subarray(0, 7)]));
      setTimeout(() => sock.write(bytes.subarray(7)), 20);
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const frame = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + frame.length);
        if (isSuccessFor(frame, txid)) { clearTimeout(timer); sock.destroy(); resolve(frame); return; }
      }
    });
  });
}

/** One binding request over UDP; resolves with the answer or null. */
function stunOverUdp(host, port, username, pwd, timeoutMs = 1500) {
  return new Promise((resolve) => {
    const { txid, bytes } = bindingRequest(username, pwd);
    const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const timer = setTimeout(() => { sock.close(); resolve(null); }, timeoutMs);
    sock.on('message', (m) => { if (isSuccessFor(m, txid)) { clearTimeout(timer); sock.close(); resolve(m); } });
    sock.send(bytes, port, host);
  });
}

const remoteUfrag = 'nodeclient';
const user = (p) => `${p.iceParameters.usernameFragment}:${remoteUfrag}`;

describe('restart-ice and ICE over TCP (defaults: UDP and TCP candidates)', () => {
  const ctx = useServer({ env: { MEET_LIMITS__RESTART_ICE__COUNT: '3' } });

  ctx.test('candidates: UDP first by priority, then tcp passive on the same port', async () => {
    const { meetingId, members: [a] } = await ctx.meeting({ participants: 0 });
    const { params: p } = await ok(a.socket, 'create-transport', { meetingId, direction: 'send' });
    assert.deepEqual(p.iceCandidates.map((c) => c.protocol), ['udp', 'tcp']);
    const [udp, tcp] = p.iceCandidates;
    assert.equal(tcp.tcpType, 'passive');
    assert.equal(udp.tcpType, undefined);
    assert.equal(tcp.port, udp.port);
    assert.ok(udp.priority > tcp.priority, JSON.stringify(p.iceCandidates));
    assert.equal(p.iceServers, undefined, 'no TURN configured: no iceServers');
    assert.equal(p.iceTransportPolicy, undefined);
  });

  ctx.test('a STUN binding request over TCP (RFC 4571) is answered; a wrong password is not', async () => {
    const { meetingId, members: [a] } = await ctx.meeting({ participants: 0 });
    const { params: p } = await ok(a.socket, 'create-transport', { meetingId, direction: 'send' });
    const tcp = p.iceCandidates.find((c) => c.protocol === 'tcp');
    assert.ok(await stunOverTcp(tcp.ip, tcp.port, user(p), p.iceParameters.password), 'answer over TCP');
    assert.equal(await stunOverTcp(tcp.ip, tcp.port, user(p), 'not-the-password-at-all', 800), null);
  });

  ctx.test('restart-ice: new credentials for your own transport; the old ones stop working, the new ones work', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    const { params: p } = await ok(a.socket, 'create-transport', { meetingId, direction: 'recv' });
    const udp = p.iceCandidates.find((c) => c.protocol === 'udp');
    assert.ok(await stunOverUdp(udp.ip, udp.port, user(p), p.iceParameters.password), 'answer before the restart');
    const mark = a.socket.rec.mark();
    const ack = await ok(a.socket, 'restart-ice', { transportId: p.id });
    assert.deepEqual(Object.keys(ack).sort(), ['iceParameters', 'ok', 'transportId']);
    assert.equal(ack.transportId, p.id);
    const ice = ack.iceParameters;
    assert.equal(ice.iceLite, true);
    assert.ok(ice.usernameFragment.length >= 16 && ice.password.length >= 22, JSON.stringify(ice));
    assert.notEqual(ice.usernameFragment, p.iceParameters.usernameFragment);
    assert.notEqual(ice.password, p.iceParameters.password);
    const ev = await a.socket.rec.waitFor('ice-restarted', { since: mark });
    assert.deepEqual(ev, { transportId: p.id, iceParameters: ice });
    // The old credentials are gone; the new ones answer (over UDP and over TCP).
    assert.equal(await stunOverUdp(udp.ip, udp.port, user(p), p.iceParameters.password, 800), null);
    const restarted = { ...p, iceParameters: ice };
    assert.ok(await stunOverUdp(udp.ip, udp.port, user(restarted), ice.password), 'answer after the restart');
    const tcp = p.iceCandidates.find((c) => c.protocol === 'tcp');
    assert.ok(await stunOverTcp(tcp.ip, tcp.port, user(restarted), ice.password), 'answer over TCP after the restart');

    // Errors: another participant's transport is as unknown as a made-up one; bad input is VALIDATION_ERROR.
    await expectError(b.socket, 'restart-ice', { transportId: p.id }, 'NOT_FOUND');
    await expectError(a.socket, 'restart-ice', { transportId: 'tr_doesnotexist' }, 'NOT_FOUND');
    await expectError(a.socket, 'restart-ice', {}, 'VALIDATION_ERROR');
    await expectError(a.socket, 'restart-ice', { transportId: 42 }, 'VALIDATION_ERROR');
    await expectError(a.socket, 'restart-ice', { transportId: 'x'.repeat(500) }, 'VALIDATION_ERROR');
    await expectError(a.socket, 'restart-ice', 'tr_x', 'VALIDATION_ERROR');
    // b's failed attempt changed nothing: a's credentials still work.
    assert.ok(await stunOverUdp(udp.ip, udp.port, user(restarted), ice.password), 'still the same credentials');
  });

  ctx.test('restart-ice outside a meeting is NOT_IN_MEETING; over its limit RATE_LIMIT_EXCEEDED, nothing changes', async () => {
    const lone = await ctx.connect(ctx.user());
    const r = await new Promise((resolve) => lone.emit('restart-ice', { transportId: 'tr_abc' }, resolve));
    assert.equal(r.ok, false);
    assert.equal(r.error.code, 'NOT_IN_MEETING', JSON.stringify(r));

    const { meetingId, members: [a] } = await ctx.meeting({ participants: 0 });
    const { params: p } = await ok(a.socket, 'create-transport', { meetingId, direction: 'send' });
    let last;
    for (let i = 0; i < 2; i++) last = await ok(a.socket, 'restart-ice', { transportId: p.id });
    // Invalid requests count too (the 3rd); the 4th is over the limit.
    await expectError(a.socket, 'restart-ice', { transportId: 'tr_nope' }, 'NOT_FOUND');
    const { ack } = await expectError(a.socket, 'restart-ice', { transportId: p.id }, 'RATE_LIMIT_EXCEEDED');
    assert.ok(ack.retryAfterMs > 0 && ack.retryAfterMs <= 60_000, JSON.stringify(ack));
    const udp = p.iceCandidates.find((c) => c.protocol === 'udp');
    const cur = { ...p, iceParameters: last.iceParameters };
    assert.ok(await stunOverUdp(udp.ip, udp.port, user(cur), last.iceParameters.password), 'the refused restart changed nothing');
  });
});

describe('TCP only, IPv4 + IPv6, TURN with time-limited credentials and forced relay', () => {
  const secret = 'turn-secret-' + randomBytes(8).toString('hex');
  const ctx = useServer({
    env: {
      MEET_MEDIA__UDP: 'false',
      MEET_MEDIA__EXTRA_IPS: '::1',
      MEET_MEDIA__TURN__URLS: 'turn:127.0.0.1:3478?transport=udp, turn:127.0.0.1:3478?transport=tcp',
      MEET_MEDIA__TURN__SECRET: secret,
      MEET_MEDIA__TURN__TTL_SECS: '600',
      MEET_MEDIA__TURN__FORCE_RELAY: 'true',
    },
  });

  ctx.test('only tcp passive candidates, one per address (IPv4 and IPv6), each answering STUN', async () => {
    const { meetingId, members: [a] } = await ctx.meeting({ participants: 0 });
    const { params: p } = await ok(a.socket, 'create-transport', { meetingId, direction: 'recv' });
    assert.deepEqual(p.iceCandidates.map((c) => [c.protocol, c.tcpType, c.ip]), [['tcp', 'passive', '127.0.0.1'], ['tcp', 'passive', '::1']]);
    assert.ok(p.iceCandidates[0].priority > p.iceCandidates[1].priority);
    for (const c of p.iceCandidates) {
      assert.ok(await stunOverTcp(c.ip, c.port, user(p), p.iceParameters.password), `answer over TCP on ${c.ip}`);
    }
    // The (unannounced) UDP port does not answer.
    assert.equal(await stunOverUdp('127.0.0.1', p.iceCandidates[0].port, user(p), p.iceParameters.password, 800), null);
  });

  ctx.test('iceServers with per-user credentials that expire (TURN REST), iceTransportPolicy relay; webrtc-config too', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    const before = Math.floor(Date.now() / 1000);
    const { params: p } = await ok(a.socket, 'create-transport', { meetingId, direction: 'send' });
    const ev = await a.socket.rec.waitFor('transport-created');
    assert.deepEqual(ev.params.iceServers, p.iceServers);
    assert.equal(p.iceTransportPolicy, 'relay');
    assert.equal(p.iceServers.length, 1);
    const s = p.iceServers[0];
    assert.deepEqual(s.urls, ['turn:127.0.0.1:3478?transport=udp', 'turn:127.0.0.1:3478?transport=tcp']);
    const [expiry, uid] = s.username.split(':');
    assert.equal(uid, a.user.userId);
    assert.ok(Number(expiry) >= before + 600 && Number(expiry) <= before + 602, s.username);
    assert.equal(s.credential, createHmac('sha1', secret).update(s.username).digest('base64'));
    assert.equal(s.credentialType, 'password', 'credentialType is kept (IceServer declares it)');
    const { params: pb } = await ok(b.socket, 'create-transport', { meetingId, direction: 'send' });
    assert.notEqual(pb.iceServers[0].username, s.username);
    assert.equal(pb.iceServers[0].username.split(':')[1], b.user.userId);

    const anon = await ctx.api('GET', `/meeting/${meetingId}/webrtc-config`);
    assert.equal(anon.status, 200);
    assert.deepEqual(Object.keys(anon.body), ['rtpCapabilities'], 'no token: capabilities only');
    const mine = await ctx.api('GET', `/meeting/${meetingId}/webrtc-config`, { user: a.user });
    assert.equal(mine.status, 200);
    assert.equal(mine.body.iceTransportPolicy, 'relay');
    assert.equal(mine.body.iceServers[0].username.split(':')[1], a.user.userId);
    assert.deepEqual(Object.keys(mine.body.iceServers[0]).sort(), ['credential', 'credentialType', 'urls', 'username']);
    const bad = await ctx.api('GET', `/meeting/${meetingId}/webrtc-config`, { token: 'not.a.jwt' });
    assert.equal(bad.status, 401);
  });

  ctx.test('the debug drop hook is off by default (404)', async () => {
    const res = await ctx.api('POST', '/debug/media/drop', { body: { meetingId: 'meeting_x', transportId: 'tr_x', ms: 1000 } });
    assert.equal(res.status, 404);
  });

  ctx.test('the debug temporal-layer hook is off by default (404)', async () => {
    const res = await ctx.api('POST', '/debug/media/temporal', { body: { meetingId: 'meeting_x', consumerId: 'co_x', temporalLayer: 0 } });
    assert.equal(res.status, 404);
  });

  ctx.test('the debug downlink cap hook is off by default (404)', async () => {
    const res = await ctx.api('POST', '/debug/media/cap', { body: { meetingId: 'meeting_x', transportId: 'tr_x', kbps: 500, ms: 1000 } });
    assert.equal(res.status, 404);
  });
});

describe('the debug drop hook (MEET_MEDIA__DEBUG_HOOKS=true)', () => {
  const ctx = useServer({ env: { MEET_MEDIA__DEBUG_HOOKS: 'true' } });

  ctx.test('drops one transport\'s packets for the given time; others are untouched; bad input is refused', async () => {
    const { meetingId, members: [a] } = await ctx.meeting({ participants: 0 });
    const { params: p } = await ok(a.socket, 'create-transport', { meetingId, direction: 'send' });
    const { params: q } = await ok(a.socket, 'create-transport', { meetingId, direction: 'recv' });
    const udp = (x) => x.iceCandidates.find((c) => c.protocol === 'udp');
    assert.ok(await stunOverUdp(udp(p).ip, udp(p).port, user(p), p.iceParameters.password));
    const drop = (body) => ctx.api('POST', '/debug/media/drop', { body });
    assert.equal((await drop({ meetingId, transportId: p.id, ms: 1500 })).status, 200);
    assert.equal(await stunOverUdp(udp(p).ip, udp(p).port, user(p), p.iceParameters.password, 700), null, 'dropped');
    assert.ok(await stunOverUdp(udp(q).ip, udp(q).port, user(q), q.iceParameters.password), 'another transport answers');
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(await stunOverUdp(udp(p).ip, udp(p).port, user(p), p.iceParameters.password), 'answers again after the outage');
    assert.equal((await drop({ meetingId, transportId: 'tr_nope', ms: 1000 })).status, 404);
    assert.equal((await drop({ meetingId, transportId: p.id, ms: 0 })).status, 400);
    assert.equal((await drop({ meetingId, transportId: p.id })).status, 400);
    assert.equal((await drop({ meetingId: 'bad id!', transportId: p.id, ms: 10 })).status, 400);
  });

  ctx.test('the downlink cap hook caps a transport whose peer was seen; bad input is refused', async () => {
    const { meetingId, members: [a] } = await ctx.meeting({ participants: 0 });
    const { params: q } = await ok(a.socket, 'create-transport', { meetingId, direction: 'recv' });
    const udp = q.iceCandidates.find((c) => c.protocol === 'udp');
    const cap = (body) => ctx.api('POST', '/debug/media/cap', { body });
    // No peer seen yet: nothing to cap.
    assert.equal((await cap({ meetingId, transportId: q.id, kbps: 500, ms: 1000 })).status, 404);
    assert.ok(await stunOverUdp(udp.ip, udp.port, user(q), q.iceParameters.password));
    assert.equal((await cap({ meetingId, transportId: q.id, kbps: 500, ms: 1000 })).status, 200);
    // A capped link still answers (the cap delays and thins, it does not cut).
    assert.ok(await stunOverUdp(udp.ip, udp.port, user(q), q.iceParameters.password), 'answers under the cap');
    assert.equal((await cap({ meetingId, transportId: 'tr_nope', kbps: 500, ms: 1000 })).status, 404);
    assert.equal((await cap({ meetingId, transportId: q.id, kbps: 0, ms: 1000 })).status, 400);
    assert.equal((await cap({ meetingId, transportId: q.id, ms: 1000 })).status, 400);
  });

  ctx.test('the temporal-layer hook answers 404 for an unknown consumer and refuses bad input', async () => {
    const { meetingId, members: [a] } = await ctx.meeting({ participants: 0 });
    await ok(a.socket, 'create-transport', { meetingId, direction: 'recv' });
    const temporal = (body) => ctx.api('POST', '/debug/media/temporal', { body });
    assert.equal((await temporal({ meetingId, consumerId: 'co_nope', temporalLayer: 0 })).status, 404);
    assert.equal((await temporal({ meetingId, consumerId: 'co_nope', temporalLayer: 4 })).status, 400);
    assert.equal((await temporal({ meetingId, consumerId: 'co_nope' })).status, 400);
    assert.equal((await temporal({ meetingId: 'bad id!', consumerId: 'co_x', temporalLayer: 0 })).status, 400);
  });
});

describe('ICE failures in /metrics, by protocol (MEET_MEDIA__CONNECT_TIMEOUT_MS=1000)', () => {
  const ctx = useServer({ env: { MEET_MEDIA__CONNECT_TIMEOUT_MS: '1000' } });

  async function failures() {
    const text = (await ctx.api('GET', '/metrics')).text ?? '';
    const out = {};
    for (const l of String(text).split('\n')) {
      const m = /^meet_ice_failures_total\{(.*)\} (\d+)/.exec(l);
      if (!m) continue;
      const labels = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
      out[`${labels.protocol}/${labels.reason}`] = Number(m[2]);
    }
    return out;
  }

  ctx.test('a connect that never completes: counted as protocol none (no check came) or tcp (checks came over TCP)', async () => {
    const before = await failures();
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    const hex = Array.from({ length: 32 }, () => 'AB').join(':');
    const dtls = { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: hex }] };
    const { params: p } = await ok(a.socket, 'create-transport', { meetingId, direction: 'send' });
    await ok(a.socket, 'connect-transport', { transportId: p.id, dtlsParameters: dtls });
    const { params: q } = await ok(b.socket, 'create-transport', { meetingId, direction: 'send' });
    const tcp = q.iceCandidates.find((c) => c.protocol === 'tcp');
    assert.ok(await stunOverTcp(tcp.ip, tcp.port, user(q), q.iceParameters.password));
    await ok(b.socket, 'connect-transport', { transportId: q.id, dtlsParameters: dtls });
    await a.socket.rec.waitFor('transport:closed', { timeout: 5000 });
    await b.socket.rec.waitFor('transport:closed', { timeout: 5000 });
    const after = await failures();
    const delta = (k) => (after[k] ?? 0) - (before[k] ?? 0);
    assert.equal(delta('none/connect-timeout'), 1, JSON.stringify(after));
    assert.equal(delta('tcp/connect-timeout'), 1, JSON.stringify(after));
  });
});
