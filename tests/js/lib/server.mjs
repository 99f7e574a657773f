// Start / stop / restart the real meet-server binary for integration tests.
//
// The binary is process.env.MEET_SERVER_BIN or <repo>/target/debug/meet-server. It is started on port 0 with a
// fresh SQLite database in a mkdtemp dir (unless a databaseUrl is given) and prints
// `meet-server listening on http://127.0.0.1:<port>` on stdout once ready.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '..', '..', '..');
export const SERVER_BIN = process.env.MEET_SERVER_BIN || path.join(REPO_ROOT, 'target', 'debug', 'meet-server');

const READY_RE = /meet-server listening on http:\/\/([0-9.]+):(\d+)/;
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;
const STDERR_LINES = 60;

/** Every live child, so a crashed test file never leaves servers behind. */
const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

export function randomSecret() {
  return 'test-secret-' + randomBytes(24).toString('hex'); // > 32 chars
}

/**
 * Environment for the server process: the parent's environment minus any MEET_* variable (so a developer's shell
 * cannot change what a test runs against), plus the test's configuration.
 */
function serverEnv(config) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('MEET_') && k !== 'RUST_LOG') env[k] = v;
  }
  return { ...env, ...config };
}

export class ServerHandle {
  constructor(opts) {
    this.opts = opts;
    this.env = opts.env;
    this.secret = opts.secret;
    this.databaseUrl = opts.databaseUrl;
    this.tmpDir = opts.tmpDir; // owned tmp dir (removed by cleanup) or null
    this.proc = null;
    this.port = null;
    this.url = null;
    this.stderrLines = [];
    this.stdoutLines = [];
    this.exit = null; // {code, signal} once exited
    this.exitPromise = null;
    this.starts = 0;
  }

  /** The last lines the server wrote to stderr (and stdout), for failure messages. */
  stderrTail(n = STDERR_LINES) {
    const lines = this.stderrLines.slice(-n);
    return lines.length ? lines.join('\n') : '(no stderr output)';
  }

  diagnostics() {
    const state = this.exit
      ? `server exited (code ${this.exit.code}, signal ${this.exit.signal})`
      : `server running on ${this.url}`;
    return `${state}; last stderr lines:\n${this.stderrTail()}`;
  }

  async start() {
    if (this.proc && !this.exit) throw new Error('server already running');
    if (!existsSync(SERVER_BIN)) {
      throw new Error(`meet-server binary not found at ${SERVER_BIN} (build it or set MEET_SERVER_BIN)`);
    }
    this.exit = null;
    this.port = null;
    this.url = null;
    this.starts += 1;
    const child = spawn(SERVER_BIN, [], { env: serverEnv(this.env), stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = child;
    live.add(child);

    const pushLines = (buf, into, carry) => {
      const text = carry.value + buf.toString('utf8');
      const parts = text.split('\n');
      carry.value = parts.pop();
      for (const line of parts) {
        into.push(line);
        if (into.length > 500) into.splice(0, into.length - 500);
      }
      return parts;
    };
    const errCarry = { value: '' };
    const outCarry = { value: '' };
    child.stderr.on('data', (buf) => pushLines(buf, this.stderrLines, errCarry));

    this.exitPromise = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        live.delete(child);
        this.exit = { code, signal };
        resolve(this.exit);
      });
      child.on('error', (err) => {
        live.delete(child);
        this.stderrLines.push(`spawn error: ${err.message}`);
        this.exit = { code: null, signal: null, error: err };
        resolve(this.exit);
      });
    });

    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`meet-server did not print its listening line within ${READY_TIMEOUT_MS} ms.\n${this.diagnostics()}`));
        try { child.kill('SIGKILL'); } catch { /* ignore */ }
      }, READY_TIMEOUT_MS);
      child.stdout.on('data', (buf) => {
        for (const line of pushLines(buf, this.stdoutLines, outCarry)) {
          this.stderrLines.push(`[stdout] ${line}`);
          const m = READY_RE.exec(line);
          if (m && !this.port) {
            this.port = Number(m[2]);
            this.url = `http://${m[1]}:${m[2]}`;
            clearTimeout(timer);
            resolve();
          }
        }
      });
      this.exitPromise.then((exit) => {
        clearTimeout(timer);
        if (!this.port) {
          reject(new Error(`meet-server exited before it was ready (code ${exit.code}, signal ${exit.signal}).\n${this.diagnostics()}`));
        }
      });
    });
    return this;
  }

  /** SIGTERM and wait for the exit; SIGKILL after STOP_TIMEOUT_MS. Returns {code, signal, killed}. */
  async stop({ timeoutMs = STOP_TIMEOUT_MS } = {}) {
    if (!this.proc || this.exit) return { ...(this.exit ?? {}), killed: false };
    this.proc.kill('SIGTERM');
    let timer;
    const timedOut = new Promise((resolve) => { timer = setTimeout(() => resolve('timeout'), timeoutMs); });
    const r = await Promise.race([this.exitPromise, timedOut]);
    clearTimeout(timer);
    if (r === 'timeout') {
      this.proc.kill('SIGKILL');
      const exit = await this.exitPromise;
      return { ...exit, killed: true };
    }
    return { ...r, killed: false };
  }

  /** Stop, then start again with the same configuration and database. The port changes. */
  async restart() {
    const result = await this.stop();
    await this.start();
    return result;
  }

  /** Stop (if running) and delete the owned tmp dir. */
  async cleanup() {
    await this.stop();
    if (this.tmpDir) {
      await rm(this.tmpDir, { recursive: true, force: true });
      this.tmpDir = null;
    }
  }
}

