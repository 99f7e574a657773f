// Graceful shutdown: SIGTERM → server:shutdown to every socket, then exit 0.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startServer } from './lib/server.mjs';
import { Ctx, withDiagnostics } from './lib/harness.mjs';
import { connect } from './lib/client.mjs';

test('SIGTERM: connected sockets (in and out of meetings) get server:shutdown, then the process exits 0', async () => {
  const server = await startServer();
  const ctx = new Ctx();
  ctx.server = server;
  ctx.testSockets = new Set();
  try {
    const { members } = await ctx.meeting({ participants: 1 });
    const idle = await ctx.connect(ctx.user({ name: 'idle' }));
    const polling = await ctx.connect(ctx.user({ name: 'poller' }), { transports: ['polling'] });
    const sockets = [...members.map((m) => m.socket), idle, polling];

    const t0 = Date.now();
    const stopping = server.stop({ timeoutMs: 20_000 });
    for (const s of sockets) {
      const d = await s.rec.waitFor('server:shutdown', { timeout: 10_000 });
      assert.equal(typeof d.reconnectAfterMs, 'number', JSON.stringify(d));
      assert.ok(d.reconnectAfterMs >= 0, JSON.stringify(d));
    }
    const exit = await stopping;
    assert.equal(exit.killed, false, 'the server did not exit within 20 s of SIGTERM');
    assert.equal(exit.code, 0, `exit code ${exit.code} signal ${exit.signal}`);
    assert.ok(Date.now() - t0 < 20_000);
    for (const s of sockets) {
      // server:shutdown came before the connection closed
      const shut = s.rec.entries('server:shutdown')[0];
      const disc = s.rec.entries('$disconnect')[0];
      if (disc) assert.ok(shut.seq < disc.seq, 'server:shutdown must arrive before the disconnect');
    }
    // and nothing is listening any more
    await assert.rejects(connect(server.url, ctx.user().token, { timeout: 2000 }));
  } catch (err) {
    throw withDiagnostics(err, [server]);
  } finally {
    ctx.closeSockets(ctx.testSockets);
    await server.cleanup();
  }
});

test('SIGTERM with no clients exits 0 promptly', async () => {
  const server = await startServer();
  try {
    const t0 = Date.now();
    const exit = await server.stop({ timeoutMs: 10_000 });
    assert.equal(exit.killed, false);
    assert.equal(exit.code, 0);
    assert.ok(Date.now() - t0 < 10_000);
  } catch (err) {
    throw withDiagnostics(err, [server]);
  } finally {
    await server.cleanup();
  }
});
