// One meeting session: joins over Socket.IO, keeps the model in step with the server's events, runs the media
// session, and wires the toolbar, stage, chat and people panels. Rejoins (new transports and producers) after the
// connection drops.
import type { types } from 'mediasoup-client';
import { devToken, downloadFile, getMessages, getRecording, meetingLink } from './api';
import type { RecordingView } from './api';
import { debugEntries } from './debug';
import { RequestError, describeError, describeMediaBlocked } from './errors';
import { MediaSession, qualityOf, type ConsumerEntry, type StatsSample } from './media';
import { Model } from './model';
import { Signaling } from './signaling';
import { SpeakerDetector } from './speaker';
import { REACTIONS, type Layout, type MeetingState, type Source } from './types';
import { ChatPanel } from './ui/chat';
import { confirmDialog } from './ui/dialog';
import { $, h } from './ui/dom';
import { icon } from './ui/icons';
import { audioConstraints, mediaErrorText, videoConstraints, type JoinRequest } from './ui/lobby';
import { PeoplePanel } from './ui/people';
import { Popover } from './ui/popover';
import { Stage } from './ui/stage';
import { banner, toast } from './ui/toast';

const STATS_INTERVAL_MS = 5000;
/** The send watchdog looks at the send transport this often. */
const SEND_CHECK_MS = 1000;
/** A send transport that is disconnected or sends nothing for this long is a problem the person is told about. */
const SEND_TROUBLE_MS = 3000;
/** A new send transport has this long to connect. */
const SEND_CONNECT_GRACE_MS = 10_000;
/** Back-off between recovery attempts: 5 s, 10 s, 20 s, then every 30 s. */
const sendRetryDelay = (attempt: number) => Math.min(30_000, 5000 * 2 ** Math.max(0, attempt - 1));
const SEND_PROBLEMS: Record<string, string> = {
  failed: 'the media connection failed',
  closed: 'the media connection was closed',
  disconnected: 'the media connection was interrupted',
  connecting: 'the media connection could not be set up',
  stalled: 'nothing has been sent for a few seconds',
};
type SendVerdict = 'ok' | 'none' | 'wait' | { problem: keyof typeof SEND_PROBLEMS; urgent: boolean };
type LocalSource = 'mic' | 'camera';
const LAYOUT_NAMES: Record<Layout, string> = { grid: 'Grid', speaker: 'Speaker', presentation: 'Presentation' };
const LAYOUT_ICONS: Record<Layout, string> = { grid: 'grid', speaker: 'speaker', presentation: 'present' };

type RoomState = 'joining' | 'joined' | 'reconnecting' | 'left' | 'ended';
export type ExitKind = 'left' | 'ended' | 'removed';

export class Room {
  private readonly sig: Signaling;
  private media: MediaSession | null = null;
  private model!: Model;
  private stage!: Stage;
  private chat!: ChatPanel;
  private people!: PeoplePanel;
  private readonly speaker: SpeakerDetector;
  private state: RoomState = 'joining';
  private rejoining = false;
  private mediaStarting: Promise<void> | null = null;
  private statsTimer: number | undefined;
  private quality: ReturnType<typeof qualityOf> = 'unknown';
  private lastStats: StatsSample | null = null;
  private panel: 'chat' | 'people' | null = null;
  private readonly audioEls = new Map<string, HTMLAudioElement>();
  private readonly popovers: Popover[] = [];
  private readonly cleanups: Array<() => void> = [];
  private shutdownHintMs = 0;
  /** Why media cannot flow (shown in the banner until a transport connects again). */
  private mediaBlocked: string | null = null;
  /** The audio output chosen in the device menu ('' = the system's), applied to every remote <audio>. */
  private speakerId = '';
  /** Why a wanted microphone / camera is not being sent (shown on its toolbar button), or ''. */
  private readonly deviceError: Record<LocalSource, string> = { mic: '', camera: '' };
  private devicePopover: Popover | null = null;
  /** The send watchdog: is our own media reaching the server? */
  private sendWatch: number | undefined;
  private readonly send = {
    since: 0, // when the current send transport was created
    lastBytes: -1,
    troubleSince: 0,
    alerting: false,
    attempt: 0,
    nextAttemptAt: 0,
    checking: false,
    recovering: false,
  };
  private readonly local: {
    audioTrack: MediaStreamTrack | null;
    videoTrack: MediaStreamTrack | null;
    screenTrack: MediaStreamTrack | null;
    micOn: boolean;
    camOn: boolean;
    micId: string;
    cameraId: string;
  };

  private constructor(
    private readonly req: JoinRequest,
    private readonly onExit: (kind: ExitKind, text: string) => void,
  ) {
    this.sig = new Signaling(req.token);
    this.local = {
      audioTrack: req.audioTrack,
      videoTrack: req.videoTrack,
      screenTrack: null,
      micOn: req.micOn,
      camOn: req.camOn,
      micId: req.micId,
      cameraId: req.cameraId,
    };
    this.speaker = new SpeakerDetector((active, speaking) => {
      if (!this.model) return;
      this.model.activeSpeaker = active;
      this.model.speaking = speaking;
      this.stage.render();
    });
  }

