// Recording control (issue 10): recording:start/stop/pause/resume, their events and refusals (every code), the join
// snapshot's recording state, the server's own stops (meeting end, last participant leaving, maximum duration),
// node limits, the stored rows over REST (list/get/download with Range/delete), the chat transcript, and a
// recording that survives kill -9 of the server.
import assert from 'node:assert/strict';
import { describe, after } from 'node:test';
import { mkdtempSync, rmSync, readFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { useServer } from './lib/harness.mjs';
import { ok, expectError, ISO_RE, sleep } from './lib/client.mjs';

const ACTIONS = ['recording:start', 'recording:stop', 'recording:pause', 'recording:resume'];

// Removed once the whole file is done: a describe()'s own after() hooks run in the order they were registered, so
// removing the folder there ran while that block's server was still writing a recording into it (ENOTEMPTY on CI),
// and a failing hook left the server running. A cleanup failure must never fail or hang the run.
const tempDirs = [];
after(() => {
  for (const dir of tempDirs) {
    try { rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 }); } catch { /* left in tmp */ }
  }
});

function tempDir(label) {
  const dir = mkdtempSync(path.join(tmpdir(), `meet-rec-${label}-`));
  tempDirs.push(dir);
  return dir;
}

/** Polls GET …/recordings/{id} until `done(view)`; returns the view. */
async function waitRecording(ctx, user, meetingId, recordingId, done, ms = 10_000) {
  const until = Date.now() + ms;
  let last;
  for (;;) {
    const res = await ctx.api('GET', `/api/meetings/${meetingId}/recordings/${recordingId}`, { user });
    last = res;
    if (res.status === 200 && done(res.body)) return res.body;
    if (Date.now() > until) assert.fail(`recording ${recordingId} never reached the expected state: ${res.status} ${res.text}`);
    await sleep(100);
  }
}

