// mediasoup-client side of a meeting: the Device, one send and one recv transport, producers (mic, camera,
// screen) and consumers. Signaling goes through acks; `new-producer` announcements are consumed one at a time.
import { Device, type types } from 'mediasoup-client';
import { getWebrtcConfig } from './api';
import { RequestError } from './errors';
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
      if (transport === this.sendTransport || transport === this.recvTransport) this.onTransportState(direction, state);
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

  /** Closes everything locally (the server closes its side on leave / disconnect). Local tracks stay alive. */
  close(): void {
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
