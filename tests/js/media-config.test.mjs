// Issue 3 §4: the media plane's network settings — listen IP, announced IP (servers behind NAT), UDP port range —
// and one UDP port per worker shared by all the transports on it. Read from what create-transport hands out
// (iceCandidates) and from the sockets the server really holds.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import os from 'node:os';
import { readFileSync } from 'node:fs';
import { describe, test, before, after } from 'node:test';
import { Ctx } from './lib/harness.mjs';
import { createServer } from './lib/server.mjs';
import { ok } from './lib/client.mjs';

// A port block of our own per run (node --test runs files in parallel; the default range is 40000-49999).
const BASE = 41000 + Math.floor(Math.random() * 800) * 8;

/** Whether a cgroup (v2 cpu.max or v1 cfs quota) limits this process's CPU time. */
function cpuQuotaSet() {
  const read = (f) => { try { return readFileSync(f, 'utf8').trim(); } catch { return null; } };
  const v2 = read('/sys/fs/cgroup/cpu.max');
  if (v2 && !v2.startsWith('max')) return true;
  const v1 = read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us') ?? read('/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us');
  return v1 !== null && v1 !== '-1';
}

/** Resolves true when 127.0.0.1:port can NOT be bound (someone holds it). */
function held(port) {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => { s.close(); resolve(true); });
    s.bind(port, '127.0.0.1', () => { s.close(); resolve(false); });
  });
}

async function transportsOf(ctx, meetings, perMeeting = 2) {
  const out = [];
  for (let i = 0; i < meetings; i++) {
    const { meetingId, members } = await ctx.meeting({ participants: perMeeting - 1 });
    for (const m of members) {
      for (const direction of ['send', 'recv']) {
        const ack = await ok(m.socket, 'create-transport', { meetingId, direction });
        out.push({ meetingId, candidates: ack.params.iceCandidates });
      }
    }
  }
  return out;
}

