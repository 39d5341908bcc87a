// The question navigator: one button per question with its state, and the progress bar.
//
// Exported API: renderNavigator()

import { S } from './app.js';
import { el } from './dom.js';
import { isAnswered, isLinear, saveStatusOf } from './state.js';
import { goTo } from './answers.js';

function navLabel(i, q) {
  const parts = [`Question ${i + 1}`];
  if (!q) return parts.join(', ');
  const status = saveStatusOf(S, q.id);
  parts.push(isAnswered(S.answers.get(q.id)) ? 'answered' : 'not answered');
  if (S.flags.has(q.id)) parts.push('flagged');
  if (status === 'saving') parts.push('saving');
  if (status === 'error') parts.push('not saved');
  if (isLinear(S) && i < S.index) parts.push('closed');
  return parts.join(', ');
}

export function renderNavigator() {
  if (!S.exam) return;
  const ol = el.navigator;
  if (ol.children.length !== S.total) {
    const items = [];
    for (let i = 0; i < S.total; i++) {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'nav-btn';
      b.dataset.index = String(i);
      b.textContent = String(i + 1);
      b.addEventListener('click', () => goTo(i));
      li.append(b);
      items.push(li);
    }
    ol.replaceChildren(...items);
  }
  const linear = isLinear(S);
  let answered = 0;
  for (let i = 0; i < S.total; i++) {
    const b = ol.children[i].firstChild;
    const q = S.questions[i];
    const isAns = Boolean(q) && isAnswered(S.answers.get(q.id));
    if (isAns) answered++;
    const flagged = Boolean(q) && S.flags.has(q.id);
    const status = q ? saveStatusOf(S, q.id) : 'none';
    b.dataset.answered = isAns ? 'true' : 'false';
    b.dataset.flagged = flagged ? 'true' : 'false';
    b.dataset.saving = status === 'saving' ? 'true' : 'false';
    b.dataset.error = status === 'error' ? 'true' : 'false';
    b.dataset.closed = linear && i < S.index ? 'true' : 'false';
    if (i === S.index) b.setAttribute('aria-current', 'step');
    else b.removeAttribute('aria-current');
    const label = navLabel(i, q);
    if (b.getAttribute('aria-label') !== label) b.setAttribute('aria-label', label);
  }
  el.progress.textContent = `${answered} of ${S.total} answered`;
  el.progressFill.style.width = S.total ? `${(100 * answered) / S.total}%` : '0%';
  if (S.navIndex !== S.index && el.view.dataset.view === 'question') {
    S.navIndex = S.index;
    keepCurrentInView();
  }
}

/** Scroll the navigator (only it, never the page) so that the current question's cell is in view. */
function keepCurrentInView() {
  const nav = el.navigator;
  const li = nav.children[S.index];
  if (!li || nav.scrollHeight <= nav.clientHeight) return;
  const pad = parseFloat(getComputedStyle(nav).paddingTop) || 0;
  const box = nav.getBoundingClientRect();
  const top = box.top + nav.clientTop;
  const cell = li.getBoundingClientRect();
  if (cell.top < top + pad) nav.scrollTop -= top + pad - cell.top;
  else if (cell.bottom > top + nav.clientHeight - pad) nav.scrollTop += cell.bottom - (top + nav.clientHeight - pad);
}
