// The video stage: one tile per participant's camera (avatar when off) and one per screen share; layouts grid,
// speaker (one large tile + filmstrip) and presentation (the shared screen large); pin, spotlight, active speaker
// highlight, hand / mute badges, and floating reactions.
import { initials, roleLabel, type Model, type Person } from '../model';
import type { Layout, Quality } from '../types';
import { $, h, setBool } from './dom';
import { icon } from './icons';

type TileSource = 'camera' | 'screen';

export interface StageActions {
  pin(userId: string): void;
}

class Tile {
  readonly el: HTMLElement;
  readonly video: HTMLVideoElement;
  private readonly name: HTMLElement;
  private readonly role: HTMLElement;
  private readonly mic: HTMLElement;
  private readonly avatar: HTMLElement;
  private readonly pinBtn: HTMLButtonElement;
  private track: MediaStreamTrack | null = null;
  private lastMic: boolean | null = null;

  constructor(
    readonly key: string,
    readonly participantId: string,
    readonly source: TileSource,
    actions: StageActions,
    private readonly getUserId: () => string,
  ) {
    this.video = h('video', { autoplay: true, playsinline: true, muted: true, 'aria-hidden': 'true' });
    this.video.muted = true; // audio plays from separate <audio> elements
    this.avatar = h('div', { class: 'tile-avatar', 'aria-hidden': 'true' });
    this.name = h('span', { class: 'tile-name' });
    this.role = h('span', { class: 'tile-role' });
    this.mic = h('span', { class: 'tile-mic', role: 'img' });
    this.pinBtn = h('button', { type: 'button', class: 'tile-btn tile-pin' });
    this.pinBtn.innerHTML = icon('pin');
    this.pinBtn.addEventListener('click', () => actions.pin(this.getUserId()));
    this.el = h(
      'article',
      { class: `tile tile-${source}`, 'data-participant-id': participantId, 'data-source': source, tabindex: '-1' },
      this.video,
      this.avatar,
      h('div', { class: 'tile-badges' },
        h('span', { class: 'tile-hand', role: 'img', 'aria-label': 'Hand raised', title: 'Hand raised' }, '✋'),
        h('span', { class: 'tile-spot', role: 'img', 'aria-label': 'Spotlighted', title: 'Spotlighted', html: icon('star') }),
        this.quality,
      ),
      h('div', { class: 'tile-actions' }, this.pinBtn),
      h('div', { class: 'nameplate' }, source === 'camera' ? this.mic : h('span', { class: 'tile-screen-icon', html: icon('present') }), this.name, this.role),
    );
  }

  /** The connection-quality badge: four bars, shown only when the link is not good (CSS: data-quality). */
  private readonly quality = h('span', { class: 'tile-quality', role: 'img' },
    h('i', {}), h('i', {}), h('i', {}), h('i', {}));

  setTrack(track: MediaStreamTrack | null): void {
    if (track === this.track) return;
    this.track = track;
    this.video.srcObject = track ? new MediaStream([track]) : null;
    if (track) void this.video.play().catch(() => {});
  }

  get hasTrack(): boolean {
    return Boolean(this.track && this.track.readyState === 'live');
  }

  update(p: Person, model: Model): void {
    const el = this.el;
    const camOn = this.source === 'screen' ? true : model.camOn(p);
    const micOn = model.micOn(p);
    const showVideo = this.hasTrack && camOn;
    el.dataset.userId = p.userId;
    el.dataset.cam = showVideo ? 'on' : 'off';
    el.dataset.mic = micOn ? 'on' : 'off';
    el.dataset.hand = p.handRaised ? 'up' : 'down';
    setBool(el, 'data-local', p.isLocal);
    setBool(el, 'data-pinned', model.pinnedUserId === p.userId && this.source === 'camera');
    setBool(el, 'data-spotlight', model.spotlightUserId === p.userId && this.source === 'camera');
    setBool(el, 'data-speaking', this.source === 'camera' && micOn && model.speaking.has(p.participantId));
    const quality = this.source === 'camera' ? model.quality.get(p.participantId) : undefined;
    if (quality) el.dataset.quality = quality;
    else delete el.dataset.quality;
    this.quality.setAttribute('aria-label', quality ? `Connection ${quality}` : '');
    this.quality.title = quality ? `Connection: ${quality}` : '';
    el.classList.toggle('mirror', p.isLocal && this.source === 'camera');
    const who = p.isLocal ? `${p.userName} (you)` : p.userName;
    this.name.textContent = this.source === 'screen' ? `${who} — screen` : who;
    this.role.textContent = this.source === 'camera' ? roleLabel(p.role) : '';
    this.role.hidden = !this.role.textContent;
    this.avatar.textContent = initials(p.userName);
    if (this.lastMic !== micOn) {
      this.mic.innerHTML = icon(micOn ? 'mic' : 'micOff');
      this.lastMic = micOn;
    }
    this.mic.setAttribute('aria-label', micOn ? 'Microphone on' : 'Microphone muted');
    const pinned = model.pinnedUserId === p.userId;
    this.pinBtn.hidden = this.source === 'screen';
    this.pinBtn.setAttribute('aria-label', `${pinned ? 'Unpin' : 'Pin'} ${p.userName}`);
    this.pinBtn.setAttribute('aria-pressed', String(pinned));
    const states = [
      this.source === 'screen' ? 'screen share' : null,
      this.source === 'camera' && roleLabel(p.role) ? roleLabel(p.role) : null,
      this.source === 'camera' ? (micOn ? 'microphone on' : 'microphone muted') : null,
      this.source === 'camera' && !showVideo ? 'camera off' : null,
      p.handRaised ? 'hand raised' : null,
      quality === 'poor' || quality === 'lost' ? `connection ${quality}` : null,
    ].filter(Boolean);
    el.setAttribute('aria-label', `${who}${states.length ? `, ${states.join(', ')}` : ''}`);
  }

