// The question card: prompt, answer inputs, save status, flag, lock and block.
// Prompts and options are text and only ever reach the DOM through textContent.
//
// Exported API: renderQuestion(focus), focusQuestion(), renderStatusLine(), renderFlag(),
//   renderLock(), syncInputs(force), renderSaveState(qid), showInputError(text)

import { fmtPoints } from '../lib/format.js';
import { mk } from '../lib/dom.js';
import { S } from './app.js';
import { el } from './dom.js';
import { isAnswered, isLinear, isLocked, saveStatusOf } from './state.js';
import { renderNavigator } from './navigator.js';
import { setAnswer, debounce, cancelTypingFor } from './answers.js';
import { ensureQuestions } from './session.js';

const NUMERIC_DEBOUNCE_MS = 600;
const TEXT_DEBOUNCE_MS = 800;
const TEXT_MAX = 2000;
const NUMERIC_MAX = 1e15;

const TYPE_LABEL = {
  single: 'Choose one answer',
  multiple: 'Choose all answers that apply',
  true_false: 'True or false?',
  numeric: 'Your answer (a number)',
  text: 'Your answer',
};

let updateCount = null; // the text answer's character count, while one is shown

export function renderSaveState(qid) {
  renderNavigator();
  if (S.rendered && S.rendered.qid === qid) renderStatusLine();
}

export function renderStatusLine() {
  const q = S.questions[S.index];
  if (!q) {
    el.saveStatus.textContent = '';
    el.saveStatus.dataset.status = 'none';
    el.saveDetail.textContent = '';
    return;
  }
  const status = saveStatusOf(S, q.id);
  const text = { saving: 'saving…', saved: 'saved', cleared: 'saved', error: 'not saved', none: '' }[status];
  if (el.saveStatus.textContent !== text) el.saveStatus.textContent = text;
  el.saveStatus.dataset.status = status;
  let detail = '';
  if (status === 'saving' && !S.welcomed && !S.typing.has(q.id)) detail = 'offline: kept on this device, sent when the connection is back';
  else if (status === 'error') detail = S.qError.get(q.id) || '';
  else if (status === 'cleared') detail = 'answer cleared';
  else if (status === 'none') detail = 'not answered yet';
  el.saveDetail.textContent = detail;
  el.clear.hidden = !isAnswered(S.answers.get(q.id)) || isLocked(S);
}

export function focusQuestion() {
  setTimeout(() => {
    if (el.view.dataset.view === 'question') el.qNumber.focus();
  }, 0);
}

export function renderQuestion(focus) {
  const q = S.questions[S.index];
  el.qPos.textContent = String(S.index + 1);
  el.qTotal.textContent = String(S.total);
  if (!q) {
    S.rendered = null;
    el.prompt.textContent = 'Loading the question…';
    el.qMeta.textContent = '';
    el.answerFs.hidden = true;
    el.answerBody.replaceChildren();
    ensureQuestions();
  } else if (!S.rendered || S.rendered.index !== S.index || S.rendered.qid !== q.id) {
    buildQuestion(q);
  }
  renderStatusLine();
  renderFlag();
  renderNavigator();
  renderLock();
  if (focus) focusQuestion();
}

function buildQuestion(q) {
  S.rendered = { index: S.index, qid: q.id };
  el.prompt.textContent = q.prompt;
  const points = typeof q.points === 'number' ? q.points : 1;
  el.qMeta.textContent = fmtPoints(points);
  el.answerFs.hidden = false;
  el.inputError.hidden = true;
  el.answerLegend.textContent = TYPE_LABEL[q.type] || 'Your answer';
  el.answerLegend.classList.toggle('visually-hidden', q.type === 'numeric' || q.type === 'text');
  el.answerFs.dataset.type = q.type;
  let body;
  if (q.type === 'single' || q.type === 'multiple') body = choiceInputs(q);
  else if (q.type === 'true_false') body = trueFalseInputs(q);
  else if (q.type === 'numeric') body = numericInput(q);
  else if (q.type === 'text') body = textInput(q);
  else {
    body = mk('p', 'muted', 'This page cannot show this kind of question.');
  }
  el.answerBody.replaceChildren(body);
  syncInputs(true);
}

