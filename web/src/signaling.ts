// The Socket.IO connection: typed server events, and requests answered by acks ({ok:true,…} / {ok:false,error}).
// The server answers one socket's requests in the order sent, so awaiting acks is enough to pair them.
import { io, type Socket } from 'socket.io-client';
import { RequestError, describeConnectError } from './errors';
import { debugEvent } from './debug';
import type { MeetingState, ReplyOf, Requests, ServerEvents, WireError } from './types';

type Ack = { ok: true } & Record<string, unknown> | { ok: false; error: WireError };

const REQUEST_TIMEOUT_MS = 10_000;

export class Signaling {
  readonly socket: Socket;
  private everConnected = false;

  constructor(token: string) {
    this.socket = io(location.origin, {
      auth: { token },
      transports: ['websocket', 'polling'],
      autoConnect: false,
      reconnectionDelay: 500,
      reconnectionDelayMax: 4000,
    });
    this.socket.onAny((event: string, payload: unknown) => debugEvent(event, payload));
  }

  get connected(): boolean {
    return this.socket.connected;
  }

  /** Connects once; rejects with a readable message on connect_error (bad token, server unreachable). */
  connect(timeoutMs = 15_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        this.socket.off('connect', onConnect);
        this.socket.off('connect_error', onError);
      };
      const onConnect = () => {
        cleanup();
        this.everConnected = true;
        resolve();
      };
      const onError = (err: Error) => {
        cleanup();
        this.socket.disconnect();
        reject(new RequestError({ code: 'UNAUTHORIZED', message: describeConnectError(err.message) }));
      };
      const timer = setTimeout(() => {
        cleanup();
        this.socket.disconnect();
        reject(new RequestError({ code: 'NETWORK', message: 'Cannot reach the meeting server. Check your connection.' }));
      }, timeoutMs);
      this.socket.on('connect', onConnect);
      this.socket.on('connect_error', onError);
      this.socket.connect();
    });
  }

  /**
   * Sends a request and resolves with its successful ack (the reply payload), or rejects with a RequestError
   * carrying the server's code. While offline it fails at once (never queues stale requests for later).
   */
  async request<E extends keyof Requests>(event: E, payload: Requests[E], timeoutMs = REQUEST_TIMEOUT_MS): Promise<ReplyOf<E>> {
    if (!this.socket.connected) {
      throw new RequestError({ code: 'DISCONNECTED', message: 'not connected', event });
    }
    let ack: Ack;
    try {
      ack = (await this.socket.timeout(timeoutMs).emitWithAck(event, payload)) as Ack;
    } catch {
      throw new RequestError({ code: this.socket.connected ? 'ACK_TIMEOUT' : 'DISCONNECTED', message: `no answer to ${event}`, event });
    }
    debugEvent(`ack:${event}`, ack);
    if (!ack || typeof ack !== 'object') {
      throw new RequestError({ code: 'INTERNAL_ERROR', message: `malformed answer to ${event}`, event });
    }
    if (ack.ok === false) {
      throw new RequestError({ ...ack.error, event: ack.error.event ?? event });
    }
    return ack as unknown as ReplyOf<E>;
  }

  /**
   * join-meeting: its ack is small ({meetingId, participantId, you}); the snapshot is the `meeting-state` event the
   * server sends just before the ack (same socket, so it arrives first). Resolves with that snapshot.
   */
  async join(payload: Requests['join-meeting']): Promise<MeetingState> {
    const seen: MeetingState[] = [];
    const onState = (s: MeetingState) => seen.push(s);
    this.socket.on('meeting-state', onState);
    try {
      const ack = await this.request('join-meeting', payload);
      const state = seen.find((s) => s?.you?.participantId === ack.participantId);
      if (!state) {
        throw new RequestError({ code: 'INTERNAL_ERROR', message: 'the join answer came without the meeting state', event: 'join-meeting' });
      }
      return state;
    } finally {
      this.socket.off('meeting-state', onState);
    }
  }

  on<K extends keyof ServerEvents>(event: K, handler: (payload: ServerEvents[K]) => void): void {
    this.socket.on(event as string, handler as (p: unknown) => void);
  }

  /** The Manager's `reconnect` (socket.io-client v4 fires it on `socket.io`, not on the socket). */
  onReconnect(handler: (attempt: number) => void): void {
    this.socket.io.on('reconnect', handler);
  }

  onReconnectAttempt(handler: (attempt: number) => void): void {
    this.socket.io.on('reconnect_attempt', handler);
  }

  onReconnectFailed(handler: () => void): void {
    this.socket.io.on('reconnect_failed', handler);
  }

  /** A later (re)connection of the socket after the first one — also after a manual reconnect. */
  onConnectAgain(handler: () => void): void {
    this.socket.on('connect', () => {
      if (this.everConnected) handler();
      this.everConnected = true;
    });
  }

  onDisconnect(handler: (reason: string) => void): void {
    this.socket.on('disconnect', (reason) => handler(reason));
  }

  close(): void {
    this.socket.removeAllListeners();
    this.socket.io.removeAllListeners();
    this.socket.disconnect();
  }
}
