// Request ids and the requests still waiting for their `ack` or `error`.
// ES module, no DOM.
//
// Ids are positive integers that only ever grow (the candidate protocol needs
// them strictly increasing across reconnects; the proctor's are per connection:
// call reset() when a new connection starts).
//
// Exported API (names are stable; add, never rename):
//   new Requests(first = 1)
//   requests.nextId                   the id the next take() returns
//   requests.take() -> id
//   requests.atLeast(next)            make the next id at least `next`
//   requests.track(id, info)          remember what a sent request was (any value)
//   requests.peek(id) -> info | undefined
//   requests.settle(id) -> info | undefined    forget it (its ack or error arrived)
//   requests.size
//   requests.drain() -> [info]        forget all of them (the connection was lost), oldest first
//   requests.reset(first = 1)         drain, and start the ids again from `first`

export class Requests {
  constructor(first = 1) {
    this.nextId = first;
    this.waiting = new Map();
  }

  take() {
    return this.nextId++;
  }

  atLeast(next) {
    if (next > this.nextId) this.nextId = next;
  }

  track(id, info) {
    this.waiting.set(id, info);
  }

  peek(id) {
    return this.waiting.get(id);
  }

  settle(id) {
    const info = this.waiting.get(id);
    this.waiting.delete(id);
    return info;
  }

  get size() {
    return this.waiting.size;
  }

  drain() {
    const all = [...this.waiting.values()];
    this.waiting.clear();
    return all;
  }

  reset(first = 1) {
    this.waiting.clear();
    this.nextId = first;
  }
}
