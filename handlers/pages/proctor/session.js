// Who is signed in and which exam is open: sign-in, the exam list, opening an exam, sign-out.
//
// The token and the open exam are kept in sessionStorage (this tab only); a
// link may bring them in the URL fragment (#token=…&exam=…), which is dropped
// from the address bar at once. A refused token is forgotten and never retried.
//
// API
//   takeFragment() -> { token?, exam? }     read `#token=…&exam=…` and drop it from the address bar
//   createSession({ el, state, table, feed, banners, signin, live }) -> session
//     el: { token, exam (select), chooseText }
//   session.start()                  on load: the fragment, else the stored token, else the sign-in form
//   session.signIn(token, wantExam)  check the token (the exam list), then open `wantExam` or offer the list
//   session.openExam(id)
//   session.signOut()
//   session.refuse(short, text)      the token is refused: back to the sign-in form with the reason

import { PROCTOR_EXAM_KEY, PROCTOR_TOKEN_KEY, sessionStore, storeGet, storeSet } from '../lib/storage.js';
import { clearFragment, readFragment } from '../lib/token.js';
import { APP_TITLE } from './banners.js';
import { fetchExams } from './signin.js';
import { clearRows } from './state.js';

const store = (key, value) => storeSet(sessionStore(), key, value);
const recall = (key) => storeGet(sessionStore(), key);

export function takeFragment() {
  const params = readFragment();
  if (!params) return {};
  const token = params.get('token');
  const exam = params.get('exam');
  if (token === null && exam === null) return {};
  clearFragment();
  return { token: token ? token.trim() : null, exam: exam ? exam.trim() : null };
}

export function createSession({ el, state, table, feed, banners, signin, live }) {
  let token = null;
  let seq = 0; // sign-ins (and sign-outs): an answer for an older one is dropped

  function showSignin(error) {
    banners.showView('signin');
    signin.showError(error);
    document.title = APP_TITLE;
  }

  function refuse(short, text) {
    live.close();
    token = null;
    store(PROCTOR_TOKEN_KEY, null);
    banners.setConn('error', short);
    showSignin(text || short);
  }

  function openExam(id) {
    store(PROCTOR_EXAM_KEY, id);
    if (el.exam.value !== id) el.exam.value = id;
    live.open(id, token);
  }

  async function signIn(tok, wantExam) {
    const mine = ++seq;
    token = tok;
    store(PROCTOR_TOKEN_KEY, tok);
    banners.showWho(tok);
    signin.showError('');
    banners.setConn('connecting', 'Checking token…');

    const result = await fetchExams(tok);
    if (mine !== seq) return; // signed out or signed in again meanwhile
    if (result.refused) {
      refuse(result.refused.short, result.refused.text);
      return;
    }
    const { exams, listError } = result;
    signin.fillExams(exams, wantExam);
    if (wantExam) {
      openExam(wantExam); // the server decides whether this token may proctor it
    } else if (exams.length === 1 && !listError) {
      openExam(exams[0].id);
    } else {
      banners.showView('choose');
      banners.setConn('idle', 'Not connected');
      signin.chooseText(exams, listError);
      el.exam.focus();
    }
  }

  function signOut() {
    seq++;
    live.close();
    token = null;
    store(PROCTOR_TOKEN_KEY, null);
    store(PROCTOR_EXAM_KEY, null);
    clearRows(state);
    table.reset();
    feed.clear();
    signin.clear();
    banners.setStatus('', '');
    banners.setConn('idle', 'Not connected');
    showSignin('');
    el.token.focus();
  }

  /** A token typed into the form: any stored exam is forgotten (the list decides). */
  function submitToken(tok) {
    store(PROCTOR_EXAM_KEY, null);
    signIn(tok, null);
  }

  function start() {
    const frag = takeFragment();
    if (frag.token) store(PROCTOR_TOKEN_KEY, frag.token);
    if (frag.token && !frag.exam) store(PROCTOR_EXAM_KEY, null);
    if (frag.exam) store(PROCTOR_EXAM_KEY, frag.exam);
    const saved = recall(PROCTOR_TOKEN_KEY);
    const exam = recall(PROCTOR_EXAM_KEY);
    banners.setConn('idle', 'Not connected');
    if (saved) {
      banners.showView('choose');
      el.chooseText.textContent = 'Loading the exams this token may proctor…';
      signIn(saved, exam);
    } else {
      showSignin('');
    }
  }

  return { start, signIn, submitToken, openExam, signOut, refuse };
}
