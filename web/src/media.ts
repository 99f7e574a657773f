// mediasoup-client side of a meeting: the Device, one send and one recv transport, producers (mic, camera,
// screen) and consumers. Signaling goes through acks; `new-producer` announcements are consumed one at a time.
import { Device, type types } from 'mediasoup-client';
import { getWebrtcConfig } from './api';
import { RequestError, type MediaPathDiagnosis } from './errors';
import type { Signaling } from './signaling';
import type { Kind, NewProducer, Source, Subscribed } from './types';

/** The guide's simulcast layers for the camera (low / medium / high). */
const CAMERA_ENCODINGS: RTCRtpEncodingParameters[] = [
  { maxBitrate: 100_000, scaleResolutionDownBy: 4 },
  { maxBitrate: 300_000, scaleResolutionDownBy: 2 },
  { maxBitrate: 900_000 },
];
const SCREEN_ENCODINGS: RTCRtpEncodingParameters[] = [{ maxBitrate: 1_500_000 }];

export interface ConsumerEntry {
  consumer: types.Consumer;
  participantId: string;
  userId: string;
  producerId: string;
  kind: Kind;
  source: Source;
  producerPaused: boolean;
}

export interface StatsSample {
  rtt?: number;
  packetLoss?: number;
  jitter?: number;
  bitrate?: number;
}

let sharedDevice: Device | null = null;

type Direction = 'send' | 'recv';
/** `restart-ice` (docs/protocol.md): new ICE credentials of one of our transports, for transport.restartIce. */
type RestartIceSignaling = {
  request(event: 'restart-ice', payload: { transportId: string }): Promise<{ transportId: string; iceParameters: types.IceParameters }>;
};
/** A transport that is `disconnected` this long gets an ICE restart (it often recovers on its own sooner). */
const ICE_DISCONNECTED_GRACE_MS = 1500;
/** Restarts that did not bring the transport back are retried after 2, 4, 8 … s, at most this far apart. */
const ICE_RETRY_MAX_MS = 16_000;
/** A connected transport carrying media on which nothing at all arrives for this long has lost its path, even if
 * the browser still calls it `connected` (Chrome takes well over 5 s to notice an outage): restart ICE. Only
 * transports that should be receiving are watched (live consumers: RTP; live producers: RTCP feedback, ~10/s), so
 * a quiet gap this long is an outage, not idleness. Sampled twice a second: detection after 2.5–3 s. */
const ICE_STALL_MS = 2500;
/** A transport still not connected this long after it started connecting, never connected before: the network
 * blocks media (`onIceGaveUp`), said at once rather than after the browser's own ICE timeout (~30 s). */
const ICE_CONNECT_BLOCKED_MS = 10_000;
/** After this many restarts without a connection, the network is taken to block media (`onIceGaveUp`). */
const ICE_GIVE_UP_AFTER = 4;

/** One mediasoup Device per page, loaded with the router capabilities from GET /meeting/{id}/webrtc-config. */
async function loadDevice(meetingId: string): Promise<Device> {
  if (sharedDevice?.loaded) return sharedDevice;
  const { rtpCapabilities } = await getWebrtcConfig(meetingId);
  const device = new Device();
  await device.load({ routerRtpCapabilities: rtpCapabilities as types.RtpCapabilities });
  sharedDevice = device;
  return device;
}

export class MediaSession {
  device: Device | null = null;
  sendTransport: types.Transport | null = null;
  recvTransport: types.Transport | null = null;
  readonly producers = new Map<Source, types.Producer>();
  /** Producers the server created paused (a moderator's mute holds): paused locally as soon as they exist. */
  private readonly heldByModerator = new Set<string>();
  readonly consumers = new Map<string, ConsumerEntry>();
  /** Consumption waits for the recv transport (announcements can arrive before its ack does). */
  private consumeChain: Promise<void>;
  private recvReady!: (ok: boolean) => void;
  private closed = false;
  private prevTotals: { t: number; bytes: number; lost: number; received: number } | null = null;

