// Cluster tests (issue 9): a real redis-server of the test's own (free port, no persistence), a fresh PostgreSQL
// database, and several real meet-server processes joined into one cluster through them.
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createServer as createNetServer, connect as netConnect } from 'node:net';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createServer, randomSecret } from './server.mjs';
import { Ctx, withDiagnostics } from './harness.mjs';
import { sleep } from './client.mjs';

const PG = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' };

/** A free TCP port on 127.0.0.1 (bound and released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** One RESP command over a fresh connection; resolves with the raw reply text (or rejects). */
export function redisCommand(port, ...args) {
  return new Promise((resolve, reject) => {
    const sock = netConnect({ host: '127.0.0.1', port });
    let out = '';
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`redis ${args[0]}: no reply`)); }, 2000);
    sock.on('connect', () => {
      sock.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join('')}`);
    });
    sock.on('data', (d) => {
      out += d.toString('utf8');
      if (out.endsWith('\r\n')) { clearTimeout(timer); sock.end(); resolve(out); }
    });
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

/**
 * A redis-server of our own on `port`; `stop()` kills it (SIGKILL), `start()` starts it again. With `persistDir`
 * it keeps an append-only file there (fsync on every write, as a deployment that must survive a Redis restart
 * would), so a restart comes back with the data.
 */
export class RedisHandle {
  constructor(port, { persistDir } = {}) {
    this.port = port;
    this.persistDir = persistDir;
    this.proc = null;
    this.log = [];
  }

  get url() { return `redis://127.0.0.1:${this.port}`; }

  async start() {
    try {
      execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    } catch {
      assert.fail('redis-server is not installed (scripts/test installs the Debian package redis-server)');
    }
    const persistence = this.persistDir
      ? ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', this.persistDir]
      : ['--appendonly', 'no'];
    const proc = spawn('redis-server', [
      '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', ...persistence,
      '--protected-mode', 'no', '--loglevel', 'warning',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.on('exit', resolve));
    proc.stdout.on('data', (d) => this.log.push(d.toString()));
    proc.stderr.on('data', (d) => this.log.push(d.toString()));
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        if ((await redisCommand(this.port, 'PING')).startsWith('+PONG')) return this;
      } catch { /* not up yet */ }
      if (Date.now() > deadline) assert.fail(`redis-server did not answer PING on ${this.port}: ${this.log.join('')}`);
      await sleep(50);
    }
  }

  async stop() {
    if (!this.proc) return;
    const p = this.proc;
    this.proc = null;
    p.kill('SIGKILL');
    await this.exited;
  }
}

/** A fresh PostgreSQL database; `drop()` removes it. */
export async function freshDatabase() {
  const admin = new pg.Client({ ...PG, connectionTimeoutMillis: 5000 });
  try {
    await admin.connect();
  } catch (err) {
    assert.fail(`PostgreSQL is not reachable at ${PG.host}:${PG.port} as user postgres (${err.message})`);
  }
  const name = `meet_cluster_${Date.now()}_${randomBytes(4).toString('hex')}`;
  await admin.query(`CREATE DATABASE ${name}`);
  return {
    url: `postgres://postgres@127.0.0.1:5432/${name}`,
    async drop() {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
      await admin.end().catch(() => {});
    },
  };
}

/** Environment that makes a server a member of the cluster held together by `redis`. */
export function clusterEnv(redis, prefix, nodeId, extra = {}) {
  return {
    MEET_CLUSTER__REDIS_URL: redis.url,
    MEET_CLUSTER__KEY_PREFIX: prefix,
    MEET_CLUSTER__NODE_ID: nodeId,
    MEET_CLUSTER__SECRET: 'cluster-test-secret-0123456789',
    ...extra,
  };
}

/**
 * A cluster of `nodes` meet-server processes over one Redis and one fresh PostgreSQL database, sharing one JWT
 * secret. Returns a ClusterCtx: a test context (users, tokens, REST, meetings) whose `connect(user, {node})` picks
 * the node a socket lands on.
 */
export async function startCluster({ nodes = 3, env = {}, persistDir } = {}) {
  const redis = await new RedisHandle(await freePort(), { persistDir }).start();
  const db = await freshDatabase();
  const secret = randomSecret();
  const prefix = `t${randomBytes(4).toString('hex')}`;
  const servers = [];
  try {
    for (let i = 0; i < nodes; i++) {
      const s = createServer({ secret, databaseUrl: db.url, env: clusterEnv(redis, prefix, `node-${i + 1}`, env) });
      await s.prepare();
      servers.push(s);
    }
    // The first one alone first: it applies the migrations, so the others do not race it.
    await servers[0].start();
    await Promise.all(servers.slice(1).map((s) => s.start()));
  } catch (err) {
    for (const s of servers) await s.cleanup().catch(() => {});
    await redis.stop();
    await db.drop();
    throw err;
  }
  return new ClusterCtx({ redis, db, servers, secret, prefix });
}

export class ClusterCtx extends Ctx {
  constructor({ redis, db, servers, secret, prefix }) {
    super({});
    this.redis = redis;
    this.db = db;
    this.servers = servers;
    this.secret = secret;
    this.prefix = prefix;
    this.server = servers[0];
    this.extraServers = servers.slice(1);
  }

  /** Connect as a user to node `node` (0-based; default 0). */
  async connect(userOrToken, opts = {}) {
    const { node = 0, ...rest } = opts;
    const saved = this.server;
    this.server = this.servers[node];
    try {
      return await super.connect(userOrToken, rest);
    } finally {
      this.server = saved;
    }
  }

  /** REST on node `node`. */
  apiOn(node, method, path, opts = {}) {
    const saved = this.server;
    this.server = this.servers[node];
    try {
      return this.api(method, path, opts);
    } finally {
      this.server = saved;
    }
  }

  /**
   * A meeting created on node 0 with members spread over the nodes: member i connects to node `nodes[i]`
   * (default: i modulo the node count). Same shape as Ctx.meeting.
   */
  async spreadMeeting({ participants = 2, settings = {}, names, nodes: placement } = {}) {
    const hostUser = this.user({ name: names?.[0] ?? 'host' });
    const meeting = await this.createMeeting(hostUser, settings);
    const members = [];
    for (let i = 0; i <= participants; i++) {
      const user = i === 0 ? hostUser : this.user({ name: names?.[i] ?? `p${i}` });
      const node = placement?.[i] ?? i % this.servers.length;
      const member = await this.addMember(meeting.meetingId, user, members, { node });
      member.node = node;
      members.push(member);
    }
    for (const m of members) m.socket.rec.clear();
    return { meetingId: meeting.meetingId, meeting, host: members[0], members };
  }

  async cleanup() {
    this.closeSockets(this.allSockets);
    for (const s of this.servers) await s.cleanup().catch(() => {});
    await this.redis.stop();
    await this.db.drop();
  }

  /** Wrap a failure with every node's stderr tail and Redis's log. */
  diagnose(err) {
    const e = withDiagnostics(err, this.servers);
    if (this.redis.log.length && e && typeof e === 'object') {
      try { e.message += `\n--- redis ---\n${this.redis.log.join('').slice(-2000)}`; } catch { /* read-only */ }
    }
    return e;
  }
}
