// Modal dialogs (<dialog>) and inline field errors. ES module.
// One dialog is open at a time; focus goes back where it was when it closes
// (register restoreFocus as the dialog's 'close' listener).
//
// Exported API (names are stable; add, never rename):
//   openDialog(dialog, focus, { select = false } = {})   showModal (if not open), focus `focus` (and select its text)
//   closeDialog(dialog)                                   close it if open
//   restoreFocus()                                        focus what had it before the last openDialog
//   forgetFocus()                                         do not restore (the action moves focus itself)
//   fieldError(node, text)                                show `text` in `node`, or hide it when empty

let returnFocus = null;

export function openDialog(dialog, focus, { select = false } = {}) {
  returnFocus = document.activeElement;
  if (!dialog.open) dialog.showModal();
  if (focus) {
    focus.focus();
    if (select && typeof focus.select === 'function') focus.select();
  }
}

export function closeDialog(dialog) {
  if (dialog.open) dialog.close();
}

export function restoreFocus() {
  const target = returnFocus;
  returnFocus = null;
  if (target && target.isConnected && typeof target.focus === 'function' && !target.disabled
    && !(typeof target.closest === 'function' && target.closest('[hidden]'))) target.focus();
}

export function forgetFocus() {
  returnFocus = null;
}

export function fieldError(node, text) {
  node.textContent = text;
  node.hidden = !text;
}