  /** Connects and joins; throws (with a readable message) when that fails, leaving the caller's tracks alone. */
  static async join(req: JoinRequest, onExit: (kind: ExitKind, text: string) => void): Promise<Room> {
    const room = new Room(req, onExit);
    try {
      await room.sig.connect();
      room.listen();
      const state = await room.sig.join({ meetingId: req.meetingId });
      room.enter(state);
    } catch (e) {
      room.sig.close();
      throw e;
    }
    void room.startMedia();
    return room;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Entering the meeting view
  // ---------------------------------------------------------------------------------------------------------

  private enter(state: MeetingState): void {
    this.model = new Model(state, this.req.userName);
    this.stage = new Stage(this.model, { pin: (u) => void this.pin(u) });
    this.stage.onQualityPlan = (plan) => {
      for (const [participantId, quality] of plan) {
        this.sig.request('quality:change', { meetingId: this.model.meetingId, participantId, quality }).catch(() => {});
      }
    };
    this.chat = new ChatPanel(this.model, {
      send: async (message, recipientType, recipientId) => {
        const payload = { meetingId: this.model.meetingId, message, recipientType, ...(recipientId ? { recipientId } : {}) };
        const sent = await this.sig.request('send-message', payload);
        this.chat.add(sent);
      },
      typing: (typing) => {
        this.sig.request('typing', { meetingId: this.model.meetingId, typing }).catch(() => {});
      },
      loadEarlier: (before) => getMessages(this.req.token, this.model.meetingId, before, 50),
    });
    this.chat.isVisible = () => this.panel === 'chat';
    this.chat.onUnread = (n) => this.renderChatBadge(n);
    this.chat.onError = (e) => this.fail(e);
    this.people = new PeoplePanel(this.model, {
      pin: (u) => void this.pin(u),
      message: (u) => {
        this.openPanel('chat');
        this.chat.messageTo(u);
      },
      mute: (u, kind) => void this.moderatorMute(u, kind),
      allowUnmute: (u, kind) => void this.allowUnmute(u, kind),
      spotlight: (u) => void this.spotlight(u),
      setRole: (u, role) => void this.setRole(u, role),
      lowerHand: () => void this.toggleHand(),
    });
    this.chat.reset(state.recentMessages ?? []);
    this.state = 'joined';
    if (this.local.audioTrack) this.speaker.add(this.model.you.participantId, this.local.audioTrack, true);
    if (this.local.videoTrack) this.stage.setTrack(this.model.you.participantId, 'camera', this.local.videoTrack);
    this.watchTrack('mic', this.local.audioTrack);
    this.watchTrack('camera', this.local.videoTrack);
    this.setupToolbar();
    this.setupPanel();
    this.setupKeyboard();
    $('#lobby').hidden = true;
    $('#ended').hidden = true;
    $('#meeting').hidden = false;
    this.renderAll();
    if (state.participants.length > 1) {
      toast(`${state.participants.length - 1} other${state.participants.length > 2 ? 's are' : ' is'} here`);
    }
    for (const source of ['mic', 'camera'] as const) {
      const why = this.req.deviceErrors?.[source];
      if (!why) continue;
      const [what, action] = source === 'mic' ? ['microphone', 'Unmute'] : ['camera', 'Start video'];
      this.setDeviceError(source, why);
      toast(`${why} You joined without your ${what}; press ${action} to try again.`, 'error', 15_000);
    }
    this.sendWatch = window.setInterval(() => void this.checkSend(), SEND_CHECK_MS);
  }

  private get meetingId(): string {
    return this.model.meetingId;
  }

  private get myPid(): string {
    return this.model.you.participantId;
  }

  private isMe(participantId: string): boolean {
    return participantId === this.model?.you.participantId;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Server events
  // ---------------------------------------------------------------------------------------------------------

  private listen(): void {
    const s = this.sig;
    const ready = () => Boolean(this.model) && this.state !== 'left' && this.state !== 'ended';

    s.on('participant-joined', (d) => {
      if (!ready() || this.isMe(d.participantId)) return;
      const known = this.model.people.has(d.participantId);
      this.model.upsert({ participantId: d.participantId, userId: d.userId, userName: d.userName, role: d.role, handRaised: false, producers: [] });
      if (!known) toast(`${d.userName} joined`);
      this.renderAll();
    });
    s.on('participant-left', (d) => {
      if (!ready()) return;
      const p = this.model.people.get(d.participantId);
      if (!p) return;
      this.removePerson(d.participantId);
      toast(`${d.userName} left${d.reason === 'disconnected' ? ' (connection lost)' : ''}`);
    });
    s.on('new-producer', (np) => {
      if (!ready()) return;
      const p = this.model.people.get(np.participantId) ?? this.model.upsert({ participantId: np.participantId, userId: np.userId, userName: np.userName, role: 'participant', handRaised: false });
      if (!p.producers.has(np.producerId)) p.producers.set(np.producerId, { producerId: np.producerId, kind: np.kind, source: np.source, paused: false });
      this.media?.enqueueConsume(np);
      this.renderAll();
    });
    s.on('consumer-closed', (d) => {
      if (!ready()) return;
      const entry = this.media?.closeConsumer(d.consumerId);
      for (const p of this.model.people.values()) p.producers.delete(d.producerId);
      if (entry) this.detachConsumer(entry);
      this.renderAll();
    });
    const producerState = (paused: boolean) => (d: { participantId: string; userId: string; userName?: string; producerId: string; kind: 'audio' | 'video'; source: Source; byModerator: boolean }) => {
      if (!ready()) return;
      const p = this.model.people.get(d.participantId);
      if (!p) return;
      const x = p.producers.get(d.producerId);
      if (x) x.paused = paused;
      else p.producers.set(d.producerId, { producerId: d.producerId, kind: d.kind, source: d.source, paused });
      if (p.isLocal && paused && d.byModerator) this.mutedByModerator(d.source);
      this.renderAll();
    };
    // Speakers, measured on the server. The stage never puts you in the large tile: your own turn as the dominant
    // speaker leaves it on the last person you heard.
    s.on('active-speaker', (d) => {
      if (!ready() || this.isMe(d.participantId)) return;
      this.speaker.onActiveSpeaker(d.participantId);
    });
    s.on('audio-levels', (d) => {
      if (!ready()) return;
      this.speaker.onLevels(d.levels);
    });
    s.on('producer:layers-needed', (d) => {
      if (!ready()) return;
      this.media?.setLayersNeeded(d.producerId, d.spatialLayers);
    });
    s.on('connection-quality', (d) => {
      if (!ready()) return;
      this.model.quality.set(d.participantId, d.quality);
      this.stage.render();
    });
    s.on('producer:paused', producerState(true));
    s.on('producer:resumed', producerState(false));
    s.on('participant:muted', (d) => {
      if (!ready()) return;
      this.setModeratorMuted(d.targetUserId, d.muteType, true);
      const what = d.muteType === 'audio' ? 'microphone' : 'camera';
      if (d.targetUserId === this.model.you.userId) {
        const again = this.model.settings.allowSelfUnmute ? '' : ' Only a host can turn it back on.';
        toast(`${d.moderatorName} turned off your ${what}.${again}`, 'info', 6000);
      } else {
        const name = this.model.firstByUser(d.targetUserId)?.userName ?? 'A participant';
        toast(`${d.moderatorName} turned off ${name}'s ${what}`);
      }
    });
    s.on('participant:unmuted', (d) => {
      if (!ready()) return;
      this.setModeratorMuted(d.targetUserId, d.muteType, false);
      const what = d.muteType === 'audio' ? 'microphone' : 'camera';
      if (d.targetUserId === this.model.you.userId) {
        toast(`${d.moderatorName} allowed you to turn your ${what} back on.`, 'success', 6000);
      } else if (this.model.isModerator) {
        const name = this.model.firstByUser(d.targetUserId)?.userName ?? 'A participant';
        toast(`${d.moderatorName} allowed ${name} to turn their ${what} back on`);
      }
    });
    s.on('hand:raised', (d) => this.setHand(d.participantId, d.userName, true));
    s.on('hand:lowered', (d) => this.setHand(d.participantId, d.userName, false));
    s.on('reaction:received', (d) => {
      if (!ready()) return;
      this.stage.showReaction(d.emoji, this.isMe(d.participantId) ? 'You' : d.userName, d.participantId);
    });
    s.on('layout:changed', (d) => {
      if (!ready()) return;
      this.model.layout = d.layout;
      this.model.viewOverride = null;
      if (d.changedBy.userId !== this.model.you.userId) toast(`${d.changedBy.userName} switched everyone to ${LAYOUT_NAMES[d.layout].toLowerCase()} view`);
      this.renderAll();
    });
    s.on('participant:pinned', (d) => {
      if (!ready()) return;
      this.model.pinnedUserId = d.targetUserId;
      this.renderAll();
    });
    s.on('participant:spotlighted', (d) => {
      if (!ready()) return;
      const m = this.model;
      m.spotlightUserId = d.targetUserId;
      if (d.targetUserId && m.effectiveLayout === 'grid') m.viewOverride = 'speaker';
      if (!d.targetUserId && m.viewOverride === 'speaker') m.viewOverride = null;
      const name = d.targetUserId === m.you.userId ? 'you' : (d.userName ?? m.firstByUser(d.targetUserId ?? '')?.userName ?? 'a participant');
      toast(d.targetUserId ? `${d.changedBy.userName} put ${name} in the spotlight` : `${d.changedBy.userName} removed the spotlight`);
      this.renderAll();
    });
    s.on('participant:role-changed', (d) => {
      if (!ready()) return;
      for (const p of this.model.byUser(d.targetUserId)) p.role = d.role;
      if (d.targetUserId === this.model.you.userId) {
        this.model.you.role = d.role;
        toast(d.role === 'moderator' ? `${d.changedBy.userName} made you a moderator` : `${d.changedBy.userName} removed your moderator role`, 'success');
      }
      this.renderAll();
    });
    s.on('screen:started', (d) => {
      if (!ready()) return;
      this.model.screenShare = { participantId: d.participantId, userId: d.userId, userName: d.userName };
      if (this.model.effectiveLayout === 'grid') this.model.viewOverride = 'presentation';
      if (!this.isMe(d.participantId)) toast(`${d.userName} is presenting`);
      this.renderAll();
    });
    s.on('screen:stopped', (d) => {
      if (!ready()) return;
      this.model.screenShare = null;
      if (this.model.viewOverride === 'presentation') this.model.viewOverride = null;
      if (this.isMe(d.participantId) && this.local.screenTrack) void this.stopShare(false);
      this.renderAll();
    });
    s.on('meeting:ended', (d) => {
      if (!this.model) return;
      const by = d.endedBy.userId === this.model.you.userId ? 'You' : d.endedBy.userName;
      this.exit('ended', `${by} ended the meeting for everyone.`);
    });
    s.on('new-message', (m) => {
      if (ready()) this.chat.add(m);
    });
    s.on('user-typing', (d) => {
      if (ready() && !this.isMe(d.participantId)) this.chat.setTyping(d.participantId, d.userName, d.typing);
    });
    s.on('recording:started', () => this.setRecording('recording'));
    s.on('recording:resumed', () => this.setRecording('recording'));
    s.on('recording:paused', () => this.setRecording('paused'));
    s.on('recording:stopped', (d: { recordingId?: string }) => {
      this.setRecording('idle');
      if (d?.recordingId) void this.showRecording(d.recordingId);
    });
    s.on('server:shutdown', (d) => {
      this.shutdownHintMs = d.reconnectAfterMs;
      banner(`The server is restarting. Reconnecting in ${Math.ceil(d.reconnectAfterMs / 1000)} s…`);
    });
    s.on('error', (e) => console.warn('server error', e));
    s.on('transport:closed', (d) => {
      // The server gave up on one of our transports (its network failed, or DTLS did): set media up again.
      if (this.state !== 'joined' || !this.media) return;
      const current = d.direction === 'send' ? this.media.sendTransport : this.media.recvTransport;
      if (current && current.id !== d.transportId) return; // one we replaced already
      toast(`Your ${d.direction === 'send' ? 'outgoing' : 'incoming'} media connection failed (${d.reason}). Reconnecting media…`, 'error');
      void this.restartMedia();
    });
    s.on('auth:expired', (d) => void this.refreshToken(d.graceMs));

    s.onDisconnect((reason) => {
      if (this.state !== 'joined' && this.state !== 'reconnecting') return;
      this.state = 'reconnecting';
      this.teardownMedia();
      this.renderAll();
      banner('Connection lost. Reconnecting…');
      if (reason === 'io server disconnect') {
        // The server closed us (e.g. a restart): socket.io does not retry on its own in that case.
        window.setTimeout(() => this.sig.socket.connect(), Math.max(1000, this.shutdownHintMs));
      }
    });
    s.onReconnectAttempt((n) => {
      if (this.state === 'reconnecting') banner(`Connection lost. Reconnecting… (attempt ${n})`);
    });
    s.onReconnect(() => void this.rejoin());
    s.onConnectAgain(() => void this.rejoin());
    s.onReconnectFailed(() => banner('Could not reconnect. Check your network and reload the page.', 'error'));
  }

  /** Our token expired: a development token is renewed at once; a pasted one cannot be, so the person is told. */
  private async refreshToken(graceMs: number): Promise<void> {
    const userId = this.model?.me?.userId;
    if (this.req.devToken && userId) {
      try {
        const { token } = await devToken(this.req.userName, userId);
        await this.sig.request('auth:refresh', { token });
        return;
      } catch (e) {
        console.warn('token refresh failed', e);
      }
    }
    banner(`Your sign-in has expired. You will be disconnected in ${Math.round(graceMs / 1000)} s; sign in again to go on.`, 'error');
  }

  private setHand(participantId: string, userName: string, up: boolean): void {
    if (!this.model || this.state === 'left' || this.state === 'ended') return;
    const p = this.model.people.get(participantId);
    if (!p || p.handRaised === up) return;
    p.handRaised = up;
    if (up && !p.isLocal) toast(`✋ ${userName} raised their hand`);
    this.renderAll();
  }

  private removePerson(participantId: string): void {
    const p = this.model.people.get(participantId);
    if (!p) return;
    for (const entry of [...(this.media?.consumers.values() ?? [])]) {
      if (entry.participantId === participantId) {
        this.media?.closeConsumer(entry.consumer.id);
        this.detachConsumer(entry);
      }
    }
    this.model.people.delete(participantId);
    this.stage.setTrack(participantId, 'camera', null);
    this.stage.setTrack(participantId, 'screen', null);
    this.speaker.remove(participantId);
    this.model.quality.delete(participantId);
    this.chat.removePerson(participantId);
    if (this.model.pinnedUserId === p.userId && !this.model.firstByUser(p.userId)) this.model.pinnedUserId = null;
    if (this.model.screenShare?.participantId === participantId) {
      this.model.screenShare = null;
      if (this.model.viewOverride === 'presentation') this.model.viewOverride = null;
    }
    this.renderAll();
  }

  // ---------------------------------------------------------------------------------------------------------
  // Media
  // ---------------------------------------------------------------------------------------------------------

  private startMedia(): Promise<void> {
    if (!this.mediaStarting) {
      this.mediaStarting = this.doStartMedia().finally(() => {
        this.mediaStarting = null;
      });
    }
    return this.mediaStarting;
  }

  private async doStartMedia(): Promise<void> {
    const media = new MediaSession(this.sig, this.meetingId);
    this.media = media;
    media.onConsumer = (entry) => this.attachConsumer(entry);
    media.onConsumeError = (err) => {
      if (err instanceof RequestError && err.code === 'CANNOT_CONSUME') toast(describeError(err), 'error');
      else console.warn('consume failed', err);
    };
    // A transport that goes `disconnected`/`failed` (or the browser comes back `online`) gets an ICE restart from
    // the MediaSession itself; only when several in a row do not bring it back is the person told why.
    media.onTransportState = (direction, state) => {
      if (this.media !== media || this.state !== 'joined') return;
      if (state === 'connected' && this.mediaBlocked) {
        this.mediaBlocked = null;
        banner(null);
      }
      if (direction === 'send') {
        // The send watchdog decides (and tells the person); a state change only makes it look now.
        void this.checkSend();
      } else if (state === 'failed') {
        // The MediaSession restarts ICE at once (same transport and consumers); if restarts do not bring it back,
        // onIceGaveUp sets media up again.
        toast('The incoming media connection failed. Reconnecting media…', 'error');
      }
    };
    media.onIceGaveUp = (direction, everConnected) => {
      if (this.media !== media || this.state !== 'joined') return;
      if (everConnected && direction === 'recv') {
        // It worked before: set media up again (new transports), as a failed transport always did.
        void this.restartMedia();
        return;
      }
      void media.diagnose(direction).then((d) => {
        if (this.media !== media || this.state !== 'joined') return;
        console.warn('media connection blocked', direction, JSON.stringify(d));
        this.mediaBlocked = describeMediaBlocked(d);
        banner(this.mediaBlocked, 'error');
      });
    };
    media.onIceRestart = (direction, outcome, err) => {
      if (outcome === 'failed') console.warn('ICE restart failed', direction, err);
      else console.info('ICE restarted', direction);
    };
    try {
      await media.start();
      if (this.media !== media) return;
      this.resetSendWatch();
      await this.produceMicAndCamera(media);
      const sTrack = this.local.screenTrack;
      if (sTrack && sTrack.readyState === 'live') {
        try {
          await this.sig.request('screen:start', { meetingId: this.meetingId });
          await this.produceLocal('screen', sTrack);
        } catch (e) {
          toast(describeError(e as RequestError), 'error');
          await this.stopShare(false);
        }
      }
      this.scheduleStats();
    } catch (e) {
      if (this.media !== media || this.state !== 'joined') return;
      this.fail(e, 'Could not connect your camera and microphone: ');
    }
    this.renderAll();
  }

  /** Produces the live microphone (paused when muted) and the camera (when on). */
  private async produceMicAndCamera(media: MediaSession): Promise<void> {
    const a = this.local.audioTrack;
    if (a && a.readyState === 'live') {
      await this.produceLocal('mic', a);
      if (!this.local.micOn && this.media === media) await media.setPaused('mic', true);
    }
    const v = this.local.videoTrack;
    if (v && v.readyState === 'live' && this.local.camOn && this.media === media) await this.produceLocal('camera', v);
  }

  private async restartMedia(): Promise<void> {
    this.teardownMedia();
    this.stage.resetQualityPlan();
    await this.startMedia();
  }

  private async produceLocal(source: Source, track: MediaStreamTrack): Promise<types.Producer> {
    const media = this.media;
    if (!media) throw new RequestError({ code: 'DISCONNECTED', message: 'not connected' });
    const producer = await media.produce(source, track);
    const me = this.model.me;
    if (me) {
      for (const [id, x] of me.producers) if (x.source === source) me.producers.delete(id);
      me.producers.set(producer.id, { producerId: producer.id, kind: producer.kind as 'audio' | 'video', source, paused: producer.paused });
    }
    // A microphone or camera that ends is handled by watchTrack (fallback to another device).
    producer.on('trackended', () => {
      if (source === 'screen') void this.stopShare(true);
    });
    return producer;
  }

  private setLocalPaused(source: Source, paused: boolean): void {
    const me = this.model.me;
    if (!me) return;
    for (const x of me.producers.values()) if (x.source === source) x.paused = paused;
  }

  /** Closes transports, consumers and producers locally (the server already did on disconnect); keeps tracks. */
  private teardownMedia(): void {
    window.clearTimeout(this.statsTimer);
    this.statsTimer = undefined;
    const media = this.media;
    this.media = null;
    if (media) {
      for (const entry of media.consumers.values()) this.detachConsumer(entry);
      media.close();
    }
    if (this.model) {
      for (const p of this.model.people.values()) if (!p.isLocal) p.producers.clear();
      this.stage?.clearRemote();
    }
  }

  private attachConsumer(entry: ConsumerEntry): void {
    const p = this.model.people.get(entry.participantId);
    if (p) {
      const x = p.producers.get(entry.producerId);
      if (x) x.paused = entry.producerPaused;
      else p.producers.set(entry.producerId, { producerId: entry.producerId, kind: entry.kind, source: entry.source, paused: entry.producerPaused });
    }
    const track = entry.consumer.track;
    if (entry.kind === 'video') {
      this.stage.setTrack(entry.participantId, entry.source === 'screen' ? 'screen' : 'camera', track);
    } else {
      const audio = h('audio', { autoplay: true, 'data-participant-id': entry.participantId });
      audio.srcObject = new MediaStream([track]);
      $('#audio-sink').append(audio);
      void this.applySpeaker(audio).catch(() => {});
      void audio.play().catch(() => {});
      this.audioEls.set(entry.consumer.id, audio);
      this.speaker.add(entry.participantId, track);
    }
    this.renderAll();
  }

  private detachConsumer(entry: ConsumerEntry): void {
    if (entry.kind === 'video') {
      this.stage?.setTrack(entry.participantId, entry.source === 'screen' ? 'screen' : 'camera', null);
    } else {
      const el = this.audioEls.get(entry.consumer.id);
      if (el) {
        el.srcObject = null;
        el.remove();
        this.audioEls.delete(entry.consumer.id);
      }
      this.speaker.remove(entry.participantId);
    }
  }

  /** Marks every session of a user as muted (or no longer) by a moderator, for the participant list. */
  private setModeratorMuted(userId: string, kind: 'audio' | 'video', muted: boolean): void {
    for (const p of this.model.people.values()) {
      if (p.userId === userId) p.moderatorMuted[kind] = muted;
    }
    this.renderAll();
  }

  private mutedByModerator(source: Source): void {
    const producer = this.media?.producers.get(source);
    if (producer && !producer.closed) producer.pause(); // the server already stopped forwarding
    if (source === 'mic') this.local.micOn = false;
    if (source === 'camera') {
      this.local.camOn = false;
      this.releaseCamera();
    }
  }

  private releaseCamera(): void {
    const producer = this.media?.producers.get('camera');
    if (producer && !producer.closed) void producer.replaceTrack({ track: null }).catch(() => {});
    this.local.videoTrack?.stop();
    this.local.videoTrack = null;
    this.stage.setTrack(this.myPid, 'camera', null);
  }

  private async toggleMic(): Promise<void> {
    const media = this.media;
    try {
      if (this.local.micOn) {
        this.local.micOn = false;
        this.setLocalPaused('mic', true);
        this.renderAll();
        if (media?.producers.get('mic')) await media.setPaused('mic', true);
      } else {
        if (!this.local.audioTrack || this.local.audioTrack.readyState !== 'live') {
          const stream = await navigator.mediaDevices.getUserMedia({ audio: audioConstraints(this.local.micId) });
          this.local.audioTrack = stream.getAudioTracks()[0];
          this.speaker.add(this.myPid, this.local.audioTrack, true);
          this.watchTrack('mic', this.local.audioTrack);
          this.setDeviceError('mic', '');
        }
        const producer = media?.producers.get('mic');
        if (media && (!producer || producer.closed)) {
          // A moderator's mute may hold (allowSelfUnmute off): the server then creates the producer paused.
          if ((await this.produceLocal('mic', this.local.audioTrack)).paused) {
            toast('A host or moderator muted you. You can unmute once they allow it.', 'info', 6000);
            this.local.micOn = false;
            this.renderAll();
            return;
          }
        } else if (media) await media.setPaused('mic', false);
        this.local.micOn = true;
        this.setLocalPaused('mic', false);
      }
    } catch (e) {
      if (e instanceof DOMException) {
        this.setDeviceError('mic', mediaErrorText('microphone', e));
        toast(this.deviceError.mic, 'error');
      } else this.fail(e, 'Microphone: ');
    }
    this.renderAll();
  }

  private async toggleCam(): Promise<void> {
    const media = this.media;
    try {
      if (this.local.camOn) {
        this.local.camOn = false;
        this.setLocalPaused('camera', true);
        if (media?.producers.get('camera')) await media.setPaused('camera', true);
        this.releaseCamera();
      } else {
        if (!this.local.videoTrack || this.local.videoTrack.readyState !== 'live') {
          const stream = await navigator.mediaDevices.getUserMedia({ video: videoConstraints(this.local.cameraId) });
          this.local.videoTrack = stream.getVideoTracks()[0];
          this.watchTrack('camera', this.local.videoTrack);
          this.setDeviceError('camera', '');
        }
        const track = this.local.videoTrack;
        const producer = media?.producers.get('camera');
        if (media && (!producer || producer.closed)) {
          await this.produceLocal('camera', track);
        } else if (media && producer) {
          await producer.replaceTrack({ track });
          await media.setPaused('camera', false);
        }
        this.local.camOn = true;
        this.setLocalPaused('camera', false);
        this.stage.setTrack(this.myPid, 'camera', track);
      }
    } catch (e) {
      if (!this.local.camOn && e instanceof DOMException) {
        this.setDeviceError('camera', mediaErrorText('camera', e));
        toast(this.deviceError.camera, 'error');
      } else if (!this.local.camOn) this.fail(e, 'Camera: ');
      else this.fail(e);
      if (this.local.camOn && this.media?.producers.get('camera')?.paused) {
        this.local.camOn = false;
        this.releaseCamera();
      }
    }
    this.renderAll();
  }

  // ---------------------------------------------------------------------------------------------------------
  // Devices in the meeting: choose camera / microphone / speaker, fall back when one is unplugged
  // ---------------------------------------------------------------------------------------------------------

  /** Marks the toolbar button of a wanted device that is not being sent, with the reason ('' clears it). */
  private setDeviceError(source: LocalSource, why: string): void {
    this.deviceError[source] = why;
    if (this.model) this.renderAll();
  }

  /** A microphone or camera track that ends (unplugged, taken by the system) falls back to another device. */
  private watchTrack(source: LocalSource, track: MediaStreamTrack | null): void {
    if (!track) return;
    track.addEventListener('ended', () => {
      const current = source === 'mic' ? this.local.audioTrack : this.local.videoTrack;
      if (current !== track || this.state === 'left' || this.state === 'ended') return;
      void this.deviceLost(source, track);
    });
  }

  private async openDevice(source: LocalSource, deviceId: string): Promise<MediaStreamTrack> {
    if (source === 'mic') {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: audioConstraints(deviceId) });
      return stream.getAudioTracks()[0];
    }
    const stream = await navigator.mediaDevices.getUserMedia({ video: videoConstraints(deviceId) });
    return stream.getVideoTracks()[0];
  }