function option(type, value, text, n) {
  const label = mk('label', 'opt');
  const input = document.createElement('input');
  input.type = type;
  input.name = `answer-${S.index}`;
  input.value = value;
  input.id = `opt-${S.index}-${n}`;
  const span = mk('span', 'opt__text', text);
  label.append(input, span);
  return { label, input };
}

function choiceInputs(q) {
  const list = mk('div', 'opts');
  const inputs = [];
  q.options.forEach((o, n) => {
    const { label, input } = option(q.type === 'single' ? 'radio' : 'checkbox', o.id, o.text, n);
    inputs.push(input);
    input.addEventListener('change', () => {
      if (q.type === 'single') {
        if (input.checked) setAnswer(q, o.id);
      } else {
        setAnswer(q, inputs.filter((i) => i.checked).map((i) => i.value));
      }
      markChecked(list);
    });
    list.append(label);
  });
  return list;
}

function trueFalseInputs(q) {
  const list = mk('div', 'opts opts--tf');
  [[true, 'True'], [false, 'False']].forEach(([value, text], n) => {
    const { label, input } = option('radio', String(value), text, n);
    input.addEventListener('change', () => {
      if (input.checked) setAnswer(q, value);
      markChecked(list);
    });
    list.append(label);
  });
  return list;
}

function numericInput(q) {
  const wrap = mk('div', 'field field--answer');
  const label = mk('label', '', 'Your answer (a number)');
  label.htmlFor = 'answer-numeric';
  const input = document.createElement('input');
  input.type = 'number';
  input.id = 'answer-numeric';
  input.step = 'any';
  input.inputMode = 'decimal';
  input.autocomplete = 'off';
  input.setAttribute('aria-describedby', 'numeric-hint input-error');
  const hint = mk('p', 'hint', 'Use a dot for decimals, for example 3.14. Saved automatically.');
  hint.id = 'numeric-hint';
  const commit = () => {
    const parsed = parseNumeric(input);
    if (parsed.error) {
      showInputError(parsed.error);
      renderSaveState(q.id);
      return;
    }
    showInputError('');
    setAnswer(q, parsed.value);
  };
  input.addEventListener('input', () => {
    const parsed = parseNumeric(input);
    if (parsed.error) {
      cancelTypingFor(q.id);
      renderSaveState(q.id);
      return; // shown on change or blur, not while typing
    }
    showInputError('');
    debounce(q, NUMERIC_DEBOUNCE_MS, parsed.value, commit);
  });
  input.addEventListener('change', () => { cancelTypingFor(q.id); commit(); });
  input.addEventListener('blur', () => { cancelTypingFor(q.id); commit(); });
  wrap.append(label, input, hint);
  return wrap;
}

function textInput(q) {
  const wrap = mk('div', 'field field--answer');
  const label = mk('label', '', 'Your answer');
  label.htmlFor = 'answer-text';
  const area = document.createElement('textarea');
  area.id = 'answer-text';
  area.rows = 5;
  area.maxLength = TEXT_MAX;
  area.setAttribute('aria-describedby', 'text-count');
  const count = mk('p', 'hint');
  count.id = 'text-count';
  const showCount = () => { count.textContent = `${area.value.length} / ${TEXT_MAX} characters · saved automatically`; };
  const value = () => (area.value.trim() === '' ? null : area.value);
  const commit = () => setAnswer(q, value());
  area.addEventListener('input', () => {
    showCount();
    debounce(q, TEXT_DEBOUNCE_MS, value(), commit);
  });
  area.addEventListener('blur', () => { if (S.typing.has(q.id)) { cancelTypingFor(q.id); commit(); } });
  wrap.append(label, area, count);
  area.dataset.count = '1';
  updateCount = showCount;
  return wrap;
}

function markChecked(list) {
  for (const label of list.querySelectorAll('.opt')) {
    label.classList.toggle('is-checked', label.querySelector('input').checked);
  }
}

