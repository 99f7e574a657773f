// Cost limits on media requests (issue 7, item 5): per participant, create-transport, connect-transport, produce,
// consume and the media control requests (pause/resume/close/quality) are rate limited, so one client looping on
// them cannot starve the media worker other meetings share. Over the limit: RATE_LIMIT_EXCEEDED with retryAfterMs
// (and the error event), and nothing changes. Defaults: 10 create-transport / 10 s (tested as is); the others are
// lowered here through MEET_LIMITS__*.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { useServer } from './lib/harness.mjs';
import { ok, expectError } from './lib/client.mjs';
import { opus } from './lib/rtp.mjs';


describe('media request limits', () => {
  const ctx = useServer({
    env: {
      MEET_LIMITS__PRODUCE__COUNT: '2',
      MEET_LIMITS__CONSUME__COUNT: '2',
      MEET_LIMITS__MEDIA_CONTROL__COUNT: '4',
      MEET_LIMITS__CONNECT_TRANSPORT__COUNT: '1',
    },
  });

  ctx.test('create-transport: 10 per 10 s, the 11th is RATE_LIMIT_EXCEEDED and the last transport stays', async () => {
    const { meetingId, members: [a] } = await ctx.meeting({ participants: 0 });
    let last;
    for (let i = 0; i < 10; i++) last = await ok(a.socket, 'create-transport', { meetingId, direction: 'send' });
    const { ack } = await expectError(a.socket, 'create-transport', { meetingId, direction: 'recv' }, 'RATE_LIMIT_EXCEEDED');
    assert.ok(ack.retryAfterMs > 0 && ack.retryAfterMs <= 10_000, JSON.stringify(ack));
    assert.match(ack.message, /create-transport/);
    // Nothing changed: the last send transport is still there (the refused request did not replace it).
    const hex = Array.from({ length: 32 }, () => 'AB').join(':');
    await ok(a.socket, 'connect-transport', { transportId: last.params.id, dtlsParameters: { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: hex }] } });
    // Another participant has a window of its own.
    const { members: [b] } = await ctx.meeting({ participants: 0 });
    await ok(b.socket, 'create-transport', { meetingId: b.state.meetingId, direction: 'send' });
  });

  ctx.test('connect-transport, produce, consume and control requests have their own windows', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    const send = await ok(a.socket, 'create-transport', { meetingId, direction: 'send' });
    const hex = Array.from({ length: 32 }, () => 'CD').join(':');
    const dtls = { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: hex }] };
    await ok(a.socket, 'connect-transport', { transportId: send.params.id, dtlsParameters: dtls });
    await expectError(a.socket, 'connect-transport', { transportId: send.params.id, dtlsParameters: dtls }, 'RATE_LIMIT_EXCEEDED');

    const p1 = await ok(a.socket, 'produce', { meetingId, kind: 'audio', rtpParameters: opus('0', 1001) });
    await ok(a.socket, 'produce', { meetingId, kind: 'audio', rtpParameters: opus('1', 1002) });
    await expectError(a.socket, 'produce', { meetingId, kind: 'audio', rtpParameters: opus('2', 1003) }, 'RATE_LIMIT_EXCEEDED');

    const caps = (await ctx.api('GET', '/meeting/x/webrtc-config')).body.rtpCapabilities;
    await ok(b.socket, 'create-transport', { meetingId, direction: 'recv' });
    const c1 = await ok(b.socket, 'consume', { meetingId, producerId: p1.producerId, rtpCapabilities: caps });
    await ok(b.socket, 'consume', { meetingId, producerId: p1.producerId, rtpCapabilities: caps });
    await expectError(b.socket, 'consume', { meetingId, producerId: p1.producerId, rtpCapabilities: caps }, 'RATE_LIMIT_EXCEEDED');

    for (let i = 0; i < 4; i++) await ok(b.socket, i % 2 ? 'resume-consumer' : 'pause-consumer', { consumerId: c1.id });
    const { ack } = await expectError(b.socket, 'pause-consumer', { consumerId: c1.id }, 'RATE_LIMIT_EXCEEDED');
    assert.match(ack.message, /media control/);
    // a's control window is its own.
    await ok(a.socket, 'producer:pause', { producerId: p1.producerId });
  });
});