  /**
   * Puts `track` in place of the current microphone / camera: the producer's track is replaced (RTCRtpSender
   * replaceTrack: same producer, no renegotiation, nothing the others notice but the picture or sound), the old
   * track stopped. A device that was wanted but had no producer (it failed before) is produced now.
   */
  private async swapTrack(source: LocalSource, track: MediaStreamTrack): Promise<void> {
    const old = source === 'mic' ? this.local.audioTrack : this.local.videoTrack;
    const media = this.media;
    const producer = media?.producers.get(source);
    if (producer && !producer.closed) await producer.replaceTrack({ track });
    const deviceId = track.getSettings().deviceId ?? '';
    if (source === 'mic') {
      this.local.audioTrack = track;
      this.local.micId = deviceId;
      this.speaker.add(this.myPid, track, true);
    } else {
      this.local.videoTrack = track;
      this.local.cameraId = deviceId;
      this.stage.setTrack(this.myPid, 'camera', track);
    }
    this.watchTrack(source, track);
    this.setDeviceError(source, '');
    if (old && old !== track) old.stop();
    if (media && this.media === media && (!producer || producer.closed)) {
      if (source === 'mic') {
        this.local.micOn = true;
        await this.produceLocal('mic', track);
      } else if (this.local.camOn) {
        await this.produceLocal('camera', track);
      }
    }
    this.renderAll();
  }

