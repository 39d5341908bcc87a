// What the server acknowledged, on this device, and sending it again when the
// server lost it (docs/protocol.md, "Loss is detected, never silent"): the
// storage and the wire around the pure rules of restore.js.
//
// Exported API: RESTORE_TEXT, userOf(token), knownRecord(), saveRecord(), sendRestore(), restored()

import { readSaved, writeSaved, readAttemptOf, EMPTY_SAVED } from '../lib/journal.js';
import { localStore } from '../lib/storage.js';
import { claimsOf } from '../lib/token.js';
import { S } from './app.js';
import { el, announce } from './dom.js';
import { isFinal, savedRecord, previousRecord, restoreRequests } from './state.js';
import { setBanner, renderAll } from './chrome.js';
import { request } from './session.js';

export const RESTORE_TEXT = 'The exam server lost your latest answers. This device kept them and is sending them again.';

export const userOf = (token) => {
  const sub = token ? claimsOf(token).sub : null;
  return typeof sub === 'string' && sub ? sub : null;
};

/** What this device knows was acknowledged for the token's attempt (before a welcome names it: after a reload). */
export function knownRecord() {
  const user = userOf(S.token);
  if (!user || !S.examId) return EMPTY_SAVED;
  const attempt = readAttemptOf(localStore(), S.examId, user) || (S.attemptUser === user ? S.attempt : null);
  return attempt ? previousRecord(S, attempt, readSaved(localStore(), attempt)) : EMPTY_SAVED;
}

export function saveRecord() {
  if (!S.attempt || S.superseded || isFinal(S)) return;
  writeSaved(localStore(), S.attempt, savedRecord(S));
}

/** Send what the server lost, once the attempt runs (restore.js decides what and when). */
export function sendRestore() {
  const owed = S.restore !== null;
  for (const [t, fields] of restoreRequests(S)) request(t, fields);
  if (owed) {
    saveRecord();
    renderAll();
    if (S.restore === null) restored();
  }
}

/** Everything owed is settled: say so, briefly. */
export function restored() {
  if (el.banner.dataset.state === 'restoring') setBanner('online', '');
  announce('Your answers are back on the exam server.');
}
