// Active speaker from received audio levels: one WebAudio AnalyserNode per audio track (the server has no
// active-speaker event yet). The loudest remote participant above a threshold becomes the active speaker and
// keeps the role for a short hold time, so the stage does not flicker between people.

const THRESHOLD = 0.015; // RMS of the time-domain signal (about -36 dBFS)
const HOLD_MS = 1500;
const TICK_MS = 150;

interface Meter {
  source: MediaStreamAudioSourceNode;
  analyser: AnalyserNode;
  buf: Float32Array<ArrayBuffer>;
  level: number;
  local: boolean;
}

export class SpeakerDetector {
  private ctx: AudioContext | null = null;
  private readonly meters = new Map<string, Meter>();
  private timer: number | undefined;
  private active: string | null = null;
  private activeSince = 0;
  private lastLoud = 0;
  private speaking = new Set<string>();

  /** `onChange(activeSpeaker, speakingNow)` runs when either changes. Keys are participant ids. */
  constructor(private readonly onChange: (active: string | null, speaking: Set<string>) => void) {}

  private context(): AudioContext {
    if (!this.ctx) this.ctx = new AudioContext();
    if (this.ctx.state === 'suspended') void this.ctx.resume().catch(() => {});
    return this.ctx;
  }

  /** Call from a user gesture (autoplay policies suspend contexts created without one). */
  resume(): void {
    if (this.ctx?.state === 'suspended') void this.ctx.resume().catch(() => {});
  }

  add(key: string, track: MediaStreamTrack, local = false): void {
    this.remove(key);
    try {
      const ctx = this.context();
      const source = ctx.createMediaStreamSource(new MediaStream([track]));
      const analyser = ctx.createAnalyser();
      analyser.fftSize = 512;
      analyser.smoothingTimeConstant = 0.3;
      source.connect(analyser);
      this.meters.set(key, { source, analyser, buf: new Float32Array(analyser.fftSize), level: 0, local });
      if (this.timer === undefined) this.timer = window.setInterval(() => this.tick(), TICK_MS);
    } catch (e) {
      console.warn('audio level meter unavailable', e);
    }
  }

  remove(key: string): void {
    const m = this.meters.get(key);
    if (!m) return;
    m.source.disconnect();
    m.analyser.disconnect();
    this.meters.delete(key);
  }

  level(key: string): number {
    return this.meters.get(key)?.level ?? 0;
  }

  get activeSpeaker(): string | null {
    return this.active;
  }

  private tick(): void {
    const now = performance.now();
    let loudest: string | null = null;
    let loudestLevel = THRESHOLD;
    const speaking = new Set<string>();
    for (const [key, m] of this.meters) {
      m.analyser.getFloatTimeDomainData(m.buf);
      let sum = 0;
      for (let i = 0; i < m.buf.length; i++) sum += m.buf[i] * m.buf[i];
      const rms = Math.sqrt(sum / m.buf.length);
      m.level = m.level * 0.5 + rms * 0.5;
      if (m.level > THRESHOLD) speaking.add(key);
      if (!m.local && m.level > loudestLevel) {
        loudest = key;
        loudestLevel = m.level;
      }
    }
    let active = this.active;
    if (loudest) {
      this.lastLoud = now;
      // Switch when nobody holds the role or the holder has been quiet; a louder voice takes over after the hold.
      if (!active || !this.meters.has(active) || (loudest !== active && (now - this.activeSince > HOLD_MS || !speaking.has(active)))) {
        active = loudest;
      }
    } else if (active && (now - this.lastLoud > HOLD_MS * 4 || !this.meters.has(active))) {
      active = null;
    }
    const changedSpeaking = speaking.size !== this.speaking.size || [...speaking].some((k) => !this.speaking.has(k));
    if (active !== this.active) this.activeSince = now;
    if (active !== this.active || changedSpeaking) {
      this.active = active;
      this.speaking = speaking;
      this.onChange(active, speaking);
    }
  }

  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    for (const key of [...this.meters.keys()]) this.remove(key);
    void this.ctx?.close().catch(() => {});
    this.ctx = null;
  }
}
