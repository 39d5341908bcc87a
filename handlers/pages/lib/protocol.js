// Protocol facts both pages need (docs/protocol.md). ES module, no DOM.
//
// Exported API (names are stable; add, never rename):
//   PROTOCOL_VERSION = 1                 `hello.v`
//   FINAL_STATES                         Set: submitted, expired, terminated (the attempt is over)
//   IN_PROGRESS_STATES                   Set: ready, active, paused
//   isFinalState(state) -> bool
//   isExamId(value) -> bool             the server's rule (engine/ids.py): 1 to 64 of A-Z a-z 0-9 _ . -, not '.' or '..'

export const PROTOCOL_VERSION = 1;
export const FINAL_STATES = new Set(['submitted', 'expired', 'terminated']);
export const IN_PROGRESS_STATES = new Set(['ready', 'active', 'paused']);
export const isFinalState = (state) => FINAL_STATES.has(state);

const EXAM_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;
export const isExamId = (value) =>
  typeof value === 'string' && EXAM_ID_RE.test(value) && value !== '.' && value !== '..';
