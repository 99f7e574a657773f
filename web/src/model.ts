// The meeting as this client knows it: people (one entry per participant session), their producers and hands,
// the layout, spotlight, pin, screen share and active speaker. UI components render from it.
import type { Layout, MeetingSettings, MeetingState, ParticipantInfo, ProducerInfo, Role, Source } from './types';

export interface Person {
  participantId: string;
  userId: string;
  userName: string;
  role: Role;
  handRaised: boolean;
  isLocal: boolean;
  joinOrder: number;
  producers: Map<string, ProducerInfo>;
  /** Kinds a host/moderator muted (seen live: participant:muted / participant:unmuted). */
  moderatorMuted: { audio: boolean; video: boolean };
}

let joinCounter = 0;

export class Model {
  meetingId: string;
  title: string | null = null;
  you: { participantId: string; userId: string; role: Role };
  settings: MeetingSettings = { maxParticipants: 100, recordingEnabled: false, allowSelfUnmute: true };
  readonly people = new Map<string, Person>();
  layout: Layout = 'grid';
  /** A layout this user picked for themselves (or one implied by a screen share / spotlight); null follows the meeting. */
  viewOverride: Layout | null = null;
  spotlightUserId: string | null = null;
  pinnedUserId: string | null = null;
  screenShare: { participantId?: string; userId: string; userName?: string } | null = null;
  activeSpeaker: string | null = null;
  speaking = new Set<string>();
  /** participantId → the server's `connection-quality` (excellent | good | poor | lost). */
  readonly quality = new Map<string, string>();
  recording = 'idle';

  constructor(state: MeetingState, userName: string) {
    this.meetingId = state.meetingId;
    this.you = state.you;
    this.apply(state, userName);
  }

  /** Replaces everything with a `meeting-state` snapshot (on join and on every rejoin). */
  apply(state: MeetingState, userName: string): void {
    this.meetingId = state.meetingId;
    this.title = state.title ?? null;
    this.you = state.you;
    this.settings = state.settings ?? this.settings;
    this.layout = state.layout ?? 'grid';
    this.spotlightUserId = state.spotlight?.userId ?? null;
    this.screenShare = state.screenShare ?? null;
    this.recording = state.recording?.state ?? 'idle';
    this.people.clear();
    for (const p of state.participants) this.upsert(p);
    if (!this.people.has(state.you.participantId)) {
      this.upsert({ ...state.you, userName, handRaised: false });
    }
    this.viewOverride = this.screenShare && this.layout === 'grid' ? 'presentation' : null;
  }

  upsert(p: ParticipantInfo): Person {
    const existing = this.people.get(p.participantId);
    if (existing) {
      existing.userName = p.userName ?? existing.userName;
      existing.role = p.role ?? existing.role;
      return existing;
    }
    const person: Person = {
      participantId: p.participantId,
      userId: p.userId,
      userName: p.userName,
      role: p.role,
      handRaised: Boolean(p.handRaised),
      isLocal: p.participantId === this.you.participantId,
      joinOrder: joinCounter++,
      producers: new Map((p.producers ?? []).map((x) => [x.producerId, { ...x }])),
      moderatorMuted: { audio: false, video: false },
    };
    this.people.set(p.participantId, person);
    return person;
  }

  get me(): Person | undefined {
    return this.people.get(this.you.participantId);
  }

  get isModerator(): boolean {
    return this.you.role === 'host' || this.you.role === 'moderator';
  }

  get isHost(): boolean {
    return this.you.role === 'host';
  }

  byUser(userId: string): Person[] {
    return [...this.people.values()].filter((p) => p.userId === userId);
  }

  firstByUser(userId: string): Person | undefined {
    return this.byUser(userId)[0];
  }

  /** People in join order. */
  ordered(): Person[] {
    return [...this.people.values()].sort((a, b) => a.joinOrder - b.joinOrder);
  }

  producerOf(p: Person, source: Source): ProducerInfo | undefined {
    for (const x of p.producers.values()) if (x.source === source) return x;
    return undefined;
  }

  micOn(p: Person): boolean {
    const x = this.producerOf(p, 'mic');
    return Boolean(x && !x.paused);
  }

  camOn(p: Person): boolean {
    const x = this.producerOf(p, 'camera');
    return Boolean(x && !x.paused);
  }

  sharing(p: Person): boolean {
    return Boolean(this.producerOf(p, 'screen')) || this.screenShare?.participantId === p.participantId;
  }

  get effectiveLayout(): Layout {
    return this.viewOverride ?? this.layout;
  }
}

export function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  if (!parts.length) return '?';
  const first = [...parts[0]][0] ?? '';
  const last = parts.length > 1 ? ([...parts[parts.length - 1]][0] ?? '') : '';
  return (first + last).toUpperCase();
}

export function roleLabel(role: Role): string {
  return role === 'host' ? 'Host' : role === 'moderator' ? 'Moderator' : '';
}
