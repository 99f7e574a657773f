// The browser test page's client. Bundled with esbuild (tests/browser/build.mjs) into tests/browser/dist/.
//
// Part 1 is the integration guide's "Complete Integration Example" `MeetingClient` class transcribed unchanged
// (spec/api-guide.md), except that the server URL is the page's own origin (the server serves this page).
// lib/guide.test.mjs checks that the class below still matches the guide's text line for line.
// Part 2 (after the class) is test-only glue: the app hooks the guide's class calls but leaves to the app, and a
// small API on `window` for the Playwright tests.

import { io } from 'socket.io-client';
import * as mediasoupClient from 'mediasoup-client';

class MeetingClient {
  constructor() {
    this.socket = null;
    this.device = null;
    this.sendTransport = null;
    this.recvTransport = null;
    this.producers = new Map(); // kind -> producer
    this.consumers = new Map(); // consumerId -> consumer
    this.meetingId = null;
  }

  // Step 1: Connect to Socket.IO
  async connect(token) {
    this.socket = io(location.origin, {
      auth: { token },
      transports: ['websocket', 'polling']
    });

    return new Promise((resolve, reject) => {
      this.socket.on('connect', () => {
        console.log('✅ Connected to server');
        this.setupSocketListeners();
        resolve();
      });

      this.socket.on('connect_error', (error) => {
        console.error('❌ Connection error:', error);
        reject(error);
      });
    });
  }

  // Step 2: Setup all socket event listeners
  setupSocketListeners() {
    // Meeting events
    this.socket.on('participant-joined', (data) => {
      console.log('👤 Participant joined:', data.userName);
      this.onParticipantJoined(data);
    });

    this.socket.on('participant-left', (data) => {
      console.log('👋 Participant left:', data.userName);
      this.onParticipantLeft(data);
    });

    // WebRTC events
    this.socket.on('new-producer', async (data) => {
      console.log('🎥 New producer:', data);
      await this.consumeMedia(data);
    });

    // Chat events
    this.socket.on('new-message', (message) => {
      console.log('💬 New message:', message);
      this.onNewMessage(message);
    });

    // Screen sharing
    this.socket.on('screen:started', (data) => {
      console.log('📺 Screen sharing started');
      this.onScreenShareStarted(data);
    });

    // Reactions
    this.socket.on('reaction:received', (data) => {
      this.showReaction(data);
    });

    // Errors
    this.socket.on('error', (error) => {
      console.error('❌ Socket error:', error);
      this.handleError(error);
    });
  }

  // Step 3: Join meeting
  async joinMeeting(meetingId) {
    this.meetingId = meetingId;

    return new Promise((resolve, reject) => {
      this.socket.emit('join-meeting', { meetingId });

      this.socket.once('participant-joined', async () => {
        // Initialize mediasoup device
        await this.initializeDevice();
        
        // Create transports
        await this.createTransports();
        
        resolve();
      });

      this.socket.once('error', (error) => {
        reject(error);
      });
    });
  }

  // Step 4: Initialize mediasoup device
  async initializeDevice() {
    // Get router RTP capabilities from server
    const rtpCapabilities = await this.getRtpCapabilities();

    this.device = new mediasoupClient.Device();
    await this.device.load({ routerRtpCapabilities: rtpCapabilities });

    console.log('✅ Device initialized');
  }

  async getRtpCapabilities() {
    // This would come from your REST API
    const response = await fetch(`/meeting/${this.meetingId}/webrtc-config`);
    const data = await response.json();
    return data.rtpCapabilities;
  }

  // Step 5: Create send and recv transports
  async createTransports() {
    // Create send transport
    await this.createSendTransport();
    
    // Create recv transport
    await this.createRecvTransport();

    console.log('✅ Transports created');
  }

  async createSendTransport() {
    return new Promise((resolve, reject) => {
      this.socket.emit('create-transport', {
        meetingId: this.meetingId,
        direction: 'send'
      });

      this.socket.once('transport-created', async (data) => {
        if (data.direction === 'send') {
          this.sendTransport = this.device.createSendTransport(data.params);

          // Handle connect event
          this.sendTransport.on('connect', ({ dtlsParameters }, callback, errback) => {
            this.socket.emit('connect-transport', {
              transportId: this.sendTransport.id,
              dtlsParameters
            });

            this.socket.once('transport-connected', () => callback());
            this.socket.once('error', errback);
          });

          // Handle produce event
          this.sendTransport.on('produce', ({ kind, rtpParameters }, callback, errback) => {
            this.socket.emit('produce', {
              meetingId: this.meetingId,
              kind,
              rtpParameters
            });

            this.socket.once('produced', (data) => {
              callback({ id: data.producerId });
            });
            this.socket.once('error', errback);
          });

          resolve();
        }
      });
    });
  }

