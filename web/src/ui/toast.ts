// Notifications: short toasts in an aria-live region, and one persistent banner (reconnecting, server restart).
import { h, $ } from './dom';

export type ToastKind = 'info' | 'error' | 'success';

export function toast(message: string, kind: ToastKind = 'info', ms = kind === 'error' ? 7000 : 4000): HTMLElement {
  const region = $('#toasts');
  const el = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
  const close = h('button', { class: 'toast-close', 'aria-label': 'Dismiss notification', type: 'button' }, '×');
  close.addEventListener('click', () => el.remove());
  el.append(close);
  region.append(el);
  while (region.children.length > 4) region.firstElementChild?.remove();
  window.setTimeout(() => {
    el.classList.add('leaving');
    window.setTimeout(() => el.remove(), 300);
  }, ms);
  return el;
}

export function banner(message: string | null, kind: 'warn' | 'error' = 'warn'): void {
  const el = $('#banner');
  if (!message) {
    el.hidden = true;
    el.textContent = '';
    return;
  }
  el.hidden = false;
  el.className = `banner banner-${kind}`;
  el.textContent = message;
}