describe('media network settings: announced IP, port range, a port per worker', () => {
  const ctx = new Ctx();
  const [min, max] = [BASE, BASE + 3];
  before(async () => {
    ctx.server = createServer({
      rustLog: 'warn,media=info',
      env: {
        MEET_MEDIA__LISTEN_IP: '127.0.0.1',
        MEET_MEDIA__ANNOUNCED_IP: '203.0.113.7',
        MEET_MEDIA__PORT_MIN: String(min),
        MEET_MEDIA__PORT_MAX: String(max),
        MEET_MEDIA__WORKERS: '2',
      },
    });
    await ctx.server.prepare();
    await ctx.server.start();
  });
  after(async () => {
    ctx.closeSockets(ctx.allSockets);
    await ctx.server?.cleanup();
  });

  ctx.test('candidates carry the announced IP and a port of the range; a meeting\'s transports share its worker\'s port', async () => {
    const all = await transportsOf(ctx, 6);
    const ports = new Set();
    for (const { meetingId, candidates } of all) {
      // UDP first, then ICE-TCP (tcp passive) on the same port and announced address (issue 13).
      assert.equal(candidates.length, 2, JSON.stringify(candidates));
      const [c, tcp] = candidates;
      assert.equal(c.ip, '203.0.113.7', 'the announced address, not the listen address');
      assert.equal(c.protocol, 'udp');
      assert.deepEqual([tcp.protocol, tcp.tcpType, tcp.ip, tcp.port], ['tcp', 'passive', '203.0.113.7', c.port]);
      assert.ok(c.port >= min && c.port <= max, `port ${c.port} outside ${min}-${max}`);
      const same = all.filter((t) => t.meetingId === meetingId).map((t) => t.candidates[0].port);
      assert.equal(new Set(same).size, 1, `one meeting, one worker, one port: ${same}`);
      ports.add(c.port);
    }
    assert.ok(ports.size <= 2, `two workers hold at most two ports: ${[...ports]}`);
    // MEET_MEDIA__WORKERS=2: two worker threads, each with its own UDP port of the range, both really bound.
    const started = ctx.server.stderrLines
      .map((l) => l.replace(/\x1b\[[0-9;]*m/g, ''))
      .filter((l) => l.includes('media worker started'));
    assert.equal(started.length, 2, started.join('\n'));
    const workerPorts = started.map((l) => Number(/local=127\.0\.0\.1:(\d+)/.exec(l)?.[1]));
    assert.equal(new Set(workerPorts).size, 2, `distinct ports: ${workerPorts}`);
    for (const port of workerPorts) {
      assert.ok(port >= min && port <= max, `worker port ${port} outside ${min}-${max}`);
      assert.equal(await held(port), true, `the server holds UDP 127.0.0.1:${port}`);
    }
    for (const port of ports) assert.ok(workerPorts.includes(port), `candidate port ${port} is a worker's`);
  });
});

describe('media network settings: defaults and refusals', () => {
  test('without an announced IP the candidate is the listen IP; a port already taken is skipped', async () => {
    const base = BASE + 4;
    const blocker = dgram.createSocket('udp4');
    await new Promise((resolve) => blocker.bind(base, '127.0.0.1', resolve));
    const ctx = new Ctx();
    ctx.server = createServer({
      env: {
        MEET_MEDIA__LISTEN_IP: '127.0.0.1',
        MEET_MEDIA__PORT_MIN: String(base),
        MEET_MEDIA__PORT_MAX: String(base + 2),
        MEET_MEDIA__WORKERS: '1',
      },
    });
    try {
      await ctx.server.prepare();
      await ctx.server.start();
      const [t] = await transportsOf(ctx, 1, 1);
      assert.deepEqual([t.candidates[0].ip, t.candidates[0].port], ['127.0.0.1', base + 1]);
    } finally {
      blocker.close();
      ctx.closeSockets(ctx.allSockets);
      await ctx.server.cleanup();
    }
  });

  test('by default one media worker per core', async () => {
    const server = createServer({ rustLog: 'warn,media=info', env: { MEET_MEDIA__LISTEN_IP: '127.0.0.1' } });
    try {
      await server.prepare();
      await server.start();
      const started = server.stderrLines.filter((l) => l.replace(/\x1b\[[0-9;]*m/g, '').includes('media worker started'));
      // Rust's available_parallelism also honours a cgroup CPU quota, which Node does not: compare exactly only
      // when no quota is set.
      const cores = os.availableParallelism();
      if (cpuQuotaSet()) assert.ok(started.length >= 1 && started.length <= cores, started.join('\n'));
      else assert.equal(started.length, cores, started.join('\n'));
    } finally {
      await server.cleanup();
    }
  });

  const refusals = [
    [{ MEET_MEDIA__PORT_MIN: '45010', MEET_MEDIA__PORT_MAX: '45000' }, /port_min/],
    [{ MEET_MEDIA__ANNOUNCED_IP: 'media.example.com' }, /announced_ip/],
    [{ MEET_MEDIA__LISTEN_IP: '0.0.0.0' }, /listen_ip/],
    [{ MEET_MEDIA__UDP: 'false', MEET_MEDIA__TCP: 'false' }, /cannot both be off/],
    [{ MEET_MEDIA__EXTRA_IPS: '::1,media.example.com' }, /extra_ips/],
    [{ MEET_MEDIA__EXTRA_IPS: '::' }, /extra_ips must be concrete/],
    [{ MEET_MEDIA__TURN__URLS: 'turn:127.0.0.1:3478' }, /set secret, or username and credential/],
    [{ MEET_MEDIA__TURN__URLS: 'http://turn.example.com', MEET_MEDIA__TURN__SECRET: 'x' }, /not a turn:/],
    [{ MEET_MEDIA__TURN__FORCE_RELAY: 'true' }, /force_relay needs a TURN URL/],
  ];
  for (const [env, message] of refusals) {
    test(`refused at start-up: ${JSON.stringify(env)}`, async () => {
      const server = createServer({ env });
      await server.prepare();
      await assert.rejects(server.start(), (err) => {
        assert.match(err.message, /exited before it was ready/);
        assert.match(server.stderrTail(), message);
        assert.notEqual(server.exit.code, 0);
        return true;
      });
      await server.cleanup();
    });
  }

  test('refused at start-up: fewer free ports than workers', async () => {
    const port = BASE + 7;
    const server = createServer({
      env: { MEET_MEDIA__LISTEN_IP: '127.0.0.1', MEET_MEDIA__PORT_MIN: String(port), MEET_MEDIA__PORT_MAX: String(port), MEET_MEDIA__WORKERS: '2' },
    });
    await server.prepare();
    await assert.rejects(server.start(), /exited before it was ready/);
    assert.match(server.stderrTail(), new RegExp(`${port}`));
    await server.cleanup();
  });
});