describe('recording control', () => {
  const dir = tempDir('ctl');
  const ctx = useServer({ env: { MEET_RECORDING__DIR: dir, MEET_RECORDING__MIN_FREE_DISK_MB: '0' } });

  ctx.test('refusals with their codes: RECORDING_DISABLED, UNAUTHORIZED_RECORDING, NOT_IN_MEETING, VALIDATION_ERROR, and nothing changes', async () => {
    const off = await ctx.meeting({ participants: 1 });
    for (const event of ACTIONS) {
      await expectError(off.host.socket, event, { meetingId: off.meetingId }, 'RECORDING_DISABLED');
      await expectError(off.members[1].socket, event, { meetingId: off.meetingId }, 'RECORDING_DISABLED');
    }
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1, settings: { recordingEnabled: true } });
    for (const event of ACTIONS) {
      await expectError(b.socket, event, { meetingId }, 'UNAUTHORIZED_RECORDING');
    }
    const outsider = await ctx.connect(ctx.user({ name: 'outsider' }));
    await expectError(outsider, 'recording:start', { meetingId }, 'NOT_IN_MEETING');
    await expectError(a.socket, 'recording:start', { meetingId, options: 'all' }, 'VALIDATION_ERROR');
    await expectError(a.socket, 'recording:start', { meetingId, options: { recordVideo: 1 } }, 'VALIDATION_ERROR');
    await expectError(a.socket, 'recording:start',
      { meetingId, options: { recordVideo: false, recordAudio: false, recordChat: false } }, 'VALIDATION_ERROR');
    await expectError(a.socket, 'recording:start', { meetingId: 42 }, 'VALIDATION_ERROR');
    for (const m of [a, b]) {
      assert.equal(m.socket.rec.names().filter((n) => n.startsWith('recording:')).length, 0, 'a refusal sends no event');
    }
    const list = await ctx.api('GET', `/api/meetings/${meetingId}/recordings`, { user: a.user });
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.body.recordings, []);
  });

  ctx.test('state refusals: RECORDING_NOT_ACTIVE, RECORDING_ACTIVE, RECORDING_PAUSED, RECORDING_NOT_PAUSED', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1, settings: { recordingEnabled: true } });
    for (const event of ['recording:stop', 'recording:pause', 'recording:resume']) {
      await expectError(a.socket, event, { meetingId }, 'RECORDING_NOT_ACTIVE');
    }
    await ok(a.socket, 'recording:start', { meetingId });
    await expectError(a.socket, 'recording:start', { meetingId }, 'RECORDING_ACTIVE');
    await expectError(a.socket, 'recording:resume', { meetingId }, 'RECORDING_NOT_PAUSED');
    await ok(a.socket, 'recording:pause', { meetingId });
    await expectError(a.socket, 'recording:pause', { meetingId }, 'RECORDING_PAUSED');
    await expectError(a.socket, 'recording:start', { meetingId }, 'RECORDING_ACTIVE');
    await ok(a.socket, 'recording:resume', { meetingId });
    await ok(a.socket, 'recording:stop', { meetingId });
    for (const event of ['recording:stop', 'recording:pause', 'recording:resume']) {
      await expectError(a.socket, event, { meetingId }, 'RECORDING_NOT_ACTIVE');
    }
    // each success reached everyone exactly once
    for (const ev of ['recording:started', 'recording:paused', 'recording:resumed', 'recording:stopped']) {
      assert.equal(b.socket.rec.count(ev), 1, ev);
    }
  });

  ctx.test('start/pause/resume/stop: events to everyone with their shapes; the snapshot shows the state to late joiners; transcript has only public messages of unpaused time', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1, settings: { recordingEnabled: true } });
    // a moderator may record too
    await ok(a.socket, 'participant:role', { meetingId, targetUserId: b.user.userId, role: 'moderator' });
    const options = { recordVideo: true, recordAudio: false, recordChat: true };
    const ack = await ok(b.socket, 'recording:start', { meetingId, options });
    assert.equal(ack.state, 'recording');
    const started = [];
    for (const m of [a, b]) started.push(await m.socket.rec.waitFor('recording:started'));
    const s = started[0];
    assert.deepEqual(started[1], s);
    assert.equal(s.meetingId, meetingId);
    assert.match(s.recordingId, /^rec_[0-9A-Za-z]{16}$/);
    assert.equal(ack.recordingId, s.recordingId);
    assert.equal(s.hostName, b.user.userName);
    assert.deepEqual(s.startedBy, { userId: b.user.userId, userName: b.user.userName });
    assert.deepEqual(s.options, options);
    assert.match(s.timestamp, ISO_RE);

    await ok(a.socket, 'send-message', { meetingId, message: 'public one' });
    await ok(a.socket, 'send-message', { meetingId, message: 'secret', recipientType: 'private', recipientId: b.user.userId });
    await ok(b.socket, 'send-message', { meetingId, message: 'hosts only', recipientType: 'host' });

    // a late joiner sees the indicator
    const late = await ctx.addMember(meetingId, ctx.user({ name: 'late' }), [a, b]);
    assert.equal(late.state.recording.state, 'recording');
    assert.equal(late.state.recording.recordingId, s.recordingId);
    assert.deepEqual(late.state.recording.startedBy, s.startedBy);
    assert.deepEqual(late.state.recording.options, options);
    assert.match(late.state.recording.startedAt, ISO_RE);

    await sleep(300);
    const paused = await ok(a.socket, 'recording:pause', { meetingId });
    assert.equal(paused.state, 'paused');
    for (const m of [a, b, late]) {
      const p = await m.socket.rec.waitFor('recording:paused');
      assert.equal(p.recordingId, s.recordingId);
      assert.deepEqual(p.by, { userId: a.user.userId, userName: a.user.userName });
      assert.equal(p.hostName, b.user.userName);
      assert.ok(p.durationMs >= 250, `durationMs ${p.durationMs}`);
      assert.match(p.timestamp, ISO_RE);
    }
    await ok(a.socket, 'send-message', { meetingId, message: 'during the pause' });
    const late2 = await ctx.addMember(meetingId, ctx.user({ name: 'later' }), [a, b, late]);
    assert.equal(late2.state.recording.state, 'paused');
    await sleep(700);
    await ok(a.socket, 'recording:resume', { meetingId });
    for (const m of [a, b, late, late2]) {
      const r = await m.socket.rec.waitFor('recording:resumed');
      assert.equal(r.recordingId, s.recordingId);
    }
    await ok(b.socket, 'send-message', { meetingId, message: 'after the pause' });
    await sleep(300);
    const stopAck = await ok(a.socket, 'recording:stop', { meetingId });
    assert.equal(stopAck.state, 'idle');
    const stopped = await late.socket.rec.waitFor('recording:stopped');
    assert.equal(stopped.meetingId, meetingId);
    assert.equal(stopped.recordingId, s.recordingId);
    assert.deepEqual(stopped.stoppedBy, { userId: a.user.userId, userName: a.user.userName });
    assert.equal(stopped.reason, 'stopped');
    const wall = Date.parse(stopped.timestamp) - Date.parse(s.timestamp);
    // the ≥ 700 ms pause is left out of the duration
    assert.ok(stopped.durationMs <= wall - 650 && stopped.durationMs >= 500, `durationMs ${stopped.durationMs}, wall ${wall}`);
    const fresh = await ctx.addMember(meetingId, ctx.user({ name: 'after' }), [a, b, late, late2]);
    assert.deepEqual(fresh.state.recording, { state: 'idle' });

    // the row and the files
    const v = await waitRecording(ctx, a.user, meetingId, s.recordingId, (x) => x.status === 'ready');
    assert.equal(v.durationMs, stopped.durationMs);
    assert.equal(v.stopReason, 'stopped');
    assert.deepEqual(v.options, options);
    const names = v.files.map((f) => f.name);
    for (const n of ['chat.jsonl', 'chat.vtt', 'manifest.json']) assert.ok(names.includes(n), `${n} in ${names}`);
    const folder = path.join(dir, s.recordingId);
    const lines = readFileSync(path.join(folder, 'chat.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.message), ['public one', 'after the pause'],
      'private, hosts-only and paused-time messages are absent');
    assert.ok(lines[0].offsetMs >= 0 && lines[0].offsetMs < 300, JSON.stringify(lines[0]));
    assert.ok(lines[1].offsetMs >= 250 && lines[1].offsetMs <= stopped.durationMs, JSON.stringify(lines[1]));
    const vtt = readFileSync(path.join(folder, 'chat.vtt'), 'utf8');
    assert.match(vtt, /^WEBVTT\n\n1\n00:00:00\.\d{3} --> 00:00:0\d\.\d{3}\n<v Host Test>public one\n/);
    assert.ok(!vtt.includes('secret') && !vtt.includes('hosts only') && !vtt.includes('during the pause'));
    const manifest = JSON.parse(readFileSync(path.join(folder, 'manifest.json'), 'utf8'));
    assert.equal(manifest.recordingId, s.recordingId);
    assert.equal(manifest.durationMs, stopped.durationMs);
    assert.equal(manifest.pausedSpans.length, 1);
    assert.ok(manifest.pausedSpans[0].atMs >= 250 && manifest.pausedSpans[0].atMs <= 1000, JSON.stringify(manifest.pausedSpans));
    assert.match(manifest.pausedSpans[0].from, ISO_RE);
    assert.match(manifest.pausedSpans[0].to, ISO_RE);
  });

  ctx.test('ending the meeting stops the recording (recording:stopped reason meeting-ended, before meeting:ended)', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1, settings: { recordingEnabled: true } });
    const ack = await ok(a.socket, 'recording:start', { meetingId });
    await ok(a.socket, 'meeting:end', { meetingId });
    const stopped = await b.socket.rec.waitFor('recording:stopped');
    assert.equal(stopped.recordingId, ack.recordingId);
    assert.equal(stopped.reason, 'meeting-ended');
    assert.deepEqual(stopped.stoppedBy, { userId: a.user.userId, userName: a.user.userName });
    await b.socket.rec.waitFor('meeting:ended');
    const names = b.socket.rec.names();
    assert.ok(names.indexOf('recording:stopped') < names.indexOf('meeting:ended'), names.join(','));
    const v = await waitRecording(ctx, a.user, meetingId, ack.recordingId, (x) => x.status === 'ready');
    assert.equal(v.stopReason, 'meeting-ended');
  });

  ctx.test('the last participant leaving stops the recording; a rejoin finds it idle', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1, settings: { recordingEnabled: true } });
    const ack = await ok(a.socket, 'recording:start', { meetingId });
    await ok(b.socket, 'leave-meeting', { meetingId });
    // one participant is still there: still recording
    let v = await waitRecording(ctx, a.user, meetingId, ack.recordingId, (x) => x.status === 'recording');
    await ok(a.socket, 'leave-meeting', { meetingId });
    v = await waitRecording(ctx, a.user, meetingId, ack.recordingId, (x) => x.status === 'ready');
    assert.equal(v.stopReason, 'empty');
    assert.equal(v.stoppedBy, undefined);
    const st = await ctx.join(a.socket, meetingId);
    assert.deepEqual(st.recording, { state: 'idle' });
    await ok(a.socket, 'recording:start', { meetingId });
  });

  ctx.test('REST: hosts and moderators list, get, download with Range; others are refused; the host deletes', async () => {
    const { meetingId, members: [a, b, c] } = await ctx.meeting({ participants: 2, settings: { recordingEnabled: true } });
    await ok(a.socket, 'participant:role', { meetingId, targetUserId: b.user.userId, role: 'moderator' });
    const ack = await ok(a.socket, 'recording:start', { meetingId });
    await ok(a.socket, 'send-message', { meetingId, message: 'for the transcript, with some length to it' });
    await ok(a.socket, 'recording:stop', { meetingId });
    const rid = ack.recordingId;
    await waitRecording(ctx, a.user, meetingId, rid, (x) => x.status === 'ready');
    const list = await ctx.api('GET', `/api/meetings/${meetingId}/recordings`, { user: b.user });
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.body.recordings.map((r) => r.recordingId), [rid]);
    assert.equal(list.body.recordings[0].status, 'ready');
    for (const user of [c.user, ctx.user({ name: 'stranger', campusId: 'campus_z' })]) {
      const r = await ctx.api('GET', `/api/meetings/${meetingId}/recordings`, { user });
      assert.equal(r.status, 403, r.text);
      assert.equal(r.body.error.code, 'FORBIDDEN');
      const f = await ctx.api('GET', `/api/meetings/${meetingId}/recordings/${rid}/files/chat.jsonl`, { user });
      assert.equal(f.status, 403, f.text);
    }
    const noAuth = await ctx.api('GET', `/api/meetings/${meetingId}/recordings`);
    assert.equal(noAuth.status, 401);
    const one = await ctx.api('GET', `/api/meetings/${meetingId}/recordings/${rid}`, { user: b.user });
    const file = one.body.files.find((f) => f.name === 'chat.jsonl');
    assert.ok(file && file.size > 20, JSON.stringify(one.body.files));
    const full = await ctx.api('GET', file.url, { user: b.user });
    assert.equal(full.status, 200);
    assert.equal(full.text.length, file.size);
    const part = await ctx.api('GET', file.url, { user: b.user, headers: { range: 'bytes=2-11' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 2-11/${file.size}`);
    assert.equal(part.text, full.text.slice(2, 12));
    for (const bad of ['..%2Fmeet.db', '.hidden', 'nope.webm']) {
      const r = await ctx.api('GET', `/api/meetings/${meetingId}/recordings/${rid}/files/${bad}`, { user: a.user });
      assert.equal(r.status, 404, `${bad}: ${r.text}`);
    }
    const wrong = await ctx.api('GET', `/api/meetings/${meetingId}/recordings/rec_doesnotexist00`, { user: a.user });
    assert.equal(wrong.status, 404);
    const badId = await ctx.api('GET', `/api/meetings/${meetingId}/recordings/x..y`, { user: a.user });
    assert.equal(badId.status, 400);
    const modDel = await ctx.api('DELETE', `/api/meetings/${meetingId}/recordings/${rid}`, { user: b.user });
    assert.equal(modDel.status, 403, modDel.text);
    const del = await ctx.api('DELETE', `/api/meetings/${meetingId}/recordings/${rid}`, { user: a.user });
    assert.equal(del.status, 200, del.text);
    assert.equal(existsSync(path.join(dir, rid)), false, 'the folder is gone');
    const gone = await ctx.api('GET', `/api/meetings/${meetingId}/recordings/${rid}`, { user: a.user });
    assert.equal(gone.status, 404);
  });
});

describe('recording limits', () => {
  const dir = tempDir('lim');
  const ctx = useServer({
    env: {
      MEET_RECORDING__DIR: dir,
      MEET_RECORDING__MIN_FREE_DISK_MB: '0',
      MEET_RECORDING__MAX_CONCURRENT: '1',
      MEET_RECORDING__MAX_DURATION_SECS: '2',
    },
  });

  ctx.test('a second concurrent recording on the node: RECORDING_UNAVAILABLE; the maximum duration stops by itself (reason max-duration, paused time not counted)', async () => {
    const m1 = await ctx.meeting({ participants: 1, settings: { recordingEnabled: true } });
    const m2 = await ctx.meeting({ participants: 0, settings: { recordingEnabled: true } });
    const ack = await ok(m1.host.socket, 'recording:start', { meetingId: m1.meetingId });
    const { ack: refusal } = await expectError(m2.host.socket, 'recording:start', { meetingId: m2.meetingId }, 'RECORDING_UNAVAILABLE');
    assert.match(refusal.message, /limit is 1/);
    await ok(m1.host.socket, 'recording:pause', { meetingId: m1.meetingId });
    await sleep(1000);
    await ok(m1.host.socket, 'recording:resume', { meetingId: m1.meetingId });
    const stopped = await m1.members[1].socket.rec.waitFor('recording:stopped', { timeout: 6000 });
    assert.equal(stopped.recordingId, ack.recordingId);
    assert.equal(stopped.reason, 'max-duration');
    assert.equal(stopped.stoppedBy, null);
    assert.ok(stopped.durationMs >= 1900 && stopped.durationMs <= 2600, `durationMs ${stopped.durationMs}`);
    const wall = Date.parse(stopped.timestamp) - Date.parse(ack.startedAt);
    assert.ok(wall >= 2900, `the pause did not count: wall ${wall} ms`);
    // the slot is free again
    await ok(m2.host.socket, 'recording:start', { meetingId: m2.meetingId });
  });
});

describe('recording free-disk floor', () => {
  const dir = tempDir('disk');
  const ctx = useServer({ env: { MEET_RECORDING__DIR: dir, MEET_RECORDING__MIN_FREE_DISK_MB: '100000000' } });

  ctx.test('not enough free disk: RECORDING_UNAVAILABLE naming the space, nothing recorded', async () => {
    const { meetingId, members: [a, b] } = await ctx.meeting({ participants: 1, settings: { recordingEnabled: true } });
    const { ack } = await expectError(a.socket, 'recording:start', { meetingId }, 'RECORDING_UNAVAILABLE');
    assert.match(ack.message, /free disk space/);
    await b.socket.rec.expectNone('recording:started');
    const list = await ctx.api('GET', `/api/meetings/${meetingId}/recordings`, { user: a.user });
    assert.deepEqual(list.body.recordings, []);
    assert.deepEqual(readdirSync(dir), []);
  });
});

describe('recording across kill -9', () => {
  const dir = tempDir('kill');
  const ctx = useServer({ env: { MEET_RECORDING__DIR: dir, MEET_RECORDING__MIN_FREE_DISK_MB: '0' } });

  ctx.test('kill -9 during a recording: after restart the recording is finalized with a clear status and its transcript reads', async () => {
    const { meetingId, host } = await ctx.meeting({ participants: 1, settings: { recordingEnabled: true } });
    const ack = await ok(host.socket, 'recording:start', { meetingId });
    await ok(host.socket, 'send-message', { meetingId, message: 'before the crash' });
    await sleep(300);
    ctx.server.proc.kill('SIGKILL');
    await ctx.server.exitPromise;
    await ctx.server.start();
    const v = await waitRecording(ctx, host.user, meetingId, ack.recordingId, (x) => x.status !== 'recording');
    assert.equal(v.status, 'ready');
    assert.equal(v.stopReason, 'server-restart');
    assert.match(v.failureReason, /finalized at start-up/);
    assert.ok(v.durationMs >= 0);
    const names = v.files.map((f) => f.name);
    assert.ok(names.includes('manifest.json') && names.includes('chat.jsonl'), names.join(','));
    const lines = readFileSync(path.join(dir, ack.recordingId, 'chat.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.message), ['before the crash']);
  });
});
