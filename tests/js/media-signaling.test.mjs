// The WebRTC events at the signaling level (no browser): shapes, validation, ownership, pacing, cleanup.
// Media itself is proven in tests/browser (real Chromium + mediasoup-client).
import assert from 'node:assert/strict';
import { describe } from 'node:test';
import { useServer } from './lib/harness.mjs';
import { ok, expectError, sleep } from './lib/client.mjs';
import { opus, vp8 } from './lib/rtp.mjs';


describe('media signaling', () => {
  const ctx = useServer();

  async function caps() {
    return (await ctx.api('GET', '/meeting/x/webrtc-config')).body.rtpCapabilities;
  }

  ctx.test('transports: mediasoup shapes; only your own can be connected; bad input is VALIDATION_ERROR', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    const created = await ok(a.socket, 'create-transport', { meetingId, direction: 'send' });
    const ev = await a.socket.rec.waitFor('transport-created');
    assert.equal(ev.direction, 'send');
    const p = ev.params;
    assert.deepEqual(created.params, p);
    assert.match(p.id, /^tr_/);
    assert.equal(p.iceParameters.iceLite, true);
    assert.ok(p.iceParameters.password.length >= 22);
    assert.equal(p.iceCandidates[0].protocol, 'udp');
    assert.equal(p.iceCandidates[0].type, 'host');
    assert.ok(p.iceCandidates[0].port > 0);
    assert.equal(p.dtlsParameters.fingerprints.at(-1).algorithm, 'sha-256');

    await expectError(a.socket, 'create-transport', { meetingId, direction: 'both' }, 'VALIDATION_ERROR');
    const hex = (n) => Array.from({ length: n }, (_, i) => (i * 7 % 256).toString(16).padStart(2, '0').toUpperCase()).join(':');
    const fp = { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: hex(32) }] };
    await expectError(b.socket, 'connect-transport', { transportId: p.id, dtlsParameters: fp }, 'NOT_FOUND');
    // Every algorithm mediasoup accepts is taken (media with them: crates/sfu/tests/dtls_fingerprints.rs); a
    // digest of the wrong length, or another algorithm, is refused with the accepted list.
    const short = { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: 'AA:BB:CC' }] };
    assert.match((await expectError(a.socket, 'connect-transport', { transportId: p.id, dtlsParameters: short }, 'VALIDATION_ERROR')).ack.message, /32 bytes/);
    const md5 = { role: 'client', fingerprints: [{ algorithm: 'md5', value: hex(16) }] };
    assert.match((await expectError(a.socket, 'connect-transport', { transportId: p.id, dtlsParameters: md5 }, 'VALIDATION_ERROR')).ack.message, /sha-1, sha-224, sha-256, sha-384, sha-512/);
    await expectError(a.socket, 'connect-transport', { transportId: p.id, dtlsParameters: { fingerprints: [] } }, 'VALIDATION_ERROR');
    await expectError(a.socket, 'connect-transport', { transportId: p.id, dtlsParameters: 'x' }, 'VALIDATION_ERROR');
    await ok(a.socket, 'connect-transport', { transportId: p.id, dtlsParameters: fp });
    await a.socket.rec.waitFor('transport-connected');
    await expectError(a.socket, 'connect-transport', { transportId: p.id, dtlsParameters: fp }, 'VALIDATION_ERROR');
  });

  ctx.test('produce/consume: validation, CANNOT_CONSUME, ownership, pacing of new-producer, cleanup on leave', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1 });
    await expectError(a.socket, 'produce', { meetingId, kind: 'audio', rtpParameters: opus('0') }, 'NOT_FOUND');
    await ok(a.socket, 'create-transport', { meetingId, direction: 'send' });
    await ok(b.socket, 'create-transport', { meetingId, direction: 'recv' });
    await expectError(a.socket, 'produce', { meetingId, kind: 'audio', rtpParameters: { codecs: [] } }, 'VALIDATION_ERROR');
    await expectError(a.socket, 'produce', { meetingId, kind: 'audio', rtpParameters: { ...opus('0'), codecs: [{ ...opus('0').codecs[0], mimeType: 'audio/G729' }] } }, 'VALIDATION_ERROR');
    await expectError(a.socket, 'produce', { meetingId, kind: 'video', rtpParameters: opus('0') }, 'VALIDATION_ERROR');

    const pa = await ok(a.socket, 'produce', { meetingId, kind: 'audio', rtpParameters: opus('0'), appData: {} });
    assert.match(pa.producerId, /^pr_/);
    assert.equal((await a.socket.rec.waitFor('produced')).producerId, pa.producerId);
    const pv = await ok(a.socket, 'produce', { meetingId, kind: 'video', rtpParameters: vp8('1') });

    // b is told about one producer at a time: the next only after its consume (or 2 s)
    const first = await b.socket.rec.waitFor('new-producer');
    assert.equal(first.producerId, pa.producerId);
    assert.equal(first.participantId, a.participantId);
    assert.equal(first.userId, a.user.userId);
    assert.equal(first.kind, 'audio');
    assert.equal(first.source, 'mic');
    await sleep(400);
    assert.equal(b.socket.rec.count('new-producer'), 1, 'second announcement waits for the consume');

    const noOpus = (await caps());
    const videoOnly = { ...noOpus, codecs: noOpus.codecs.filter((c) => c.kind === 'video') };
    await expectError(b.socket, 'consume', { meetingId, producerId: pa.producerId, rtpCapabilities: videoOnly }, 'CANNOT_CONSUME');
    const sub = await ok(b.socket, 'consume', {
      meetingId, producerParticipantId: a.participantId, kind: 'audio', rtpCapabilities: await caps(),
    });
    assert.equal(sub.producerId, pa.producerId);
    assert.equal(sub.kind, 'audio');
    assert.equal(sub.type, 'simple');
    assert.equal(sub.producerPaused, false);
    assert.equal(sub.rtpParameters.codecs[0].payloadType, 100, 'router numbering');
    assert.ok(sub.rtpParameters.encodings[0].ssrc > 0);
    assert.equal(sub.rtpParameters.rtcp.cname, 'abcd');
    const subscribed = await b.socket.rec.waitFor('subscribed');
    assert.equal(subscribed.id, sub.id);
    const second = await b.socket.rec.waitFor('new-producer', { where: (d) => d.producerId === pv.producerId });
    assert.equal(second.kind, 'video');

    const subV = await ok(b.socket, 'consume', { meetingId, producerId: pv.producerId, rtpCapabilities: await caps() });
    assert.equal(subV.rtpParameters.codecs[1].mimeType, 'video/rtx');
    assert.equal(subV.rtpParameters.encodings[0].rtx.ssrc > 0, true);
    assert.notEqual(subV.rtpParameters.mid, sub.rtpParameters.mid, 'per-transport mids');

    // quality:change caps b's consumers of a's video; the guide names the participant by user id
    const q = await ok(b.socket, 'quality:change', { meetingId, participantId: a.user.userId, quality: 'low' });
    assert.equal(q.quality, 'low');
    assert.equal((await b.socket.rec.waitFor('quality:changed')).quality, 'low');
    await ok(b.socket, 'quality:change', { meetingId, participantId: a.participantId, quality: 'high' });
    await expectError(b.socket, 'quality:change', { meetingId, participantId: a.participantId, quality: 'ultra' }, 'VALIDATION_ERROR');
    await expectError(a.socket, 'quality:change', { meetingId, participantId: b.participantId, quality: 'low' }, 'NOT_FOUND');

    // ownership: a cannot touch b's consumer, b cannot touch a's producer
    await expectError(a.socket, 'resume-consumer', { consumerId: sub.id }, 'NOT_FOUND');
    await expectError(b.socket, 'producer:pause', { producerId: pa.producerId }, 'NOT_FOUND');
    await ok(b.socket, 'resume-consumer', { consumerId: sub.id });
    await ok(b.socket, 'pause-consumer', { consumerId: sub.id });

    // owner pause/resume is told to everyone
    await ok(a.socket, 'producer:pause', { producerId: pa.producerId });
    const paused = await b.socket.rec.waitFor('producer:paused');
    assert.equal(paused.producerId, pa.producerId);
    assert.equal(paused.byModerator, false);
    await ok(a.socket, 'producer:resume', { producerId: pa.producerId });
    await b.socket.rec.waitFor('producer:resumed');

    // moderator mute pauses on the server and is told as byModerator
    await ok(a.socket, 'participant:role', { meetingId, targetUserId: b.user.userId, role: 'moderator' });
    await ok(b.socket, 'participant:mute', { meetingId, targetUserId: a.user.userId, muteType: 'audio' });
    const muted = await a.socket.rec.waitFor('producer:paused', { where: (d) => d.byModerator });
    assert.equal(muted.producerId, pa.producerId);

    // leaving closes a's producers: b's consumers close
    await ok(a.socket, 'leave-meeting', { meetingId });
    const closed = [await b.socket.rec.waitFor('consumer-closed', { where: (d) => d.consumerId === sub.id }),
      await b.socket.rec.waitFor('consumer-closed', { where: (d) => d.consumerId === subV.id })];
    for (const c of closed) assert.equal(c.reason, 'participant-left');
    await b.socket.rec.waitFor('participant-left');
    await expectError(b.socket, 'resume-consumer', { consumerId: sub.id }, 'NOT_FOUND');
  });

  ctx.test('late joiner gets new-producer for existing producers when it creates its recv transport; media events need a meeting', async () => {
    const { meetingId, members: [a] } = await ctx.meeting({ participants: 0 });
    await ok(a.socket, 'create-transport', { meetingId, direction: 'send' });
    const pa = await ok(a.socket, 'produce', { meetingId, kind: 'audio', rtpParameters: opus('0') });
    const late = await ctx.addMember(meetingId, ctx.user({ name: 'late' }), [a]);
    await sleep(300);
    assert.equal(late.socket.rec.count('new-producer'), 0, 'not before a recv transport');
    await ok(late.socket, 'create-transport', { meetingId, direction: 'recv' });
    const np = await late.socket.rec.waitFor('new-producer');
    assert.equal(np.producerId, pa.producerId);

    const stranger = await ctx.connect(ctx.user({ name: 'stranger' }));
    await expectError(stranger, 'create-transport', { meetingId, direction: 'send' }, 'NOT_IN_MEETING');
    await expectError(stranger, 'resume-consumer', { consumerId: 'co_x' }, 'NOT_IN_MEETING');
  });
});