  /** Called with each new consumer (after it is resumed), and when a transport changes state. */
  onConsumer: (entry: ConsumerEntry) => void = () => {};
  onConsumeError: (err: unknown, np: NewProducer) => void = () => {};
  onTransportState: (direction: 'send' | 'recv', state: string) => void = () => {};
  /** An ICE restart was done (`ok`) or could not be (`failed`, with the error). */
  onIceRestart: (direction: Direction, outcome: 'ok' | 'failed', err?: unknown) => void = () => {};
  /** Several ICE restarts in a row did not connect a transport: the network blocks media (`everConnected` false:
   * it never connected at all — UDP and TCP to the media server are blocked and no TURN relay helped). */
  onIceGaveUp: (direction: Direction, everConnected: boolean) => void = () => {};
  /** ICE restarts done on this session (support and tests read it). */
  iceRestarts = 0;
  /** The server asked for relay-only paths (`params.iceTransportPolicy`). */
  private relayOnly = false;
  /** Protocols of the server's candidates (udp, tcp). */
  private readonly offeredProtocols = new Set<string>();
  private readonly iceTimers = new Map<Direction, number>();
  private readonly iceAttempts = new Map<Direction, number>();
  private readonly iceBusy = new Set<Direction>();
  private readonly everConnected = new Set<Direction>();
  private readonly lastRx = new Map<Direction, { bytes: number; since: number }>();
  private stallTimer: number | null = null;
  private readonly onOnline = (): void => {
    // The browser is back online (another network, maybe another address): restart ICE on both transports.
    for (const d of ['send', 'recv'] as const) {
      this.iceAttempts.delete(d);
      this.scheduleIceRestart(d, 0, true);
    }
  };

  constructor(
    private readonly sig: Signaling,
    private readonly meetingId: string,
  ) {
    this.consumeChain = new Promise<boolean>((resolve) => {
      this.recvReady = resolve;
    }).then(() => undefined);
  }

  /** Loads the device and creates both transports (the recv one starts the server's `new-producer` announcements). */
  async start(): Promise<void> {
    try {
      this.device = await loadDevice(this.meetingId);
      window.addEventListener('online', this.onOnline);
      this.stallTimer = window.setInterval(() => void this.checkStalls(), 500);
      this.sendTransport = await this.createTransport('send');
      this.recvTransport = await this.createTransport('recv');
    } finally {
      this.recvReady(Boolean(this.recvTransport));
    }
  }

  /**
   * Replaces the send transport (its producers go with it: the server closes the old transport when a new one of
   * the same direction is created, and the others get `consumer-closed`). The caller produces again.
   */
  async restartSend(): Promise<void> {
    if (this.closed || !this.device) throw new Error('media session closed');
    // The transport first: closing it closes its producers without asking its (possibly dead) RTCPeerConnection
    // to stop each sender.
    const old = this.sendTransport;
    this.sendTransport = null;
    try {
      old?.close();
    } catch {
      /* already closed */
    }
    for (const p of this.producers.values()) {
      try {
        if (!p.closed) p.close();
      } catch {
        /* closed with its transport */
      }
    }
    this.producers.clear();
    const next = await this.createTransport('send');
    if (this.closed) {
      next.close();
      throw new Error('media session closed');
    }
    this.sendTransport = next;
  }

  /**
   * What the send transport is doing now: its connection state and the bytes its outbound RTP streams sent so far
   * (`null` when its stats cannot be read: its peer connection was closed under it).
   */
  async sendProgress(): Promise<{ state: string; bytesSent: number | null } | null> {
    const t = this.sendTransport;
    if (!t || t.closed) return null;
    let bytesSent: number | null = 0;
    try {
      const report = await t.getStats();
      report.forEach((r: Record<string, unknown> & { type: string }) => {
        if (r.type === 'outbound-rtp') bytesSent! += Number(r.bytesSent ?? 0);
      });
    } catch {
      bytesSent = null;
    }
    return { state: t.connectionState, bytesSent };
  }

  /** Inbound RTP of every consumer as the browser's getStats() reports it (support and tests). */
  async inboundStats(): Promise<Array<Record<string, unknown>>> {
    const out: Array<Record<string, unknown>> = [];
    for (const e of this.consumers.values()) {
      try {
        const report = await e.consumer.getStats();
        report.forEach((r: Record<string, unknown> & { type: string }) => {
          if (r.type !== 'inbound-rtp') return;
          out.push({
            participantId: e.participantId,
            userId: e.userId,
            source: e.source,
            kind: e.kind,
            producerId: e.producerId,
            framesDecoded: r.framesDecoded,
            packetsReceived: r.packetsReceived,
            bytesReceived: r.bytesReceived,
            totalAudioEnergy: r.totalAudioEnergy,
          });
        });
      } catch {
        /* closed meanwhile */
      }
    }
    return out;
  }

