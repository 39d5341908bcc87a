// Formatting shared by the pages: numbers, points, clocks, durations, words.
// ES module, no DOM.
//
// Exported API (names are stable; add, never rename):
//   fmtNum(n, decimals = 2)  a score/points/percent: at most `decimals` decimals, trailing zeros dropped
//   fmtPoints(n)             "1 point", "2.5 points" (the unit never wraps apart from the number)
//   pad2(n)                  "07"
//   fmtClock(ms)             a countdown: "04:07", "1:02:03" (rounded up to the second, never negative)
//   clockTime(ms)            a wall-clock time of day in local time: "14:03:59"
//   fmtDuration(ms)          in words: "45 seconds", "30 minutes", "1 hour 30 minutes"
//   fmtDurationShort(ms)     compact: "30 min", "1 h 30 min"
//   plural(n, one, many)     "1 answer", "3 answers"
//   truncate(text, max)      `text` cut to `max` characters with an ellipsis
//   detailText(value)        any value as compact JSON for display ('' for null/undefined)
//   repeats(text, extra)     does `extra` (say a close reason) only repeat what `text` says?

/**
 * A score, points or percent value the way a person reads it: at most
 * `decimals` decimals, trailing zeros dropped (2.3333 -> "2.33", 7 -> "7",
 * 2.50 -> "2.5"). The server sends up to 4 decimals; nobody reads those.
 */
export function fmtNum(n, decimals = 2) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return String(n);
  const rounded = Number(n.toFixed(decimals));
  return String(Object.is(rounded, -0) ? 0 : rounded);
}

/** Points with their unit, which never wraps apart from the number. */
export function fmtPoints(n) {
  const text = fmtNum(n);
  return `${text}\u00a0${text === '1' ? 'point' : 'points'}`;
}

export const pad2 = (n) => String(n).padStart(2, '0');

/** Time left on a clock: mm:ss, or h:mm:ss from an hour up. */
export function fmtClock(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h}:${pad2(m)}:${pad2(s)}` : `${pad2(m)}:${pad2(s)}`;
}

/** The local time of day of an epoch time in ms: hh:mm:ss. */
export function clockTime(ms) {
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

export function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

/** A duration in words, for candidates. */
export function fmtDuration(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '';
  if (ms < 60000) return plural(Math.max(1, Math.round(ms / 1000)), 'second', 'seconds');
  const min = Math.round(ms / 60000);
  if (min < 60) return plural(min, 'minute', 'minutes');
  const h = Math.floor(min / 60);
  const rest = min % 60;
  return rest ? `${plural(h, 'hour', 'hours')} ${plural(rest, 'minute', 'minutes')}` : plural(h, 'hour', 'hours');
}

/** A duration in short units, for dense displays. */
export function fmtDurationShort(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '';
  const min = Math.round(ms / 60000);
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  const rest = min % 60;
  return rest ? `${h} h ${rest} min` : `${h} h`;
}

export function truncate(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function detailText(detail) {
  if (detail === null || detail === undefined) return '';
  try {
    const json = JSON.stringify(detail);
    return json === undefined ? '' : json;
  } catch {
    return String(detail);
  }
}

/** Does `extra` (say a close reason) only repeat what `text` already says? */
export function repeats(text, extra) {
  const norm = (t) => t.toLowerCase().replace(/[^a-z0-9]+/g, ' ').trim();
  return norm(text).includes(norm(extra));
}
