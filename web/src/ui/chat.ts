// Chat: messages to everyone, privately to one participant, or to the hosts and moderators; typing indicators;
// history from the join snapshot (meeting-state.recentMessages) and older pages from GET …/messages.
import type { Model } from '../model';
import type { ChatMessage, RecipientType } from '../types';
import { $, formatTime, h } from './dom';
import { icon } from './icons';

export interface ChatDeps {
  send(message: string, recipientType: RecipientType, recipientId?: string): Promise<void>;
  typing(typing: boolean): void;
  loadEarlier(before: string): Promise<{ messages: ChatMessage[]; nextBefore: string | null }>;
}

const TYPING_IDLE_MS = 3000;
const TYPING_MIN_GAP_MS = 1100; // the server keeps 1 typing event per second (extra ones are dropped)
const REMOTE_TYPING_TTL_MS = 6000;

export class ChatPanel {
  private readonly list = $<HTMLOListElement>('#chat-list');
  private readonly scroller = $('#chat-scroll');
  private readonly empty = $('#chat-empty');
  private readonly more = $<HTMLButtonElement>('#chat-more');
  private readonly form = $<HTMLFormElement>('#chat-form');
  private readonly input = $<HTMLTextAreaElement>('#chat-input');
  private readonly to = $<HTMLSelectElement>('#chat-to');
  private readonly typingEl = $('#typing');
  private readonly seen = new Set<string>();
  private readonly names = new Map<string, string>();
  private readonly typingPeople = new Map<string, { name: string; timer: number }>();
  private oldestId: string | null = null;
  private localTyping = false;
  private lastTypingSent = 0;
  private idleTimer: number | undefined;
  private pendingFalse: number | undefined;
  private sending = false;
  unread = 0;
  onUnread: (n: number) => void = () => {};
  isVisible: () => boolean = () => false;
  onError: (e: unknown) => void = () => {};

