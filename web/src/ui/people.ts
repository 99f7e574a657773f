// The participant list: names, roles, hands, mic / camera state, and per-person controls — pin and private
// message for everyone; mute, stop video, allow to unmute (when the meeting does not let people unmute themselves)
// and spotlight for hosts and moderators; make moderator for hosts.
import { initials, roleLabel, type Model, type Person } from '../model';
import { $, h } from './dom';
import { icon } from './icons';

export interface PeopleActions {
  pin(userId: string): void;
  message(userId: string): void;
  mute(userId: string, kind: 'audio' | 'video'): void;
  /** Lifts a moderator mute (participant:unmute); the person then unmutes themselves. */
  allowUnmute(userId: string, kind: 'audio' | 'video'): void;
  spotlight(userId: string | null): void;
  setRole(userId: string, role: 'moderator' | 'participant'): void;
  lowerHand(): void;
}

export class PeoplePanel {
  private readonly list = $<HTMLUListElement>('#people-list');

  constructor(
    private readonly model: Model,
    private readonly actions: PeopleActions,
  ) {}

  private button(label: string, iconName: string, key: string, onClick: () => void, extra: Record<string, string> = {}): HTMLButtonElement {
    const b = h('button', { type: 'button', class: 'icon-btn small', 'aria-label': label, title: label, 'data-focus-key': key, ...extra });
    b.innerHTML = icon(iconName);
    b.addEventListener('click', onClick);
    return b;
  }

  private item(p: Person): HTMLLIElement {
    const m = this.model;
    const micOn = m.micOn(p);
    const camOn = m.camOn(p);
    const role = roleLabel(p.role);
    const name = p.isLocal ? `${p.userName} (you)` : p.userName;
    const controls: HTMLElement[] = [];
    const pinned = m.pinnedUserId === p.userId;
    controls.push(this.button(`${pinned ? 'Unpin' : 'Pin'} ${p.userName}`, 'pin', `pin:${p.participantId}`, () => this.actions.pin(p.userId), { 'aria-pressed': String(pinned), 'data-action': 'pin' }));
    if (!p.isLocal) {
      controls.push(this.button(`Send ${p.userName} a private message`, 'chat', `msg:${p.participantId}`, () => this.actions.message(p.userId), { 'data-action': 'message' }));
    }
    if (m.isModerator && !p.isLocal) {
      const mic = this.button(micOn ? `Mute ${p.userName}` : `${p.userName} is muted`, 'micOff', `mute:${p.participantId}`, () => this.actions.mute(p.userId, 'audio'), { 'data-action': 'mute' });
      mic.disabled = !micOn;
      const cam = this.button(camOn ? `Stop ${p.userName}'s video` : `${p.userName}'s video is off`, 'camOff', `stopvideo:${p.participantId}`, () => this.actions.mute(p.userId, 'video'), { 'data-action': 'stop-video' });
      cam.disabled = !camOn;
      controls.push(mic, cam);
      // Without self-unmute a moderator's mute holds until lifted: offer to lift it.
      if (!m.settings.allowSelfUnmute) {
        if (p.moderatorMuted.audio) {
          controls.push(this.button(`Allow ${p.userName} to unmute`, 'mic', `allowmic:${p.participantId}`, () => this.actions.allowUnmute(p.userId, 'audio'), { 'data-action': 'allow-unmute' }));
        }
        if (p.moderatorMuted.video) {
          controls.push(this.button(`Allow ${p.userName} to turn their camera on`, 'cam', `allowcam:${p.participantId}`, () => this.actions.allowUnmute(p.userId, 'video'), { 'data-action': 'allow-video' }));
        }
      }
    }
    if (m.isModerator) {
      const spot = m.spotlightUserId === p.userId;
      controls.push(
        this.button(spot ? `Remove spotlight from ${p.userName}` : `Spotlight ${p.userName} for everyone`, 'star', `spot:${p.participantId}`, () => this.actions.spotlight(spot ? null : p.userId), {
          'aria-pressed': String(spot),
          'data-action': 'spotlight',
        }),
      );
    }
    if (m.isHost && !p.isLocal && p.role !== 'host') {
      const mod = p.role === 'moderator';
      controls.push(
        this.button(mod ? `Remove moderator role from ${p.userName}` : `Make ${p.userName} a moderator`, 'shield', `role:${p.participantId}`, () => this.actions.setRole(p.userId, mod ? 'participant' : 'moderator'), {
          'aria-pressed': String(mod),
          'data-action': 'role',
        }),
      );
    }
    if (p.isLocal && p.handRaised) {
      controls.push(this.button('Lower your hand', 'hand', `lower:${p.participantId}`, () => this.actions.lowerHand(), { 'data-action': 'lower-hand' }));
    }
    return h(
      'li',
      {
        class: 'person',
        'data-participant-id': p.participantId,
        'data-user-id': p.userId,
        'data-role': p.role,
        'data-hand': p.handRaised ? 'up' : 'down',
        'data-mic': micOn ? 'on' : 'off',
        'data-cam': camOn ? 'on' : 'off',
        'data-moderator-muted': [p.moderatorMuted.audio ? 'audio' : '', p.moderatorMuted.video ? 'video' : ''].filter(Boolean).join(' '),
      },
      h('span', { class: 'avatar', 'aria-hidden': 'true' }, initials(p.userName)),
      h(
        'div',
        { class: 'person-main' },
        h('span', { class: 'person-name' }, name),
        h('span', { class: 'person-sub' },
          role ? h('span', { class: `role-badge role-${p.role}` }, role) : null,
          p.handRaised ? h('span', { class: 'hand-badge', role: 'img', 'aria-label': 'Hand raised' }, '✋') : null,
        ),
      ),
      h(
        'span',
        { class: 'person-state' },
        h('span', { class: `state-icon${micOn ? '' : ' off'}`, role: 'img', 'aria-label': micOn ? 'Microphone on' : 'Microphone muted', html: icon(micOn ? 'mic' : 'micOff') }),
        h('span', { class: `state-icon${camOn ? '' : ' off'}`, role: 'img', 'aria-label': camOn ? 'Camera on' : 'Camera off', html: icon(camOn ? 'cam' : 'camOff') }),
      ),
      h('div', { class: 'person-controls', role: 'group', 'aria-label': `Actions for ${p.userName}` }, ...controls),
    );
  }

  render(): void {
    const active = document.activeElement as HTMLElement | null;
    const focusKey = active && this.list.contains(active) ? active.dataset.focusKey : undefined;
    // Raised hands first (in the order they were raised is unknown; join order), then hosts, then everyone else.
    const rank = (p: Person) => (p.handRaised ? 0 : 1) * 10 + (p.role === 'host' ? 0 : p.role === 'moderator' ? 1 : 2);
    const people = this.model.ordered().sort((a, b) => rank(a) - rank(b) || a.joinOrder - b.joinOrder);
    this.list.replaceChildren(...people.map((p) => this.item(p)));
    $('#people-count').textContent = String(people.length);
    if (focusKey) {
      const el = this.list.querySelector<HTMLElement>(`[data-focus-key="${CSS.escape(focusKey)}"]`);
      (el && !(el as HTMLButtonElement).disabled ? el : this.list.querySelector<HTMLElement>('button:not([disabled])'))?.focus();
    }
  }
}
