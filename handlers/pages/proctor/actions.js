// Proctor requests: what goes on the wire for each action, and what the status line says about it.
//
// Pure (no DOM, no sockets). A request is { message, what, done }: `message`
// is the frame without its `id` (docs/protocol.md, the proctor connection),
// `what` names it in the status line ("extend Ada by 5 min"), `done(ack)` is
// the status text once acknowledged.
//
// API
//   extendRequest(target, minutes), terminateRequest(target, reason), messageRequest(target, text)
//   pauseRequest(row), resumeRequest(row), pauseAllRequest(), resumeAllRequest()
//     target: { attempt, name } or { all: true } (state.select)
//   parseMinutes(raw) -> minutes | null, checkReason(raw) -> reason | null, checkText(raw) -> text | null
//   extendDialogText(row | null, inProgress), pauseAllText(active), resumeAllText(paused)
//   createRequests() -> reqs                    the requests awaiting an answer (lib/requests.js; reset() per connection)
//   begin(reqs, request) -> frame               the message with the next id, now pending
//   settleAck(reqs, ack) -> text | null         null: not one of ours
//   settleError(reqs, error) -> text
//   abandon(reqs) -> text | null                the connection went before the answers
//   fatalCloseText(code, reason) -> { short, text } | null   a refusal that retrying cannot fix

import { displayName, num } from './state.js';
import { plural, repeats } from '../lib/format.js';
import { Requests } from '../lib/requests.js';

export const ERROR_TEXT = {
  not_active: 'the attempt is not in a state that allows this',
  not_found: 'no such attempt in this exam',
  bad_request: 'the server rejected the request as invalid',
  rate_limited: 'too many requests; wait a moment and try again',
  forbidden: 'this token may not do that',
  internal: 'the server failed; try again',
  unknown_type: 'the server does not support this request',
  time_up: "the attempt's time is already up",
};

// Close codes after which reconnecting cannot help.
export const FATAL_CLOSE = new Map([
  [4401, 'Token refused: missing, malformed, expired or wrongly signed'],
  [4403, 'Not allowed: this token may not proctor this exam'],
  [4404, 'No such exam'],
]);

// ------------------------------------------------------------------ requests
function bulkDone(verb) {
  return (ack) => {
    const applied = num(ack.applied, NaN);
    const skipped = num(ack.skipped, 0);
    if (Number.isNaN(applied)) return `${verb} every attempt it applies to.`;
    return `${verb} ${plural(applied, 'attempt', 'attempts')}${skipped ? ` (${skipped} skipped: not in a state that allows it)` : ''}.`;
  };
}

export function extendRequest(target, minutes) {
  const seconds = minutes * 60;
  if (target.all) {
    return { message: { t: 'extend', seconds, all: true }, what: `extend everyone by ${minutes} min`, done: bulkDone(`Added ${minutes} min to`) };
  }
  return {
    message: { t: 'extend', attempt: target.attempt, seconds },
    what: `extend ${target.name} by ${minutes} min`,
    done: () => `Extended ${target.name} by ${minutes} min.`,
  };
}

export function terminateRequest(target, reason) {
  return {
    message: { t: 'terminate', attempt: target.attempt, reason },
    what: `terminate ${target.name}`,
    done: () => `Terminated the attempt of ${target.name}.`,
  };
}

export function messageRequest(target, text) {
  return {
    message: { t: 'message', attempt: target.attempt, text },
    what: `message ${target.name}`,
    done: (ack) => (ack.connected === false
      ? `Message recorded, but ${target.name} is not connected and will not see it.`
      : `Message delivered to ${target.name}.`),
  };
}

export function pauseRequest(row) {
  const name = displayName(row);
  return { message: { t: 'pause', attempt: row.attempt }, what: `pause ${name}`, done: () => `Paused ${name}. Their clock is stopped.` };
}

export function resumeRequest(row) {
  const name = displayName(row);
  return { message: { t: 'resume', attempt: row.attempt }, what: `resume ${name}`, done: () => `Resumed ${name}.` };
}