  dispose(): void {
    this.video.srcObject = null;
    this.el.remove();
  }
}

/** cols × rows of equal tiles filling width × height best, trying a few aspect ratios. */
function fitGrid(n: number, width: number, height: number, gap: number): { w: number; h: number } {
  let best = { w: 0, h: 0, score: 0 };
  // Landscape stages keep the cameras' shape; tall (phone) stages may use squarer tiles to fill the height.
  const aspects = width >= height ? [16 / 9, 4 / 3] : [16 / 9, 1, 3 / 4];
  for (const aspect of aspects) {
    for (let cols = 1; cols <= n; cols++) {
      const rows = Math.ceil(n / cols);
      let w = (width - gap * (cols - 1)) / cols;
      let hgt = w / aspect;
      if (hgt * rows + gap * (rows - 1) > height) {
        hgt = (height - gap * (rows - 1)) / rows;
        w = hgt * aspect;
      }
      const score = w * hgt * (aspect === 16 / 9 ? 1.15 : 1); // prefer the camera's own shape
      if (w > 0 && hgt > 0 && score > best.score) best = { w, h: hgt, score };
    }
  }
  return { w: Math.floor(best.w), h: Math.floor(best.h) };
}

export class Stage {
  private readonly root = $('#stage');
  private readonly main = $('#stage-main');
  private readonly strip = $('#tiles');
  private readonly reactions = $('#reactions');
  private readonly tiles = new Map<string, Tile>();
  private readonly tracks = new Map<string, MediaStreamTrack>();
  private lastQualities = new Map<string, Quality>();
  onQualityPlan: (plan: Map<string, Quality>) => void = () => {};

  constructor(
    private readonly model: Model,
    private readonly actions: StageActions,
  ) {
    new ResizeObserver(() => this.sizeGrid()).observe(this.root);
  }

  setTrack(participantId: string, source: TileSource, track: MediaStreamTrack | null): void {
    const key = `${source}:${participantId}`;
    if (track) this.tracks.set(key, track);
    else this.tracks.delete(key);
    this.render();
  }

  clearRemote(): void {
    for (const key of [...this.tracks.keys()]) {
      const pid = key.slice(key.indexOf(':') + 1);
      if (pid !== this.model.you.participantId) this.tracks.delete(key);
    }
  }

  /** Moves the local tracks to a new participant id (a rejoin gives us a new session id). */
  renameLocal(oldPid: string, newPid: string): void {
    for (const source of ['camera', 'screen'] as const) {
      const t = this.tracks.get(`${source}:${oldPid}`);
      if (t) {
        this.tracks.delete(`${source}:${oldPid}`);
        this.tracks.set(`${source}:${newPid}`, t);
      }
    }
  }

  private mainKey(layout: Layout, present: Map<string, Person>): string | null {
    const m = this.model;
    const camOf = (userId: string | null): string | null => {
      if (!userId) return null;
      const p = m.firstByUser(userId);
      return p && present.has(`camera:${p.participantId}`) ? `camera:${p.participantId}` : null;
    };
    const screenKey = [...present.keys()].find((k) => k.startsWith('screen:')) ?? null;
    if (layout === 'presentation' && screenKey) return camOf(m.pinnedUserId) ?? screenKey;
    const pinned = camOf(m.pinnedUserId);
    if (pinned) return pinned;
    const spot = camOf(m.spotlightUserId);
    if (spot) return spot;
    if (screenKey && layout !== 'grid') return screenKey;
    if (m.activeSpeaker && present.has(`camera:${m.activeSpeaker}`)) return `camera:${m.activeSpeaker}`;
    const firstRemote = m.ordered().find((p) => !p.isLocal);
    if (firstRemote) return `camera:${firstRemote.participantId}`;
    const me = m.me;
    return me ? `camera:${me.participantId}` : null;
  }

