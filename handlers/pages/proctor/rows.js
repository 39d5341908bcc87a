// One table row per attempt: its cells, repainted from the state's row.
//
// API
//   createRowView(id) -> view        { tr, c (cells), buttons, shown, flashTimer, visible }
//   renderRow(view, row, examTotal, now, offset)   every cell, each written only when its text changed
//   renderLeft(view, row, now, offset)             the time-left cell only (the clock ticks every second)
//   flash(view), disposeRowView(view)
//
// Markup: <tr data-attempt role="row"> with <td role="cell" data-col="name|state|connected|answered|
// flagged|question|left|events|actions">; the action buttons carry data-action="extend|pause|resume|
// message|terminate" (the table's click handler reads them).

import { mk } from '../lib/dom.js';
import { leftCell, rowButtons, rowCells } from './present.js';

export const FLASH_MS = 1700;

function actionButton(action, label, cls) {
  const b = mk('button', `btn btn--xs${cls ? ` ${cls}` : ''}`, label);
  b.type = 'button';
  b.dataset.action = action;
  return b;
}

export function createRowView(id) {
  const tr = document.createElement('tr');
  tr.dataset.attempt = id;
  tr.setAttribute('role', 'row'); // explicit: rows stay rows in the card layout (see proctor.html)
  const td = (col, cls) => {
    const cell = mk('td', cls);
    cell.setAttribute('role', 'cell');
    cell.dataset.col = col;
    tr.append(cell);
    return cell;
  };

  const name = td('name');
  const nameText = mk('div', 'cand-name');
  const userText = mk('div', 'cand-user');
  name.append(nameText, userText);

  const state = td('state');
  const badge = mk('span', 'badge');
  const stateExtra = mk('span', 'state-extra');
  state.append(badge, stateExtra);

  const connected = td('connected');
  const connWrap = mk('span', 'conn-cell');
  const connDot = mk('span', 'dot');
  connDot.setAttribute('aria-hidden', 'true');
  const connText = mk('span', 'conn-word');
  connWrap.append(connDot, connText);
  connected.append(connWrap);

  const answered = td('answered');
  const answeredText = mk('span', 'cv progress-text');
  const bar = mk('span', 'bar');
  bar.setAttribute('aria-hidden', 'true');
  const fill = mk('span', 'bar__fill');
  bar.append(fill);
  answered.append(answeredText, bar);

  // Values that change often sit in size-contained spans (class "cv"), so
  // rewriting them does not relayout a table of thousands of rows.
  const value = (col, cls) => {
    const span = mk('span', cls);
    td(col, 'num').append(span);
    return span;
  };
  const flagged = value('flagged', 'cv');
  const question = value('question', 'cv');
  const leftText = value('left', 'cv left');
  const events = value('events', 'cv');

  const actions = mk('td');
  actions.setAttribute('role', 'cell');
  actions.dataset.col = 'actions';
  const group = mk('div', 'row-actions');
  const buttons = {
    extend: actionButton('extend', 'Extend'),
    pause: actionButton('pause', 'Pause'),
    resume: actionButton('resume', 'Resume'),
    message: actionButton('message', 'Message'),
    terminate: actionButton('terminate', 'Terminate', 'btn--danger-text'),
  };
  group.append(buttons.extend, buttons.pause, buttons.resume, buttons.message, buttons.terminate);
  actions.append(group);
  tr.append(actions);

  return {
    id,
    tr,
    c: { nameText, userText, badge, stateExtra, connWrap, connDot, connText, answeredText, fill, flagged, question, leftText, events },
    buttons,
    shown: {},
    flashTimer: null,
    visible: false,
  };
}

/** Set a cell's text only when it changed. */
function put(view, key, node, text) {
  if (view.shown[key] !== text) {
    view.shown[key] = text;
    node.textContent = text;
  }
}

function putClass(view, key, node, cls) {
  if (view.shown[key] !== cls) {
    view.shown[key] = cls;
    node.className = cls;
  }
}

export function renderRow(view, row, examTotal, now, offset) {
  const c = view.c;
  const v = rowCells(row, examTotal);
  put(view, 'name', c.nameText, v.name);
  put(view, 'user', c.userText, v.user);
  put(view, 'state', c.badge, v.state);
  putClass(view, 'stateCls', c.badge, v.badgeCls);
  put(view, 'extra', c.stateExtra, v.extra);
  put(view, 'dot', c.connDot, v.dot);
  put(view, 'conn', c.connText, v.conn);
  putClass(view, 'connCls', c.connWrap, v.connCls);
  put(view, 'answered', c.answeredText, v.answered);
  if (view.shown.pct !== v.pct) {
    view.shown.pct = v.pct;
    c.fill.style.width = `${v.pct}%`;
  }
  put(view, 'flagged', c.flagged, v.flagged);
  putClass(view, 'flagCls', c.flagged, v.flagCls);
  put(view, 'question', c.question, v.question);
  put(view, 'events', c.events, v.events);
  putClass(view, 'eventsCls', c.events, v.eventsCls);
  renderLeft(view, row, now, offset);

  const rowCls = `${v.final ? 'is-final' : ''}${v.lost ? ' is-lost' : ''}${view.tr.classList.contains('flash') ? ' flash' : ''}`.trim();
  if (view.tr.className !== rowCls) view.tr.className = rowCls;

  // actions allowed in this state
  const b = rowButtons(row);
  if (view.shown.actState !== b.state || view.shown.actName !== b.name) {
    view.shown.actState = b.state;
    view.shown.actName = b.name;
    for (const [action, button] of Object.entries(view.buttons)) {
      button.disabled = b[action].disabled;
      button.hidden = b[action].hidden;
      button.setAttribute('aria-label', b[action].label);
    }
  }
}

export function renderLeft(view, row, now, offset) {
  const { text, cls } = leftCell(row, now, offset);
  put(view, 'left', view.c.leftText, text);
  putClass(view, 'leftCls', view.c.leftText, cls);
}

export function flash(view) {
  view.tr.classList.add('flash');
  clearTimeout(view.flashTimer);
  view.flashTimer = setTimeout(() => view.tr.classList.remove('flash'), FLASH_MS);
}

export function disposeRowView(view) {
  clearTimeout(view.flashTimer);
}
