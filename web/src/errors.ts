// Human messages for every error the server can answer (docs/protocol.md), for connect_error, and for REST.
import type { WireError } from './types';

/** A failed request: the server's coded error, or a client-side one (ACK_TIMEOUT, DISCONNECTED, …). */
export class RequestError extends Error {
  readonly code: string;
  readonly event?: string;
  readonly retryAfterMs?: number;
  constructor(err: WireError) {
    super(err.message || err.code);
    this.name = 'RequestError';
    this.code = err.code;
    this.event = err.event;
    this.retryAfterMs = err.retryAfterMs;
  }
}

const ACTIONS: Record<string, string> = {
  'join-meeting': 'join the meeting',
  'leave-meeting': 'leave the meeting',
  'screen:start': 'share your screen',
  'screen:stop': 'stop the screen share',
  'hand:raise': 'raise your hand',
  'hand:lower': 'lower your hand',
  'participant:mute': 'mute that participant',
  'participant:unmute': 'allow that participant to unmute',
  'reaction:send': 'send a reaction',
  'layout:change': 'change the layout',
  'participant:pin': 'pin that participant',
  'participant:spotlight': 'change the spotlight',
  'participant:role': 'change that role',
  'meeting:end': 'end the meeting',
  'send-message': 'send the message',
  produce: 'send your media',
  consume: 'receive that media',
  'producer:resume': 'unmute',
  'producer:pause': 'mute',
  'recording:start': 'start recording',
  'recording:stop': 'stop recording',
  'recording:pause': 'pause recording',
  'recording:resume': 'resume recording',
};

/** One clear sentence per error code; `event` (the request that failed) makes generic codes specific. */
export function describeError(err: { code: string; message?: string; event?: string; retryAfterMs?: number }): string {
  const action = err.event ? ACTIONS[err.event] : undefined;
  switch (err.code) {
    case 'MEETING_NOT_FOUND':
      return 'This meeting does not exist. Check the meeting ID or link.';
    case 'ACCESS_DENIED':
      return 'You do not have access to this meeting.';
    case 'MEETING_FULL':
      return 'This meeting is full. Try again later.';
    case 'MEETING_ENDED':
      return 'This meeting has ended.';
    case 'RATE_LIMIT_EXCEEDED': {
      const wait = err.retryAfterMs ? ` Try again in ${Math.max(1, Math.ceil(err.retryAfterMs / 1000))} s.` : '';
      if (err.event === 'send-message') return `You are sending messages too quickly (10 per minute).${wait}`;
      if (err.event === 'reaction:send') return `Slow down: at most 3 reactions per second.${wait}`;
      return `Too many requests.${wait}`;
    }
    case 'UNAUTHORIZED_RECORDING':
      return 'Only hosts and moderators can control recording.';
    case 'RECORDING_DISABLED':
      return 'Recording is disabled for this meeting.';
    case 'VALIDATION_ERROR':
      return `The server rejected the request${action ? ` to ${action}` : ''}: ${err.message ?? 'invalid input'}.`;
    case 'NOT_IN_MEETING':
      return 'You are no longer in this meeting.';
    case 'FORBIDDEN':
      if (err.event === 'producer:resume') return 'A host or moderator muted you, and this meeting does not let participants unmute themselves. You can unmute once they allow it.';
      if (err.event === 'screen:stop') return 'Only the presenter, a host or a moderator can stop this screen share.';
      return `You are not allowed to ${action ?? 'do that'}${err.event === 'participant:role' || err.event === 'meeting:end' ? ' (hosts only)' : ' (hosts and moderators only)'}.`;
    case 'NOT_FOUND':
      if (err.event === 'screen:stop') return 'Nobody is sharing a screen.';
      if (err.event === 'participant:mute' || err.event === 'participant:unmute' || err.event === 'participant:spotlight' || err.event === 'participant:pin') {
        return 'That participant is no longer in the meeting.';
      }
      if (err.event === 'send-message') return 'The recipient is no longer in the meeting.';
      return `Could not ${action ?? 'complete the request'}: it no longer exists.`;
    case 'CANNOT_CONSUME':
      return 'Your browser cannot play one of the streams in this meeting.';
    case 'SCREEN_SHARE_ACTIVE':
      return 'Someone else is already sharing their screen.';
    case 'NOT_SUPPORTED':
      if (err.event?.startsWith('recording:')) return 'Recording is not available on this server yet.';
      return `This server does not support that yet${action ? ` (${action})` : ''}.`;
    case 'INTERNAL_ERROR':
      return 'Something went wrong on the server. Please try again.';
    case 'ACK_TIMEOUT':
      return `The server did not answer in time${action ? ` (${action})` : ''}. Check your connection.`;
    case 'DISCONNECTED':
      return 'You are offline. Reconnecting…';
    case 'UNAUTHORIZED':
      return `Your sign-in was refused: ${err.message ?? 'invalid token'}.`;
    default:
      return err.message || `Error ${err.code}`;
  }
}

/** What the browser's ICE statistics say about a media connection that does not come up (MediaSession.diagnose). */
export interface MediaPathDiagnosis {
  /** The transport had been connected before (a network change, not a blocked network). */
  everConnected: boolean;
  /** Local candidate types the browser gathered (host, srflx, prflx, relay). */
  localTypes: string[];
  /** Protocols of the server's candidates that were tried (udp, tcp). */
  remoteProtocols: string[];
  /** Only relayed paths are allowed (the server's iceTransportPolicy). */
  relayOnly: boolean;
}

/** "Your network blocks the media connection", with the reason, instead of black tiles. */
export function describeMediaBlocked(d: MediaPathDiagnosis): string {
  const head = 'Your network blocks the media connection';
  if (d.everConnected) {
    return `${head}: the connection to the media server was lost and could not be restored after a network change. Check your network; media reconnects on its own when it can.`;
  }
  if (d.localTypes.length === 0) return `${head}: your browser found no network to use (offline, or WebRTC disabled).`;
  if (d.relayOnly && !d.localTypes.includes('relay')) {
    return `${head}: this meeting sends media only through a relay (TURN) server, and your browser could not reach it.`;
  }
  const tried = d.remoteProtocols.length ? d.remoteProtocols.map((p) => p.toUpperCase()).join(' and ') : 'UDP and TCP';
  return `${head}: the media server could not be reached over ${tried}${d.localTypes.includes('relay') ? ', not even through the relay server' : ''} (a firewall or proxy?). Ask your network administrator, or try another network.`;
}

/** The server's connect_error messages (docs/protocol.md "Connecting") in plain words. */
export function describeConnectError(message: string): string {
  if (message.startsWith('authentication required')) return 'Sign-in required: no token was sent.';
  if (message.startsWith('token expired')) return 'Your token has expired. Get a new one and try again.';
  if (message.startsWith('token not yet valid')) return 'Your token is not valid yet (check the clock).';
  if (message.startsWith('invalid token: signature')) return 'The token was not signed for this server.';
  if (message.startsWith('invalid token: algorithm')) return 'The token uses an algorithm this server does not accept.';
  if (message.startsWith('invalid token: claims')) return 'The token lacks the user details this server needs (user_id, campus_id, userName).';
  if (message.startsWith('invalid token')) return 'That is not a valid token.';
  if (/xhr poll error|websocket error|timeout/i.test(message)) return 'Cannot reach the meeting server. Check your connection.';
  return `Could not connect: ${message}`;
}
