// Recording other codecs than VP8 (issue 10, "VP8/VP9/AV1 video and Opus audio in WebM; H.264 in MP4"): a Chromium
// participant publishes a canvas video with the device's H.264 codec (mediasoup-client `produce({track, codec})`;
// Debian's Chromium encodes it with openh264), resp. its AV1 codec, and a microphone (Opus). The recording's H.264
// track is a fragmented MP4 that ffprobe reads as h264, the AV1 track a WebM read as av1; ffmpeg decodes them with no
// error; the Opus track stays in its own WebM; the composite takes both. A kill -9 while recording H.264 leaves an
// MP4 that decodes after the restart's finalization. Needs ffmpeg/ffprobe (tests/browser/setup.sh installs them).
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { useHarness } from './lib/harness.mjs';
import { Server } from './lib/server.mjs';
import { Participant } from './lib/browser.mjs';
import { meetingId } from './lib/tokens.mjs';
import { sleep } from './lib/poll.mjs';

const dir = mkdtempSync(path.join(tmpdir(), 'meet-rec-codecs-'));
after(() => { if (!process.env.MEET_TEST_KEEP_RECORDINGS) rmSync(dir, { recursive: true, force: true }); });
const { scenario, env: harness } = useHarness({ env: { MEET_RECORDING__DIR: dir, MEET_RECORDING__MIN_FREE_DISK_MB: '0' } });

function ffprobe(file) {
  const out = execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries',
    'stream=codec_type,codec_name,width,height,nb_read_frames:format=duration,format_name', '-of', 'json', file], { encoding: 'utf8' });
  return JSON.parse(out);
}

