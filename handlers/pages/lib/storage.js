// Web storage that never throws, and the storage keys the pages share.
// ES module. A disabled or full storage degrades to "nothing kept": the page
// still works while it stays open.
//
// Exported API (names are stable; add, never rename):
//   storeGet(store, key) -> string | null      store: localStorage, sessionStorage, or null
//   storeSet(store, key, value)                value null/undefined removes the key
//   sessionStore() / localStore()              the storage object, or null when the browser refuses it
//   examTokenKey(examId)                       sessionStorage: the candidate's token for one exam
//                                              (written by the landing page, read by the exam page)
//   ENCODING_KEY                               sessionStorage: 'json' or 'msgpack' overrides the exam page's framing
//   PROCTOR_TOKEN_KEY, PROCTOR_EXAM_KEY        sessionStorage: the dashboard's token and exam
//   (the exam page's local journal keys live in journal.js)

export const ENCODING_KEY = 'examwire.encoding';
export const PROCTOR_TOKEN_KEY = 'examwire.proctor.token';
export const PROCTOR_EXAM_KEY = 'examwire.proctor.exam';
export const examTokenKey = (examId) => `examwire.exam.token:${examId}`;

export function storeGet(store, key) {
  try { return store.getItem(key); } catch { return null; }
}

export function storeSet(store, key, value) {
  try {
    if (value === null || value === undefined) store.removeItem(key);
    else store.setItem(key, value);
  } catch { /* storage full or disabled: the page still works while it stays open */ }
}

export function sessionStore() {
  try { return globalThis.sessionStorage ?? null; } catch { return null; }
}

export function localStore() {
  try { return globalThis.localStorage ?? null; } catch { return null; }
}
