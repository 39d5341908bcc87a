// The event feed: candidate events, newest first, the last FEED_MAX kept.
//
// API
//   createFeed({ feed, feedEmpty }) -> { add(row, event, serverNow), clear() }

import { mk } from '../lib/dom.js';
import { feedEntry } from './present.js';
import { FLASH_MS } from './rows.js';

export const FEED_MAX = 200;

export function createFeed(el) {
  function add(row, event, serverNow) {
    const e = feedEntry(row, event, serverNow);
    const li = mk('li', 'is-new');
    const time = mk('time', 'feed__time', e.time);
    time.dateTime = e.iso;
    const line = mk('div', 'feed__line');
    line.append(mk('span', 'feed__who', e.who), mk('span', `feed__kind${e.alert ? ' is-alert' : ''}`, e.kind));
    const detail = mk('div', 'feed__detail', e.detail);
    if (e.title !== null) detail.title = e.title;
    li.append(time, line, detail);
    el.feed.prepend(li);
    setTimeout(() => li.classList.remove('is-new'), FLASH_MS);
    while (el.feed.childElementCount > FEED_MAX) el.feed.lastElementChild.remove();
    el.feedEmpty.hidden = true;
  }

  function clear() {
    el.feed.replaceChildren();
    el.feedEmpty.hidden = false;
  }

  return { add, clear };
}