/** `ffmpeg -v error -i FILE -f null -`: decodes everything; returns its stderr (must be empty). */
function decodeErrors(file) {
  const r = spawnSync('ffmpeg', ['-nostdin', '-v', 'error', '-i', file, '-f', 'null', '-'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `ffmpeg could not decode ${file}: ${r.stderr}`);
  return r.stderr.trim();
}

async function api(server, token, p) {
  const res = await fetch(server.url + p, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json().catch(() => null) };
}

/** Records `ms` of what the page publishes; returns the ready recording's manifest, folder and stop event. */
async function record(alice, server, id, ms) {
  const start = await alice.eval((m) => window.meeting.request('recording:start', { meetingId: m }), id);
  assert.equal(start.ok, true, JSON.stringify(start));
  await sleep(ms);
  const stop = await alice.eval((m) => window.meeting.request('recording:stop', { meetingId: m }), id);
  assert.equal(stop.ok, true, JSON.stringify(stop));
  let rec;
  const until = Date.now() + 90_000;
  do {
    await sleep(500);
    rec = await api(server, alice.token, `/api/meetings/${id}/recordings/${start.recordingId}`);
    assert.equal(rec.status, 200, JSON.stringify(rec.body));
    assert.ok(Date.now() < until, 'the composite took too long');
  } while (rec.body.status === 'processing');
  assert.equal(rec.body.status, 'ready', JSON.stringify(rec.body));
  const folder = path.join(dir, start.recordingId);
  const manifest = JSON.parse(readFileSync(path.join(folder, 'manifest.json'), 'utf8'));
  return { manifest, folder, rec: rec.body, durationMs: stop.durationMs ?? manifest.durationMs };
}

/** Checks one video track's file: the container, codec, size, frames, duration; decodes with no error. */
function checkVideo(t, folder, track, { codec, ext, formatName, durationMs }) {
  assert.ok(track.file?.endsWith(ext), `${codec} track file: ${JSON.stringify(track)}`);
  assert.equal(track.codec, codec, JSON.stringify(track));
  const file = path.join(folder, track.file);
  const probe = ffprobe(file);
  t.diagnostic(`${track.file}: ${JSON.stringify(probe)}`);
  assert.equal(probe.streams.length, 1, JSON.stringify(probe));
  assert.equal(probe.streams[0].codec_type, 'video');
  assert.equal(probe.streams[0].codec_name, codec);
  assert.ok(probe.format.format_name.includes(formatName), probe.format.format_name);
  assert.equal(probe.streams[0].width, track.width, JSON.stringify(track));
  assert.equal(probe.streams[0].height, track.height, JSON.stringify(track));
  assert.ok(Number(probe.streams[0].nb_read_frames) > 30, `frames: ${probe.streams[0].nb_read_frames}`);
  assert.equal(decodeErrors(file), '', `${track.file} decodes without errors`);
  const dur = Number(probe.format.duration) * 1000;
  assert.ok(Math.abs(track.startOffsetMs + dur - durationMs) <= 700,
    `${track.file}: offset ${track.startOffsetMs} + file ${dur} ms vs the recording's ${durationMs} ms`);
}

function checkOpusAndComposite(folder, manifest) {
  const mic = manifest.tracks.find((x) => x.source === 'mic');
  assert.ok(mic?.file?.endsWith('.webm'), JSON.stringify(manifest.tracks));
  assert.equal(mic.codec, 'opus');
  const probe = ffprobe(path.join(folder, mic.file));
  assert.equal(probe.streams[0].codec_name, 'opus');
  assert.equal(decodeErrors(path.join(folder, mic.file)), '');
  assert.equal(manifest.composite, 'composite.mp4');
  const comp = path.join(folder, 'composite.mp4');
  const cp = ffprobe(comp);
  assert.deepEqual(cp.streams.map((s) => s.codec_type).sort(), ['audio', 'video'], JSON.stringify(cp));
  assert.equal(decodeErrors(comp), '', 'the composite decodes without errors');
}

scenario('an H.264 producer is recorded into a fragmented MP4 (no transcoding) that ffprobe/ffmpeg read', async ({ open, server }, t) => {
  const id = meetingId('rech264');
  const alice = await open('alice');
  await alice.join(id);
  await alice.startMedia({ video: false });
  const codecs = await alice.eval(() => window.meeting.deviceCodecs());
  t.diagnostic(`device codecs: ${codecs.join(', ')}`);
  const producerId = await alice.eval(() => window.meeting.startCanvasShare({ source: 'camera', codec: 'video/H264' }));
  assert.ok(producerId);
  await sleep(1500);
  const { manifest, folder, durationMs } = await record(alice, server, id, 5000);
  t.diagnostic(`tracks: ${JSON.stringify(manifest.tracks.map((x) => [x.source, x.codec, x.file, x.startOffsetMs, x.durationMs, x.frames, x.width, x.height, x.note]))}`);
  const cam = manifest.tracks.find((x) => x.source === 'camera');
  assert.ok(cam, JSON.stringify(manifest.tracks));
  checkVideo(t, folder, cam, { codec: 'h264', ext: '.mp4', formatName: 'mp4', durationMs });
  // 640x360 on the canvas; the encoder may scale it down (16:9 kept)
  assert.ok(cam.width > 0 && Math.abs(cam.width / cam.height - 16 / 9) < 0.05, `${cam.width}x${cam.height}`);
  checkOpusAndComposite(folder, manifest);
});

scenario('an AV1 producer is recorded into a WebM (V_AV1, no transcoding) that ffprobe/ffmpeg read', async ({ open, server }, t) => {
  const id = meetingId('recav1');
  const alice = await open('alice');
  await alice.join(id);
  await alice.startMedia({ video: false });
  const codecs = await alice.eval(() => window.meeting.deviceCodecs());
  assert.ok(codecs.includes('video/AV1'), `this Chromium sends AV1: ${codecs.join(', ')}`);
  const producerId = await alice.eval(() => window.meeting.startCanvasShare({ source: 'camera', codec: 'video/AV1' }));
  assert.ok(producerId);
  await sleep(1500);
  const { manifest, folder, durationMs } = await record(alice, server, id, 5000);
  t.diagnostic(`tracks: ${JSON.stringify(manifest.tracks.map((x) => [x.source, x.codec, x.file, x.startOffsetMs, x.durationMs, x.frames, x.width, x.height, x.note]))}`);
  const cam = manifest.tracks.find((x) => x.source === 'camera');
  assert.ok(cam, JSON.stringify(manifest.tracks));
  checkVideo(t, folder, cam, { codec: 'av1', ext: '.webm', formatName: 'webm', durationMs });
  checkOpusAndComposite(folder, manifest);
});

scenario('kill -9 while recording H.264: after a restart the MP4 is in the manifest and decodes up to its last fragment', async (_, t) => {
  const db = mkdtempSync(path.join(tmpdir(), 'meet-rec-kill264-'));
  after(() => rmSync(db, { recursive: true, force: true }));
  const recDir = path.join(db, 'recordings');
  const env = { MEET_DATABASE__URL: `sqlite://${db}/meet.db?mode=rwc`, MEET_RECORDING__DIR: recDir, MEET_RECORDING__MIN_FREE_DISK_MB: '0' };
  const first = new Server(env);
  await first.start();
  let second = null;
  let alice = null;
  try {
    alice = await Participant.open(harness.browser, first, 'alice');
    const id = meetingId('kill264');
    await alice.join(id);
    await alice.eval(() => window.meeting.startCanvasShare({ source: 'camera', codec: 'video/H264' }));
    await sleep(1500);
    const start = await alice.eval((m) => window.meeting.request('recording:start', { meetingId: m }), id);
    assert.equal(start.ok, true, JSON.stringify(start));
    await sleep(4000);
    first.proc.kill('SIGKILL');
    await first.exited;
    second = new Server({ ...env, MEET_AUTH__SECRET: first.secret });
    second.secret = first.secret;
    await second.start();
    let rec;
    const until = Date.now() + 30_000;
    do {
      await sleep(300);
      rec = await api(second, alice.token, `/api/meetings/${id}/recordings/${start.recordingId}`);
      assert.ok(Date.now() < until, JSON.stringify(rec));
    } while (rec.body?.status === 'recording' || rec.body?.status === 'processing');
    assert.equal(rec.body.status, 'ready', JSON.stringify(rec.body));
    assert.equal(rec.body.stopReason, 'server-restart');
    const manifest = JSON.parse(readFileSync(path.join(recDir, start.recordingId, 'manifest.json'), 'utf8'));
    t.diagnostic(`after kill -9: ${JSON.stringify(manifest.tracks.map((x) => [x.kind, x.file]))}`);
    const cam = manifest.tracks.find((x) => x.source === 'camera');
    assert.ok(cam?.file?.endsWith('.mp4'), JSON.stringify(manifest.tracks));
    const file = path.join(recDir, start.recordingId, cam.file);
    const probe = ffprobe(file);
    assert.equal(probe.streams[0].codec_name, 'h264', JSON.stringify(probe));
    assert.ok(Number(probe.streams[0].nb_read_frames) > 50, `frames before the kill: ${probe.streams[0].nb_read_frames}`);
    assert.equal(decodeErrors(file), '', `${cam.file} decodes without errors after kill -9`);
  } finally {
    await alice?.close().catch(() => {});
    await second?.stop();
    await first.stop().catch(() => {});
  }
});
