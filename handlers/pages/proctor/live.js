// The live view's connection: one proctor WebSocket (lib/wire.js) feeding the state and the views.
//
// JSON text frames, as the dashboard has always spoken (docs/protocol.md, the
// proctor connection). The shared client brings the connect timeout, the pong
// watchdog and the reconnect backoff (full jitter, capped at 15 s here); a
// refusal (4401, 4403, 4404) is final. Ids are per connection and actions are
// never resent on their own: a request without an answer when the connection
// goes is reported in the status line.
//
// API
//   createLive({ state, table, feed, banners, onTokenRefused(short, text), env }) -> live
//     env (tests): lib/wire.js options (WebSocket, timers, now, mono, random) plus location and navigator
//   live.open(examId, token)   a fresh view of that exam, then connect
//   live.close()               disconnect; nothing is retried
//   live.send(request) -> bool an actions.js request, sent only while live (after the snapshot)
//   live.retryAt() -> ms | null  when the scheduled reconnect fires
//   live.retryNow()            reconnect at once when one is scheduled ("Retry now", back online)
//   live.clock                 lib/clock.js Clock: the server clock's offset

import { Clock } from '../lib/clock.js';
import { Wire, socketUrl } from '../lib/wire.js';
import { FATAL_CLOSE, abandon, begin, createRequests, fatalCloseText, settleAck, settleError } from './actions.js';
import { examHeading } from './present.js';
import { applySnapshot, applyUpdate, clearRows } from './state.js';

export const CLIENT = 'examwire-proctor/1';
export const WIRE_OPTIONS = {
  encoding: 'json',
  backoff: { baseMs: 500, capMs: 15000 },
  pingEveryMs: 15000,
  pingBurst: [0],
  pace: null,
  fatal: [...FATAL_CLOSE.keys()],
  superseded: [], // a proctor has no attempt to take over: 4409 is retried like any drop
};
const CLOCK_SAMPLES = 5;

export function createLive({ state, table, feed, banners, onTokenRefused, env = {} }) {
  const { location: loc = globalThis.location, navigator: nav = globalThis.navigator, ...wireEnv } = env;
  const now = wireEnv.now || (() => Date.now());
  const clock = new Clock({ samples: CLOCK_SAMPLES, now });
  const requests = createRequests();
  let token = null;
  let examId = null;
  let live = false; // the snapshot arrived: the table is current and actions may be sent
  let dropped = false; // this exam's connection was lost at least once

  const wire = new Wire({
    ...WIRE_OPTIONS,
    ...wireEnv,
    url: () => socketUrl(`/v1/exams/${encodeURIComponent(examId)}/proctor`, loc),
    hello: () => ({ t: 'hello', token, v: 1, client: CLIENT }),
    canConnect: () => Boolean(token && examId),
    on: { connecting, message, lost },
  });

  function connecting() {
    live = false;
    requests.reset();
    clock.reset();
    banners.setConn(dropped ? 'reconnecting' : 'connecting', dropped ? 'Reconnecting…' : 'Connecting…');
    banners.hideRetry();
  }

  function message(m) {
    switch (m.t) {
      case 'welcome': onWelcome(m); break;
      case 'snapshot': onSnapshot(m); break;
      case 'update': onUpdate(m); break;
      case 'ack': onAck(m); break;
      case 'error': banners.setStatus('error', settleError(requests, m)); break;
      case 'pong': clock.pong(m); break;
      default: break; // unknown pushes are ignored (the protocol may grow)
    }
  }

  function onWelcome(m) {
    clock.exchange(wire.helloAt, m.server_time);
    const exam = m.exam && typeof m.exam === 'object' ? m.exam : {};
    table.examTotal = exam.total;
    const { title, meta } = examHeading(exam, examId);
    banners.heading(title, meta);
  }

  function onSnapshot(m) {
    table.load(applySnapshot(state, m.attempts, now()));
    live = true;
    banners.showFatal('');
    banners.setConn('live', 'Live');
  }

  function onUpdate(m) {
    const out = applyUpdate(state, m, now());
    if (!out) return;
    // Cells are rewritten in the table's next coalesced refresh (at most 4 per second).
    table.changed(out.row);
    if (out.event) {
      feed.add(out.row, out.event, clock.serverNow());
      table.flash(out.row);
    }
  }

  function onAck(m) {
    // The row itself changes with the server's update (never from the ack, which
    // could be older than an update already shown).
    const text = settleAck(requests, m);
    if (text !== null) banners.setStatus('ok', text);
  }

  function lost({ code, reason, verdict }) {
    live = false;
    const unanswered = abandon(requests);
    if (unanswered) banners.setStatus('error', unanswered);
    const refused = verdict === 'fatal' ? fatalCloseText(code, reason) : null;
    if (refused) {
      if (code === 4401) {
        onTokenRefused(refused.short, `${refused.text} Paste a new token.`);
        return;
      }
      banners.setConn('error', refused.short);
      banners.showFatal(`${refused.text} Choose another exam or sign out.`);
      return;
    }
    dropped = true;
    banners.setConn('reconnecting', nav && nav.onLine === false ? 'Offline, reconnecting' : 'Reconnecting');
  }

  function close() {
    wire.stop('bye');
    live = false;
    requests.reset();
  }

  function open(id, tok) {
    close();
    examId = id;
    token = tok;
    dropped = false;
    clock.reset();
    table.examTotal = undefined;
    clearRows(state);
    table.reset();
    feed.clear();
    banners.setStatus('', '');
    banners.showFatal('');
    banners.heading(id, '');
    banners.showView('live');
    wire.reconnectNow();
  }

  function send(request) {
    if (!live || !wire.open) {
      banners.setStatus('error', `Not connected: could not ${request.what}. Wait until the status shows Live.`);
      return false;
    }
    wire.send(begin(requests, request));
    banners.setStatus('pending', `Sending: ${request.what}…`);
    return true;
  }

  return {
    open,
    close,
    send,
    retryAt: () => (wire.retryPending ? wire.retryAt : null),
    retryNow: () => { if (wire.retryPending) wire.connect(); },
    clock,
  };
}
