// Checks the harness itself, without meet-server: Debian's Chromium launched with the suite's flags gives fake
// camera + microphone tracks, and a received audio track played by an <audio> element reports
// totalAudioEnergy > 0 (two RTCPeerConnections in one page, loopback). When this fails, the media tests'
// failures say nothing about the server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from './lib/browser.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

test('Chromium: fake devices, and played remote audio has energy (loopback, no server)', { timeout: 60_000 }, async (t) => {
  const context = await browser.newContext();
  // localhost is a secure context, so getUserMedia works on this page without a server.
  await context.route('http://localhost/**', (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>sanity</title><body></body>' }));
  const page = await context.newPage();
  try {
    await page.goto('http://localhost/sanity.html');
    const r = await page.evaluate(async () => {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: { ideal: 1280 }, height: { ideal: 720 } } });
      const a = new RTCPeerConnection();
      const b = new RTCPeerConnection();
      a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
      b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
      const tracks = {};
      b.ontrack = (e) => { tracks[e.track.kind] = e.track; };
      for (const track of stream.getTracks()) a.addTrack(track, stream);
      await a.setLocalDescription();
      await b.setRemoteDescription(a.localDescription);
      await b.setLocalDescription();
      await a.setRemoteDescription(b.localDescription);
      const until = performance.now() + 10000;
      while (!(tracks.audio && tracks.video) && performance.now() < until) await new Promise((res) => setTimeout(res, 50));
      const audio = document.createElement('audio');
      audio.autoplay = true;
      audio.srcObject = new MediaStream([tracks.audio]);
      document.body.appendChild(audio);
      await new Promise((res) => setTimeout(res, 3000));
      const out = { camera: stream.getVideoTracks()[0].getSettings(), audioElementPaused: audio.paused };
      (await b.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp') out[s.kind] = { packetsReceived: s.packetsReceived, framesDecoded: s.framesDecoded, totalAudioEnergy: s.totalAudioEnergy, totalSamplesReceived: s.totalSamplesReceived };
      });
      a.close(); b.close();
      return out;
    });
    t.diagnostic(JSON.stringify(r));
    assert.equal(r.camera.width, 1280, `fake camera gives 1280x720: ${JSON.stringify(r.camera)}`);
    assert.equal(r.audioElementPaused, false, 'the <audio> element plays without a user gesture');
    assert.ok(r.video.framesDecoded > 0, `loopback video decodes: ${JSON.stringify(r)}`);
    assert.ok(r.audio.totalSamplesReceived > 0 && r.audio.totalAudioEnergy > 0, `played audio has energy: ${JSON.stringify(r)}`);
  } finally {
    await context.close();
  }
});
