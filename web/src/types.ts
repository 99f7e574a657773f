// Wire types of meet-server (docs/protocol.md). Only the fields the client reads are typed strictly.

export type Role = 'host' | 'moderator' | 'participant';
export type Layout = 'grid' | 'speaker' | 'presentation';
export type Source = 'mic' | 'camera' | 'screen';
export type Kind = 'audio' | 'video';
export type RecipientType = 'all' | 'private' | 'host';
export type Quality = 'low' | 'medium' | 'high';

export interface ProducerInfo {
  producerId: string;
  kind: Kind;
  source: Source;
  paused: boolean;
}

export interface ParticipantInfo {
  participantId: string;
  userId: string;
  userName: string;
  role: Role;
  handRaised: boolean;
  joinedAt?: string;
  producers?: ProducerInfo[];
}

export interface ChatMessage {
  id: string;
  meeting_id: string;
  sender_id: string;
  sender_name: string;
  message: string;
  message_type: string;
  recipient_type: RecipientType;
  recipient_id: string | null;
  timestamp: string;
}

export interface MeetingSettings {
  maxParticipants: number;
  recordingEnabled: boolean;
  allowSelfUnmute: boolean;
}

export interface MeetingState {
  meetingId: string;
  title?: string | null;
  you: { participantId: string; userId: string; role: Role };
  participants: ParticipantInfo[];
  layout: Layout;
  spotlight: { userId: string } | null;
  screenShare: { participantId?: string; userId: string; userName?: string } | null;
  recording: { state: string };
  settings: MeetingSettings;
  recentMessages: ChatMessage[];
}

export interface Meeting {
  meetingId: string;
  title: string | null;
  hostUserId: string;
  campusId: string;
  maxParticipants: number;
  recordingEnabled: boolean;
  allowSelfUnmute: boolean;
  status: 'active' | 'ended';
  participantCount?: number;
}

export interface WireError {
  code: string;
  message: string;
  event?: string;
  retryAfterMs?: number;
}

export interface Actor {
  userId: string;
  userName: string;
}

export interface TransportParams {
  id: string;
  iceParameters: { usernameFragment: string; password: string; iceLite?: boolean };
  iceCandidates: unknown[];
  dtlsParameters: unknown;
}

export interface Subscribed {
  id: string;
  producerId: string;
  kind: Kind;
  rtpParameters: unknown;
  type: 'simple' | 'simulcast';
  producerPaused: boolean;
  participantId: string;
  userId: string;
  source: Source;
}

export interface NewProducer {
  participantId: string;
  userId: string;
  userName: string;
  producerId: string;
  kind: Kind;
  source: Source;
}

export interface ProducerState {
  meetingId?: string;
  participantId: string;
  userId: string;
  userName?: string;
  producerId: string;
  kind: Kind;
  source: Source;
  byModerator: boolean;
}

interface PersonEvent {
  meetingId: string;
  participantId: string;
  userId: string;
  userName: string;
  timestamp?: string;
}

/** Events the server sends (name → payload). */
export interface ServerEvents {
  'meeting-state': MeetingState;
  'participant-joined': PersonEvent & { role: Role; participantCount: number };
  'participant-left': PersonEvent & { participantCount: number; reason: string };
  'screen:started': PersonEvent;
  'screen:stopped': PersonEvent;
  'hand:raised': PersonEvent;
  'hand:lowered': PersonEvent;
  'participant:muted': {
    meetingId: string;
    targetUserId: string;
    muteType: 'audio' | 'video';
    moderatorId: string;
    moderatorName: string;
  };
  /** A host/moderator lifted a moderator mute (our extension); the person may unmute themselves again. */
  'participant:unmuted': {
    meetingId: string;
    targetUserId: string;
    muteType: 'audio' | 'video';
    moderatorId: string;
    moderatorName: string;
  };
  'reaction:received': PersonEvent & { emoji: string };
  'layout:changed': { meetingId: string; layout: Layout; changedBy: Actor };
  'participant:pinned': { meetingId: string; targetUserId: string };
  'participant:spotlighted': { meetingId: string; targetUserId: string | null; userName?: string | null; changedBy: Actor };
  'participant:role-changed': { meetingId: string; targetUserId: string; role: Role; changedBy: Actor };
  'meeting:ended': { meetingId: string; endedBy: Actor; timestamp: string };
  'recording:started': { meetingId: string; hostName?: string };
  'recording:stopped': { meetingId: string };
  'recording:paused': { meetingId: string };
  'recording:resumed': { meetingId: string };
  'new-message': ChatMessage;
  'user-typing': PersonEvent & { typing: boolean };
  'new-producer': NewProducer;
  'consumer-closed': { consumerId: string; producerId: string; reason: string };
  'producer:paused': ProducerState;
  'producer:resumed': ProducerState;
  'server:shutdown': { reconnectAfterMs: number };
  /** The server closed one of our transports because it failed (DTLS, ICE consent lost, never connected). */
  'transport:closed': { transportId: string; direction: 'send' | 'recv'; reason: string };
  /** Our token expired: send `auth:refresh` within graceMs or be disconnected. */
  'auth:expired': { expiredAt: string; graceMs: number };
  error: WireError;
}

