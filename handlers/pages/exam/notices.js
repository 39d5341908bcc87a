// Messages from the proctor, newest first, at most five, each dismissable.
//
// `from` is the proctor's `name` claim, but for a token without one the server
// signs with a role name, which a page cannot tell from a person's name; what a
// candidate needs to know is that the proctor wrote it, so the page names the role.
//
// Exported API: showNotice(message)

import { el } from './dom.js';

const MAX_NOTICES = 5;

export function showNotice(m) {
  const text = typeof m.text === 'string' ? m.text : '';
  if (!text) return;
  const from = 'your proctor';
  const item = document.createElement('div');
  item.className = 'notice';
  item.setAttribute('role', 'note');
  const body = document.createElement('div');
  body.className = 'notice__body';
  const head = document.createElement('p');
  head.className = 'notice__from';
  head.textContent = `Message from ${from}`;
  const p = document.createElement('p');
  p.className = 'notice__text';
  p.textContent = text;
  body.append(head, p);
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'btn btn--sm notice__close';
  close.textContent = 'Dismiss';
  close.setAttribute('aria-label', `Dismiss the message from ${from}`);
  close.addEventListener('click', () => {
    const next = item.nextElementSibling || item.previousElementSibling;
    item.remove();
    const target = next ? next.querySelector('button') : el.qNumber;
    if (target && !target.closest('[hidden]')) target.focus(); else el.main.focus();
  });
  item.append(body, close);
  el.notice.prepend(item);
  while (el.notice.children.length > MAX_NOTICES) el.notice.lastElementChild.remove();
}
