// The action dialogs: extend (one candidate or everyone), terminate, message, and the bulk confirmation.
//
// Each dialog checks its input (actions.js), closes and hands the request to
// `send`; the row itself changes only with the server's update. Focus goes back
// to what opened the dialog (lib/dialogs.js).
//
// API
//   createDialogs(el, state, send) -> dialogs
//     el: the dialogs' elements (extendDialog, extendForm, …; see main.js)
//     send(request): actions.js request -> sent?
//   dialogs.extend(row | null)   null: everyone
//   dialogs.terminate(row), dialogs.message(row)
//   dialogs.confirm({ title, text, confirm }, request)
//   dialogs.wire()               the forms' submit and the Cancel buttons

import {
  INPUT_ERROR, checkReason, checkText, extendDialogText, extendRequest, messageRequest, parseMinutes, terminateRequest,
} from './actions.js';
import { closeDialog as close, fieldError, openDialog, restoreFocus } from '../lib/dialogs.js';
import { IN_PROGRESS, countIn, select, targetName } from './state.js';

export function createDialogs(el, state, send) {
  let confirmed = null;
  const open = (dialog, focus) => openDialog(dialog, focus, { select: true });

  function extend(row) {
    select(state, row);
    const t = extendDialogText(row ? targetName(row) : null, countIn(state, IN_PROGRESS));
    el.extendTitle.textContent = t.title;
    el.extendTarget.textContent = t.text;
    el.extendConfirm.textContent = t.confirm;
    el.extendMinutes.value = '5';
    fieldError(el.extendError, '');
    open(el.extendDialog, el.extendMinutes);
  }

  function terminate(row) {
    select(state, row);
    el.terminateTarget.textContent = `Ends the attempt of ${targetName(row)} now. Saved answers are scored. This cannot be undone.`;
    el.terminateReason.value = '';
    fieldError(el.terminateError, '');
    open(el.terminateDialog, el.terminateReason);
  }

  function message(row) {
    select(state, row);
    el.messageTarget.textContent = `To ${targetName(row)}. Shown on the candidate's screen at once.`;
    el.messageText.value = '';
    fieldError(el.messageError, '');
    open(el.messageDialog, el.messageText);
  }

  function confirm(text, request) {
    el.confirmTitle.textContent = text.title;
    el.confirmText.textContent = text.text;
    el.confirmOk.textContent = text.confirm;
    confirmed = request;
    open(el.confirmDialog, el.confirmOk);
  }

  /** Check `input` with `check`; on success close `dialog` and send what `make` builds for the target. */
  function submit(dialog, input, errorNode, check, errorText, make) {
    const value = check(input.value);
    if (value === null) {
      fieldError(errorNode, errorText);
      input.focus();
      return;
    }
    const target = state.target;
    close(dialog);
    send(make(target, value));
  }

  function wire() {
    const onSubmit = (form, handler) => form.addEventListener('submit', (ev) => { ev.preventDefault(); handler(); });
    onSubmit(el.extendForm, () => submit(el.extendDialog, el.extendMinutes, el.extendError, parseMinutes, INPUT_ERROR.minutes, extendRequest));
    onSubmit(el.terminateForm, () => submit(el.terminateDialog, el.terminateReason, el.terminateError, checkReason, INPUT_ERROR.reason, terminateRequest));
    onSubmit(el.messageForm, () => submit(el.messageDialog, el.messageText, el.messageError, checkText, INPUT_ERROR.text, messageRequest));
    onSubmit(el.confirmForm, () => {
      const request = confirmed;
      confirmed = null;
      close(el.confirmDialog);
      if (request) send(request);
    });
    for (const dialog of [el.extendDialog, el.terminateDialog, el.messageDialog, el.confirmDialog]) {
      dialog.addEventListener('click', (ev) => {
        if (ev.target instanceof Element && ev.target.closest('[data-close]')) close(dialog);
      });
      dialog.addEventListener('close', restoreFocus);
    }
  }

  return { extend, terminate, message, confirm, wire };
}