/** Requests the client sends (name → payload). Every one is answered with an ack. */
export interface Requests {
  /** previousParticipantId: on a rejoin, the session the dropped connection left behind (the server closes it). */
  'join-meeting': { meetingId: string; previousParticipantId?: string };
  'leave-meeting': { meetingId: string };
  'screen:start': { meetingId: string };
  'screen:stop': { meetingId: string };
  'hand:raise': { meetingId: string };
  'hand:lower': { meetingId: string };
  'participant:mute': { meetingId: string; targetUserId: string; muteType: 'audio' | 'video' };
  'participant:unmute': { meetingId: string; targetUserId: string; muteType: 'audio' | 'video' };
  'reaction:send': { meetingId: string; emoji: string };
  'layout:change': { meetingId: string; layout: Layout };
  'participant:pin': { meetingId: string; targetUserId: string };
  'participant:spotlight': { meetingId: string; targetUserId: string | null };
  'participant:role': { meetingId: string; targetUserId: string; role: 'moderator' | 'participant' };
  'meeting:end': { meetingId: string };
  'stats:report': { meetingId: string; stats: { rtt?: number; packetLoss?: number; jitter?: number; bitrate?: number } };
  'recording:start': { meetingId: string; options?: Record<string, unknown> };
  'recording:stop': { meetingId: string };
  'recording:pause': { meetingId: string };
  'recording:resume': { meetingId: string };
  'send-message': { meetingId: string; message: string; recipientType: RecipientType; recipientId?: string };
  typing: { meetingId: string; typing: boolean };
  'create-transport': { meetingId: string; direction: 'send' | 'recv' };
  'connect-transport': { transportId: string; dtlsParameters: unknown };
  produce: { meetingId: string; kind: Kind; rtpParameters: unknown; appData: { source: Source } };
  consume: { meetingId: string; producerId: string; rtpCapabilities: unknown };
  'resume-consumer': { consumerId: string };
  'pause-consumer': { consumerId: string };
  'producer:pause': { producerId: string };
  'producer:resume': { producerId: string };
  'producer:close': { producerId: string };
  'quality:change': { meetingId: string; participantId: string; quality: Quality };
  'auth:refresh': { token: string };
}

/** What each request's successful ack carries besides `ok: true`. */
export interface Replies {
  /** The snapshot itself comes in the `meeting-state` event (Signaling.join). */
  'join-meeting': { meetingId: string; participantId: string; you: MeetingState['you'] };
  'create-transport': { direction: 'send' | 'recv'; params: TransportParams };
  'connect-transport': { transportId: string };
  /** paused: a moderator's mute of this kind holds (allowSelfUnmute off): the server created it paused. */
  produce: { producerId: string; kind: Kind; source: Source; paused?: boolean };
  consume: Subscribed;
  'send-message': ChatMessage;
  'hand:raise': { handRaised: boolean };
  'hand:lower': { handRaised: boolean };
  'auth:refresh': { expiresAt: string | null };
}

export type ReplyOf<E extends keyof Requests> = E extends keyof Replies ? Replies[E] : Record<string, unknown>;

export const REACTIONS = ['👍', '❤️', '😂', '😮', '😢', '👏', '🎉', '🤔', '👎', '🔥'] as const;