  /** The device menu's choice of a microphone or camera. */
  private async chooseInput(source: LocalSource, deviceId: string): Promise<void> {
    const what = source === 'mic' ? 'microphone' : 'camera';
    const current = source === 'mic' ? this.local.audioTrack : this.local.videoTrack;
    const inUse = current && current.readyState === 'live';
    // A camera that is off is only remembered: it opens when the camera is turned on.
    if (source === 'camera' && !this.local.camOn && !inUse) {
      this.local.cameraId = deviceId;
      return;
    }
    if (source === 'mic' && !inUse && !this.local.micOn) {
      this.local.micId = deviceId;
      return;
    }
    let track: MediaStreamTrack;
    try {
      track = await this.openDevice(source, deviceId);
    } catch (e) {
      toast(`${mediaErrorText(what, e)} Still using the previous ${what}.`, 'error');
      await this.renderDeviceMenu();
      return;
    }
    try {
      await this.swapTrack(source, track);
      toast(`Now using ${track.label || `the chosen ${what}`}`, 'success');
    } catch (e) {
      track.stop();
      this.fail(e, `Could not switch the ${what}: `);
    }
    await this.renderDeviceMenu();
  }

  /** The active microphone or camera ended: open another one (the person is told which), or say none is left. */
  private async deviceLost(source: LocalSource, lost: MediaStreamTrack): Promise<void> {
    const what = source === 'mic' ? 'microphone' : 'camera';
    const lostLabel = lost.label || `your ${what}`;
    const settings = lost.getSettings();
    let candidates: MediaDeviceInfo[] = [];
    try {
      const kind = source === 'mic' ? 'audioinput' : 'videoinput';
      candidates = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === kind && d.deviceId && d.deviceId !== settings.deviceId);
    } catch {
      /* no list: only the browser's default is tried below */
    }
    // Another physical device first: aliases such as "default" share the lost device's group.
    candidates.sort((a, b) => Number(a.groupId === settings.groupId) - Number(b.groupId === settings.groupId));
    let next: MediaStreamTrack | null = null;
    for (const id of [...candidates.map((d) => d.deviceId), '']) {
      try {
        const t = await this.openDevice(source, id);
        if (t.readyState === 'live') {
          next = t;
          break;
        }
        t.stop();
      } catch {
        /* try the next one */
      }
    }
    const current = source === 'mic' ? this.local.audioTrack : this.local.videoTrack;
    if (current !== lost || this.state === 'left' || this.state === 'ended') {
      next?.stop();
      return;
    }
    if (next) {
      try {
        await this.swapTrack(source, next);
        toast(`Your ${what} "${lostLabel}" stopped (unplugged?). Switched to "${next.label || `another ${what}`}".`, 'info', 8000);
        void this.renderDeviceMenu();
        return;
      } catch (e) {
        next.stop();
        console.warn('fallback device failed', e);
      }
    }
    // Nothing else to use: say so, and stop announcing a device that sends nothing.
    const media = this.media;
    if (source === 'mic') {
      this.local.audioTrack = null;
      this.local.micOn = false;
      this.setLocalPaused('mic', true);
      this.speaker.remove(this.myPid);
      if (media?.producers.get('mic')) await media.setPaused('mic', true).catch(() => {});
    } else {
      this.local.camOn = false;
      this.setLocalPaused('camera', true);
      if (media?.producers.get('camera')) await media.setPaused('camera', true).catch(() => {});
      this.releaseCamera();
    }
    const why = `Your ${what} "${lostLabel}" stopped and no other ${what} could be opened.`;
    this.setDeviceError(source, why);
    toast(`${why} The others cannot ${source === 'mic' ? 'hear' : 'see'} you; connect one and press ${source === 'mic' ? 'Unmute' : 'Start video'}.`, 'error', 15_000);
  }

  private get canChooseSpeaker(): boolean {
    return typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;
  }

  private async applySpeaker(el: HTMLAudioElement): Promise<void> {
    if (!this.speakerId || !this.canChooseSpeaker) return;
    await (el as HTMLAudioElement & { setSinkId(id: string): Promise<void> }).setSinkId(this.speakerId);
  }

  private async chooseSpeaker(deviceId: string): Promise<void> {
    const previous = this.speakerId;
    this.speakerId = deviceId;
    try {
      for (const el of this.audioEls.values()) await (el as HTMLAudioElement & { setSinkId(id: string): Promise<void> }).setSinkId(deviceId);
      toast('Speaker changed', 'success');
    } catch (e) {
      this.speakerId = previous;
      toast(`The speaker could not be used (${(e as Error)?.message ?? e}).`, 'error');
      await this.renderDeviceMenu();
    }
  }

  /** Fills the device menu from enumerateDevices(), the devices in use selected. */
  private async renderDeviceMenu(): Promise<void> {
    let devices: MediaDeviceInfo[] = [];
    try {
      devices = await navigator.mediaDevices.enumerateDevices();
    } catch {
      /* leave the lists as they are */
    }
    const fill = (select: HTMLSelectElement, kind: MediaDeviceKind, selected: string, fallback: string) => {
      const list = devices.filter((d) => d.kind === kind && d.deviceId);
      select.replaceChildren(
        ...(list.length ? list : [{ deviceId: '', label: `Default ${fallback.toLowerCase()}` } as MediaDeviceInfo]).map((d, i) =>
          h('option', { value: d.deviceId, selected: d.deviceId === selected }, d.label || `${fallback} ${i + 1}`),
        ),
      );
      select.disabled = list.length === 0;
    };
    fill($<HTMLSelectElement>('#dev-camera'), 'videoinput', this.local.videoTrack?.getSettings().deviceId ?? this.local.cameraId, 'Camera');
    fill($<HTMLSelectElement>('#dev-mic'), 'audioinput', this.local.audioTrack?.getSettings().deviceId ?? this.local.micId, 'Microphone');
    $('#dev-speaker-field').hidden = !this.canChooseSpeaker;
    if (this.canChooseSpeaker) fill($<HTMLSelectElement>('#dev-speaker'), 'audiooutput', this.speakerId || 'default', 'Speaker');
  }

  // ---------------------------------------------------------------------------------------------------------
  // Send watchdog: is our own media reaching the server? (tells the person, and recovers on its own)
  // ---------------------------------------------------------------------------------------------------------

  private resetSendWatch(): void {
    Object.assign(this.send, { since: performance.now(), lastBytes: -1, troubleSince: 0 });
  }

  /** Looks at the send transport: its state, and whether the bytes it sent keep rising while something is on. */
  private async sendVerdict(media: MediaSession): Promise<SendVerdict> {
    if (!media.sendTransport) return 'wait';
    const on = [...media.producers].filter(([, p]) => !p.closed && !p.paused && p.track?.readyState === 'live').map(([src]) => src);
    if (!on.length) {
      this.send.lastBytes = -1;
      return 'none';
    }
    const progress = await media.sendProgress();
    if (!progress) return 'wait';
    if (progress.bytesSent === null) return { problem: 'closed', urgent: true };
    if (progress.state === 'failed' || progress.state === 'closed') return { problem: progress.state, urgent: true };
    const last = this.send.lastBytes;
    this.send.lastBytes = progress.bytesSent;
    if (progress.state === 'disconnected') return { problem: 'disconnected', urgent: false };
    if (progress.state !== 'connected') {
      return performance.now() - this.send.since > SEND_CONNECT_GRACE_MS ? { problem: 'connecting', urgent: true } : 'wait';
    }
    // Only the microphone and camera send steadily (a still shared screen may send next to nothing); a first
    // sample is only the baseline.
    if (!on.some((src) => src !== 'screen')) return 'ok';
    if (last < 0) return 'wait';
    return progress.bytesSent > last ? 'ok' : { problem: 'stalled', urgent: false };
  }

  private async checkSend(): Promise<void> {
    const media = this.media;
    if (this.state !== 'joined' || !media || this.send.checking || this.send.recovering) return;
    this.send.checking = true;
    let verdict: SendVerdict;
    try {
      verdict = await this.sendVerdict(media);
    } finally {
      this.send.checking = false;
    }
    if (this.media !== media || this.state !== 'joined') return;
    const now = performance.now();
    if (verdict === 'ok' || verdict === 'none') {
      this.send.troubleSince = 0;
      this.send.attempt = 0;
      this.send.nextAttemptAt = 0;
      if (this.send.alerting) {
        this.showSendAlert(null);
        if (verdict === 'ok') toast(`Your ${this.sendingWhat().what} ${this.sendingWhat().verb} reaching the others again.`, 'success', 6000);
      }
      return;
    }
    if (verdict === 'wait') return;
    if (!this.send.troubleSince) this.send.troubleSince = now;
    if (!verdict.urgent && now - this.send.troubleSince < SEND_TROUBLE_MS) return;
    if (now < this.send.nextAttemptAt) return;
    this.send.attempt += 1;
    this.showSendAlert(verdict.problem);
    await this.recoverSend(media);
  }

  /** What we are trying to send, for the messages ("camera and microphone are", "microphone is"). */
  private sendingWhat(): { what: string; verb: string } {
    const mic = this.local.micOn && Boolean(this.local.audioTrack);
    const cam = this.local.camOn && Boolean(this.local.videoTrack);
    if (mic && cam) return { what: 'camera and microphone', verb: 'are' };
    if (cam) return { what: 'camera', verb: 'is' };
    if (mic) return { what: 'microphone', verb: 'is' };
    return { what: 'media', verb: 'is' };
  }

  private showSendAlert(problem: string | null): void {
    const el = $('#media-alert');
    this.send.alerting = Boolean(problem);
    el.hidden = !problem;
    document.body.dataset.sending = problem ? 'failed' : 'ok';
    if (!problem) {
      el.textContent = '';
      return;
    }
    const { what, verb } = this.sendingWhat();
    el.textContent = `Your ${what} ${verb} not reaching the others: ${SEND_PROBLEMS[problem] ?? problem}. Reconnecting your media… (attempt ${this.send.attempt})`;
  }

  /** A new send transport, and the microphone and camera produced on it again (the others consume them anew). */
  private async recoverSend(media: MediaSession): Promise<void> {
    this.send.recovering = true;
    try {
      const sharing = this.local.screenTrack;
      await media.restartSend();
      if (this.media !== media) return;
      this.resetSendWatch();
      const me = this.model.me;
      if (me) for (const [id, x] of me.producers) if (x.source !== 'screen') me.producers.delete(id);
      await this.produceMicAndCamera(media);
      // The server ended the screen share with the old transport (screen:stopped follows).
      if (sharing) toast('Your screen share stopped while your media reconnected. Share again when it is back.', 'info', 8000);
    } catch (e) {
      console.warn('send recovery failed', e);
    } finally {
      this.send.recovering = false;
      this.send.troubleSince = 0;
      this.send.nextAttemptAt = performance.now() + sendRetryDelay(this.send.attempt);
      this.renderAll();
    }
  }

  private async toggleShare(): Promise<void> {
    if (this.local.screenTrack) {
      await this.stopShare(true);
      return;
    }
    const share = this.model.screenShare;
    if (share && share.participantId !== this.myPid) {
      toast(`${share.userName ?? 'Someone'} is already presenting. Only one person can share at a time.`, 'error');
      return;
    }
    if (!navigator.mediaDevices?.getDisplayMedia) {
      toast('This browser cannot share the screen.', 'error');
      return;
    }
    let track: MediaStreamTrack;
    try {
      const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
      track = stream.getVideoTracks()[0];
    } catch (e) {
      const name = (e as DOMException)?.name;
      toast(name === 'NotAllowedError' || name === 'AbortError' ? 'Screen sharing was cancelled.' : 'The screen could not be captured.', name === 'NotAllowedError' ? 'info' : 'error');
      return;
    }
    track.contentHint = 'detail';
    try {
      await this.sig.request('screen:start', { meetingId: this.meetingId });
      this.local.screenTrack = track;
      await this.produceLocal('screen', track);
    } catch (e) {
      this.local.screenTrack = null;
      track.stop();
      this.sig.request('screen:stop', { meetingId: this.meetingId }).catch(() => {});
      this.fail(e);
      this.renderAll();
      return;
    }
    track.addEventListener('ended', () => void this.stopShare(true));
    this.stage.setTrack(this.myPid, 'screen', track);
    this.renderAll();
  }

  private async stopShare(tellServer: boolean): Promise<void> {
    const track = this.local.screenTrack;
    this.local.screenTrack = null;
    track?.stop();
    this.stage.setTrack(this.myPid, 'screen', null);
    const me = this.model.me;
    if (me) for (const [id, x] of me.producers) if (x.source === 'screen') me.producers.delete(id);
    this.renderAll();
    if (tellServer) {
      try {
        await this.sig.request('screen:stop', { meetingId: this.meetingId });
      } catch (e) {
        if (!(e instanceof RequestError && (e.code === 'NOT_FOUND' || e.code === 'DISCONNECTED'))) this.fail(e);
      }
    }
    try {
      await this.media?.closeProducer('screen');
    } catch {
      /* already gone */
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Reconnect
  // ---------------------------------------------------------------------------------------------------------

  private async rejoin(): Promise<void> {
    if (this.state !== 'reconnecting' || this.rejoining) return;
    this.rejoining = true;
    banner('Reconnected. Rejoining the meeting…');
    try {
      // Naming our previous session lets the server drop it now: after a silent network drop it would otherwise
      // linger (a duplicate tile for the others) until the server's ping timeout.
      const oldPid = this.myPid;
      const state = await this.sig.join({ meetingId: this.meetingId, previousParticipantId: oldPid || undefined });
      this.teardownMedia();
      this.model.apply(state, this.req.userName);
      this.stage.renameLocal(oldPid, state.you.participantId);
      this.stage.resetQualityPlan();
      this.speaker.remove(oldPid);
      if (this.local.audioTrack) this.speaker.add(state.you.participantId, this.local.audioTrack, true);
      for (const m of state.recentMessages ?? []) this.chat.add(m);
      this.state = 'joined';
      banner(null);
      toast('Reconnected', 'success');
      this.renderAll();
      await this.startMedia();
    } catch (e) {
      if (e instanceof RequestError && (e.code === 'MEETING_ENDED' || e.code === 'MEETING_NOT_FOUND' || e.code === 'ACCESS_DENIED')) {
        this.exit('removed', describeError(e));
      } else if (!(e instanceof RequestError && e.code === 'DISCONNECTED')) {
        banner(`Could not rejoin: ${describeError(e as RequestError)} Retrying…`, 'error');
        window.setTimeout(() => void this.rejoin(), 3000);
      }
    } finally {
      this.rejoining = false;
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Stats
  // ---------------------------------------------------------------------------------------------------------

  /** Every 5 s (measured from the previous report's answer, so the server's 1-per-5-s limit always holds). */
  private scheduleStats(): void {
    window.clearTimeout(this.statsTimer);
    this.statsTimer = window.setTimeout(async () => {
      const media = this.media;
      if (!media || this.state !== 'joined') return;
      const stats = await media.sampleStats();
      this.renderQuality(stats);
      try {
        await this.sig.request('stats:report', { meetingId: this.meetingId, stats });
      } catch {
        /* dropped (rate limit) or offline: the next one follows */
      }
      if (this.media === media) this.scheduleStats();
    }, STATS_INTERVAL_MS);
  }

  private renderQuality(s: StatsSample): void {
    this.lastStats = s;
    this.quality = qualityOf(s);
    const el = $('#quality');
    el.dataset.quality = this.quality;
    const parts = [
      s.rtt !== undefined ? `round trip ${s.rtt} ms` : null,
      s.packetLoss !== undefined ? `packet loss ${s.packetLoss}%` : null,
      s.jitter !== undefined ? `jitter ${s.jitter} ms` : null,
      s.bitrate !== undefined ? `${Math.round(s.bitrate / 1000)} kbps` : null,
    ].filter(Boolean);
    const label = `Connection quality: ${this.quality === 'unknown' ? 'measuring' : this.quality}${parts.length ? ` (${parts.join(', ')})` : ''}`;
    el.setAttribute('aria-label', label);
    el.title = label;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Actions
  // ---------------------------------------------------------------------------------------------------------

  private fail(e: unknown, prefix = ''): void {
    if (e instanceof RequestError) toast(prefix + describeError(e), 'error');
    else if (e instanceof DOMException) toast(`${prefix}${e.name === 'NotAllowedError' ? 'access was blocked by the browser.' : e.message}`, 'error');
    else toast(`${prefix}${(e as Error)?.message ?? String(e)}`, 'error');
  }

  private async act(fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
    } catch (e) {
      this.fail(e);
    }
  }

  private toggleHand(): Promise<void> {
    const up = this.model.me?.handRaised ?? false;
    return this.act(() => this.sig.request(up ? 'hand:lower' : 'hand:raise', { meetingId: this.meetingId }));
  }

  private react(emoji: string): Promise<void> {
    return this.act(() => this.sig.request('reaction:send', { meetingId: this.meetingId, emoji }));
  }

  private async pin(userId: string): Promise<void> {
    if (this.model.pinnedUserId === userId) {
      this.model.pinnedUserId = null; // unpinning is personal and local
      this.renderAll();
      return;
    }
    await this.act(() => this.sig.request('participant:pin', { meetingId: this.meetingId, targetUserId: userId }));
  }

  private moderatorMute(userId: string, kind: 'audio' | 'video'): Promise<void> {
    return this.act(() => this.sig.request('participant:mute', { meetingId: this.meetingId, targetUserId: userId, muteType: kind }));
  }

  private allowUnmute(userId: string, kind: 'audio' | 'video'): Promise<void> {
    return this.act(() => this.sig.request('participant:unmute', { meetingId: this.meetingId, targetUserId: userId, muteType: kind }));
  }

  private spotlight(userId: string | null): Promise<void> {
    return this.act(() => this.sig.request('participant:spotlight', { meetingId: this.meetingId, targetUserId: userId }));
  }

  private async setRole(userId: string, role: 'moderator' | 'participant'): Promise<void> {
    await this.act(() => this.sig.request('participant:role', { meetingId: this.meetingId, targetUserId: userId, role }));
  }

  private async chooseLayout(layout: Layout): Promise<void> {
    if (this.model.isModerator) {
      await this.act(() => this.sig.request('layout:change', { meetingId: this.meetingId, layout }));
    } else {
      this.model.viewOverride = layout === this.model.layout ? null : layout;
      this.renderAll();
    }
  }

  private async record(): Promise<void> {
    const event = this.model.recording === 'idle' ? 'recording:start' : 'recording:stop';
    await this.act(() => this.sig.request(event, { meetingId: this.meetingId }));
  }

  private async pauseRecording(): Promise<void> {
    const event = this.model.recording === 'paused' ? 'recording:resume' : 'recording:pause';
    await this.act(() => this.sig.request(event, { meetingId: this.meetingId }));
  }

  /** After a stop, hosts and moderators see the recording's status until it is ready, then its download links. */
  private async showRecording(recordingId: string): Promise<void> {
    if (!this.model?.isModerator) return;
    const box = $('#rec-files');
    box.hidden = false;
    box.textContent = 'Recording: processing…';
    const until = Date.now() + 5 * 60_000;
    for (;;) {
      let r: RecordingView;
      try {
        r = await getRecording(this.req.token, this.model.meetingId, recordingId);
      } catch {
        box.textContent = 'Recording: status unavailable';
        return;
      }
      if (r.status !== 'processing' && r.status !== 'recording') {
        box.replaceChildren();
        const head = document.createElement('span');
        head.className = 'rec-status';
        head.dataset.status = r.status;
        head.textContent = `Recording ${r.status}${r.failureReason ? ` (${r.failureReason})` : ''}`;
        box.append(head);
        for (const f of r.files ?? []) {
          const a = document.createElement('a');
          a.textContent = `Download ${f.name}`;
          a.dataset.file = f.name;
          a.addEventListener('click', () => void downloadFile(this.req.token, f.url, f.name).catch((e) => console.warn(e)));
          box.append(a);
        }
        return;
      }
      if (Date.now() > until) return;
      await new Promise((res) => setTimeout(res, 1500));
    }
  }

  private setRecording(state: string): void {
    if (!this.model) return;
    this.model.recording = state;
    this.renderAll();
  }

  private async copyLink(): Promise<void> {
    const link = meetingLink(this.meetingId);
    try {
      await navigator.clipboard.writeText(link);
      toast('Meeting link copied', 'success');
    } catch {
      const input = h('input', { value: link, 'aria-hidden': 'true' });
      document.body.append(input);
      input.select();
      const ok = document.execCommand('copy');
      input.remove();
      toast(ok ? 'Meeting link copied' : `Share this link: ${link}`, ok ? 'success' : 'info', 10000);
    }
  }

  async leave(): Promise<void> {
    if (this.state === 'left' || this.state === 'ended') return;
    this.state = 'left';
    this.chat.stopLocalTyping();
    try {
      await this.sig.request('leave-meeting', { meetingId: this.meetingId }, 3000);
    } catch {
      /* the disconnect below leaves anyway */
    }
    this.exit('left', 'You left the meeting.');
  }

  private async endForAll(): Promise<void> {
    const ok = await confirmDialog('End the meeting for everyone?', 'Everyone will be removed from the meeting.', 'End meeting', true);
    if (!ok) return;
    await this.act(() => this.sig.request('meeting:end', { meetingId: this.meetingId }));
  }

  private exit(kind: ExitKind, text: string): void {
    if (kind !== 'left' && (this.state === 'ended' || this.state === 'left')) return;
    this.state = kind === 'left' ? 'left' : 'ended';
    window.clearTimeout(this.statsTimer);
    window.clearInterval(this.sendWatch);
    this.showSendAlert(null);
    this.teardownMedia();
    for (const t of [this.local.audioTrack, this.local.videoTrack, this.local.screenTrack]) t?.stop();
    this.speaker.close();
    this.stage.dispose();
    for (const el of this.audioEls.values()) el.remove();
    this.audioEls.clear();
    for (const c of this.cleanups) c();
    this.sig.close();
    banner(null);
    this.onExit(kind, text);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Toolbar, panel, keyboard
  // ---------------------------------------------------------------------------------------------------------

  private tool(id: string, handler: () => void): HTMLButtonElement {
    const b = $<HTMLButtonElement>(`#${id}`);
    b.addEventListener('click', () => {
      this.speaker.resume();
      handler();
    });
    return b;
  }

  private setupToolbar(): void {
    this.tool('btn-mic', () => void this.toggleMic());
    this.tool('btn-cam', () => void this.toggleCam());
    this.tool('btn-share', () => void this.toggleShare());
    this.tool('btn-hand', () => void this.toggleHand());
    this.tool('btn-chat', () => this.openPanel(this.panel === 'chat' ? null : 'chat'));
    this.tool('btn-people', () => this.openPanel(this.panel === 'people' ? null : 'people'));
    const reactMenu = $('#reaction-menu');
    reactMenu.replaceChildren(
      ...REACTIONS.map((emoji) => {
        const b = h('button', { type: 'button', class: 'emoji-btn', 'aria-label': `React ${emoji}`, 'data-emoji': emoji }, emoji);
        b.addEventListener('click', () => void this.react(emoji));
        return b;
      }),
    );
    this.popovers.push(new Popover($<HTMLButtonElement>('#btn-react'), reactMenu));
    // Devices: camera, microphone and (where the browser can route audio) speaker, changed without leaving.
    const devBtn = $<HTMLButtonElement>('#btn-devices');
    this.devicePopover = new Popover(devBtn, $('#device-menu'));
    this.popovers.push(this.devicePopover);
    devBtn.addEventListener('click', () => void this.renderDeviceMenu());
    $<HTMLSelectElement>('#dev-camera').addEventListener('change', (e) => void this.chooseInput('camera', (e.target as HTMLSelectElement).value));
    $<HTMLSelectElement>('#dev-mic').addEventListener('change', (e) => void this.chooseInput('mic', (e.target as HTMLSelectElement).value));
    $<HTMLSelectElement>('#dev-speaker').addEventListener('change', (e) => void this.chooseSpeaker((e.target as HTMLSelectElement).value));
    const onDeviceChange = () => {
      if (this.devicePopover?.isOpen) void this.renderDeviceMenu();
    };
    navigator.mediaDevices?.addEventListener?.('devicechange', onDeviceChange);
    this.cleanups.push(() => navigator.mediaDevices?.removeEventListener?.('devicechange', onDeviceChange));
    const more = new Popover($<HTMLButtonElement>('#btn-more'), $('#more-menu'));
    this.popovers.push(more);
    for (const b of document.querySelectorAll<HTMLButtonElement>('#more-menu [data-layout]')) {
      const layout = b.dataset.layout as Layout;
      b.innerHTML = `${icon(LAYOUT_ICONS[layout])}<span>${LAYOUT_NAMES[layout]}</span>`;
      b.addEventListener('click', () => {
        more.close(true);
        void this.chooseLayout(layout);
      });
    }
    $('#btn-record').addEventListener('click', () => {
      more.close(true);
      void this.record();
    });
    $('#btn-rec-pause').addEventListener('click', () => {
      more.close(true);
      void this.pauseRecording();
    });
    $('#btn-copy-link').innerHTML = `${icon('link')}<span>Copy meeting link</span>`;
    $('#btn-copy-link').addEventListener('click', () => {
      more.close(true);
      void this.copyLink();
    });
    $('#copy-link').addEventListener('click', () => void this.copyLink());
    const leaveBtn = $<HTMLButtonElement>('#btn-leave');
    const leaveMenu = $('#leave-menu');
    leaveBtn.addEventListener('click', (e) => {
      if (!this.model.isHost) {
        e.stopImmediatePropagation();
        void this.leave();
      }
    });
    this.popovers.push(new Popover(leaveBtn, leaveMenu));
    $('#btn-leave-only').addEventListener('click', () => void this.leave());
    $('#btn-end-all').addEventListener('click', () => void this.endForAll());
    // Arrow keys move between the toolbar's buttons (Tab still reaches each of them too).
    const toolbar = $('.toolbar');
    toolbar.addEventListener('keydown', (e) => {
      if (e.key !== 'ArrowLeft' && e.key !== 'ArrowRight') return;
      const tools = [...toolbar.querySelectorAll<HTMLButtonElement>('button.tool')].filter((b) => b.offsetParent !== null);
      const i = tools.indexOf(document.activeElement as HTMLButtonElement);
      if (i < 0) return;
      e.preventDefault();
      tools[(i + (e.key === 'ArrowRight' ? 1 : -1) + tools.length) % tools.length].focus();
    });
    this.setToolContent('btn-react', 'smile', 'Reactions', 'Send a reaction');
    this.setToolContent('btn-more', 'more', 'More', 'More options');
    this.setToolContent('btn-people', 'people', 'People', 'Show participants');
    this.setToolContent('btn-devices', 'settings', 'Devices', 'Camera, microphone and speaker');
    this.setToolContent('btn-leave', 'leave', 'Leave', 'Leave meeting');
  }

  private setToolContent(id: string, iconName: string, text: string, label: string): void {
    const b = $(`#${id}`);
    const badge = b.querySelector('.badge');
    b.innerHTML = `${icon(iconName)}<span class="tool-label">${text}</span>`;
    if (badge) b.append(badge);
    b.setAttribute('aria-label', label);
    b.title = label;
  }

  private setupPanel(): void {
    $('#panel-close').innerHTML = icon('close');
    $('#panel-close').addEventListener('click', () => this.openPanel(null));
    $('#tab-chat').addEventListener('click', () => this.openPanel('chat'));
    $('#tab-people').addEventListener('click', () => this.openPanel('people'));
    const tabs = [$('#tab-chat'), $('#tab-people')];
    for (const t of tabs) {
      t.addEventListener('keydown', (e) => {
        if (e.key !== 'ArrowLeft' && e.key !== 'ArrowRight') return;
        const next = tabs[(tabs.indexOf(t) + 1) % 2];
        next.click();
        next.focus();
      });
    }
    $('#side-panel').addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && window.matchMedia('(max-width: 720px)').matches) this.openPanel(null);
    });
  }

  openPanel(which: 'chat' | 'people' | null): void {
    const wasOpen = this.panel;
    this.panel = which;
    const panel = $('#side-panel');
    panel.hidden = !which;
    $('#chat-panel').hidden = which !== 'chat';
    $('#people-panel').hidden = which !== 'people';
    $('#tab-chat').setAttribute('aria-selected', String(which === 'chat'));
    $('#tab-people').setAttribute('aria-selected', String(which === 'people'));
    $('#tab-chat').tabIndex = which === 'chat' ? 0 : -1;
    $('#tab-people').tabIndex = which === 'people' ? 0 : -1;
    $('#btn-chat').setAttribute('aria-pressed', String(which === 'chat'));
    $('#btn-people').setAttribute('aria-pressed', String(which === 'people'));
    document.body.classList.toggle('panel-open', Boolean(which));
    if (which === 'chat') {
      this.chat.markRead();
      this.chat.updateRecipients();
      $('#chat-input').focus();
    } else if (which === 'people') {
      this.people.render();
      if (wasOpen !== 'people') $('#tab-people').focus();
    } else if (wasOpen) {
      $(wasOpen === 'chat' ? '#btn-chat' : '#btn-people').focus();
    }
  }

  private setupKeyboard(): void {
    const onKey = (e: KeyboardEvent) => {
      if (!e.altKey || e.ctrlKey || e.metaKey) return;
      const map: Record<string, () => void> = {
        KeyM: () => void this.toggleMic(),
        KeyV: () => void this.toggleCam(),
        KeyH: () => void this.toggleHand(),
        KeyC: () => this.openPanel(this.panel === 'chat' ? null : 'chat'),
      };
      const fn = map[e.code];
      if (fn) {
        e.preventDefault();
        fn();
      }
    };
    document.addEventListener('keydown', onKey);
    this.cleanups.push(() => document.removeEventListener('keydown', onKey));
    const onUnload = () => {
      if (this.state === 'joined') this.sig.socket.emit('leave-meeting', { meetingId: this.meetingId });
    };
    window.addEventListener('pagehide', onUnload);
    this.cleanups.push(() => window.removeEventListener('pagehide', onUnload));
  }

  private renderChatBadge(n: number): void {
    const b = $('#btn-chat');
    let badge = b.querySelector<HTMLElement>('.badge');
    if (!badge) {
      badge = h('span', { class: 'badge', 'aria-hidden': 'true' });
      b.append(badge);
    }
    badge.textContent = n > 9 ? '9+' : String(n);
    badge.hidden = n === 0;
    b.setAttribute('aria-label', n ? `Chat, ${n} unread` : 'Chat');
  }

  private renderToolbar(): void {
    const m = this.model;
    const me = m.me;
    const mic = $<HTMLButtonElement>('#btn-mic');
    const micOn = this.local.micOn;
    mic.innerHTML = `${icon(micOn ? 'mic' : 'micOff')}<span class="tool-label">${micOn ? 'Mute' : 'Unmute'}</span>`;
    mic.setAttribute('aria-label', micOn ? 'Mute microphone' : 'Unmute microphone');
    mic.title = `${micOn ? 'Mute' : 'Unmute'} (Alt+M)`;
    mic.removeAttribute('aria-pressed');
    mic.dataset.state = micOn ? 'on' : 'off';
    this.markDeviceError(mic, this.deviceError.mic && !micOn ? this.deviceError.mic : '', 'Unmute');
    const cam = $<HTMLButtonElement>('#btn-cam');
    const camOn = this.local.camOn;
    cam.innerHTML = `${icon(camOn ? 'cam' : 'camOff')}<span class="tool-label">${camOn ? 'Stop video' : 'Start video'}</span>`;
    cam.setAttribute('aria-label', camOn ? 'Turn off camera' : 'Turn on camera');
    cam.title = `${camOn ? 'Turn off camera' : 'Turn on camera'} (Alt+V)`;
    cam.removeAttribute('aria-pressed');
    cam.dataset.state = camOn ? 'on' : 'off';
    this.markDeviceError(cam, this.deviceError.camera && !camOn ? this.deviceError.camera : '', 'Start video');
    const sharing = Boolean(this.local.screenTrack);
    const share = $<HTMLButtonElement>('#btn-share');
    share.innerHTML = `${icon('screen')}<span class="tool-label">${sharing ? 'Stop sharing' : 'Share'}</span>`;
    share.setAttribute('aria-label', sharing ? 'Stop sharing your screen' : 'Share your screen');
    share.setAttribute('aria-pressed', String(sharing));
    share.title = share.getAttribute('aria-label')!;
    const hand = $<HTMLButtonElement>('#btn-hand');
    const up = Boolean(me?.handRaised);
    hand.innerHTML = `${icon('hand')}<span class="tool-label">${up ? 'Lower hand' : 'Raise hand'}</span>`;
    hand.setAttribute('aria-label', up ? 'Lower hand' : 'Raise hand');
    hand.setAttribute('aria-pressed', String(up));
    hand.title = `${up ? 'Lower hand' : 'Raise hand'} (Alt+H)`;
    const chat = $<HTMLButtonElement>('#btn-chat');
    const badge = chat.querySelector('.badge');
    chat.innerHTML = `${icon('chat')}<span class="tool-label">Chat</span>`;
    if (badge) chat.append(badge);
    chat.title = 'Chat (Alt+C)';
    if (!chat.getAttribute('aria-label')) chat.setAttribute('aria-label', 'Chat');
    // Layout menu
    for (const b of document.querySelectorAll<HTMLButtonElement>('#more-menu [data-layout]')) {
      b.setAttribute('aria-checked', String(b.dataset.layout === m.effectiveLayout));
    }
    $('#layout-note').textContent = m.isModerator ? '(for everyone)' : '(only for you)';
    // Recording: offered to hosts and moderators where the meeting allows it.
    const recSection = $('#recording-section');
    recSection.hidden = !(m.settings.recordingEnabled && m.isModerator);
    const rec = $('#btn-record');
    rec.innerHTML = `${icon('record')}<span>${m.recording === 'idle' ? 'Start recording' : 'Stop recording'}</span>`;
    const pause = $('#btn-rec-pause');
    pause.hidden = m.recording === 'idle';
    pause.innerHTML = `${icon('record')}<span>${m.recording === 'paused' ? 'Resume recording' : 'Pause recording'}</span>`;
    $('#rec-indicator').hidden = m.recording === 'idle';
    $('#rec-indicator').classList.toggle('paused', m.recording === 'paused');
    // Leave: hosts get a menu (leave / end for all); everyone else leaves directly.
    $('#btn-leave').setAttribute('aria-haspopup', m.isHost ? 'true' : 'false');
    $('#btn-leave').setAttribute('aria-label', m.isHost ? 'Leave or end the meeting' : 'Leave meeting');
  }

  /** A wanted device that is not sent: a warning mark on its button, the reason in its label and tooltip. */
  private markDeviceError(b: HTMLButtonElement, why: string, retry: string): void {
    if (!why) {
      delete b.dataset.error;
      return;
    }
    b.dataset.error = why;
    b.insertAdjacentHTML('beforeend', '<span class="tool-warn" aria-hidden="true">!</span>');
    b.setAttribute('aria-label', `${retry} (try again): ${why}`);
    b.title = `${why} Press to try again.`;
  }

  private renderAll(): void {
    if (!this.model || this.state === 'left' || this.state === 'ended') return;
    const m = this.model;
    this.stage.render();
    this.renderToolbar();
    if (this.panel === 'people') this.people.render();
    else $('#people-count').textContent = String(m.people.size);
    if (this.panel === 'chat') this.chat.updateRecipients();
    const n = m.people.size;
    $('#participant-count').innerHTML = `${icon('people')}<span>${n}</span>`;
    $('#participant-count').setAttribute('aria-label', `${n} participant${n === 1 ? '' : 's'}`);
    $('#meeting-title').textContent = m.title || 'Meeting';
    $('#copy-link').innerHTML = `${icon('link')}<span class="chip-text">${m.meetingId}</span>`;
    document.title = `${m.title || 'Meeting'} · Meet`;
    const presenting = $('#presenting-banner');
    presenting.hidden = !this.local.screenTrack;
    presenting.textContent = this.local.screenTrack ? 'You are presenting to everyone' : '';
    document.body.dataset.connection = this.state;
  }

  /** Support / test hook: recent socket events and a way to simulate a dropped connection. */
  debug(): Record<string, unknown> {
    return {
      events: (name?: string) => debugEntries(name),
      state: () => ({
        state: this.state,
        you: this.model?.you,
        layout: this.model?.effectiveLayout,
        recording: this.model?.recording,
        people: this.model ? this.model.ordered().map((p) => ({ ...p, producers: [...p.producers.values()] })) : [],
        producers: this.media ? [...this.media.producers].map(([s, p]) => ({ source: s, id: p.id, paused: p.paused, closed: p.closed })) : [],
        consumers: this.media ? [...this.media.consumers.values()].map((c) => ({ id: c.consumer.id, participantId: c.participantId, kind: c.kind, source: c.source })) : [],
        transports: { send: this.media?.sendTransport?.connectionState, recv: this.media?.recvTransport?.connectionState },
        transportIds: { send: this.media?.sendTransport?.id, recv: this.media?.recvTransport?.id },
        iceRestarts: this.media?.iceRestarts ?? 0,
        mediaBlocked: this.mediaBlocked,
        quality: this.quality,
        stats: this.lastStats,
      }),
      dropConnection: () => this.sig.socket.io.engine?.close(),
      /** The browser's inbound-rtp stats of every consumer (framesDecoded, packetsReceived, bytesReceived …). */
      inbound: () => this.media?.inboundStats() ?? Promise.resolve([]),
      /** The local microphone ('audio') or camera ('video') track (tests end it to simulate an unplugged device). */
      localTrack: (kind: 'audio' | 'video') => (kind === 'audio' ? this.local.audioTrack : this.local.videoTrack),
      /** The send transport's outbound-rtp stats (rid, framesEncoded, bytesSent …) from the browser's getStats(). */
      outbound: async () => {
        const out: Array<Record<string, unknown>> = [];
        const report = await this.media?.sendTransport?.getStats();
        report?.forEach((r: Record<string, unknown> & { type: string }) => {
          if (r.type === 'outbound-rtp') out.push({ kind: r.kind, rid: r.rid, ssrc: r.ssrc, framesEncoded: r.framesEncoded, packetsSent: r.packetsSent, bytesSent: r.bytesSent, frameWidth: r.frameWidth, active: r.active, qualityLimitationReason: r.qualityLimitationReason });
        });
        return out;
      },
      speakerId: () => this.speakerId,
      audioSinks: () => [...this.audioEls.values()].map((el) => (el as HTMLAudioElement & { sinkId?: string }).sinkId ?? ''),
      sendTransportId: () => this.media?.sendTransport?.id ?? null,
      /**
       * Closes the send transport's RTCPeerConnection under mediasoup-client (no event fires; nothing is sent any
       * more): what a browser whose media connection died looks like to the send watchdog (support and tests).
       */
      breakSendTransport: () => {
        const handler = this.media?.sendTransport?.handler as unknown as { _pc?: RTCPeerConnection } | undefined;
        handler?._pc?.close();
        return Boolean(handler?._pc);
      },
      // A network that dies without a FIN: the client gives up on its connection and reconnects, but the old
      // websocket stays open, so the server still holds the old session until its ping timeout (support/tests).
      // The browser's `offline` event is what engine.io-client itself reacts to ("network connection lost"); its
      // transport's close is stubbed so the websocket really stays open, as with a dead network.
      dropConnectionSilently: () => {
        const engine = this.sig.socket.io.engine as unknown as { transport?: { close: () => void } } | undefined;
        if (!engine?.transport) return;
        engine.transport.close = () => {};
        window.dispatchEvent(new Event('offline'));
      },
    };
  }
}
