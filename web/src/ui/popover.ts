// Menus that open from a toolbar button: aria-expanded, Escape and outside clicks close, focus moves in and back.

const open = new Set<Popover>();

export class Popover {
  constructor(
    readonly button: HTMLButtonElement,
    readonly panel: HTMLElement,
  ) {
    button.setAttribute('aria-expanded', 'false');
    button.setAttribute('aria-haspopup', 'true');
    button.setAttribute('aria-controls', panel.id);
    panel.hidden = true;
    button.addEventListener('click', (e) => {
      e.stopPropagation();
      this.toggle();
    });
    panel.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        e.stopPropagation();
        this.close(true);
      }
      // Arrow keys inside a <select> change its value; elsewhere they move between the menu's items.
      if ((e.target as HTMLElement).tagName === 'SELECT') return;
      if (e.key === 'ArrowRight' || e.key === 'ArrowDown' || e.key === 'ArrowLeft' || e.key === 'ArrowUp') {
        const items = this.items();
        const i = items.indexOf(document.activeElement as HTMLElement);
        if (i < 0) return;
        e.preventDefault();
        const step = e.key === 'ArrowRight' || e.key === 'ArrowDown' ? 1 : -1;
        items[(i + step + items.length) % items.length].focus();
      }
    });
  }

  private items(): HTMLElement[] {
    return [...this.panel.querySelectorAll<HTMLElement>('button:not([disabled]):not([hidden]), [role="menuitemradio"], select:not([disabled])')].filter(
      (el) => el.offsetParent !== null,
    );
  }

  get isOpen(): boolean {
    return !this.panel.hidden;
  }

  toggle(): void {
    if (this.isOpen) this.close(false);
    else this.open();
  }

  open(): void {
    for (const p of [...open]) if (p !== this) p.close(false);
    this.panel.hidden = false;
    this.button.setAttribute('aria-expanded', 'true');
    open.add(this);
    this.items()[0]?.focus();
  }

  close(returnFocus: boolean): void {
    if (!this.isOpen) return;
    this.panel.hidden = true;
    this.button.setAttribute('aria-expanded', 'false');
    open.delete(this);
    if (returnFocus) this.button.focus();
  }
}

document.addEventListener('click', (e) => {
  for (const p of [...open]) {
    if (!p.panel.contains(e.target as Node) && !p.button.contains(e.target as Node)) p.close(false);
  }
});
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape') for (const p of [...open]) p.close(true);
});
