// Start / stop the real meet-server binary for the Chromium test suites (tests/browser, tests/webclient).
//
// Binary: process.env.MEET_SERVER_BIN or <repo>/target/debug/meet-server. Port 0, a fresh SQLite database in a
// mkdtemp dir, development mode (POST /dev/token from loopback; meetings created on first join; the first joiner is
// host), a random HS256 secret the tests know (`server.secret`), and MEET_WEB__DIR = the suite's page. Ready when it
// prints `meet-server listening on http://127.0.0.1:<port>` on stdout.
//
// Debugging: MEET_TEST_RUST_LOG overrides the suite's RUST_LOG; MEET_TEST_SERVER_LOG=<file> appends every server
// log line to that file (the diagnostics of a failing test show only the last 40).
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SERVER_BIN = process.env.MEET_SERVER_BIN || path.join(REPO_ROOT, 'target', 'debug', 'meet-server');

const READY_RE = /meet-server listening on (http:\/\/(?:[0-9.]+|\[[0-9a-f:]+\]):\d+)/;
const READY_TIMEOUT_MS = 30_000;

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* gone */ }
  }
});

export class MeetServer {
  /**
   * webDir: served at `/` (must hold index.html; `buildHint` says how to make it). label: names the temp dir and
   * the secret. rustLog: the suite's default RUST_LOG. env: extra MEET_* settings.
   */
  constructor({ webDir, buildHint, label, rustLog = 'warn', env = {} }) {
    Object.assign(this, { webDir, buildHint, label, rustLog, extraEnv: env });
    this.secret = `${label}-test-secret-` + randomBytes(24).toString('hex');
    this.lines = []; // stderr (and stdout, prefixed) lines, newest last
    this.proc = null;
    this.url = null;
    this.exit = null;
    this.tmpDir = null;
  }

  tail(n = 40) {
    const lines = this.lines.slice(-n);
    const state = this.exit ? `server EXITED (code ${this.exit.code}, signal ${this.exit.signal})` : `server running at ${this.url}`;
    return `${state}; last ${lines.length} log lines:\n${lines.length ? lines.join('\n') : '(none)'}`;
  }

  async start() {
    if (!existsSync(SERVER_BIN)) {
      throw new Error(`meet-server binary not found at ${SERVER_BIN} (cargo build -p server, or set MEET_SERVER_BIN)`);
    }
    if (!existsSync(path.join(this.webDir, 'index.html'))) {
      throw new Error(`${this.webDir}/index.html is missing: ${this.buildHint}`);
    }
    this.tmpDir = await mkdtemp(path.join(tmpdir(), `meet-${this.label}-`));
    const env = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MEET_') && k !== 'RUST_LOG') env[k] = v;
    Object.assign(env, {
      MEET_HTTP__HOST: '127.0.0.1',
      MEET_HTTP__PORT: '0',
      MEET_DATABASE__URL: `sqlite://${this.tmpDir}/meet.db?mode=rwc`,
      MEET_AUTH__SECRET: this.secret,
      MEET_DEV_MODE: 'true',
      MEET_WEB__DIR: this.webDir,
      // recordings go to the run's temp dir, never into the repository
      MEET_RECORDING__DIR: path.join(this.tmpDir, 'recordings'),
      MEET_RECORDING__MIN_FREE_DISK_MB: '0',
      RUST_LOG: process.env.MEET_TEST_RUST_LOG || this.rustLog,
      ...this.extraEnv,
    });
    const child = spawn(SERVER_BIN, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = child;
    live.add(child);
    const logFile = process.env.MEET_TEST_SERVER_LOG;
    const collect = (stream, prefix, onLine) => {
      let carry = '';
      stream.on('data', (buf) => {
        const parts = (carry + buf.toString('utf8')).split('\n');
        carry = parts.pop();
        for (const line of parts) {
          this.lines.push(prefix + line);
          if (this.lines.length > 2000) this.lines.splice(0, 1000);
          if (logFile) appendFileSync(logFile, prefix + line + '\n');
          onLine?.(line);
        }
      });
    };
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => { live.delete(child); this.exit = { code, signal }; resolve(this.exit); });
      child.on('error', (err) => { live.delete(child); this.lines.push(`spawn error: ${err.message}`); this.exit = { code: null, signal: null }; resolve(this.exit); });
    });
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`meet-server not ready within ${READY_TIMEOUT_MS} ms\n${this.tail()}`)), READY_TIMEOUT_MS);
      collect(child.stderr, '');
      collect(child.stdout, '[stdout] ', (line) => {
        const m = READY_RE.exec(line);
        if (m && !this.url) { this.url = m[1]; clearTimeout(timer); resolve(); }
      });
      this.exited.then(() => { clearTimeout(timer); if (!this.url) reject(new Error(`meet-server exited before ready\n${this.tail()}`)); });
    });
    return this;
  }

  async stop() {
    if (this.proc && !this.exit) {
      this.proc.kill('SIGTERM');
      const t = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
      await this.exited;
      clearTimeout(t);
    }
    if (this.tmpDir) {
      await rm(this.tmpDir, { recursive: true, force: true });
      this.tmpDir = null;
    }
  }
}
