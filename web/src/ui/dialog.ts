// A confirmation dialog on the native <dialog> element (focus trap, Escape to cancel).
import { $ } from './dom';

export function confirmDialog(title: string, text: string, confirmLabel: string, danger = false): Promise<boolean> {
  const dlg = $<HTMLDialogElement>('#confirm-dialog');
  $('#confirm-title', dlg).textContent = title;
  $('#confirm-text', dlg).textContent = text;
  const ok = $<HTMLButtonElement>('#confirm-ok', dlg);
  ok.textContent = confirmLabel;
  ok.classList.toggle('danger', danger);
  return new Promise((resolve) => {
    const done = (v: boolean) => {
      dlg.removeEventListener('close', onClose);
      ok.removeEventListener('click', onOk);
      cancel.removeEventListener('click', onCancel);
      if (dlg.open) dlg.close();
      resolve(v);
    };
    const onClose = () => done(false);
    const onOk = () => done(true);
    const onCancel = () => done(false);
    const cancel = $<HTMLButtonElement>('#confirm-cancel', dlg);
    dlg.addEventListener('close', onClose);
    ok.addEventListener('click', onOk);
    cancel.addEventListener('click', onCancel);
    dlg.showModal();
    cancel.focus();
  });
}