  private async createTransport(direction: 'send' | 'recv'): Promise<types.Transport> {
    const device = this.device!;
    const { params } = await this.sig.request('create-transport', { meetingId: this.meetingId, direction });
    const options = params as unknown as types.TransportOptions;
    if (options.iceTransportPolicy === 'relay') this.relayOnly = true;
    for (const c of options.iceCandidates ?? []) if (typeof c.protocol === 'string') this.offeredProtocols.add(c.protocol);
    const transport = direction === 'send' ? device.createSendTransport(options) : device.createRecvTransport(options);
    transport.on('connect', ({ dtlsParameters }, callback, errback) => {
      this.sig
        .request('connect-transport', { transportId: transport.id, dtlsParameters })
        .then(() => callback(), errback);
    });
    if (direction === 'send') {
      transport.on('produce', ({ kind, rtpParameters, appData }, callback, errback) => {
        const source = ((appData as { source?: Source }).source ?? (kind === 'audio' ? 'mic' : 'camera')) as Source;
        this.sig
          .request('produce', { meetingId: this.meetingId, kind, rtpParameters, appData: { source } })
          .then((r) => {
            if (r.paused) this.heldByModerator.add(r.producerId);
            callback({ id: r.producerId });
          }, errback);
      });
    }
    transport.on('connectionstatechange', (state) => {
      if (transport !== this.sendTransport && transport !== this.recvTransport) return;
      this.watchIce(direction, state);
      this.onTransportState(direction, state);
    });
    return transport;
  }

  /** Sends a track as `source` (mic / camera with simulcast / screen). */
  async produce(source: Source, track: MediaStreamTrack): Promise<types.Producer> {
    if (!this.sendTransport) throw new Error('no send transport');
    const existing = this.producers.get(source);
    if (existing && !existing.closed) existing.close();
    const options: types.ProducerOptions = { track, appData: { source }, stopTracks: false };
    if (source === 'camera') {
      options.encodings = CAMERA_ENCODINGS;
      options.codecOptions = { videoGoogleStartBitrate: 1000 };
    } else if (source === 'screen') {
      options.encodings = SCREEN_ENCODINGS;
    }
    const producer = await this.sendTransport.produce(options);
    if (this.heldByModerator.delete(producer.id)) producer.pause();
    this.producers.set(source, producer);
    return producer;
  }

  /**
   * `producer:layers-needed`: nobody receives the encodings above `spatialLayers`, so stop encoding and sending
   * them (mediasoup-client sets their `active` false); raised again as soon as someone needs them.
   */
  setLayersNeeded(producerId: string, spatialLayers: number): void {
    const producer = [...this.producers.values()].find((p) => p.id === producerId);
    const layers = producer?.rtpParameters.encodings?.length ?? 0;
    if (!producer || producer.closed || layers <= 1 || !Number.isInteger(spatialLayers)) return;
    const max = Math.min(Math.max(spatialLayers, 1), layers) - 1;
    void producer.setMaxSpatialLayer(max).catch((e) => console.warn('setMaxSpatialLayer failed', e));
  }

  /** Pauses or resumes a producer locally and on the server (so everyone sees it via producer:paused/resumed). */
  async setPaused(source: Source, paused: boolean): Promise<void> {
    const producer = this.producers.get(source);
    if (!producer || producer.closed) return;
    if (paused) {
      producer.pause();
      await this.sig.request('producer:pause', { producerId: producer.id });
    } else {
      // Ask first: the server refuses when a moderator muted us and self-unmute is off.
      await this.sig.request('producer:resume', { producerId: producer.id });
      producer.resume();
    }
  }

  async closeProducer(source: Source): Promise<void> {
    const producer = this.producers.get(source);
    this.producers.delete(source);
    if (!producer || producer.closed) return;
    producer.close();
    try {
      await this.sig.request('producer:close', { producerId: producer.id });
    } catch (e) {
      if (!(e instanceof RequestError && e.code === 'NOT_FOUND')) throw e;
    }
  }