  async createRecvTransport() {
    return new Promise((resolve, reject) => {
      this.socket.emit('create-transport', {
        meetingId: this.meetingId,
        direction: 'recv'
      });

      this.socket.once('transport-created', async (data) => {
        if (data.direction === 'recv') {
          this.recvTransport = this.device.createRecvTransport(data.params);

          // Handle connect event
          this.recvTransport.on('connect', ({ dtlsParameters }, callback, errback) => {
            this.socket.emit('connect-transport', {
              transportId: this.recvTransport.id,
              dtlsParameters
            });

            this.socket.once('transport-connected', () => callback());
            this.socket.once('error', errback);
          });

          resolve();
        }
      });
    });
  }

  // Step 6: Produce media (send your audio/video)
  async produceMedia(stream) {
    const audioTrack = stream.getAudioTracks()[0];
    const videoTrack = stream.getVideoTracks()[0];

    // Produce audio
    if (audioTrack) {
      const audioProducer = await this.sendTransport.produce({
        track: audioTrack
      });
      this.producers.set('audio', audioProducer);
      console.log('🎤 Audio producer created');
    }

    // Produce video with simulcast
    if (videoTrack) {
      const videoProducer = await this.sendTransport.produce({
        track: videoTrack,
        encodings: [
          { maxBitrate: 100000, scaleResolutionDownBy: 4 },
          { maxBitrate: 300000, scaleResolutionDownBy: 2 },
          { maxBitrate: 900000 }
        ],
        codecOptions: {
          videoGoogleStartBitrate: 1000
        }
      });
      this.producers.set('video', videoProducer);
      console.log('🎥 Video producer created with simulcast');
    }
  }

  // Step 7: Consume media (receive from others)
  async consumeMedia(producerData) {
    const { participantId, producerId, kind } = producerData;

    return new Promise((resolve, reject) => {
      this.socket.emit('consume', {
        meetingId: this.meetingId,
        producerParticipantId: participantId,
        kind,
        rtpCapabilities: this.device.rtpCapabilities
      });

      this.socket.once('subscribed', async (data) => {
        const consumer = await this.recvTransport.consume({
          id: data.id,
          producerId: data.producerId,
          kind: data.kind,
          rtpParameters: data.rtpParameters
        });

        this.consumers.set(consumer.id, consumer);

        // Resume consumer
        this.socket.emit('resume-consumer', { consumerId: consumer.id });

        // Display media
        if (kind === 'video') {
          this.displayVideo(participantId, consumer.track);
        } else if (kind === 'audio') {
          this.playAudio(participantId, consumer.track);
        }

        console.log(`✅ Consuming ${kind} from ${participantId}`);
        resolve(consumer);
      });

      this.socket.once('error', reject);
    });
  }

  // Display video track
  displayVideo(participantId, track) {
    let videoElement = document.getElementById(`video-${participantId}`);
    
    if (!videoElement) {
      videoElement = document.createElement('video');
      videoElement.id = `video-${participantId}`;
      videoElement.autoplay = true;
      videoElement.playsInline = true;
      document.getElementById('videos-container').appendChild(videoElement);
    }

    const stream = new MediaStream([track]);
    videoElement.srcObject = stream;
  }

  // Play audio track
  playAudio(participantId, track) {
    const audioElement = document.createElement('audio');
    audioElement.id = `audio-${participantId}`;
    audioElement.autoplay = true;
    
    const stream = new MediaStream([track]);
    audioElement.srcObject = stream;
    
    document.body.appendChild(audioElement);
  }

  // Send chat message
  sendMessage(message) {
    this.socket.emit('send-message', {
      meetingId: this.meetingId,
      message,
      recipientType: 'all'
    });
  }

  // Toggle video
  async toggleVideo() {
    const videoProducer = this.producers.get('video');
    
    if (videoProducer) {
      if (videoProducer.paused) {
        await videoProducer.resume();
      } else {
        await videoProducer.pause();
      }
    }
  }

