// Tokens in the page: the URL fragment they arrive in, and their claims for display.
// ES module. The server verifies tokens; the pages only read them to say who is signed in.
//
// Exported API (names are stable; add, never rename):
//   claimsOf(token) -> object          the JWT payload, or {} when it does not decode
//   whoOf(claims) -> string            the `name` claim, else "User <sub>", else ''
//   readFragment(loc = location) -> URLSearchParams | null     `#a=…&b=…`, or null when empty
//   clearFragment(loc = location, hist = history)             drop the fragment from the address bar

/** The token's payload, decoded for display only (the server verifies it). */
export function claimsOf(token) {
  try {
    const part = token.split('.')[1];
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : {};
  } catch {
    return {};
  }
}

/** A name when the token has one; else the user id, labelled as such (never passed off as a name). */
export function whoOf(claims) {
  if (typeof claims.name === 'string' && claims.name.trim()) return claims.name;
  if (typeof claims.sub === 'string' && claims.sub) return `User ${claims.sub}`;
  return '';
}

export function readFragment(loc = globalThis.location) {
  const raw = loc.hash.replace(/^#/, '');
  return raw ? new URLSearchParams(raw) : null;
}

export function clearFragment(loc = globalThis.location, hist = globalThis.history) {
  hist.replaceState(hist.state, '', loc.pathname + loc.search);
}