  /** Queues a `new-producer`: consumed strictly one at a time, in arrival order. */
  enqueueConsume(np: NewProducer): void {
    this.consumeChain = this.consumeChain.then(async () => {
      if (this.closed) return;
      try {
        await this.consume(np);
      } catch (err) {
        if (!this.closed) this.onConsumeError(err, np);
      }
    });
  }

  private async consume(np: NewProducer): Promise<void> {
    const device = this.device;
    const recv = this.recvTransport;
    if (!device || !recv || recv.closed) return;
    const sub: Subscribed = await this.sig.request('consume', {
      meetingId: this.meetingId,
      producerId: np.producerId,
      rtpCapabilities: device.rtpCapabilities,
    });
    if (this.closed) return;
    const consumer = await recv.consume({
      id: sub.id,
      producerId: sub.producerId,
      kind: sub.kind,
      rtpParameters: sub.rtpParameters as types.RtpParameters,
    });
    const entry: ConsumerEntry = {
      consumer,
      participantId: sub.participantId ?? np.participantId,
      userId: sub.userId ?? np.userId,
      producerId: sub.producerId,
      kind: sub.kind,
      source: sub.source ?? np.source,
      producerPaused: sub.producerPaused,
    };
    this.consumers.set(consumer.id, entry);
    await this.sig.request('resume-consumer', { consumerId: consumer.id });
    consumer.resume();
    this.onConsumer(entry);
  }

  /** The server closed a consumer (its producer closed or its participant left). */
  closeConsumer(consumerId: string): ConsumerEntry | null {
    const entry = this.consumers.get(consumerId);
    if (!entry) return null;
    this.consumers.delete(consumerId);
    entry.consumer.close();
    return entry;
  }

  consumerFor(producerId: string): ConsumerEntry | undefined {
    for (const e of this.consumers.values()) if (e.producerId === producerId) return e;
    return undefined;
  }

  /**
   * rtt (ms), packetLoss (%), jitter (ms) and bitrate (bps, sent + received) from both transports' getStats();
   * loss and bitrate are over the time since the previous call.
   */
  async sampleStats(): Promise<StatsSample> {
    let rtt: number | undefined;
    // Jitter from audio streams when there are any (video RTP timing is bursty by nature), else from video.
    const jitter = { audio: [0, 0], video: [0, 0] } as Record<string, [number, number]>;
    const addJitter = (r: Record<string, unknown>) => {
      if (typeof r.jitter !== 'number') return;
      const k = r.kind === 'audio' ? 'audio' : 'video';
      jitter[k][0] += r.jitter * 1000;
      jitter[k][1]++;
    };
    let bytes = 0;
    let lost = 0;
    let received = 0;
    let remoteLossSum = 0;
    let remoteLossN = 0;
    for (const transport of [this.sendTransport, this.recvTransport]) {
      if (!transport || transport.closed) continue;
      let report: RTCStatsReport;
      try {
        report = await transport.getStats();
      } catch {
        continue;
      }
      report.forEach((r: Record<string, unknown> & { type: string }) => {
        if (r.type === 'candidate-pair' && (r.nominated || r.state === 'succeeded') && typeof r.currentRoundTripTime === 'number') {
          rtt = Math.max(rtt ?? 0, r.currentRoundTripTime * 1000);
        } else if (r.type === 'inbound-rtp') {
          bytes += Number(r.bytesReceived ?? 0);
          lost += Math.max(0, Number(r.packetsLost ?? 0));
          received += Number(r.packetsReceived ?? 0);
          addJitter(r);
        } else if (r.type === 'outbound-rtp') {
          bytes += Number(r.bytesSent ?? 0);
        } else if (r.type === 'remote-inbound-rtp') {
          if (typeof r.fractionLost === 'number') {
            remoteLossSum += r.fractionLost * 100;
            remoteLossN++;
          }
          addJitter(r);
          if (rtt === undefined && typeof r.roundTripTime === 'number') rtt = r.roundTripTime * 1000;
        }
      });
    }
    const now = performance.now();
    const out: StatsSample = {};
    if (rtt !== undefined) out.rtt = Math.round(rtt);
    const [jSum, jN] = jitter.audio[1] ? jitter.audio : jitter.video;
    if (jN) out.jitter = Math.round((jSum / jN) * 10) / 10;
    const prev = this.prevTotals;
    this.prevTotals = { t: now, bytes, lost, received };
    if (prev && now > prev.t) {
      const dLost = Math.max(0, lost - prev.lost);
      const dRecv = Math.max(0, received - prev.received);
      const inboundLoss = dLost + dRecv > 0 ? (dLost / (dLost + dRecv)) * 100 : 0;
      const outboundLoss = remoteLossN ? remoteLossSum / remoteLossN : 0;
      out.packetLoss = Math.round(Math.max(inboundLoss, outboundLoss) * 100) / 100;
      out.bitrate = Math.round((Math.max(0, bytes - prev.bytes) * 8 * 1000) / (now - prev.t));
    } else if (remoteLossN) {
      out.packetLoss = Math.round((remoteLossSum / remoteLossN) * 100) / 100;
    }
    return out;
  }

