// Cluster mode (issue 9): three real meet-server processes over a Redis of the test's own and a fresh PostgreSQL
// database; clients connected to different nodes with the official socket.io-client see one meeting.
import assert from 'node:assert/strict';
import { describe, before, after, test } from 'node:test';
import { createServer, REPO_ROOT } from './lib/server.mjs';
import { startCluster, RedisHandle, freePort, clusterEnv } from './lib/cluster.mjs';
import { ok, expectError, sleep, connect } from './lib/client.mjs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { request } from './lib/http.mjs';

/** `fn` must reject the server start; returns the server's stderr. */
async function refusedStart(opts) {
  const s = createServer(opts);
  await s.prepare();
  await assert.rejects(s.start(), /exited before it was ready/);
  assert.equal(s.exit.code, 2, `exit code: ${JSON.stringify(s.exit)}`);
  const text = s.stderrTail();
  await s.cleanup();
  return text;
}

describe('cluster: start-up checks', () => {
  test('cluster mode with SQLite, a non-redis URL or --dev is refused with a clear message', async () => {
    const redis = { url: 'redis://127.0.0.1:1' };
    const sqlite = await refusedStart({ env: clusterEnv(redis, 'x', 'node-1') });
    assert.match(sqlite, /cluster mode .* needs PostgreSQL/);
    const badUrl = await refusedStart({
      databaseUrl: 'postgres://postgres@127.0.0.1:5432/postgres',
      env: { MEET_CLUSTER__REDIS_URL: 'http://127.0.0.1:6379' },
    });
    assert.match(badUrl, /cluster\.redis_url .* must start with redis:\/\//);
    const dev = await refusedStart({
      devMode: true,
      databaseUrl: 'postgres://postgres@127.0.0.1:5432/postgres',
      env: clusterEnv(redis, 'x', 'node-1'),
    });
    assert.match(dev, /development mode .* single-node only/);
  });

  test('a cluster member whose Redis is unreachable at start-up says so and exits', async () => {
    const port = await freePort(); // nothing listens there
    const s = createServer({
      databaseUrl: 'postgres://postgres@127.0.0.1:5432/postgres',
      env: clusterEnv(new RedisHandle(port), 'x', 'node-1'),
    });
    await s.prepare();
    await assert.rejects(s.start(), /exited before it was ready/);
    assert.match(s.stderrTail(), /Redis/);
    await s.cleanup();
  });
});

describe('cluster: three nodes, one meeting', () => {
  let ctx;
  let dir;
  // Redis with an append-only file: the outage test restarts it under a live meeting.
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'meet-redis-'));
    ctx = await startCluster({ nodes: 3, persistDir: dir });
  });
  after(async () => {
    if (ctx) await ctx.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const ctest = (name, fn) => test(name, async () => {
    try {
      await fn();
    } catch (err) {
      throw ctx.diagnose(err);
    } finally {
      ctx.closeSockets(ctx.allSockets);
    }
  });

  ctest('every node is ready and serves the same meetings (REST on any node)', async () => {
    for (const s of ctx.servers) {
      const r = await request(s.url, 'GET', '/readyz');
      assert.equal(r.status, 200, `${s.url}/readyz: ${r.text}`);
    }
    const host = ctx.user({ name: 'host' });
    const m = await ctx.createMeeting(host);
    const seen = await ctx.apiOn(2, 'GET', `/api/meetings/${m.meetingId}`, { user: host });
    assert.equal(seen.status, 200, seen.text);
    assert.equal(seen.body.meetingId, m.meetingId);
  });

  ctest('join and leave across nodes: presence, snapshot, participant-left', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.spreadMeeting({ participants: 2, names: ['ann', 'bob', 'cat'] });
    assert.deepEqual([a.node, b.node, c.node], [0, 1, 2]);
    // cat (node 3) saw everyone in her snapshot
    assert.deepEqual(c.state.participants.map((p) => p.userName).sort(), [a, b, c].map((m) => m.user.userName).sort());
    // REST on node 2 lists the three
    const list = await ctx.apiOn(1, 'GET', `/api/meetings/${meetingId}/participants`, { user: a.user });
    assert.equal(list.status, 200, list.text);
    assert.equal(list.body.participants.length, 3);
    await ok(b.socket, 'leave-meeting', { meetingId });
    for (const m of [a, c]) {
      const d = await m.socket.rec.waitFor('participant-left', { where: (x) => x.participantId === b.participantId });
      assert.equal(d.userId, b.user.userId);
    }
  });

  ctest('a join storm spread over the nodes: every member learns of every other (snapshot or participant-joined)', async () => {
    const host = ctx.user({ name: 'host' });
    const { meetingId } = await ctx.createMeeting(host, { maxParticipants: 50 });
    const users = [host, ...Array.from({ length: 17 }, (_, i) => ctx.user({ name: `storm${i}` }))];
    const sockets = await Promise.all(users.map((u, i) => ctx.connect(u, { node: i % 3 })));
    const states = await Promise.all(sockets.map((s) => ctx.join(s, meetingId)));
    const everyone = new Set(states.map((st) => st.you.participantId));
    assert.equal(everyone.size, users.length);
    for (const [i, s] of sockets.entries()) {
      const deadline = Date.now() + 5000;
      let known;
      for (;;) {
        known = new Set([
          ...states[i].participants.map((p) => p.participantId),
          ...s.rec.all('participant-joined').map((d) => d.participantId),
        ]);
        if (known.size === everyone.size || Date.now() > deadline) break;
        await sleep(100);
      }
      const missing = [...everyone].filter((p) => !known.has(p));
      assert.deepEqual(missing, [], `member ${i} (node ${i % 3 + 1}) never learned of ${missing.length} participant(s)`);
    }
  });

  ctest('chat across nodes: to all, private, to hosts', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.spreadMeeting({ participants: 2 });
    const all = await ok(b.socket, 'send-message', { meetingId, message: 'hello from node 2' });
    for (const m of [a, b, c]) await m.socket.rec.waitFor('new-message', { where: (x) => x.id === all.id });
    const priv = await ok(c.socket, 'send-message', {
      meetingId, message: 'psst', recipientType: 'private', recipientId: a.user.userId,
    });
    await a.socket.rec.waitFor('new-message', { where: (x) => x.id === priv.id });
    await c.socket.rec.waitFor('new-message', { where: (x) => x.id === priv.id });
    const toHost = await ok(b.socket, 'send-message', { meetingId, message: 'for the host', recipientType: 'host' });
    await a.socket.rec.waitFor('new-message', { where: (x) => x.id === toHost.id });
    await sleep(300);
    assert.equal(b.socket.rec.all('new-message').filter((x) => x.id === priv.id).length, 0, 'bob must not get the private message');
    assert.equal(c.socket.rec.all('new-message').filter((x) => x.id === toHost.id).length, 0, 'cat is no host');
    // the history on another node has the messages (PostgreSQL is shared)
    const hist = await ctx.apiOn(2, 'GET', `/api/meetings/${meetingId}/messages`, { user: a.user });
    assert.equal(hist.status, 200, hist.text);
    const ids = hist.body.messages.map((x) => x.id);
    for (const id of [all.id, priv.id, toHost.id]) assert.ok(ids.includes(id), `history lacks ${id}: ${hist.text}`);
  });

  ctest('hand, mute, layout, spotlight and role change across nodes', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.spreadMeeting({ participants: 2 });
    await ok(c.socket, 'hand:raise', { meetingId });
    for (const m of [a, b]) {
      const d = await m.socket.rec.waitFor('hand:raised');
      assert.equal(d.participantId, c.participantId);
    }
    await ok(a.socket, 'participant:mute', { meetingId, targetUserId: b.user.userId, muteType: 'audio' });
    const muted = await b.socket.rec.waitFor('participant:muted');
    assert.equal(muted.muteType, 'audio');
    await ok(a.socket, 'layout:change', { meetingId, layout: 'speaker' });
    for (const m of [b, c]) assert.equal((await m.socket.rec.waitFor('layout:changed')).layout, 'speaker');
    await ok(a.socket, 'participant:spotlight', { meetingId, targetUserId: c.user.userId });
    for (const m of [b, c]) await m.socket.rec.waitFor('participant:spotlighted');
    await ok(a.socket, 'participant:role', { meetingId, targetUserId: b.user.userId, role: 'moderator' });
    for (const m of [b, c]) {
      const d = await m.socket.rec.waitFor('participant:role-changed');
      assert.equal(d.role, 'moderator');
    }
    // bob (node 2) now moderates: his layout change reaches node 1 and node 3
    await ok(b.socket, 'layout:change', { meetingId, layout: 'grid' });
    for (const m of [a, c]) await m.socket.rec.waitFor('layout:changed', { where: (x) => x.layout === 'grid' });
    // reactions, typing and screen share too
    await ok(c.socket, 'reaction:send', { meetingId, emoji: '👍' });
    for (const m of [a, b]) assert.equal((await m.socket.rec.waitFor('reaction:received')).emoji, '👍');
    await ok(a.socket, 'typing', { meetingId, typing: true });
    for (const m of [b, c]) await m.socket.rec.waitFor('user-typing', { where: (x) => x.userId === a.user.userId });
    await ok(b.socket, 'screen:start', { meetingId });
    for (const m of [a, c]) await m.socket.rec.waitFor('screen:started', { where: (x) => x.participantId === b.participantId });
    // a screen share is one per meeting across nodes
    await expectError(c.socket, 'screen:start', { meetingId }, 'SCREEN_SHARE_ACTIVE');
    await ok(b.socket, 'screen:stop', { meetingId });
    for (const m of [a, c]) await m.socket.rec.waitFor('screen:stopped');
    // a late joiner on node 3 gets all of it in its snapshot
    const late = await ctx.addMember(meetingId, ctx.user({ name: 'late' }), [a, b, c], { node: 2 });
    assert.equal(late.state.layout, 'grid');
    const cat = late.state.participants.find((p) => p.participantId === c.participantId);
    assert.equal(cat.handRaised, true, JSON.stringify(cat));
    const bob = late.state.participants.find((p) => p.participantId === b.participantId);
    assert.equal(bob.role, 'moderator');
  });

  ctest('meeting end on node 1 removes everyone on every node', async () => {
    const { meetingId, members } = await ctx.spreadMeeting({ participants: 2 });
    await ok(members[0].socket, 'meeting:end', { meetingId });
    for (const m of members) await m.socket.rec.waitFor('meeting:ended');
    for (const m of members.slice(1)) {
      await expectError(m.socket, 'send-message', { meetingId, message: 'still here?' }, 'NOT_IN_MEETING');
      await expectError(m.socket, 'join-meeting', { meetingId }, 'MEETING_ENDED');
    }
  });

  ctest('MEETING_FULL counts the participants on every node', async () => {
    const { meetingId, members: [a, b] } = await ctx.spreadMeeting({ participants: 1, settings: { maxParticipants: 2 } });
    const c = await ctx.connect(ctx.user({ name: 'carol' }), { node: 2 });
    await expectError(c, 'join-meeting', { meetingId }, 'MEETING_FULL');
    await ok(b.socket, 'leave-meeting', { meetingId });
    await a.socket.rec.waitFor('participant-left');
    const st = await ctx.join(c, meetingId);
    assert.equal(st.participants.length, 2);
  });

  ctest('the chat rate limit holds across a reconnect to another node', async () => {
    const { meetingId, members: [, b] } = await ctx.spreadMeeting({ participants: 1 });
    for (let i = 1; i <= 10; i++) await ok(b.socket, 'send-message', { meetingId, message: `msg ${i}` });
    b.socket.disconnect();
    const again = await ctx.connect(b.user, { node: 2 });
    await ctx.join(again, meetingId);
    const { ack } = await expectError(again, 'send-message', { meetingId, message: 'msg 11' }, 'RATE_LIMIT_EXCEEDED');
    assert.ok(ack.retryAfterMs > 0 && ack.retryAfterMs <= 60_000, JSON.stringify(ack));
  });

  ctest('through scripts/cluster-lb.mjs: sockets land on every node and meet', async () => {
    const lbPort = await freePort();
    const lb = spawn(process.execPath, [path.join(REPO_ROOT, 'scripts', 'cluster-lb.mjs'), String(lbPort),
      ...ctx.servers.map((s) => String(s.port))], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      await new Promise((resolve, reject) => {
        lb.stdout.once('data', resolve);
        lb.once('exit', (code) => reject(new Error(`lb exited ${code}`)));
      });
      const lbUrl = `http://127.0.0.1:${lbPort}`;
      const host = ctx.user({ name: 'host' });
      const { meetingId } = await ctx.createMeeting(host);
      const users = [host, ctx.user({ name: 'x' }), ctx.user({ name: 'y' })];
      const sockets = [];
      for (const u of users) {
        const s = await connect(lbUrl, u.token, { label: u.userName });
        ctx.allSockets.add(s);
        sockets.push(s);
      }
      for (const s of sockets) await ctx.join(s, meetingId);
      const msg = await ok(sockets[2], 'send-message', { meetingId, message: 'via the balancer' });
      for (const s of sockets) await s.rec.waitFor('new-message', { where: (x) => x.id === msg.id });
      // one socket per node: each node's /metrics counts one connection
      for (const srv of ctx.servers) {
        const m = await request(srv.url, 'GET', '/metrics');
        assert.match(m.text, /^meet_connections 1$/m, `${srv.url} holds one of the three sockets`);
      }
    } finally {
      lb.kill('SIGKILL');
    }
  });

  // Last: it takes Redis away.
  ctest('Redis restarted under a live meeting: SERVICE_UNAVAILABLE and /readyz 503 while it is down; the meeting goes on after, no node restarted', async () => {
    const { meetingId, members: [a, b] } = await ctx.spreadMeeting({ participants: 1 });
    await ctx.redis.stop();
    const deadline = Date.now() + 8000;
    let r;
    do {
      r = await request(ctx.servers[1].url, 'GET', '/readyz');
      if (r.status === 503) break;
      await sleep(200);
    } while (Date.now() < deadline);
    assert.equal(r.status, 503, `readyz while Redis is down: ${r.status} ${r.text}`);
    const { ack } = await expectError(a.socket, 'hand:raise', { meetingId }, 'SERVICE_UNAVAILABLE');
    assert.match(ack.message, /retry/);
    await ctx.redis.start(); // same port; its append-only file brings the meeting's state back
    const back = Date.now() + 10_000;
    for (const s of ctx.servers) {
      for (;;) {
        const rr = await request(s.url, 'GET', '/readyz');
        if (rr.status === 200) break;
        assert.ok(Date.now() < back, `${s.url} not ready again 10 s after Redis came back: ${rr.status} ${rr.text}`);
        await sleep(200);
      }
    }
    // the live meeting goes on across nodes (a on node 1, b on node 2), with no node restarted
    await ok(a.socket, 'hand:raise', { meetingId });
    await b.socket.rec.waitFor('hand:raised', { where: (x) => x.participantId === a.participantId });
    const msg = await ok(b.socket, 'send-message', { meetingId, message: 'after the outage' });
    for (const m of [a, b]) await m.socket.rec.waitFor('new-message', { where: (x) => x.id === msg.id });
    // and new meetings work on every node
    const fresh = await ctx.spreadMeeting({ participants: 2 });
    const msg2 = await ok(fresh.members[2].socket, 'send-message', { meetingId: fresh.meetingId, message: 'new meeting' });
    for (const m of fresh.members) await m.socket.rec.waitFor('new-message', { where: (x) => x.id === msg2.id });
  });
});

