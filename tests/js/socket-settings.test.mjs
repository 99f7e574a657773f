// The socket.io engine settings from the configuration reach the engine (MEET_SOCKET__*). They once did not:
// socketioxide's `build_layer` rebuilds the engine config from its builder, so values handed over inside
// `with_config` were dropped and the engine ran on its own defaults (64 MiB websocket messages, 100 kB polling).
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { useServer } from './lib/harness.mjs';
import { expectError, sleep } from './lib/client.mjs';

/** Resolve with the disconnect reason, or null when the socket is still connected after `ms`. */
function disconnectWithin(socket, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => { socket.off('disconnect', onDisconnect); resolve(null); }, ms);
    const onDisconnect = (reason) => { clearTimeout(timer); resolve(reason); };
    socket.on('disconnect', onDisconnect);
  });
}

describe('MEET_SOCKET__PING_INTERVAL_MS / PING_TIMEOUT_MS reach the engine.io handshake', () => {
  const ctx = useServer({ env: { MEET_SOCKET__PING_INTERVAL_MS: '1500', MEET_SOCKET__PING_TIMEOUT_MS: '1200' } });
  ctx.test('the client is told the configured ping interval and timeout', async () => {
    const s = await ctx.connect(ctx.user());
    // engine.io-client 6 keeps the handshake's values in these fields
    const engine = s.io.engine;
    assert.equal(engine._pingInterval ?? engine.pingInterval, 1500);
    assert.equal(engine._pingTimeout ?? engine.pingTimeout, 1200);
    // and the server really pings at that pace: the connection survives several intervals
    await sleep(4000);
    assert.equal(s.connected, true);
  });
});

describe('MEET_SOCKET__MAX_PAYLOAD_BYTES bounds a websocket message', () => {
  const ctx = useServer({ env: { MEET_SOCKET__MAX_PAYLOAD_BYTES: '8192' } });
  ctx.test('a message under the limit is handled; one over it closes that socket only', async () => {
    const { meetingId, members } = await ctx.meeting({ participants: 1 });
    const [a, b] = members;
    // under the limit: reaches the handler, which answers with its own validation error (message too long)
    await expectError(a.socket, 'send-message', { meetingId, message: 'x'.repeat(6000) }, 'VALIDATION_ERROR');
    // over the limit: the engine refuses the frame and closes the transport; nothing reaches the meeting
    const closed = disconnectWithin(a.socket, 5000);
    a.socket.emit('send-message', { meetingId, message: 'y'.repeat(20_000) });
    const reason = await closed;
    assert.ok(reason, 'the socket that sent a message over the limit must be disconnected');
    assert.match(reason, /transport (close|error)/);
    // the other member is unaffected and saw no new-message
    await sleep(300);
    assert.equal(b.socket.connected, true);
    assert.equal(b.socket.rec.count('new-message'), 0);
  });
});