  /** Why a transport's media path does not come up, from the browser's ICE statistics. */
  async diagnose(direction: Direction): Promise<MediaPathDiagnosis> {
    const t = this.transportOf(direction);
    const local = new Set<string>();
    const remote = new Set<string>(this.offeredProtocols);
    if (t && !t.closed) {
      const report = await t.getStats().catch(() => null);
      report?.forEach((r: Record<string, unknown> & { type: string }) => {
        if (r.type === 'local-candidate' && typeof r.candidateType === 'string') local.add(r.candidateType);
        if (r.type === 'remote-candidate' && typeof r.protocol === 'string') remote.add(r.protocol);
      });
    }
    return {
      everConnected: this.everConnected.has(direction),
      localTypes: [...local],
      remoteProtocols: [...remote].sort().reverse(),
      relayOnly: this.relayOnly,
    };
  }

  /** Bytes received on a transport's selected candidate pair (null when there is none yet). */
  private static async pairBytesReceived(t: types.Transport): Promise<number | null> {
    const report = await t.getStats().catch(() => null);
    if (!report) return null;
    let pairId: string | undefined;
    report.forEach((r: Record<string, unknown> & { type: string }) => {
      if (r.type === 'transport' && typeof r.selectedCandidatePairId === 'string') pairId = r.selectedCandidatePairId;
    });
    let bytes: number | null = null;
    report.forEach((r: Record<string, unknown> & { type: string; id: string }) => {
      if (r.type === 'candidate-pair' && (pairId ? r.id === pairId : r.nominated === true)) bytes = Number(r.bytesReceived ?? 0);
    });
    return bytes;
  }

  /** See ICE_STALL_MS. */
  private async checkStalls(): Promise<void> {
    for (const d of ['send', 'recv'] as const) {
      const t = this.transportOf(d);
      // Only a transport that should be receiving something now: a live producer (RTCP feedback comes back) or a
      // consumer neither side paused.
      const carries =
        d === 'send'
          ? [...this.producers.values()].some((p) => !p.closed && !p.paused)
          : [...this.consumers.values()].some((e) => !e.consumer.closed && !e.consumer.paused && !e.producerPaused);
      if (this.closed || !t || t.closed || t.connectionState !== 'connected' || !carries || this.iceBusy.has(d)) {
        this.lastRx.delete(d);
        continue;
      }
      const bytes = await MediaSession.pairBytesReceived(t);
      if (bytes === null) continue;
      const now = performance.now();
      const prev = this.lastRx.get(d);
      if (!prev || bytes !== prev.bytes) {
        if (prev) this.iceAttempts.delete(d); // packets flow: the path is back
        this.lastRx.set(d, { bytes, since: now });
      } else if (now - prev.since >= ICE_STALL_MS) {
        const n = this.iceAttempts.get(d) ?? 0;
        console.warn(`no packet on the ${d} transport for ${Math.round(now - prev.since)} ms: restarting ICE`);
        this.lastRx.set(d, { bytes, since: now });
        this.scheduleIceRestart(d, n ? Math.min(ICE_RETRY_MAX_MS, 2000 * 2 ** (n - 1)) : 0, true);
      }
    }
  }

  private transportOf(direction: Direction): types.Transport | null {
    return direction === 'send' ? this.sendTransport : this.recvTransport;
  }

