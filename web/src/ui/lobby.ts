// The lobby: who you are (a name → POST /dev/token in development mode, or a pasted JWT), which meeting (create
// one with POST /api/meetings, or an id / link / `?m=`), and a camera + microphone preview with device choice.
import { createMeeting, devToken, parseMeetingInput, readClaims } from '../api';
import { RequestError, describeError } from '../errors';
import { initials } from '../model';
import { $, h } from './dom';
import { icon } from './icons';

export interface JoinRequest {
  token: string;
  userName: string;
  meetingId: string;
  /** Live tracks handed over to the meeting (the lobby no longer owns them). */
  audioTrack: MediaStreamTrack | null;
  videoTrack: MediaStreamTrack | null;
  micOn: boolean;
  camOn: boolean;
  micId: string;
  cameraId: string;
  devToken: boolean;
  /** Devices the person wanted but that could not be opened, with the reason (the meeting tells them). */
  deviceErrors: { mic?: string; camera?: string };
}

const NAME_KEY = 'meet.name';
const IDENTITY_KEY = 'meet.identity';

export const CAMERA_CONSTRAINTS = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
export const MIC_CONSTRAINTS = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

export function videoConstraints(deviceId: string): MediaTrackConstraints {
  return deviceId ? { ...CAMERA_CONSTRAINTS, deviceId: { exact: deviceId } } : { ...CAMERA_CONSTRAINTS };
}

export function audioConstraints(deviceId: string): MediaTrackConstraints {
  return deviceId ? { ...MIC_CONSTRAINTS, deviceId: { exact: deviceId } } : { ...MIC_CONSTRAINTS };
}

/** How long a join waits for a camera / microphone that is still opening before it goes ahead without it. */
const DEVICE_WAIT_MS = 15_000;

export function mediaErrorText(kind: 'camera' | 'microphone', err: unknown): string {
  const name = (err as DOMException)?.name;
  if (name === 'TimeoutError') return `The ${kind} did not start within ${DEVICE_WAIT_MS / 1000} s.`;
  if (name === 'NotAllowedError' || name === 'SecurityError') return `Access to the ${kind} was blocked. Allow it in the browser's site settings.`;
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return `No ${kind} found.`;
  if (name === 'NotReadableError') return `The ${kind} is in use by another application.`;
  return `The ${kind} could not be started.`;
}

/** A cached development token for a name (so a reload keeps the same user id), or null. */
function cachedIdentity(name: string): { token: string; userId: string } | null {
  try {
    const raw = sessionStorage.getItem(IDENTITY_KEY);
    if (!raw) return null;
    const v = JSON.parse(raw) as { name: string; token: string; userId: string };
    if (v.name !== name) return null;
    const exp = readClaims(v.token)?.exp;
    if (exp && exp * 1000 < Date.now() + 60_000) return null;
    return { token: v.token, userId: v.userId };
  } catch {
    return null;
  }
}

export function forgetDevToken(): void {
  sessionStorage.removeItem(IDENTITY_KEY);
}

export class Lobby {
  private readonly root = $('#lobby');
  private readonly video = $<HTMLVideoElement>('#preview-video');
  private readonly frame = $('#preview-frame');
  private readonly micBtn = $<HTMLButtonElement>('#preview-mic');
  private readonly camBtn = $<HTMLButtonElement>('#preview-cam');
  private readonly camSelect = $<HTMLSelectElement>('#camera-select');
  private readonly micSelect = $<HTMLSelectElement>('#mic-select');
  private readonly nameInput = $<HTMLInputElement>('#name-input');
  private readonly tokenInput = $<HTMLTextAreaElement>('#token-input');
  private readonly meetingInput = $<HTMLInputElement>('#meeting-input');
  private readonly joinBtn = $<HTMLButtonElement>('#join-btn');
  private readonly createBtn = $<HTMLButtonElement>('#create-btn');
  private readonly error = $('#lobby-error');
  private readonly hint = $('#device-hint');
  private audioTrack: MediaStreamTrack | null = null;
  private videoTrack: MediaStreamTrack | null = null;
  /** What the person wants (the preview toggles); whether a track is open is separate. */
  private micOn = true;
  private camOn = true;
  /** Why the last attempt to open a device failed (cleared when one succeeds). */
  private readonly failure: { audio: string; video: string } = { audio: '', video: '' };
  /** The acquisition in flight per kind: acquisitions of one kind run one after another, never overlapping. */
  private readonly pending: { audio: Promise<void>; video: Promise<void> } = { audio: Promise.resolve(), video: Promise.resolve() };
  private busy = false;
  private meterCtx: AudioContext | null = null;
  private meterTimer: number | undefined;
  private handedOver = false;

