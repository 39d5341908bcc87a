// The candidates table: row views kept in the state's order, the counts, the sort headers.
//
// Repaints are coalesced: changed rows are rewritten and the order redone at
// most every REFRESH_MS, so a burst of updates costs one layout, not one per
// update. Only rows on (or near) the screen get their clock repainted every second.
//
// API
//   createTable(el, state, clock) -> table
//     el: { table, rows (tbody), empty, shown, counts: { total, active, paused, ready, connected, finished } }
//     state: state.js's state; clock: { now() -> browser ms, offset() -> server minus browser ms }
//   table.reset()              no rows (a new exam, a new snapshot, sign-out)
//   table.load(rows)           a row view for each of a snapshot's rows, then repaint
//   table.changed(row)         repaint that row (coalesced) and redo the order
//   table.flash(row)           highlight a row (a candidate event)
//   table.reorder(now)         redo the order (coalesced; `now`: at once)
//   table.sorted()             the sort changed: headers' aria-sort, then the order at once
//   table.tick()               every second: visible clocks; the order when sorted by time left
//   table.viewOf(id) -> view | undefined
//   table.examTotal            the exam's question count (rows without their own `total`)

import { setText } from '../lib/dom.js';
import { emptyText, shownText } from './present.js';
import { ariaSort, counts, orderRows } from './state.js';
import { createRowView, disposeRowView, flash, renderLeft, renderRow } from './rows.js';

export const REFRESH_MS = 250;

export function createTable(el, state, clock) {
  const views = new Map(); // attempt id -> row view
  const dirty = new Set(); // attempt ids
  let needOrder = false;
  let timer = null;
  let last = -Infinity;

  const table = { examTotal: undefined };

  const visibility = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const view = views.get(entry.target.dataset.attempt);
      if (!view || view.tr !== entry.target) continue;
      view.visible = entry.isIntersecting;
      const row = state.rows.get(view.id);
      if (view.visible && row) renderLeft(view, row, clock.now(), clock.offset());
    }
  }, { rootMargin: '300px 0px' });

  function viewFor(row) {
    let view = views.get(row.attempt);
    if (!view) {
      view = createRowView(row.attempt);
      views.set(row.attempt, view);
      visibility.observe(view.tr);
    }
    return view;
  }

  function render(id) {
    const row = state.rows.get(id);
    const view = views.get(id);
    if (row && view) renderRow(view, row, table.examTotal, clock.now(), clock.offset());
  }

  function renderCounts() {
    const c = counts(state);
    for (const key of Object.keys(el.counts)) setText(el.counts[key], String(c[key]));
  }

  function place() {
    const order = orderRows(state, clock.now(), clock.offset());
    // Move only what is out of place: rows already in order stay untouched.
    const body = el.rows;
    let cursor = body.firstChild;
    for (const row of order) {
      const known = views.has(row.attempt);
      const view = viewFor(row);
      if (!known) renderRow(view, row, table.examTotal, clock.now(), clock.offset());
      const tr = view.tr;
      if (tr === cursor) cursor = cursor.nextSibling;
      else body.insertBefore(tr, cursor);
    }
    while (cursor) {
      const next = cursor.nextSibling;
      cursor.remove();
      cursor = next;
    }
    const total = state.rows.size;
    el.empty.hidden = order.length > 0;
    el.empty.textContent = emptyText(total);
    setText(el.shown, shownText(order.length, total));
  }

  function refresh() {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    last = performance.now();
    for (const id of dirty) render(id);
    dirty.clear();
    renderCounts();
    if (!needOrder) return;
    needOrder = false;
    place();
  }

  function schedule() {
    if (timer !== null) return;
    timer = setTimeout(refresh, Math.max(0, last + REFRESH_MS - performance.now()));
  }

  function clear() {
    for (const view of views.values()) disposeRowView(view);
    visibility.disconnect();
    views.clear();
    dirty.clear();
    el.rows.replaceChildren();
  }

  table.reset = () => {
    clear();
    needOrder = true;
    refresh();
  };

  table.load = (rows) => {
    clear();
    for (const row of rows) render(viewFor(row).id);
    needOrder = true;
    refresh();
  };

  table.changed = (row) => {
    viewFor(row);
    dirty.add(row.attempt);
    needOrder = true;
    schedule();
  };

  table.flash = (row) => {
    const view = views.get(row.attempt);
    if (view) flash(view);
  };

  table.reorder = (now) => {
    needOrder = true;
    if (now) refresh();
    else schedule();
  };

  table.sorted = () => {
    for (const th of el.table.tHead.querySelectorAll('th[data-sort]')) {
      th.setAttribute('aria-sort', ariaSort(state.sort, th.dataset.sort));
    }
    table.reorder(true);
  };

  table.tick = () => {
    const now = clock.now();
    const offset = clock.offset();
    for (const view of views.values()) {
      const row = state.rows.get(view.id);
      if (view.visible && row && row.state === 'active') renderLeft(view, row, now, offset);
    }
    if (state.sort.key === 'left' && state.rows.size) table.reorder(false);
  };

  table.viewOf = (id) => views.get(id);

  return table;
}