  // Toggle audio
  async toggleAudio() {
    const audioProducer = this.producers.get('audio');
    
    if (audioProducer) {
      if (audioProducer.paused) {
        await audioProducer.resume();
      } else {
        await audioProducer.pause();
      }
    }
  }

  // Leave meeting
  async leaveMeeting() {
    // Close all producers
    for (const producer of this.producers.values()) {
      producer.close();
    }

    // Close all consumers
    for (const consumer of this.consumers.values()) {
      consumer.close();
    }

    // Close transports
    if (this.sendTransport) this.sendTransport.close();
    if (this.recvTransport) this.recvTransport.close();

    // Emit leave event
    this.socket.emit('leave-meeting', {
      meetingId: this.meetingId
    });

    console.log('👋 Left meeting');
  }

  // Disconnect
  disconnect() {
    if (this.socket) {
      this.socket.disconnect();
    }
  }
}

// ================================================================================================================
// Part 2 — test glue (not from the guide). Everything below drives the guide's class above without changing it.
// ================================================================================================================

const log = []; // every socket event received: {t (ms since page load), event, data}
const pageErrors = []; // unhandled errors / rejections in the page
const consumerInfo = new Map(); // consumerId -> {participantId, userId, producerId, kind, source, consumedAt, closed}
const localStreams = [];
const honour = { layersNeeded: false };
const marks = {}; // named timestamps (ms since page load) for the join → first frame measurement
let client = null;
const tamper = { fingerprint: false };
// The guide's client sends no appData with `produce`: a canvas share names its source through this hook.
const produceSource = { next: null };
let meetingState = null;
let myUserId = null;
let joinedSocketId = null; // the socket id the last join was made on

const now = () => Math.round(performance.now() * 10) / 10;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const setStatus = (text) => { document.getElementById('status').textContent = text; };

window.addEventListener('error', (e) => pageErrors.push(`error: ${e.message}`));
window.addEventListener('unhandledrejection', (e) => {
  const r = e.reason;
  pageErrors.push(`unhandledrejection: ${r && r.stack ? r.stack : JSON.stringify(r)}`);
  console.error('unhandled rejection:', r && r.message ? r.message : JSON.stringify(r));
});

/**
 * Rejects after `ms`, or as soon as the page reports a new unhandled error (the guide's class has no other way
 * to fail: an exception in its async socket listeners leaves its promise pending), with a message that carries
 * the page's recent errors and socket events.
 */