  constructor(private readonly onJoin: (req: JoinRequest) => Promise<void>) {
    const params = new URLSearchParams(location.search);
    const m = params.get('m');
    if (m) {
      this.meetingInput.value = m;
      $('#lobby-title').textContent = 'Join meeting';
      $('#lobby-sub').textContent = `You are joining ${m}.`;
    }
    this.nameInput.value = localStorage.getItem(NAME_KEY) ?? '';
    this.nameInput.addEventListener('input', () => this.updateAvatar());
    this.tokenInput.addEventListener('input', () => this.describeToken());
    // A device that is wanted but failed to open: the click tries it again instead of turning it off.
    this.micBtn.addEventListener('click', () => void (this.micOn && !this.audioTrack ? this.acquire('audio') : this.setMic(!this.micOn)));
    this.camBtn.addEventListener('click', () => void (this.camOn && !this.videoTrack ? this.acquire('video') : this.setCam(!this.camOn)));
    this.camSelect.addEventListener('change', () => void this.restart('video'));
    this.micSelect.addEventListener('change', () => void this.restart('audio'));
    $('#lobby-form').addEventListener('submit', (e) => {
      e.preventDefault();
      void this.submit(false);
    });
    this.createBtn.addEventListener('click', () => void this.submit(true));
    navigator.mediaDevices?.addEventListener?.('devicechange', () => void this.listDevices());
    this.updateAvatar();
    this.renderToggles();
  }

  show(): void {
    this.root.hidden = false;
    document.title = 'Meet';
    void this.startPreview();
    (this.nameInput.value ? this.meetingInput.value ? this.joinBtn : this.meetingInput : this.nameInput).focus();
  }

  hide(): void {
    this.root.hidden = true;
    this.stopMeter();
  }

  private updateAvatar(): void {
    $('#preview-avatar').textContent = initials(this.nameInput.value || '?');
  }

  private describeToken(): void {
    const info = $('#token-info');
    const t = this.tokenInput.value.trim();
    if (!t) {
      info.textContent = '';
      return;
    }
    const c = readClaims(t);
    if (!c) info.textContent = 'This does not look like a JWT.';
    else {
      const exp = c.exp ? ` · expires ${new Date(c.exp * 1000).toLocaleString()}` : '';
      info.textContent = `Signed in as ${c.userName ?? c.user_id ?? 'unknown user'}${c.campus_id ? ` (${c.campus_id})` : ''}${exp}`;
    }
  }

  private renderToggles(): void {
    const mic = this.micOn && Boolean(this.audioTrack);
    const cam = this.camOn && Boolean(this.videoTrack);
    const micFailed = this.micOn && !this.audioTrack && Boolean(this.failure.audio);
    const camFailed = this.camOn && !this.videoTrack && Boolean(this.failure.video);
    this.micBtn.innerHTML = icon(mic ? 'mic' : 'micOff');
    this.micBtn.setAttribute('aria-label', micFailed ? 'Try the microphone again' : mic ? 'Turn off microphone' : 'Turn on microphone');
    this.micBtn.setAttribute('aria-pressed', String(mic));
    this.micBtn.classList.toggle('off', !mic);
    this.camBtn.innerHTML = icon(cam ? 'cam' : 'camOff');
    this.camBtn.setAttribute('aria-label', camFailed ? 'Try the camera again' : cam ? 'Turn off camera' : 'Turn on camera');
    this.camBtn.setAttribute('aria-pressed', String(cam));
    this.camBtn.classList.toggle('off', !cam);
    this.frame.dataset.camera = cam ? 'on' : 'off';
    this.frame.dataset.mic = mic ? 'on' : 'off';
  }

