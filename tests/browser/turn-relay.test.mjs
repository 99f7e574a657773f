// TURN (issue 13 item 2): a coturn (Debian's `coturn`) started here on loopback with `use-auth-secret`; the server
// is configured with its URL and shared secret and forces relay (MEET_MEDIA__TURN__FORCE_RELAY), so every
// `transport-created.params` carries `iceServers` with time-limited per-user credentials and
// `iceTransportPolicy: 'relay'`, which the guide's unmodified client hands to mediasoup-client. The receiving page
// gets audio and video through the relay: its getStats() shows media rising and a selected candidate pair whose
// local candidate is of type `relay`. (coturn refuses loopback peers unless --allow-loopback-peers.)
import assert from 'node:assert/strict';
import { before, after } from 'node:test';
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { useHarness } from './lib/harness.mjs';
import { meetingId } from './lib/tokens.mjs';
import { sample, waitForStats, assertRising, pick, sleep } from './lib/poll.mjs';

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const TURNSERVER = (() => {
  try { return execFileSync('sh', ['-c', 'command -v turnserver'], { encoding: 'utf8' }).trim(); } catch { return null; }
})();
const turnPort = await freePort();
const relayMin = 49_200 + Math.floor(Math.random() * 50) * 10;
const secret = 'turn-' + randomBytes(12).toString('hex');
const turn = { proc: null, log: [] };

before(async () => {
  if (!TURNSERVER) throw new Error('turnserver not found: run tests/browser/setup.sh (installs Debian\'s coturn)');
  turn.proc = spawn(TURNSERVER, [
    '-n', '--listening-ip=127.0.0.1', '--relay-ip=127.0.0.1', `--listening-port=${turnPort}`,
    `--min-port=${relayMin}`, `--max-port=${relayMin + 9}`,
    '--use-auth-secret', `--static-auth-secret=${secret}`, '--realm=meet.test', '--fingerprint',
    '--allow-loopback-peers', '--no-cli', '--no-tls', '--no-dtls', '--log-file=stdout', '--simple-log',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  for (const s of [turn.proc.stdout, turn.proc.stderr]) s.on('data', (d) => turn.log.push(...d.toString().split('\n').filter(Boolean)));
  // Ready when it accepts TCP on its port.
  for (let i = 0; ; i++) {
    const up = await new Promise((resolve) => {
      const c = net.connect(turnPort, '127.0.0.1', () => { c.destroy(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (up) break;
    if (i > 50 || turn.proc.exitCode !== null) throw new Error(`turnserver did not start:\n${turn.log.slice(-20).join('\n')}`);
    await sleep(100);
  }
});
after(() => { turn.proc?.kill('SIGTERM'); });

const { scenario } = useHarness({
  env: {
    MEET_MEDIA__TURN__URLS: `turn:127.0.0.1:${turnPort}?transport=udp`,
    MEET_MEDIA__TURN__SECRET: secret,
    MEET_MEDIA__TURN__TTL_SECS: '600',
    MEET_MEDIA__TURN__FORCE_RELAY: 'true',
  },
});

scenario('relay forced by the server: media arrives through coturn (selected pair local candidate: relay)', async ({ open }, t) => {
  const id = meetingId('turn');
  const alice = await open('alice');
  const bob = await open('bob');
  await alice.join(id);
  await bob.join(id);
  const p = (await bob.events('transport-created')).at(-1).data.params;
  assert.equal(p.iceTransportPolicy, 'relay');
  assert.equal(p.iceServers[0].username.split(':')[1], bob.userId);
  await alice.startMedia({ audio: true, video: true });
  try {
    await waitForStats(bob, (stats) => ['audio', 'video'].every((kind) => {
      const c = pick(stats, { userId: alice.userId, kind });
      return c.length === 1 && c[0].packetsReceived > 0 && (kind !== 'video' || c[0].framesDecoded > 0);
    }), { timeoutMs: 25_000, what: 'bob receives alice through the relay' });
  } catch (err) {
    err.message += `\n--- turnserver log (last 30) ---\n${turn.log.slice(-30).join('\n')}`;
    throw err;
  }
  const samples = await sample(bob, { seconds: 3 });
  const f = assertRising(samples, { userId: alice.userId, kind: 'video' }, 'framesDecoded', { minDelta: 10, label: 'bob ← alice' });
  const a = assertRising(samples, { userId: alice.userId, kind: 'audio' }, 'packetsReceived', { minDelta: 30, label: 'bob ← alice' });
  const recv = await bob.selectedPath('recv');
  const send = await alice.selectedPath('send');
  t.diagnostic(`video frames ${f[0]} → ${f.at(-1)}, audio packets ${a[0]} → ${a.at(-1)}; bob recv ${JSON.stringify(recv)}; alice send ${JSON.stringify(send)}`);
  assert.equal(recv?.local?.candidateType, 'relay', JSON.stringify(recv));
  assert.equal(send?.local?.candidateType, 'relay', JSON.stringify(send));
  assert.ok(turn.log.some((l) => /allocation|session/i.test(l)), 'coturn logged the allocation');
});
