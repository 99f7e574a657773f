// Active speaker and "speaking" rings from the server's events: the server reads every microphone's level from the
// ssrc-audio-level header extension and sends `active-speaker` (with hysteresis, so the stage does not flicker) and
// `audio-levels` (the loudest few, at most twice a second, one empty list when the meeting falls silent). Nothing
// is measured in the browser, so no AudioContext is needed and every participant sees the same speaker.

const SPEAKING_LEVEL = 0.01; // linear amplitude, about -40 dBov
const STALE_MS = 1500; // a level older than this no longer counts (a report can be lost)

export class SpeakerDetector {
  private readonly known = new Set<string>();
  private active: string | null = null;
  private speaking = new Set<string>();
  private lastLevels = 0;
  private timer: number | undefined;

  /** `onChange(activeSpeaker, speakingNow)` runs when either changes. Keys are participant ids. */
  constructor(private readonly onChange: (active: string | null, speaking: Set<string>) => void) {}

  /** A participant whose audio is in the meeting (the track itself is not needed: the server measures). */
  add(key: string, _track?: MediaStreamTrack, _local = false): void {
    this.known.add(key);
  }

  remove(key: string): void {
    this.known.delete(key);
    let changed = false;
    if (this.active === key) {
      this.active = null;
      changed = true;
    }
    if (this.speaking.delete(key)) changed = true;
    if (changed) this.onChange(this.active, this.speaking);
  }

  /** Kept for callers that resume audio on a gesture; nothing to resume any more. */
  resume(): void {}

  get activeSpeaker(): string | null {
    return this.active;
  }

  /** `active-speaker {participantId}`. */
  onActiveSpeaker(participantId: string): void {
    if (participantId === this.active) return;
    this.active = participantId;
    this.onChange(this.active, this.speaking);
  }

  /** `audio-levels {levels}`. */
  onLevels(levels: { participantId: string; level: number }[]): void {
    this.lastLevels = Date.now();
    const speaking = new Set(levels.filter((l) => l.level >= SPEAKING_LEVEL).map((l) => l.participantId));
    this.setSpeaking(speaking);
    window.clearTimeout(this.timer);
    if (speaking.size > 0) {
      this.timer = window.setTimeout(() => {
        if (Date.now() - this.lastLevels >= STALE_MS) this.setSpeaking(new Set());
      }, STALE_MS);
    }
  }

  private setSpeaking(speaking: Set<string>): void {
    const changed = speaking.size !== this.speaking.size || [...speaking].some((k) => !this.speaking.has(k));
    if (!changed) return;
    this.speaking = speaking;
    this.onChange(this.active, this.speaking);
  }

  close(): void {
    window.clearTimeout(this.timer);
    this.timer = undefined;
    this.known.clear();
  }
}