  private async startPreview(): Promise<void> {
    if (!navigator.mediaDevices?.getUserMedia) {
      this.hint.textContent = 'This browser cannot use a camera or microphone here (a secure origin is needed).';
      this.micOn = this.camOn = false;
      this.renderToggles();
      return;
    }
    await Promise.all([this.camOn ? this.acquire('video') : null, this.micOn ? this.acquire('audio') : null]);
    await this.listDevices();
  }

  /** Opens the chosen device of `kind` (queued behind any acquisition of that kind still running). */
  private acquire(kind: 'audio' | 'video'): Promise<void> {
    const next = this.pending[kind].then(() => this.doAcquire(kind));
    this.pending[kind] = next;
    return next;
  }

  private async doAcquire(kind: 'audio' | 'video'): Promise<void> {
    if (this.handedOver) return;
    try {
      const constraints = kind === 'video' ? { video: videoConstraints(this.camSelect.value) } : { audio: audioConstraints(this.micSelect.value) };
      const stream = await navigator.mediaDevices.getUserMedia(constraints);
      const track = (kind === 'video' ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0]) ?? null;
      const wanted = kind === 'video' ? this.camOn : this.micOn;
      if (this.handedOver || !wanted) {
        // Turned off (or joined) while the device was opening: this track is nobody's.
        track?.stop();
        return;
      }
      if (kind === 'video') {
        this.videoTrack?.stop();
        this.videoTrack = track;
        this.video.srcObject = track ? new MediaStream([track]) : null;
      } else {
        this.audioTrack?.stop();
        this.audioTrack = track;
        this.startMeter();
      }
      this.failure[kind] = '';
    } catch (err) {
      this.failure[kind] = mediaErrorText(kind === 'video' ? 'camera' : 'microphone', err);
    }
    this.hint.textContent = [this.failure.video, this.failure.audio].filter(Boolean).join(' ');
    this.renderToggles();
  }

  /**
   * Before joining: waits for the devices still opening (a fast click must not join without them), and opens once
   * more a wanted device that failed or is not open (it may have been busy). Returns why a wanted one is missing.
   */
  private async settleDevices(): Promise<{ mic?: string; camera?: string }> {
    const errors: { mic?: string; camera?: string } = {};
    if (!navigator.mediaDevices?.getUserMedia) return errors;
    const live = (t: MediaStreamTrack | null) => Boolean(t && t.readyState === 'live');
    const settle = async (kind: 'audio' | 'video') => {
      const want = () => (kind === 'audio' ? this.micOn : this.camOn);
      const track = () => (kind === 'audio' ? this.audioTrack : this.videoTrack);
      if (!want()) return;
      let timer: number | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = window.setTimeout(() => resolve('timeout'), DEVICE_WAIT_MS);
      });
      try {
        if ((await Promise.race([this.pending[kind], timeout])) !== 'timeout' && !live(track()) && want()) {
          if ((await Promise.race([this.acquire(kind), timeout])) === 'timeout') this.failure[kind] ||= mediaErrorText(kind === 'audio' ? 'microphone' : 'camera', { name: 'TimeoutError' });
        } else if (!live(track())) {
          this.failure[kind] ||= mediaErrorText(kind === 'audio' ? 'microphone' : 'camera', { name: 'TimeoutError' });
        }
      } finally {
        window.clearTimeout(timer);
      }
      if (want() && !live(track())) errors[kind === 'audio' ? 'mic' : 'camera'] = this.failure[kind] || `The ${kind === 'audio' ? 'microphone' : 'camera'} could not be started.`;
    };
    await Promise.all([settle('audio'), settle('video')]);
    return errors;
  }

  private release(kind: 'audio' | 'video'): void {
    if (kind === 'video') {
      this.videoTrack?.stop();
      this.videoTrack = null;
      this.video.srcObject = null;
    } else {
      this.audioTrack?.stop();
      this.audioTrack = null;
      this.stopMeter();
    }
  }

  private async setMic(on: boolean): Promise<void> {
    this.micOn = on;
    if (on) await this.acquire('audio');
    else this.release('audio');
    this.renderToggles();
  }

  private async setCam(on: boolean): Promise<void> {
    this.camOn = on;
    if (on) await this.acquire('video');
    else this.release('video');
    this.renderToggles();
  }

  private async restart(kind: 'audio' | 'video'): Promise<void> {
    if (kind === 'video' && this.camOn) await this.acquire('video');
    if (kind === 'audio' && this.micOn) await this.acquire('audio');
  }

  private async listDevices(): Promise<void> {
    let devices: MediaDeviceInfo[] = [];
    try {
      devices = await navigator.mediaDevices.enumerateDevices();
    } catch {
      return;
    }
    const fill = (select: HTMLSelectElement, kind: MediaDeviceKind, current: MediaStreamTrack | null, fallback: string) => {
      const list = devices.filter((d) => d.kind === kind && d.deviceId);
      const selected = current?.getSettings().deviceId ?? select.value;
      select.replaceChildren(
        ...(list.length ? list : [{ deviceId: '', label: fallback } as MediaDeviceInfo]).map((d, i) =>
          h('option', { value: d.deviceId, selected: d.deviceId === selected }, d.label || `${fallback} ${i + 1}`),
        ),
      );
      select.disabled = list.length === 0;
    };
    fill(this.camSelect, 'videoinput', this.videoTrack, 'Camera');
    fill(this.micSelect, 'audioinput', this.audioTrack, 'Microphone');
  }

  private startMeter(): void {
    this.stopMeter();
    if (!this.audioTrack) return;
    try {
      this.meterCtx = new AudioContext();
      const src = this.meterCtx.createMediaStreamSource(new MediaStream([this.audioTrack]));
      const an = this.meterCtx.createAnalyser();
      an.fftSize = 256;
      src.connect(an);
      const buf = new Float32Array(an.fftSize);
      const bar = $('#preview-level');
      this.meterTimer = window.setInterval(() => {
        an.getFloatTimeDomainData(buf);
        let s = 0;
        for (const v of buf) s += v * v;
        const level = Math.min(1, Math.sqrt(s / buf.length) * 6);
        bar.style.transform = `scaleX(${level.toFixed(3)})`;
      }, 100);
    } catch {
      /* no meter */
    }
  }

  private stopMeter(): void {
    if (this.meterTimer !== undefined) clearInterval(this.meterTimer);
    this.meterTimer = undefined;
    void this.meterCtx?.close().catch(() => {});
    this.meterCtx = null;
    $('#preview-level').style.transform = 'scaleX(0)';
  }

  private showError(message: string): void {
    this.error.textContent = message;
  }

  private setBusy(busy: boolean, label?: HTMLButtonElement): void {
    this.busy = busy;
    for (const b of [this.joinBtn, this.createBtn]) {
      b.disabled = busy;
      b.removeAttribute('aria-busy');
    }
    if (busy && label) label.setAttribute('aria-busy', 'true');
  }

  /** Who joins: the pasted token, or a development token for the typed name. */
  private async identity(): Promise<{ token: string; userName: string; dev: boolean }> {
    const pasted = this.tokenInput.value.trim();
    if (pasted) {
      const claims = readClaims(pasted);
      if (!claims) throw new RequestError({ code: 'BAD_TOKEN', message: 'The pasted token is not a JWT (three dot-separated parts).' });
      if (claims.exp && claims.exp * 1000 < Date.now()) throw new RequestError({ code: 'BAD_TOKEN', message: 'The pasted token has expired.' });
      return { token: pasted, userName: claims.userName ?? claims.user_id ?? 'You', dev: false };
    }
    const name = this.nameInput.value.trim();
    if (!name) {
      this.nameInput.focus();
      throw new RequestError({ code: 'NO_NAME', message: 'Enter your name (or open "Sign in with a token").' });
    }
    localStorage.setItem(NAME_KEY, name);
    const cached = cachedIdentity(name);
    if (cached) return { token: cached.token, userName: name, dev: true };
    try {
      const { token, userId } = await devToken(name);
      sessionStorage.setItem(IDENTITY_KEY, JSON.stringify({ name, token, userId }));
      return { token, userName: name, dev: true };
    } catch (e) {
      if (e instanceof RequestError && e.code === 'NO_DEV_TOKENS') ($('#token-box') as HTMLDetailsElement).open = true;
      throw e;
    }
  }

  private async submit(create: boolean): Promise<void> {
    if (this.busy) return;
    this.showError('');
    let meetingId: string | null = null;
    if (!create) {
      meetingId = parseMeetingInput(this.meetingInput.value);
      if (!meetingId) {
        this.meetingInput.focus();
        this.showError(this.meetingInput.value.trim() ? 'That is not a meeting ID or meeting link.' : 'Enter a meeting ID or link, or start a new meeting.');
        return;
      }
    }
    this.setBusy(true, create ? this.createBtn : this.joinBtn);
    // The devices settle while the token and the meeting are fetched; the join waits for both.
    const devices = this.settleDevices();
    const waitNote = window.setTimeout(() => {
      this.hint.textContent = 'Waiting for your camera and microphone…';
    }, 400);
    void devices.then(() => {
      window.clearTimeout(waitNote);
      if (this.hint.textContent === 'Waiting for your camera and microphone…') this.hint.textContent = [this.failure.video, this.failure.audio].filter(Boolean).join(' ');
    });
    try {
      const who = await this.identity();
      if (create) {
        const meeting = await createMeeting(who.token, {
          title: ($('#title-input') as HTMLInputElement).value.trim() || `${who.userName}'s meeting`,
          recordingEnabled: ($('#allow-recording') as HTMLInputElement).checked,
          allowSelfUnmute: ($('#allow-unmute') as HTMLInputElement).checked,
        });
        meetingId = meeting.meetingId;
      }
      history.replaceState(null, '', `/?m=${encodeURIComponent(meetingId!)}`);
      this.meetingInput.value = meetingId!;
      const deviceErrors = await devices;
      const live = (t: MediaStreamTrack | null) => (t && t.readyState === 'live' ? t : null);
      const audioTrack = this.micOn ? live(this.audioTrack) : null;
      const videoTrack = this.camOn ? live(this.videoTrack) : null;
      this.handedOver = true;
      await this.onJoin({
        token: who.token,
        userName: who.userName,
        meetingId: meetingId!,
        audioTrack,
        videoTrack,
        micOn: Boolean(audioTrack),
        camOn: Boolean(videoTrack),
        micId: audioTrack?.getSettings().deviceId ?? this.micSelect.value,
        cameraId: videoTrack?.getSettings().deviceId ?? this.camSelect.value,
        devToken: who.dev,
        deviceErrors,
      });
    } catch (e) {
      this.handedOver = false;
      await devices.catch(() => undefined);
      const msg = e instanceof RequestError ? (e.code.startsWith('HTTP_') || e.code === 'NO_DEV_TOKENS' || e.code === 'BAD_TOKEN' || e.code === 'NO_NAME' || e.code === 'NETWORK' || e.code === 'UNAUTHORIZED' ? e.message : describeError(e)) : String((e as Error)?.message ?? e);
      this.showError(msg);
    } finally {
      this.setBusy(false);
    }
  }

  /** The meeting took the tracks; the lobby must not stop them. */
  get tracksHandedOver(): boolean {
    return this.handedOver;
  }

  /** Back from a failed join: the lobby owns its tracks again. */
  reclaim(): void {
    this.handedOver = false;
  }
}