describe('cluster: a node killed with kill -9', () => {
  let ctx;
  before(async () => { ctx = await startCluster({ nodes: 3 }); });
  after(async () => { if (ctx) await ctx.cleanup(); });

  // First (the next test kills the same node): a node that is only paused is reaped like a dead one; when it
  // resumes it finds the reaper's marker and sends its sockets away, so their clients rejoin.
  test('a node paused past its heartbeat is reaped; on resuming it tells its sockets server:shutdown and disconnects them; they rejoin', async () => {
    try {
      const { meetingId, members: [a, b, c] } = await ctx.spreadMeeting({ participants: 2 });
      const node = ctx.servers[1];
      node.proc.kill('SIGSTOP');
      try {
        for (const m of [a, c]) {
          const d = await m.socket.rec.waitFor('participant-left', {
            where: (x) => x.participantId === b.participantId, timeout: 8000,
          });
          assert.equal(d.reason, 'node-lost');
        }
      } finally {
        node.proc.kill('SIGCONT');
      }
      const resumedAt = Date.now();
      const notice = await b.socket.rec.waitFor('server:shutdown', { timeout: 5000 });
      assert.equal(notice.reconnectAfterMs, 0);
      await b.socket.rec.waitFor('$disconnect', { timeout: 5000 });
      console.log(`# paused node: its socket was sent away ${Date.now() - resumedAt} ms after it resumed`);
      // the node serves again: the user reconnects (to it) and rejoins; the others see them come back
      const again = await ctx.connect(b.user, { node: 1 });
      const st = await ctx.join(again, meetingId);
      assert.equal(st.participants.length, 3, JSON.stringify(st.participants));
      await a.socket.rec.waitFor('participant-joined', { where: (x) => x.userId === b.user.userId });
      const metrics = await request(node.url, 'GET', '/metrics');
      assert.match(metrics.text, /^meet_cluster_fenced_total 1$/m);
      ctx.closeSockets([again]);
    } catch (err) {
      throw ctx.diagnose(err);
    }
  });

  test('its participants leave their meetings within 5 s (node-lost); they rejoin through another node', async () => {
    try {
      const { meetingId, members: [a, b, c] } = await ctx.spreadMeeting({ participants: 2 });
      await ok(b.socket, 'hand:raise', { meetingId });
      await a.socket.rec.waitFor('hand:raised');
      // acked just before its node dies: it is in PostgreSQL
      const last = await ok(b.socket, 'send-message', { meetingId, message: 'last words' });
      const killedAt = Date.now();
      ctx.servers[1].proc.kill('SIGKILL');
      for (const m of [a, c]) {
        const d = await m.socket.rec.waitFor('participant-left', {
          where: (x) => x.participantId === b.participantId, timeout: 6000,
        });
        assert.equal(d.reason, 'node-lost');
        assert.equal(d.userId, b.user.userId);
      }
      const took = Date.now() - killedAt;
      assert.ok(took <= 5000, `participant-left came ${took} ms after the kill`);
      // the client reconnects (here: to node 3, as a load balancer would send it) and rejoins; its hand comes back
      const again = await ctx.connect(b.user, { node: 2 });
      const st = await ctx.join(again, meetingId);
      assert.equal(st.participants.length, 3, JSON.stringify(st.participants));
      const me = st.participants.find((p) => p.participantId === st.you.participantId);
      assert.equal(me?.handRaised, true, `the hand of a session lost with its node comes back: ${JSON.stringify(me)}`);
      await a.socket.rec.waitFor('participant-joined', { where: (x) => x.userId === b.user.userId });
      const hist = await ctx.apiOn(0, 'GET', `/api/meetings/${meetingId}/messages`, { user: a.user });
      assert.ok(hist.body.messages.some((m) => m.id === last.id), `the acked message survives its node: ${hist.text}`);
      // the survivors count two live nodes
      const metrics = await request(ctx.servers[0].url, 'GET', '/metrics');
      assert.match(metrics.text, /^meet_cluster_nodes_alive 2$/m);
      console.log(`# node-lost detected ${took} ms after kill -9`);
    } catch (err) {
      throw ctx.diagnose(err);
    } finally {
      ctx.closeSockets(ctx.allSockets);
    }
  });
});

