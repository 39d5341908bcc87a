// Numbers as the pages show them (ES module, shared by the exam page and the dashboard).

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