/**
 * Start a server.
 * opts: devMode (false), databaseUrl (fresh SQLite by default), algorithm ('HS256'), secret (random),
 *       publicKeyPem, issuer, audience, metricsToken, env (extra variables), rustLog ('warn').
 */
export async function startServer(opts = {}) {
  const handle = createServer(opts);
  await handle.prepare();
  try {
    await handle.start();
  } catch (err) {
    await handle.cleanup().catch(() => {});
    throw err;
  }
  return handle;
}

/** Like startServer but does not start it (call prepare() then start()). */
export function createServer(opts = {}) {
  const algorithm = opts.algorithm ?? 'HS256';
  const secret = opts.secret ?? randomSecret();
  const handle = new ServerHandle({ secret, databaseUrl: opts.databaseUrl, tmpDir: null, env: null });
  handle.prepare = async () => {
    if (!handle.databaseUrl) {
      handle.tmpDir = await mkdtemp(path.join(tmpdir(), 'meet-test-'));
      handle.databaseUrl = `sqlite://${handle.tmpDir}/meet.db?mode=rwc`;
    }
    const env = {
      MEET_HTTP__HOST: '127.0.0.1',
      MEET_HTTP__PORT: '0',
      MEET_DATABASE__URL: handle.databaseUrl,
      MEET_AUTH__ALGORITHM: algorithm,
      MEET_DEV_MODE: opts.devMode ? 'true' : 'false',
      RUST_LOG: opts.rustLog ?? 'warn',
    };
    if (algorithm === 'HS256' || opts.secret) env.MEET_AUTH__SECRET = secret;
    if (opts.publicKeyPem) env.MEET_AUTH__PUBLIC_KEY_PEM = opts.publicKeyPem;
    if (opts.issuer) env.MEET_AUTH__ISSUER = opts.issuer;
    if (opts.audience) env.MEET_AUTH__AUDIENCE = opts.audience;
    if (opts.metricsToken) env.MEET_METRICS__TOKEN = opts.metricsToken;
    // recordings go to a temp dir, never into the repository
    env.MEET_RECORDING__DIR = path.join(handle.tmpDir ?? tmpdir(), `meet-recordings-${randomBytes(4).toString('hex')}`);
    env.MEET_RECORDING__MIN_FREE_DISK_MB = '0';
    handle.env = { ...env, ...(opts.env ?? {}) };
    handle.opts.env = handle.env;
  };
  return handle;
}
