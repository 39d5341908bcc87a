// The exam page's two dialogs: submit (with what is unanswered, flagged or
// still saving) and, on linear exams, moving on (which closes questions).
//
// Exported API: openSubmitDialog(), confirmSubmit(), openNextDialog(i), confirmNext(), closeDialogs()

import { openDialog, closeDialog, forgetFocus } from '../lib/dialogs.js';
import { plural } from '../lib/format.js';
import { S } from './app.js';
import { el } from './dom.js';
import { isAnswered, isLocked, submitSummary } from './state.js';
import { flushTyping, goTo } from './answers.js';
import { request } from './session.js';
import { renderAll } from './chrome.js';

const listNumbers = (nums) => nums.map((n) => n + 1).join(', ');

export function closeDialogs() {
  closeDialog(el.submitDialog);
  closeDialog(el.nextDialog);
}

export function openNextDialog(i) {
  S.nextTarget = i;
  const q = S.questions[S.index];
  const unanswered = q && !isAnswered(S.answers.get(q.id));
  const closing = i - S.index === 1 ? `question ${S.index + 1}` : `questions ${S.index + 1} to ${i}`;
  el.nextText.textContent = `In this exam you cannot go back: ${closing} will be closed.${unanswered ? ` Question ${S.index + 1} is not answered.` : ''}`;
  el.nextConfirm.textContent = `Go to question ${i + 1}`;
  openDialog(el.nextDialog, el.nextCancel);
}

export function confirmNext() {
  const target = S.nextTarget;
  S.nextTarget = null;
  forgetFocus();
  closeDialog(el.nextDialog);
  if (target !== null) goTo(target, { confirmed: true });
}

export function openSubmitDialog() {
  if (isLocked(S)) return;
  flushTyping();
  const { answered, unanswered, flagged, saving } = submitSummary(S);
  el.submitSummary.textContent = `You answered ${answered} of ${S.total} questions.`;
  const items = [];
  const add = (cls, label, text) => {
    const li = document.createElement('li');
    li.className = cls;
    const strong = document.createElement('strong');
    strong.textContent = label;
    li.append(strong, ` ${text}`);
    items.push(li);
  };
  if (unanswered.length) add('submit-details__unanswered', unanswered.length === 1 ? 'Unanswered question:' : 'Unanswered questions:', listNumbers(unanswered));
  else add('submit-details__ok', 'Every question is answered.', '');
  if (flagged.length) add('submit-details__flagged', 'Flagged for review:', listNumbers(flagged));
  if (saving) add('submit-details__saving', 'Still saving:', `${plural(saving, 'answer', 'answers')}; ${S.welcomed ? 'they are sent before your submission.' : 'you are offline; they and your submission are sent when the connection is back.'}`);
  el.submitDetails.replaceChildren(...items);
  el.submitError.hidden = true;
  openDialog(el.submitDialog, el.submitCancel);
}

export function confirmSubmit() {
  closeDialog(el.submitDialog);
  if (isLocked(S)) return;
  flushTyping();
  S.submitting = true;
  request('submit');
  renderAll();
}