export function pauseAllRequest() {
  return { message: { t: 'pause', all: true }, what: 'pause everyone', done: bulkDone('Paused') };
}

export function resumeAllRequest() {
  return { message: { t: 'resume', all: true }, what: 'resume everyone', done: bulkDone('Resumed') };
}

// ------------------------------------------------------------------ dialog input and texts
/** A whole number of minutes from 1 to 1440, else null. */
export function parseMinutes(raw) {
  const text = String(raw).trim();
  const minutes = Number(text);
  if (!text || !Number.isInteger(minutes) || minutes < 1 || minutes > 1440) return null;
  return minutes;
}

/** A terminate reason of 1 to 200 characters (trimmed), else null. */
export function checkReason(raw) {
  const reason = String(raw).trim();
  return !reason || reason.length > 200 ? null : reason;
}

/** A message of 1 to 2000 characters (trimmed), else null. */
export function checkText(raw) {
  const text = String(raw).trim();
  return !text || text.length > 2000 ? null : text;
}

export const INPUT_ERROR = {
  minutes: 'Enter a whole number of minutes from 1 to 1440.',
  reason: 'Give a reason of 1 to 200 characters.',
  text: 'Write a message of 1 to 2000 characters.',
};

/** The extend dialog for one row (`targetName` of it) or for everyone (`row` null). */
export function extendDialogText(target, inProgress) {
  if (target) {
    return { title: 'Extend time', text: `Adds time to the clock of ${target}.`, confirm: 'Extend' };
  }
  return {
    title: 'Extend time for everyone',
    text: `Adds time to every attempt in progress in this exam (${plural(inProgress, 'candidate', 'candidates')} now). Finished attempts are not changed.`,
    confirm: 'Extend everyone',
  };
}

export function pauseAllText(active) {
  return {
    title: 'Pause everyone?',
    text: `Stops the clock of every active attempt in this exam (${plural(active, 'candidate', 'candidates')} active now). Candidates cannot answer until resumed.`,
    confirm: 'Pause everyone',
  };
}

export function resumeAllText(paused) {
  return {
    title: 'Resume everyone?',
    text: `Restarts the clock of every paused attempt in this exam (${plural(paused, 'candidate', 'candidates')} paused now).`,
    confirm: 'Resume everyone',
  };
}

// ------------------------------------------------------------------ pending requests
/** The requests of one connection (lib/requests.js): ids start at 1 again on each connection. */
export function createRequests() {
  return new Requests();
}

export function begin(reqs, request) {
  const id = reqs.take();
  reqs.track(id, request);
  return { ...request.message, id };
}

export function settleAck(reqs, ack) {
  const p = reqs.settle(ack.id);
  return p ? p.done(ack) : null;
}

export function settleError(reqs, error) {
  const code = typeof error.code === 'string' ? error.code : 'error';
  const msg = typeof error.message === 'string' && error.message ? ` (${error.message})` : '';
  const explained = ERROR_TEXT[code] ? `${ERROR_TEXT[code]}${msg}` : `${code}${msg}`;
  const p = reqs.settle(error.id);
  return p ? `Could not ${p.what}: ${explained} [${code}].` : `Server error: ${explained} [${code}].`;
}

export function abandon(reqs) {
  if (reqs.size === 0) return null;
  const what = reqs.drain().map((p) => p.what);
  return `Connection lost before the server answered: ${what.join('; ')}. Check the table before retrying.`;
}

// ------------------------------------------------------------------ refusals
/**
 * A close that retrying cannot fix, said once: the status pill only says
 * "Refused (4403)", the text says what, and the server's reason only when it
 * adds something ("no such exam" does not). Null for any other code.
 */
export function fatalCloseText(code, reason) {
  const what = FATAL_CLOSE.get(code);
  if (!what) return null;
  const why = reason && !repeats(what, reason) ? `: ${reason}` : '';
  return { short: `Refused (${code})`, text: `${what} (close ${code}${why}).` };
}