  constructor(
    private readonly model: Model,
    private readonly deps: ChatDeps,
  ) {
    $('#chat-send').innerHTML = icon('send');
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.submit();
    });
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        void this.submit();
      }
    });
    this.input.addEventListener('input', () => {
      this.autosize();
      this.onInput();
    });
    this.more.addEventListener('click', () => void this.loadEarlier());
  }

  private autosize(): void {
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight, 120)}px`;
  }

  /** Join snapshot: the latest messages, oldest first. */
  reset(messages: ChatMessage[]): void {
    this.list.replaceChildren();
    this.seen.clear();
    this.oldestId = null;
    for (const m of messages) this.append(m, false);
    this.more.hidden = messages.length === 0;
    this.more.textContent = 'Load earlier messages';
    this.more.disabled = false;
    this.updateEmpty();
    this.scrollToBottom();
    this.setUnread(0);
  }

  add(m: ChatMessage): void {
    if (this.seen.has(m.id)) return;
    const stick = this.nearBottom();
    this.append(m, false);
    this.updateEmpty();
    if (stick || m.sender_id === this.model.you.userId) this.scrollToBottom();
    this.clearTyping(m.sender_id);
    if (m.sender_id !== this.model.you.userId && !this.isVisible()) this.setUnread(this.unread + 1);
  }

  markRead(): void {
    this.setUnread(0);
  }

  private setUnread(n: number): void {
    this.unread = n;
    this.onUnread(n);
  }

  private nearBottom(): boolean {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  private scrollToBottom(): void {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  private updateEmpty(): void {
    this.empty.hidden = this.list.children.length > 0;
  }

  private nameOf(userId: string | null): string {
    if (!userId) return '';
    if (userId === this.model.you.userId) return 'you';
    return this.model.firstByUser(userId)?.userName ?? this.names.get(userId) ?? 'a participant';
  }

  private render(m: ChatMessage): HTMLLIElement {
    const mine = m.sender_id === this.model.you.userId;
    let scope: string;
    if (m.recipient_type === 'private') scope = mine ? `privately to ${this.nameOf(m.recipient_id)}` : 'privately to you';
    else if (m.recipient_type === 'host') scope = 'to hosts and moderators';
    else scope = 'to everyone';
    return h(
      'li',
      {
        class: `msg${mine ? ' mine' : ''} msg-${m.recipient_type}`,
        'data-id': m.id,
        'data-sender-id': m.sender_id,
        'data-recipient-type': m.recipient_type,
        'data-recipient-id': m.recipient_id ?? '',
      },
      h(
        'div',
        { class: 'msg-meta' },
        h('span', { class: 'msg-sender' }, mine ? 'You' : m.sender_name),
        h('span', { class: 'msg-scope' }, m.recipient_type === 'private' ? h('span', { class: 'lock', html: icon('lock') }) : null, scope),
        h('time', { datetime: m.timestamp }, formatTime(m.timestamp)),
      ),
      h('p', { class: 'msg-text' }, m.message),
    );
  }

  private append(m: ChatMessage, prepend: boolean): void {
    if (this.seen.has(m.id)) return;
    this.seen.add(m.id);
    this.names.set(m.sender_id, m.sender_name);
    const el = this.render(m);
    if (prepend) this.list.prepend(el);
    else this.list.append(el);
    if (!this.oldestId || prepend) this.oldestId = prepend ? m.id : (this.oldestId ?? m.id);
  }

  private async loadEarlier(): Promise<void> {
    const first = this.list.firstElementChild as HTMLElement | null;
    const before = first?.dataset.id ?? this.oldestId;
    if (!before) return;
    this.more.disabled = true;
    this.more.textContent = 'Loading…';
    try {
      const { messages, nextBefore } = await this.deps.loadEarlier(before);
      const prevHeight = this.scroller.scrollHeight;
      for (const m of [...messages].reverse()) this.append(m, true);
      this.scroller.scrollTop += this.scroller.scrollHeight - prevHeight;
      this.updateEmpty();
      if (!nextBefore || messages.length === 0) {
        this.more.hidden = true;
        if (messages.length === 0) this.list.prepend(h('li', { class: 'msg-note' }, 'This is the start of the conversation.'));
      }
    } catch (e) {
      this.onError(e);
    } finally {
      this.more.disabled = false;
      this.more.textContent = 'Load earlier messages';
    }
  }

  /** The recipient choices: everyone, hosts and moderators, then each other participant (private). */
  updateRecipients(): void {
    const current = this.to.value || 'all';
    const options: HTMLOptionElement[] = [
      h('option', { value: 'all' }, 'Everyone'),
      h('option', { value: 'host' }, 'Hosts and moderators'),
    ];
    const users = new Map<string, string>();
    for (const p of this.model.ordered()) {
      this.names.set(p.userId, p.userName);
      if (p.userId !== this.model.you.userId) users.set(p.userId, p.userName);
    }
    for (const [userId, name] of users) options.push(h('option', { value: `private:${userId}` }, `${name} (private)`));
    this.to.replaceChildren(...options);
    this.to.value = options.some((o) => o.value === current) ? current : 'all';
  }

  /** Preselects a private message to `userId` and focuses the input (from the participant list). */
  messageTo(userId: string): void {
    this.updateRecipients();
    this.to.value = `private:${userId}`;
    this.input.focus();
  }

  private async submit(): Promise<void> {
    const text = this.input.value.trim();
    if (!text || this.sending) return;
    const to = this.to.value || 'all';
    const [type, recipientId] = to.startsWith('private:') ? ['private', to.slice(8)] : [to, undefined];
    this.sending = true;
    try {
      await this.deps.send(text, type as RecipientType, recipientId);
      this.input.value = '';
      this.autosize();
      this.stopTyping();
    } catch (e) {
      this.onError(e);
    } finally {
      this.sending = false;
      this.input.focus();
    }
  }

  private onInput(): void {
    if (!this.input.value.trim()) {
      this.stopTyping();
      return;
    }
    const now = Date.now();
    if (!this.localTyping || now - this.lastTypingSent > TYPING_IDLE_MS) {
      if (now - this.lastTypingSent >= TYPING_MIN_GAP_MS) {
        window.clearTimeout(this.pendingFalse);
        this.localTyping = true;
        this.lastTypingSent = now;
        this.deps.typing(true);
      }
    }
    window.clearTimeout(this.idleTimer);
    this.idleTimer = window.setTimeout(() => this.stopTyping(), TYPING_IDLE_MS);
  }

  private stopTyping(): void {
    window.clearTimeout(this.idleTimer);
    if (!this.localTyping) return;
    this.localTyping = false;
    const wait = Math.max(0, TYPING_MIN_GAP_MS - (Date.now() - this.lastTypingSent));
    window.clearTimeout(this.pendingFalse);
    this.pendingFalse = window.setTimeout(() => {
      this.lastTypingSent = Date.now();
      this.deps.typing(false);
    }, wait);
  }

  /** `user-typing` from someone else. */
  setTyping(participantId: string, userName: string, typing: boolean): void {
    const prev = this.typingPeople.get(participantId);
    if (prev) window.clearTimeout(prev.timer);
    if (typing) {
      const timer = window.setTimeout(() => this.setTyping(participantId, userName, false), REMOTE_TYPING_TTL_MS);
      this.typingPeople.set(participantId, { name: userName, timer });
    } else {
      this.typingPeople.delete(participantId);
    }
    this.renderTyping();
  }

  private clearTyping(userId: string): void {
    for (const p of this.model.byUser(userId)) if (this.typingPeople.has(p.participantId)) this.setTyping(p.participantId, p.userName, false);
  }

  removePerson(participantId: string): void {
    if (this.typingPeople.has(participantId)) this.setTyping(participantId, '', false);
  }

  private renderTyping(): void {
    const names = [...this.typingPeople.values()].map((t) => t.name);
    this.typingEl.textContent =
      names.length === 0 ? '' : names.length === 1 ? `${names[0]} is typing…` : names.length === 2 ? `${names[0]} and ${names[1]} are typing…` : `${names.length} people are typing…`;
    this.typingEl.classList.toggle('active', names.length > 0);
  }

  stopLocalTyping(): void {
    this.stopTyping();
  }
}