  render(): void {
    const m = this.model;
    const wanted = new Map<string, Person>();
    const order: string[] = [];
    const people = m.ordered();
    for (const p of people) {
      const screenKey = `screen:${p.participantId}`;
      if (m.producerOf(p, 'screen') || this.tracks.has(screenKey)) {
        wanted.set(screenKey, p);
        order.push(screenKey);
      }
    }
    // Pinned, then spotlighted, then everyone in join order.
    const rank = (p: Person) => (m.pinnedUserId === p.userId ? 0 : m.spotlightUserId === p.userId ? 1 : 2);
    for (const p of [...people].sort((a, b) => rank(a) - rank(b) || a.joinOrder - b.joinOrder)) {
      const key = `camera:${p.participantId}`;
      wanted.set(key, p);
      order.push(key);
    }
    for (const [key, tile] of this.tiles) {
      if (!wanted.has(key)) {
        tile.dispose();
        this.tiles.delete(key);
      }
    }
    for (const [key, p] of wanted) {
      let tile = this.tiles.get(key);
      if (!tile) {
        const source = key.startsWith('screen:') ? 'screen' : 'camera';
        const pid = p.participantId;
        tile = new Tile(key, pid, source, this.actions, () => this.model.people.get(pid)?.userId ?? p.userId);
        this.tiles.set(key, tile);
      }
      tile.setTrack(this.tracks.get(key) ?? null);
      tile.update(p, m);
    }

    const layout = m.effectiveLayout;
    const mainKey = layout === 'grid' ? null : this.mainKey(layout, wanted);
    this.root.dataset.layout = layout;
    this.root.dataset.count = String(wanted.size);
    const stripKeys = order.filter((k) => k !== mainKey);
    if (mainKey) {
      const tile = this.tiles.get(mainKey)!;
      if (tile.el.parentElement !== this.main) this.place(this.main, tile, null);
    }
    this.main.hidden = !mainKey;
    let prev: Element | null = null;
    for (const key of stripKeys) {
      const tile = this.tiles.get(key)!;
      const expectedNext: Element | null = prev ? prev.nextElementSibling : this.strip.firstElementChild;
      if (tile.el.parentElement !== this.strip || expectedNext !== tile.el) this.place(this.strip, tile, prev);
      prev = tile.el;
    }
    this.strip.hidden = stripKeys.length === 0;
    this.sizeGrid();
    this.planQuality(layout, mainKey, stripKeys);
  }

  /** Re-parents a tile; a moved <video> is paused by the browser, so play it again. */
  private place(parent: HTMLElement, tile: Tile, after: Element | null): void {
    const focused = tile.el.contains(document.activeElement) ? (document.activeElement as HTMLElement) : null;
    if (after) after.after(tile.el);
    else parent.prepend(tile.el);
    if (tile.video.srcObject) void tile.video.play().catch(() => {});
    focused?.focus();
  }

  private sizeGrid(): void {
    const layout = this.root.dataset.layout;
    if (layout !== 'grid') {
      this.strip.style.removeProperty('--tile-w');
      this.strip.style.removeProperty('--tile-h');
      return;
    }
    const n = this.strip.children.length;
    if (!n) return;
    const rect = this.strip.getBoundingClientRect();
    const gap = 8;
    const { w, h: hgt } = fitGrid(n, rect.width, rect.height, gap);
    this.strip.style.setProperty('--tile-w', `${w}px`);
    this.strip.style.setProperty('--tile-h', `${hgt}px`);
  }

  /** Simulcast: the large tile gets the high layer, small ones the low layer (quality:change per participant). */
  private planQuality(layout: Layout, mainKey: string | null, stripKeys: string[]): void {
    const plan = new Map<string, Quality>();
    const remoteCams = stripKeys.filter((k) => k.startsWith('camera:'));
    for (const key of remoteCams) {
      const pid = key.slice(7);
      if (pid === this.model.you.participantId || !this.tiles.get(key)?.hasTrack) continue;
      plan.set(pid, layout === 'grid' ? (remoteCams.length > 6 ? 'low' : remoteCams.length > 2 ? 'medium' : 'high') : 'low');
    }
    if (mainKey?.startsWith('camera:') && mainKey.slice(7) !== this.model.you.participantId && this.tiles.get(mainKey)?.hasTrack) {
      plan.set(mainKey.slice(7), 'high');
    }
    const changed = new Map<string, Quality>();
    for (const [pid, q] of plan) if (this.lastQualities.get(pid) !== q) changed.set(pid, q);
    this.lastQualities = plan;
    if (changed.size) this.onQualityPlan(changed);
  }

  resetQualityPlan(): void {
    this.lastQualities = new Map();
  }

  showReaction(emoji: string, userName: string, participantId: string): void {
    const el = h(
      'div',
      { class: 'reaction-float', 'data-participant-id': participantId, role: 'img', 'aria-label': `${userName} reacted ${emoji}` },
      h('span', { class: 'reaction-emoji' }, emoji),
      h('span', { class: 'reaction-name' }, userName),
    );
    el.style.left = `${8 + Math.random() * 30}%`;
    this.reactions.append(el);
    const remove = () => el.remove();
    el.addEventListener('animationend', remove);
    window.setTimeout(remove, 4500);
    while (this.reactions.children.length > 20) this.reactions.firstElementChild?.remove();
  }

  dispose(): void {
    for (const t of this.tiles.values()) t.dispose();
    this.tiles.clear();
    this.tracks.clear();
    this.reactions.replaceChildren();
  }
}
