// The local journal: requests that change an attempt, kept in web storage
// until the server answers them, so that none is lost to a dropped connection
// or a reload. ES module, no DOM (the storage object is passed in).
//
// Layout (one attempt):
//   examwire:pending:<attempt>   JSON list of {id, message}, in id order (message.id === id)
//   examwire:last-id:<attempt>   the highest request id used for the attempt
//   examwire:saved:<attempt>     what the server acknowledged (a saved record, below), kept until
//                                the attempt is final: if the server loses it, the page sends it again
//   examwire:attempt:<exam>:<user>  the attempt id of a user's exam, to say `hello` with what was
//                                acknowledged before the `welcome` names the attempt (after a reload)
// After every welcome the page resends the kept requests with their original
// ids; the server acks a repeat `dup: true`, so nothing is applied twice.
//
// A saved record: {acked, ticket, answers: {qid: value}, flags: [qid], index, restoring}:
// the highest id acknowledged, the newest ticket (the attempt's clock, signed by the
// server), the answers (null: cleared) and flags the server holds (or is being sent
// again: `restoring`), and the position. See docs/protocol.md, "Loss is detected, never silent".
//
// Exported API (names are stable; add, never rename):
//   pendingKey(attempt), lastIdKey(attempt)         the storage keys
//   isEntry(e) -> bool                               a well-formed {id, message}
//   readJournal(store, attempt) -> {list, last}      what was kept (malformed entries dropped)
//   writeJournal(store, attempt, list, lastId)       keep the list and the last id
//   writeLastId(store, attempt, lastId)              keep only the last id
//   clearJournal(store, attempt)                     forget both (the attempt is over)
//   mergeJournal(list, kept) -> list                 `list` plus the kept entries it lacks, in id order
//   savedKey(attempt), attemptKey(examId, user)      the storage keys
//   EMPTY_SAVED                                      the record of nothing acknowledged
//   readSaved(store, attempt) -> record              (EMPTY_SAVED when absent or malformed)
//   writeSaved(store, attempt, record)
//   clearSaved(store, attempt)                       forget it (the attempt is final)
//   readAttemptOf(store, examId, user) -> attempt | null
//   writeAttemptOf(store, examId, user, attempt)     attempt null: forget it

import { storeGet, storeSet } from './storage.js';

export const pendingKey = (attempt) => `examwire:pending:${attempt}`;
export const lastIdKey = (attempt) => `examwire:last-id:${attempt}`;

export function isEntry(e) {
  return Boolean(e && Number.isSafeInteger(e.id) && e.id > 0 && e.message && typeof e.message.t === 'string'
    && e.message.id === e.id);
}

export function readJournal(store, attempt) {
  let list = [];
  try {
    const raw = JSON.parse(storeGet(store, pendingKey(attempt)) || '[]');
    if (Array.isArray(raw)) list = raw.filter(isEntry);
  } catch { list = []; }
  const last = Number(storeGet(store, lastIdKey(attempt)) || 0);
  return { list, last: Number.isSafeInteger(last) ? last : 0 };
}

export function writeJournal(store, attempt, list, lastId) {
  storeSet(store, pendingKey(attempt), JSON.stringify(list));
  storeSet(store, lastIdKey(attempt), String(lastId));
}

export function writeLastId(store, attempt, lastId) {
  storeSet(store, lastIdKey(attempt), String(lastId));
}

export function clearJournal(store, attempt) {
  storeSet(store, pendingKey(attempt), null);
  storeSet(store, lastIdKey(attempt), null);
}

export function mergeJournal(list, kept) {
  const known = new Set(list.map((e) => e.id));
  const out = [...list];
  for (const e of kept) if (!known.has(e.id)) out.push(e);
  out.sort((a, b) => a.id - b.id);
  return out;
}

// ------------------------------------------------------------------ what the server acknowledged
export const savedKey = (attempt) => `examwire:saved:${attempt}`;
export const attemptKey = (examId, user) => `examwire:attempt:${examId}:${user}`;

export const EMPTY_SAVED = Object.freeze({ acked: 0, ticket: null, answers: {}, flags: [], index: 0, restoring: false });

const isPlainObject = (v) => Boolean(v) && typeof v === 'object' && !Array.isArray(v);

export function readSaved(store, attempt) {
  let raw;
  try {
    raw = JSON.parse(storeGet(store, savedKey(attempt)) || 'null');
  } catch {
    raw = null;
  }
  if (!isPlainObject(raw)) return { ...EMPTY_SAVED, answers: {}, flags: [] };
  return {
    acked: Number.isSafeInteger(raw.acked) && raw.acked > 0 ? raw.acked : 0,
    ticket: typeof raw.ticket === 'string' && raw.ticket ? raw.ticket : null,
    answers: isPlainObject(raw.answers) ? raw.answers : {},
    flags: Array.isArray(raw.flags) ? raw.flags.filter((q) => typeof q === 'string') : [],
    index: Number.isSafeInteger(raw.index) && raw.index >= 0 ? raw.index : 0,
    restoring: raw.restoring === true,
  };
}

export function writeSaved(store, attempt, record) {
  storeSet(store, savedKey(attempt), JSON.stringify(record));
}

export function clearSaved(store, attempt) {
  storeSet(store, savedKey(attempt), null);
}

export function readAttemptOf(store, examId, user) {
  const v = storeGet(store, attemptKey(examId, user));
  return typeof v === 'string' && v ? v : null;
}

export function writeAttemptOf(store, examId, user, attempt) {
  storeSet(store, attemptKey(examId, user), attempt || null);
}
