// Sign-in and the exam choice: the token form, the exams this token may proctor, the picker.
//
// API
//   fetchExams(token) -> Promise<{ refused: { short, text } } | { exams, listError }>
//       GET /v1/exams with the token; 401/403 refuse it, anything else leaves a list (maybe empty)
//   readTokenInput(raw) -> token | ''        a pasted token, "Bearer " prefix dropped
//   createSignin(el) -> signin
//     el: { signin…, signinError, token, exam (select), open (button), chooseText }
//   signin.showError(text)                  '' hides it
//   signin.fillExams(exams, wantExam)       the picker's options (an unknown wanted exam is added, marked)
//   signin.chooseText(exams, listError)     the "Choose an exam" card's text
//   signin.clear()                          empty picker and token field

import { plural } from '../lib/format.js';

async function readError(res) {
  try {
    const body = await res.json();
    if (body && typeof body === 'object') {
      const parts = [body.error, body.message].filter((x) => typeof x === 'string' && x);
      return parts.join(': ');
    }
  } catch { /* not JSON */ }
  return res.statusText || '';
}

export async function fetchExams(token) {
  let res;
  try {
    res = await fetch('/v1/exams', {
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    res = null;
  }
  if (res && (res.status === 401 || res.status === 403)) {
    const why = await readError(res);
    const head = res.status === 401
      ? 'Token refused (HTTP 401): it is malformed, expired or wrongly signed'
      : 'Not allowed (HTTP 403): this token may not proctor exams; a proctor or admin token is needed';
    return { refused: { short: `Refused (HTTP ${res.status})`, text: why ? `${head}. Server said: ${why}` : `${head}.` } };
  }
  let exams = [];
  let listError = '';
  if (res && res.ok) {
    try {
      const body = await res.json();
      exams = Array.isArray(body && body.exams) ? body.exams.filter((e) => e && typeof e.id === 'string') : [];
    } catch {
      listError = 'The exam list could not be read.';
    }
  } else {
    listError = res ? `The exam list is unavailable (HTTP ${res.status}).` : 'The server could not be reached.';
  }
  return { exams, listError };
}

export function readTokenInput(raw) {
  let token = String(raw).trim();
  if (/^bearer\s+/i.test(token)) token = token.replace(/^bearer\s+/i, '');
  return token;
}

export function createSignin(el) {
  function showError(text) {
    el.signinError.textContent = text || '';
    el.signinError.hidden = !text;
  }

  function fillExams(exams, wantExam) {
    el.exam.replaceChildren();
    const ids = new Set();
    for (const e of exams) {
      const opt = document.createElement('option');
      opt.value = e.id;
      opt.textContent = typeof e.title === 'string' && e.title ? `${e.title} (${e.id})` : e.id;
      el.exam.append(opt);
      ids.add(e.id);
    }
    if (wantExam && !ids.has(wantExam)) {
      const opt = document.createElement('option');
      opt.value = wantExam;
      opt.textContent = `${wantExam} (not in your list)`;
      el.exam.append(opt);
    }
    if (wantExam) el.exam.value = wantExam;
    el.open.disabled = el.exam.options.length === 0;
  }

  function chooseText(exams, listError) {
    if (listError) el.chooseText.textContent = `${listError} Reload the page to try again.`;
    else if (exams.length === 0) el.chooseText.textContent = 'This token may not proctor any exam.';
    else el.chooseText.textContent = `${plural(exams.length, 'exam', 'exams')} available. Pick one in the bar above and press Open.`;
  }

  function clear() {
    el.exam.replaceChildren();
    el.token.value = '';
  }

  return { showError, fillExams, chooseText, clear };
}
