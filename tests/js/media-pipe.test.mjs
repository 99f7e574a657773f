// A meeting bigger than one media worker (issue 8 item 3), at the signaling level: two workers and
// MEET_MEDIA__PIPE_THRESHOLD=1, so the meeting's second recv transport goes to the other worker (another UDP port)
// and its consumers get the producers through in-process pipes. Media through the pipes is proven in
// crates/media/tests/pipe_workers.rs (real UDP, DTLS-SRTP) and crates/sfu/tests/pipe.rs.
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { useServer } from './lib/harness.mjs';
import { ok, expectError } from './lib/client.mjs';
import { opus, vp8 } from './lib/rtp.mjs';

describe('media pipes between workers', () => {
  const ctx = useServer({ env: { MEET_MEDIA__WORKERS: '2', MEET_MEDIA__PIPE_THRESHOLD: '1' } });

  async function caps() {
    return (await ctx.api('GET', '/meeting/x/webrtc-config')).body.rtpCapabilities;
  }

  const udpPort = (params) => params.iceCandidates.find((c) => c.protocol === 'udp').port;

  ctx.test('past the threshold a recv transport is on another worker; consume, control and close reach it', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2 });
    const send = (await ok(a.socket, 'create-transport', { meetingId, direction: 'send' })).params;
    const rb = (await ok(b.socket, 'create-transport', { meetingId, direction: 'recv' })).params;
    const rc = (await ok(c.socket, 'create-transport', { meetingId, direction: 'recv' })).params;
    assert.equal(udpPort(rb), udpPort(send), 'the first subscriber is on the home worker');
    assert.notEqual(udpPort(rc), udpPort(send), 'the second, past the threshold, on the other worker');

    const pa = await ok(a.socket, 'produce', { meetingId, kind: 'audio', rtpParameters: opus('0'), appData: {} });
    const pv = await ok(a.socket, 'produce', { meetingId, kind: 'video', rtpParameters: vp8('1'), appData: {} });
    const subs = {};
    for (const [name, m] of [['b', b], ['c', c]]) {
      const audio = await ok(m.socket, 'consume', { meetingId, producerId: pa.producerId, rtpCapabilities: await caps() });
      const video = await ok(m.socket, 'consume', { meetingId, producerId: pv.producerId, rtpCapabilities: await caps() });
      assert.equal(audio.producerId, pa.producerId);
      assert.equal(video.rtpParameters.codecs[1].mimeType, 'video/rtx');
      subs[name] = { audio, video };
    }

    // Requests about the far transport and its consumers go to its worker.
    const hex = (n) => Array.from({ length: n }, (_, i) => (i * 7 % 256).toString(16).padStart(2, '0').toUpperCase()).join(':');
    const fp = { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: hex(32) }] };
    await ok(c.socket, 'connect-transport', { transportId: rc.id, dtlsParameters: fp });
    await c.socket.rec.waitFor('transport-connected');
    await ok(c.socket, 'resume-consumer', { consumerId: subs.c.video.id });
    await ok(c.socket, 'pause-consumer', { consumerId: subs.c.video.id });
    await ok(c.socket, 'quality:change', { meetingId, participantId: a.participantId, quality: 'low' });
    const restarted = await ok(c.socket, 'restart-ice', { transportId: rc.id });
    assert.ok(restarted.iceParameters.usernameFragment);

    // Closing the producer closes both subscribers' consumers, the far one's through the pipe.
    await ok(a.socket, 'producer:close', { producerId: pv.producerId });
    for (const [name, m] of [['b', b], ['c', c]]) {
      const closed = await m.socket.rec.waitFor('consumer-closed', { where: (d) => d.consumerId === subs[name].video.id });
      assert.equal(closed.producerId, pv.producerId);
    }
    await expectError(c.socket, 'resume-consumer', { consumerId: subs.c.video.id }, 'NOT_FOUND');

    // The publisher leaves: the far subscriber's audio consumer closes too.
    await ok(a.socket, 'leave-meeting', { meetingId });
    const left = await c.socket.rec.waitFor('consumer-closed', { where: (d) => d.consumerId === subs.c.audio.id });
    assert.equal(left.reason, 'participant-left');
  });
});