function parseNumeric(input) {
  if (input.validity && input.validity.badInput) return { error: 'Enter a number, for example 42 or 3.14.' };
  const raw = input.value.trim();
  if (raw === '') return { value: null };
  const n = Number(raw);
  if (!Number.isFinite(n)) return { error: 'Enter a number, for example 42 or 3.14.' };
  if (Math.abs(n) > NUMERIC_MAX) return { error: 'This number is too large.' };
  return { value: n };
}

export function showInputError(text) {
  el.inputError.textContent = text;
  el.inputError.hidden = !text;
  const input = document.getElementById('answer-numeric');
  if (input) input.setAttribute('aria-invalid', text ? 'true' : 'false');
}

/** Put the shown value of the current question into its inputs (never under the candidate's fingers). */
export function syncInputs(force) {
  const q = S.questions[S.index];
  if (!q || !S.rendered || S.rendered.qid !== q.id) return;
  const value = S.answers.has(q.id) ? S.answers.get(q.id) : null;
  if (q.type === 'single' || q.type === 'multiple' || q.type === 'true_false') {
    const chosen = q.type === 'multiple' ? new Set(Array.isArray(value) ? value : [])
      : new Set(value === null || value === undefined ? [] : [String(value)]);
    for (const input of el.answerBody.querySelectorAll('input')) input.checked = chosen.has(input.value);
    const list = el.answerBody.querySelector('.opts');
    if (list) markChecked(list);
  } else if (q.type === 'numeric') {
    const input = document.getElementById('answer-numeric');
    if (input && (force || (document.activeElement !== input && !S.typing.has(q.id)))) {
      input.value = typeof value === 'number' ? String(value) : '';
    }
  } else if (q.type === 'text') {
    const area = document.getElementById('answer-text');
    if (area && (force || (document.activeElement !== area && !S.typing.has(q.id)))) {
      area.value = typeof value === 'string' ? value : '';
      if (updateCount) updateCount();
    }
  }
}

export function renderFlag() {
  const q = S.questions[S.index];
  const on = Boolean(q && S.flags.has(q.id));
  el.flag.setAttribute('aria-pressed', on ? 'true' : 'false');
  el.flag.classList.toggle('is-on', on);
  el.flagText.textContent = on ? 'Flagged for review' : 'Flag for review';
}

export function renderLock() {
  if (el.view.dataset.view !== 'question') return;
  const lock = isLocked(S);
  const linear = isLinear(S);
  const q = S.questions[S.index];
  el.answerFs.disabled = lock;
  el.flag.disabled = lock || !q;
  el.prev.disabled = lock || linear || S.index <= 0;
  el.next.disabled = lock || S.index >= S.total - 1;
  el.linearNote.hidden = !linear;
  el.submit.disabled = lock;
  el.submit.textContent = S.submitting ? 'Submitting…' : 'Submit exam…';
  for (const b of el.navigator.querySelectorAll('button')) {
    const i = Number(b.dataset.index);
    b.disabled = (S.state !== 'active' && S.state !== 'paused') || S.superseded || S.submitting || S.timeUp
      || S.state === 'paused' || (linear && i < S.index);
  }
  let block = '';
  let kind = '';
  // superseded: the banner says it (once), with the button that takes the exam back
  if (S.superseded) kind = 'superseded';
  else if (S.timeUp) { block = 'Time is up. Your saved answers are being handed in…'; kind = 'timeup'; }
  else if (S.state === 'paused') { block = 'Your proctor has paused the exam. The clock is stopped; please wait.'; kind = 'paused'; }
  else if (S.submitting) { block = S.welcomed ? 'Submitting your exam…' : 'Your exam will be submitted as soon as the connection is back.'; kind = 'submitting'; }
  el.block.hidden = !block;
  el.block.dataset.kind = kind;
  if (el.blockText.textContent !== block) el.blockText.textContent = block;
  el.clear.hidden = !q || !isAnswered(S.answers.get(q.id)) || lock;
}