function withTimeout(promise, ms, what) {
  let timer;
  let watcher;
  const errorsBefore = pageErrors.length;
  const describe = () => {
    const recent = log.slice(-8).map((e) => `${e.t} ${e.event} ${JSON.stringify(e.data).slice(0, 200)}`);
    return `Page errors: ${JSON.stringify(pageErrors.slice(-5))}. Last socket events: ${JSON.stringify(recent)}`;
  };
  const failure = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms. ${describe()}`)), ms);
    watcher = setInterval(() => {
      if (pageErrors.length > errorsBefore) reject(new Error(`${what} failed: page error while waiting. ${describe()}`));
    }, 50);
  });
  return Promise.race([promise, failure]).finally(() => { clearTimeout(timer); clearInterval(watcher); });
}

/**
 * The app side of the guide's class: hooks it calls from its socket listeners but leaves to the application
 * (without them its `participant-joined` listener would throw before the joinMeeting() `once` runs), and a
 * record of which participant each consumer belongs to (the guide's consumeMedia resolves with the consumer).
 */
class TestMeetingClient extends MeetingClient {
  // The guide's connect() calls setupSocketListeners() on every 'connect', and socket.io-client fires 'connect'
  // again after each automatic reconnection: without this guard every listener would run twice after one
  // reconnect (two consumers per new-producer). An app keeps one set; the listeners live on the Socket object,
  // which survives reconnections.
  setupSocketListeners() {
    if (this.listenersSet) return;
    this.listenersSet = true;
    super.setupSocketListeners();
  }

  onParticipantJoined(data) { console.log(`participant-joined ${data.userId} ${data.participantId}`); }
  onParticipantLeft(data) {
    for (const id of [`video-${data.participantId}`, `audio-${data.participantId}`]) {
      document.querySelectorAll(`[id="${id}"]`).forEach((el) => el.remove());
    }
  }
  onNewMessage() {}
  onScreenShareStarted() {}
  showReaction() {}
  handleError(error) { console.warn(`server error event: ${JSON.stringify(error)}`); }

  async consumeMedia(producerData) {
    const consumer = await super.consumeMedia(producerData);
    consumerInfo.set(consumer.id, {
      participantId: producerData.participantId,
      userId: producerData.userId,
      producerId: consumer.producerId,
      kind: consumer.kind,
      source: producerData.source,
      consumedAt: now(),
      closed: false,
    });
    if (!marks.firstConsumer) marks.firstConsumer = now();
    return consumer;
  }
}

/** Emit with a socket.io ack (the server answers every request with {ok, ...}). */
function request(event, payload, timeoutMs = 10000) {
  return new Promise((resolve) => {
    client.socket.timeout(timeoutMs).emit(event, payload, (err, ack) => {
      resolve(err ? { ok: false, error: { code: 'ACK_TIMEOUT', message: `no ack for ${event} in ${timeoutMs} ms` } } : ack);
    });
  });
}

// Polls the video consumers' stats until one has decoded a frame (the join → first frame measurement).
async function watchFirstVideoFrame() {
  const until = performance.now() + 60000;
  while (!marks.firstVideoFrame && performance.now() < until && client) {
    for (const consumer of client.consumers.values()) {
      if (consumer.kind !== 'video' || consumer.closed) continue;
      const report = await consumer.getStats().catch(() => null);
      report?.forEach((r) => {
        if (r.type === 'inbound-rtp' && r.framesDecoded > 0 && !marks.firstVideoFrame) marks.firstVideoFrame = now();
      });
    }
    await sleep(10);
  }
}

async function join(token, meetingId, { timeoutMs = 20000 } = {}) {
  marks.joinStart = now();
  client = new TestMeetingClient();
  await withTimeout(client.connect(token), timeoutMs, 'connect');
  marks.connected = now();
  client.socket.onAny((event, ...args) => {
    log.push({ t: now(), event, data: args[0] });
    if (event === 'meeting-state') meetingState = args[0];
    if (event === 'participant-joined' && !marks.joined) marks.joined = now();
    if (event === 'transport-created' && args[0]?.direction === 'recv') marks.recvTransport = now();
    if (event === 'new-producer' && !marks.firstNewProducer) marks.firstNewProducer = now();
    if (event === 'subscribed' && !marks.firstSubscribed) marks.firstSubscribed = now();
  });
  client.socket.on('disconnect', (reason) => log.push({ t: now(), event: 'disconnect', data: { reason } }));
  // Opt-in (honourLayersNeeded): the guide's class ignores producer:layers-needed; a page can act on it as the
  // bundled web client does, to show the publisher stops sending what nobody receives.
  client.socket.on('producer:layers-needed', ({ producerId, spatialLayers }) => {
    if (!honour.layersNeeded) return;
    const producer = [...client.producers.values()].find((p) => p.id === producerId);
    if (!producer) return;
    producer.setMaxSpatialLayer(Math.max(spatialLayers, 1) - 1).catch((e) => console.warn('setMaxSpatialLayer', e));
  });
  // Test hook: a client whose connect-transport carries a fingerprint that is not its certificate's (see
  // tamperNextFingerprint); the guide's class itself stays unchanged.
  const emit = client.socket.emit.bind(client.socket);
  client.socket.emit = (event, ...args) => {
    if (event === 'connect-transport' && tamper.fingerprint && args[0]?.dtlsParameters) {
      tamper.fingerprint = false;
      const fps = args[0].dtlsParameters.fingerprints.map((f) => ({
        ...f, value: (f.value[0] === 'A' ? 'B' : 'A') + f.value.slice(1),
      }));
      args[0] = { ...args[0], dtlsParameters: { ...args[0].dtlsParameters, fingerprints: fps } };
    }
    if (event === 'produce' && produceSource.next && args[0]?.kind === 'video') {
      args[0] = { ...args[0], appData: { source: produceSource.next } };
      produceSource.next = null;
    }
    return emit(event, ...args);
  };
  // The server tells us when a consumer closes (its producer closed or its participant left): close ours too.
  client.socket.on('consumer-closed', ({ consumerId }) => {
    const consumer = client.consumers.get(consumerId);
    if (consumer) {
      consumer.close();
      client.consumers.delete(consumerId);
    }
    const info = consumerInfo.get(consumerId);
    if (info) info.closed = true;
  });
  watchFirstVideoFrame();
  setStatus(`joining ${meetingId}…`);
  try {
    await withTimeout(client.joinMeeting(meetingId), timeoutMs, 'joinMeeting');
  } catch (err) {
    setStatus(`join failed: ${err && err.message ? err.message.split('.')[0] : JSON.stringify(err)}`);
    throw err;
  }
  marks.joinDone = now();
  joinedSocketId = client.socket.id;
  myUserId = meetingState?.you?.userId ?? null;
  setStatus(`joined ${meetingId} as ${myUserId} (${meetingState?.you?.role})`);
  return { you: meetingState?.you ?? null, sendTransportId: client.sendTransport?.id, recvTransportId: client.recvTransport?.id };
}

/**
 * getUserMedia from the fake devices (the guide's constraints, 1280x720) and the guide's produceMedia on the
 * one send transport. Call with {audio:true, video:false} then {audio:false, video:true} to produce audio first
 * and video later on the same transport.
 */
async function startMedia({ audio = true, video = true, timeoutMs = 20000 } = {}) {
  const stream = await navigator.mediaDevices.getUserMedia({
    video: video ? { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } } : false,
    audio: audio ? { echoCancellation: true, noiseSuppression: true, autoGainControl: true } : false,
  });
  localStreams.push(stream);
  await withTimeout(client.produceMedia(stream), timeoutMs, 'produceMedia');
  return {
    sendTransportId: client.sendTransport.id,
    producers: [...client.producers].map(([kind, p]) => ({ kind, id: p.id })),
    tracks: stream.getTracks().map((t) => ({ kind: t.kind, label: t.label, settings: t.getSettings() })),
  };
}

/** Per-consumer inbound-rtp figures from consumer.getStats() (RTCRtpReceiver stats). */
async function stats() {
  const out = [];
  for (const [consumerId, consumer] of client.consumers) {
    const info = consumerInfo.get(consumerId) ?? {};
    let inbound = null;
    const report = await consumer.getStats().catch(() => null);
    report?.forEach((r) => { if (r.type === 'inbound-rtp' && !inbound) inbound = r; });
    out.push({
      consumerId,
      kind: consumer.kind,
      producerId: consumer.producerId,
      participantId: info.participantId ?? null,
      userId: info.userId ?? null,
      paused: consumer.paused,
      hasInbound: Boolean(inbound),
      packetsReceived: inbound?.packetsReceived ?? 0,
      bytesReceived: inbound?.bytesReceived ?? 0,
      framesDecoded: inbound?.framesDecoded ?? 0,
      frameWidth: inbound?.frameWidth ?? 0,
      frameHeight: inbound?.frameHeight ?? 0,
      freezeCount: inbound?.freezeCount ?? 0,
      framesPerSecond: inbound?.framesPerSecond ?? 0,
      totalAudioEnergy: inbound?.totalAudioEnergy ?? 0,
      totalSamplesReceived: inbound?.totalSamplesReceived ?? 0,
    });
  }
  return out;
}

/**
 * The publisher's side (sendTransport.getStats()): Chrome's send-side bandwidth estimate (the selected candidate
 * pair's availableOutgoingBitrate, which only grows on transport-wide-cc feedback from the server) and each video
 * outbound-rtp stream (rid, resolution, qualityLimitationReason).
 */
async function sendStats() {
  const report = await client?.sendTransport?.getStats().catch(() => null);
  let availableOutgoingBitrate = 0;
  const video = [];
  report?.forEach((r) => {
    if (r.type === 'candidate-pair' && r.nominated && r.availableOutgoingBitrate) {
      availableOutgoingBitrate = Math.max(availableOutgoingBitrate, r.availableOutgoingBitrate);
    }
    if (r.type === 'outbound-rtp' && r.kind === 'video') {
      video.push({ rid: r.rid ?? null, frameWidth: r.frameWidth ?? 0, frameHeight: r.frameHeight ?? 0,
        bytesSent: r.bytesSent ?? 0, qualityLimitationReason: r.qualityLimitationReason ?? null,
        scalabilityMode: r.scalabilityMode ?? null, encoderImplementation: r.encoderImplementation ?? null });
    }
  });
  return { availableOutgoingBitrate, video };
}

/**
 * The selected ICE candidate pair of a transport (`recv` by default), from its getStats(): local and remote
 * candidate type, protocol and address, and the pair's state (tests of ICE over TCP, TURN relay, IPv6).
 */
async function selectedPath(which = 'recv') {
  const t = which === 'send' ? client?.sendTransport : client?.recvTransport;
  const report = await t?.getStats().catch(() => null);
  if (!report) return null;
  const byId = new Map();
  report.forEach((r) => byId.set(r.id, r));
  let pair = null;
  report.forEach((r) => {
    if (r.type === 'transport' && r.selectedCandidatePairId) pair = byId.get(r.selectedCandidatePairId) ?? pair;
  });
  if (!pair) report.forEach((r) => { if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r; });
  if (!pair) return null;
  const cand = (c) => (c ? { candidateType: c.candidateType, protocol: c.protocol, address: c.address ?? c.ip, port: c.port, relayProtocol: c.relayProtocol ?? null } : null);
  return { state: pair.state, local: cand(byId.get(pair.localCandidateId)), remote: cand(byId.get(pair.remoteCandidateId)) };
}

async function pauseConsumer(consumerId) {
  const consumer = client.consumers.get(consumerId);
  if (!consumer) throw new Error(`no consumer ${consumerId}`);
  const ack = await request('pause-consumer', { consumerId });
  consumer.pause();
  return ack;
}

async function resumeConsumer(consumerId) {
  const consumer = client.consumers.get(consumerId);
  if (!consumer) throw new Error(`no consumer ${consumerId}`);
  const ack = await request('resume-consumer', { consumerId });
  consumer.resume();
  return ack;
}

/** Moderator action: pause the target user's producers of that kind on the server. */
function mute(targetUserId, muteType = 'audio') {
  return request('participant:mute', { meetingId: client.meetingId, targetUserId, muteType });
}

/**
 * A canvas video track produced as another source (`screen` by default): a moving colour pattern at 25 fps, so a
 * test has a second video producer without a screen-picker prompt. Returns its producer id. `codec` (a mime type,
 * e.g. 'video/H264') produces it with that codec of the device's (mediasoup-client `produce({track, codec})`).
 */
const canvasShares = new Map();
async function startCanvasShare({ source = 'screen', width = 640, height = 360, codec = null, encodings = null } = {}) {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d');
  let n = 0;
  const timer = setInterval(() => {
    n += 1;
    ctx.fillStyle = `hsl(${(n * 7) % 360}, 70%, 50%)`;
    ctx.fillRect(0, 0, width, height);
    ctx.fillStyle = '#fff';
    ctx.fillRect((n * 8) % width, height / 3, 40, 40);
  }, 40);
  const track = canvas.captureStream(25).getVideoTracks()[0];
  produceSource.next = source;
  const options = { track, appData: { source } };
  if (codec) {
    const codecs = client.device.rtpCapabilities.codecs;
    options.codec = codecs.find((c) => c.mimeType.toLowerCase() === codec.toLowerCase());
    if (!options.codec) throw new Error(`the device has no ${codec}: ${codecs.map((c) => c.mimeType).join(', ')}`);
  }
  // e.g. [{ scalabilityMode: 'L3T3_KEY' }]: VP9 SVC in one stream.
  if (encodings) options.encodings = encodings;
  const producer = await client.sendTransport.produce(options);
  canvasShares.set(producer.id, { producer, timer, track });
  return producer.id;
}

/**
 * The A/V sync source: a canvas video (black, white for 100 ms once a second) and a WebAudio oscillator (a 1 kHz
 * beep for the same 100 ms), both timed on the AudioContext's clock, produced as camera and mic.
 */
async function startAvSync() {
  const audio = new AudioContext();
  await audio.resume();
  const osc = audio.createOscillator();
  osc.frequency.value = 1000;
  const gain = audio.createGain();
  gain.gain.value = 0;
  const dest = audio.createMediaStreamDestination();
  osc.connect(gain).connect(dest);
  osc.start();
  const first = Math.ceil(audio.currentTime) + 1;
  for (let k = 0; k < 120; k++) {
    gain.gain.setValueAtTime(0.5, first + k);
    gain.gain.setValueAtTime(0, first + k + 0.1);
  }
  const canvas = document.createElement('canvas');
  canvas.width = 320;
  canvas.height = 240;
  const ctx = canvas.getContext('2d');
  const draw = () => {
    const t = audio.currentTime;
    const flash = t >= first && t - Math.floor(t) < 0.1;
    ctx.fillStyle = flash ? '#fff' : '#000';
    ctx.fillRect(0, 0, 320, 240);
  };
  draw();
  const timer = setInterval(draw, 4);
  const video = canvas.captureStream(60).getVideoTracks()[0];
  const a = await client.sendTransport.produce({ track: dest.stream.getAudioTracks()[0] });
  const v = await client.sendTransport.produce({ track: video });
  canvasShares.set(v.id, { producer: v, timer, track: video });
  return { audio: a.id, video: v.id };
}

async function stopCanvasShare(producerId) {
  const s = canvasShares.get(producerId);
  if (!s) throw new Error(`no canvas share ${producerId}`);
  canvasShares.delete(producerId);
  clearInterval(s.timer);
  s.producer.close();
  s.track.stop();
  return request('producer:close', { producerId });
}

/**
 * What an app does after socket.io-client reconnected by itself (its node died and the load balancer sent the new
 * connection to another node): the server dropped the old session with its node, so the app drops its dead media
 * (transports, producers, consumers) and joins the meeting again on the new connection. The caller then starts
 * its media again (startMedia). Waits for the reconnection first.
 */
async function rejoinAfterReconnect({ timeoutMs = 30000 } = {}) {
  const until = performance.now() + timeoutMs;
  while (!(client.socket.connected && client.socket.id !== joinedSocketId)) {
    if (performance.now() > until) throw new Error(`no reconnection within ${timeoutMs} ms`);
    await sleep(50);
  }
  marks.reconnected = now();
  for (const p of client.producers.values()) p.close();
  client.producers.clear();
  for (const [id, c] of client.consumers) {
    c.close();
    const i = consumerInfo.get(id);
    if (i) i.closed = true;
  }
  client.consumers.clear();
  client.sendTransport?.close();
  client.recvTransport?.close();
  document.querySelectorAll('video, audio').forEach((el) => el.remove());
  for (const st of localStreams.splice(0)) st.getTracks().forEach((t) => t.stop());
  await withTimeout(client.joinMeeting(client.meetingId), Math.max(until - performance.now(), 5000), 'rejoin');
  joinedSocketId = client.socket.id;
  marks.rejoined = now();
  return { you: meetingState?.you ?? null, socketId: client.socket.id };
}

async function leave() {
  await client.leaveMeeting();
  for (const s of localStreams) s.getTracks().forEach((t) => t.stop());
  setStatus('left');
}

function info() {
  const transport = (t) => (t ? { id: t.id, connectionState: t.connectionState, closed: t.closed } : null);
  return {
    you: meetingState?.you ?? null,
    sendTransport: transport(client?.sendTransport),
    recvTransport: transport(client?.recvTransport),
    producers: client ? [...client.producers].map(([kind, p]) => ({ kind, id: p.id, paused: p.paused, closed: p.closed })) : [],
    consumers: [...consumerInfo].map(([id, i]) => ({ id, ...i })),
    mediaElements: [...document.querySelectorAll('video, audio')].map((el) => ({
      id: el.id, tag: el.tagName.toLowerCase(), paused: el.paused, readyState: el.readyState,
    })),
    marks: { ...marks },
    pageErrors: [...pageErrors],
  };
}

window.meeting = {
  join,
  rejoinAfterReconnect,
  startMedia,
  stats,
  sendStats,
  selectedPath,
  consumerIds: () => (client ? [...client.consumers.keys()] : []),
  pauseConsumer,
  resumeConsumer,
  mute,
  /** track.enabled on this page's own tracks of `kind`: a disabled microphone keeps sending packets of silence. */
  honourLayersNeeded: () => { honour.layersNeeded = true; },
  setTrackEnabled: (kind, enabled) => {
    for (const st of localStreams) st.getTracks().filter((tr) => tr.kind === kind).forEach((tr) => { tr.enabled = enabled; });
  },
  leave,
  request: (event, payload) => request(event, payload),
  startCanvasShare,
  stopCanvasShare,
  startAvSync,
  /** The mime types of the device's send codecs (device.rtpCapabilities). */
  deviceCodecs: () => client.device.rtpCapabilities.codecs.map((c) => c.mimeType),
  meetingId: () => client?.meetingId ?? null,
  tamperNextFingerprint: () => { tamper.fingerprint = true; },
  /** Closes the send transport's PeerConnection without a word to the server (a browser gone silent). */
  dropSendTransport: () => { client.sendTransport.close(); },
  events: (name) => log.filter((e) => !name || e.event === name),
  info,
  marks: () => ({ ...marks }),
};
setStatus('ready');
