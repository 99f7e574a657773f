// Cluster mode (issue 9 item 4): Chromium pages connected to different meet-server nodes of one cluster (a Redis of
// the test's own, a fresh PostgreSQL database) see and hear each other; the meeting's media lives on one node, the
// other node forwards its socket's media requests there. Media proven only by the receiving page's getStats().
// Bob's page reaches the cluster through a load balancer (scripts/cluster-lb.mjs --failover: node 2, else node 3);
// when node 2 is killed, bob's socket.io-client reconnects by itself through it and lands on node 3.
import assert from 'node:assert/strict';
import { before, after, test } from 'node:test';
import { launchBrowser, Participant } from './lib/browser.mjs';
import { ensureBuilt } from './build.mjs';
import { Server } from './lib/server.mjs';
import { makeUser, mintToken } from './lib/tokens.mjs';
import { waitForStats, waitForEvents, sample, assertRising, pick } from './lib/poll.mjs';
import { RedisHandle, freePort, freshDatabase, clusterEnv } from '../js/lib/cluster.mjs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from './lib/server.mjs';

const env = { redis: null, db: null, nodes: [], browser: null, lb: null };
const secret = `cluster-browser-secret-${Date.now()}`;

before(async () => {
  await ensureBuilt();
  env.redis = await new RedisHandle(await freePort()).start();
  env.db = await freshDatabase();
  const prefix = `b${Date.now().toString(36)}`;
  for (let i = 1; i <= 3; i++) {
    const node = new Server({
      ...clusterEnv(env.redis, prefix, `node-${i}`),
      MEET_DEV_MODE: 'false',
      MEET_DATABASE__URL: env.db.url,
    });
    node.secret = secret;
    if (i === 1) await node.start(); // migrations first
    env.nodes.push(node);
  }
  await Promise.all(env.nodes.slice(1).map((n) => n.start()));
  env.browser = await launchBrowser();
});

/** scripts/cluster-lb.mjs --failover in front of `nodes`; resolves with its URL once it listens. */
async function startBalancer(nodes) {
  const port = await freePort();
  env.lb = spawn(process.execPath, [path.join(REPO_ROOT, 'scripts', 'cluster-lb.mjs'), '--failover', String(port),
    ...nodes.map((n) => new URL(n.url).port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise((resolve, reject) => {
    env.lb.stdout.once('data', resolve);
    env.lb.once('exit', (code) => reject(new Error(`lb exited ${code}`)));
  });
  return `http://127.0.0.1:${port}`;
}

async function connectionsOn(node) {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  return Number(/^meet_connections (\d+)$/m.exec(text)?.[1] ?? NaN);
}

after(async () => {
  env.lb?.kill('SIGKILL');
  await env.browser?.close().catch(() => {});
  for (const n of env.nodes) await n.stop().catch(() => {});
  await env.redis?.stop();
  await env.db?.drop();
});

function waitReceiving(receiver, sender, timeoutMs = 30_000) {
  return waitForStats(receiver, (stats) => ['audio', 'video'].every((kind) => {
    const c = pick(stats, { userId: sender.userId, kind });
    return c.length === 1 && c[0].packetsReceived > 0 && (kind !== 'video' || c[0].framesDecoded > 0);
  }), { timeoutMs, what: `audio+video from ${sender.name}` });
}

async function assertReceives(receiver, sender, t) {
  const samples = await sample(receiver, { seconds: 4 });
  const label = `${receiver.name} ← ${sender.name}:`;
  const f = assertRising(samples, { userId: sender.userId, kind: 'video' }, 'framesDecoded', { minDelta: 10, label });
  const a = assertRising(samples, { userId: sender.userId, kind: 'audio' }, 'packetsReceived', { minDelta: 50, label });
  t.diagnostic(`${label} framesDecoded ${f[0]} → ${f.at(-1)}, audio packets ${a[0]} → ${a.at(-1)}`);
}

test('pages on two nodes exchange audio and video; after kill -9 of one node the other learns within 5 s, and its page reconnects by itself through the balancer to a third node, rejoins and media flows both ways', { timeout: 180_000 }, async (t) => {
  const pages = [];
  try {
    const [n1, n2, n3] = env.nodes;
    const host = makeUser('host');
    const created = await fetch(`${n1.url}/api/meetings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${mintToken(secret, host)}` },
      body: JSON.stringify({ title: 'cluster media' }),
    });
    const body = await created.text();
    assert.equal(created.status, 201, body);
    const { meetingId } = JSON.parse(body);

    const alice = await Participant.open(env.browser, n1, 'alice');
    pages.push(alice);
    const lbUrl = await startBalancer([n2, n3]);
    const bob = await Participant.open(env.browser, { url: lbUrl, secret }, 'bob');
    pages.push(bob);
    await alice.join(meetingId);
    await bob.join(meetingId);
    await alice.startMedia({ audio: true, video: true });
    await bob.startMedia({ audio: true, video: true });
    await Promise.all([waitReceiving(alice, bob), waitReceiving(bob, alice)]);
    await assertReceives(alice, bob, t);
    await assertReceives(bob, alice, t);
    assert.equal(await connectionsOn(n3), 0, 'bob is on node 2, not node 3');

    // node 2 dies: alice (node 1) is told within 5 s
    const killedAt = Date.now();
    n2.proc.kill('SIGKILL');
    await waitForEvents(alice, 'participant-left', (evs) => evs.some((e) => e.data?.userId === bob.userId && e.data?.reason === 'node-lost'),
      { timeoutMs: 6000, what: 'participant-left node-lost for bob' });
    const took = Date.now() - killedAt;
    t.diagnostic(`participant-left (node-lost) ${took} ms after kill -9`);
    assert.ok(took <= 5000, `participant-left came ${took} ms after the kill`);

    // bob's socket.io-client reconnects on its own; the balancer sends it to node 3; the page rejoins (the app's
    // part: the server dropped bob's old session with node 2) and media flows both ways again
    const rejoined = await bob.rejoinAfterReconnect(30_000);
    t.diagnostic(`bob reconnected by itself and rejoined ${Date.now() - killedAt} ms after the kill`);
    assert.ok(rejoined.you?.participantId, JSON.stringify(rejoined));
    assert.ok(await connectionsOn(n3) >= 1, 'bob\'s new connection is on node 3');
    await bob.startMedia({ audio: true, video: true });
    await Promise.all([waitReceiving(alice, bob), waitReceiving(bob, alice)]);
    await assertReceives(bob, alice, t);
    await assertReceives(alice, bob, t);
  } catch (err) {
    const diag = [];
    for (const p of pages) diag.push(await p.diagnostics());
    for (const n of env.nodes) diag.push(n.tail(25));
    if (err instanceof Error) err.message += `\n${diag.join('\n')}`;
    throw err;
  } finally {
    for (const p of pages) await p.close().catch(() => {});
  }
});