  /** `disconnected` → ICE restart after a short grace; `failed` → at once; `connected` → all is well again. */
  private watchIce(direction: Direction, state: string): void {
    if (state === 'connected' || state === 'completed') {
      this.everConnected.add(direction);
      this.iceAttempts.delete(direction);
      const t = this.iceTimers.get(direction);
      if (t !== undefined) window.clearTimeout(t);
      this.iceTimers.delete(direction);
    } else if (state === 'connecting') {
      if (!this.everConnected.has(direction)) {
        window.setTimeout(() => {
          const t = this.transportOf(direction);
          if (this.closed || !t || t.closed || this.everConnected.has(direction)) return;
          if (t.connectionState !== 'connected') this.onIceGaveUp(direction, false);
        }, ICE_CONNECT_BLOCKED_MS);
      }
    } else if (state === 'disconnected') {
      this.scheduleIceRestart(direction, ICE_DISCONNECTED_GRACE_MS);
    } else if (state === 'failed') {
      this.scheduleIceRestart(direction, 0);
    }
  }

  private scheduleIceRestart(direction: Direction, delayMs: number, evenIfConnected = false): void {
    if (this.closed || !this.transportOf(direction)) return;
    const pending = this.iceTimers.get(direction);
    if (pending !== undefined) {
      if (delayMs > 0) return;
      window.clearTimeout(pending);
    }
    const timer = window.setTimeout(() => {
      this.iceTimers.delete(direction);
      const t = this.transportOf(direction);
      if (!t || t.closed || this.closed) return;
      if (!evenIfConnected && t.connectionState === 'connected') return;
      // A recv transport is connected only at its first consume: nothing to restart before that.
      if (t.connectionState === 'new') return;
      void this.restartIce(direction);
    }, delayMs);
    this.iceTimers.set(direction, timer);
  }

  /** `restart-ice` on the server, then mediasoup-client's transport.restartIce with the new credentials. */
  async restartIce(direction: Direction): Promise<boolean> {
    const transport = this.transportOf(direction);
    if (!transport || transport.closed || this.closed || this.iceBusy.has(direction)) return false;
    this.iceBusy.add(direction);
    const attempt = (this.iceAttempts.get(direction) ?? 0) + 1;
    this.iceAttempts.set(direction, attempt);
    let done = false;
    try {
      const sig = this.sig as unknown as RestartIceSignaling;
      const { iceParameters } = await sig.request('restart-ice', { transportId: transport.id });
      if (transport.closed || this.closed) return false;
      await transport.restartIce({ iceParameters });
      this.iceRestarts++;
      done = true;
      this.onIceRestart(direction, 'ok');
    } catch (e) {
      this.onIceRestart(direction, 'failed', e);
    } finally {
      this.iceBusy.delete(direction);
    }
    if (this.closed || transport.closed) return done;
    if (attempt >= ICE_GIVE_UP_AFTER && transport.connectionState !== 'connected') {
      this.onIceGaveUp(direction, this.everConnected.has(direction));
    }
    // Not connected again by the next check: restart once more (the server allows 10 a minute).
    this.scheduleIceRestart(direction, Math.min(ICE_RETRY_MAX_MS, 2000 * 2 ** (attempt - 1)));
    return done;
  }

  /** Closes everything locally (the server closes its side on leave / disconnect). Local tracks stay alive. */
  close(): void {
    window.removeEventListener('online', this.onOnline);
    if (this.stallTimer !== null) window.clearInterval(this.stallTimer);
    for (const t of this.iceTimers.values()) window.clearTimeout(t);
    this.iceTimers.clear();
    this.closed = true;
    this.recvReady(false);
    for (const p of this.producers.values()) if (!p.closed) p.close();
    this.producers.clear();
    for (const e of this.consumers.values()) e.consumer.close();
    this.consumers.clear();
    this.sendTransport?.close();
    this.recvTransport?.close();
    this.sendTransport = null;
    this.recvTransport = null;
  }
}

export function qualityOf(s: StatsSample): 'good' | 'fair' | 'poor' | 'unknown' {
  if (s.rtt === undefined && s.packetLoss === undefined && s.jitter === undefined) return 'unknown';
  const loss = s.packetLoss ?? 0;
  const rtt = s.rtt ?? 0;
  const jitter = s.jitter ?? 0;
  if (loss > 5 || rtt > 400 || jitter > 50) return 'poor';
  if (loss > 2 || rtt > 200 || jitter > 30) return 'fair';
  return 'good';
}