describe('cluster: media homes', () => {
  let ctx;
  before(async () => { ctx = await startCluster({ nodes: 3 }); });
  after(async () => { if (ctx) await ctx.cleanup(); });

  const ports = (ev) => ev.params.iceCandidates.map((c) => c.port).sort().join(',');

  /** The index of the node that carries media (its `meet_media_routers` gauge is above 0), waiting up to 5 s. */
  async function homeIndex() {
    const deadline = Date.now() + 5000;
    for (;;) {
      const found = [];
      for (const [i, s] of ctx.servers.entries()) {
        if (s.exit) continue;
        const m = await request(s.url, 'GET', '/metrics');
        const routers = [...m.text.matchAll(/^meet_media_routers\{[^}]*\} (\d+)/gm)].reduce((n, x) => n + Number(x[1]), 0);
        if (routers > 0) found.push(i);
      }
      if (found.length === 1) return found[0];
      assert.ok(Date.now() < deadline, `expected one node carrying media, found ${JSON.stringify(found)}`);
      await sleep(200);
    }
  }

  test('a new meeting\'s media goes to the least loaded node', async () => {
    try {
      // meeting 1 takes a home and loads it with three transports
      const one = await ctx.spreadMeeting({ participants: 2 });
      for (const [k, m] of one.members.entries()) {
        await ok(m.socket, 'create-transport', { meetingId: one.meetingId, direction: k % 2 ? 'recv' : 'send' });
      }
      const loaded = await homeIndex();
      await sleep(2500); // the load reaches the heartbeats (published every second)
      // meeting 2's first media request comes from a socket on the loaded node: its media goes elsewhere
      const two = await ctx.spreadMeeting({ participants: 1, nodes: [loaded, (loaded + 1) % 3] });
      await ok(two.members[0].socket, 'create-transport', { meetingId: two.meetingId, direction: 'send' });
      const t2 = await two.members[0].socket.rec.waitFor('transport-created');
      const t1 = one.members[0].socket.rec.all('transport-created')[0];
      assert.notEqual(ports(t2), ports(t1), 'meeting 2 must not be placed on the node that carries meeting 1');
    } catch (err) {
      throw ctx.diagnose(err);
    } finally {
      ctx.closeSockets(ctx.allSockets);
    }
  });

  test('a meeting has one media home; SIGTERM on it re-homes the meeting: others get transport:closed (node-drain) and set up again elsewhere', async () => {
    try {
      await sleep(2500); // the previous test's transports are closed and the loads republished
      const { meetingId, members } = await ctx.spreadMeeting({ participants: 2 });
      const created = [];
      for (const [k, m] of members.entries()) {
        await ok(m.socket, 'create-transport', { meetingId, direction: k === 1 ? 'recv' : 'send' });
        created.push(await m.socket.rec.waitFor('transport-created'));
      }
      for (const t of created) assert.equal(ports(t), ports(created[0]), 'every transport of the meeting is on its media home');
      const home = await homeIndex();
      const onHome = members.find((m) => m.node === home);
      const others = members.filter((m) => m.node !== home);
      // the home drains
      const stopping = ctx.servers[home].stop();
      await onHome.socket.rec.waitFor('server:shutdown', { timeout: 5000 });
      for (const m of others) {
        const closed = await m.socket.rec.waitFor('transport:closed', { timeout: 5000 });
        assert.equal(closed.reason, 'node-drain');
        assert.equal(closed.transportId, created[members.indexOf(m)].params.id);
      }
      await stopping;
      const [x, y] = others;
      x.socket.rec.clear();
      await ok(x.socket, 'create-transport', { meetingId, direction: 'recv' });
      const again = await x.socket.rec.waitFor('transport-created');
      assert.notEqual(ports(again), ports(created[0]), 'the new transport is on a new home, not on the stopped node');
      y.socket.rec.clear();
      await ok(y.socket, 'create-transport', { meetingId, direction: 'send' });
      const again2 = await y.socket.rec.waitFor('transport-created');
      assert.equal(ports(again2), ports(again), 'one media home per meeting');
    } catch (err) {
      throw ctx.diagnose(err);
    } finally {
      ctx.closeSockets(ctx.allSockets);
    }
  });
});
