// Examwire landing page: open an exam from its id and a pasted token.
// The token goes to sessionStorage (the key the exam page reads), never into the URL.

import { examTokenKey } from './lib/storage.js';
import { isExamId } from './lib/protocol.js';


const form = document.getElementById('open-form');
const examInput = document.getElementById('exam-id');
const tokenInput = document.getElementById('token');
const error = document.getElementById('open-error');

function fail(text, field) {
  error.textContent = text;
  error.hidden = false;
  field.setAttribute('aria-invalid', 'true');
  field.focus();
}

form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  examInput.removeAttribute('aria-invalid');
  tokenInput.removeAttribute('aria-invalid');
  error.hidden = true;
  const examId = examInput.value.trim();
  const token = tokenInput.value.trim();
  if (!isExamId(examId)) {
    fail('Enter the exam id you were given (letters, digits, dots, dashes or underscores).', examInput);
    return;
  }
  if (!token) {
    fail('Paste your access token.', tokenInput);
    return;
  }
  try {
    sessionStorage.setItem(examTokenKey(examId), token);
  } catch {
    fail('This browser does not allow the page to keep the token. Open the exam link you were given instead.', tokenInput);
    return;
  }
  location.assign(`/exam/${encodeURIComponent(examId)}`);
});
