// The local journal: requests that change an attempt, kept in web storage
// until the server answers them, so that none is lost to a dropped connection
// or a reload. ES module, no DOM (the storage object is passed in).
//
// Layout (one attempt):
//   examwire:pending:<attempt>   JSON list of {id, message}, in id order (message.id === id)
//   examwire:last-id:<attempt>   the highest request id used for the attempt
// After every welcome the page resends the kept requests with their original
// ids; the server acks a repeat `dup: true`, so nothing is applied twice.
//
// Exported API (names are stable; add, never rename):
//   pendingKey(attempt), lastIdKey(attempt)         the storage keys
//   isEntry(e) -> bool                               a well-formed {id, message}
//   readJournal(store, attempt) -> {list, last}      what was kept (malformed entries dropped)
//   writeJournal(store, attempt, list, lastId)       keep the list and the last id
//   writeLastId(store, attempt, lastId)              keep only the last id
//   clearJournal(store, attempt)                     forget both (the attempt is over)
//   mergeJournal(list, kept) -> list                 `list` plus the kept entries it lacks, in id order

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
