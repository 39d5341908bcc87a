// A small MessagePack encoder/decoder (https://github.com/msgpack/msgpack/blob/master/spec.md).
// ES module, no dependencies. Enough for the Examwire wire protocol and a little more:
//
//   encode(value) -> Uint8Array      null/undefined, booleans, numbers, bigint, strings,
//                                    arrays, plain objects and Maps, Uint8Array/ArrayBuffer (bin)
//   decode(bytes) -> value           bytes: ArrayBuffer, a typed array or a DataView
//
// Numbers: safe integers are written in the smallest int format, every other
// number as float64. Integers read back as Number when they are safe
// (|n| <= 2^53 - 1), else as BigInt. Maps decode to plain objects (keys turned
// into strings), bin to Uint8Array. Extension types are refused, as are
// trailing bytes, truncated input, invalid UTF-8 and nesting deeper than
// MAX_DEPTH. Errors are thrown as MsgpackError.

export const MAX_DEPTH = 100;

export class MsgpackError extends Error {
  constructor(message) {
    super(message);
    this.name = 'MsgpackError';
  }
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const TWO_32 = 2 ** 32;

// ------------------------------------------------------------------ encoding
class Writer {
  constructor(size = 256) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
  }

  ensure(n) {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(b) { this.ensure(1); this.buf[this.pos++] = b; }
  u16(n) { this.ensure(2); this.view.setUint16(this.pos, n); this.pos += 2; }
  u32(n) { this.ensure(4); this.view.setUint32(this.pos, n); this.pos += 4; }
  typeU8(t, n) { this.ensure(2); this.buf[this.pos++] = t; this.buf[this.pos++] = n; }
  typeU16(t, n) { this.u8(t); this.u16(n); }
  typeU32(t, n) { this.u8(t); this.u32(n); }

  bytes(b) {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  result() { return this.buf.slice(0, this.pos); }
}

function encodeInt(w, n) {
  if (n >= 0) {
    if (n < 128) w.u8(n);
    else if (n < 0x100) w.typeU8(0xcc, n);
    else if (n < 0x10000) w.typeU16(0xcd, n);
    else if (n < TWO_32) w.typeU32(0xce, n);
    else { w.u8(0xcf); w.u32(Math.floor(n / TWO_32)); w.u32(n % TWO_32); }
  } else if (n >= -32) {
    w.u8(n & 0xff); // negative fixint 0xe0..0xff
  } else if (n >= -0x80) {
    w.typeU8(0xd0, n & 0xff);
  } else if (n >= -0x8000) {
    w.u8(0xd1); w.ensure(2); w.view.setInt16(w.pos, n); w.pos += 2;
  } else if (n >= -0x80000000) {
    w.u8(0xd2); w.ensure(4); w.view.setInt32(w.pos, n); w.pos += 4;
  } else {
    w.u8(0xd3); w.ensure(8); w.view.setBigInt64(w.pos, BigInt(n)); w.pos += 8;
  }
}

function encodeBigInt(w, n) {
  if (n >= -(2n ** 63n) && n < 0n) {
    if (n >= BigInt(Number.MIN_SAFE_INTEGER)) { encodeInt(w, Number(n)); return; }
    w.u8(0xd3); w.ensure(8); w.view.setBigInt64(w.pos, n); w.pos += 8;
  } else if (n >= 0n && n < 2n ** 64n) {
    if (n <= BigInt(Number.MAX_SAFE_INTEGER)) { encodeInt(w, Number(n)); return; }
    w.u8(0xcf); w.ensure(8); w.view.setBigUint64(w.pos, n); w.pos += 8;
  } else {
    throw new MsgpackError('bigint out of the 64-bit range');
  }
}

function encodeString(w, s) {
  const b = utf8Encoder.encode(s);
  const n = b.length;
  if (n < 32) w.u8(0xa0 | n);
  else if (n < 0x100) w.typeU8(0xd9, n);
  else if (n < 0x10000) w.typeU16(0xda, n);
  else if (n < TWO_32) w.typeU32(0xdb, n);
  else throw new MsgpackError('string too long');
  w.bytes(b);
}

function encodeBin(w, b) {
  const n = b.length;
  if (n < 0x100) w.typeU8(0xc4, n);
  else if (n < 0x10000) w.typeU16(0xc5, n);
  else if (n < TWO_32) w.typeU32(0xc6, n);
  else throw new MsgpackError('binary too long');
  w.bytes(b);
}

function arrayHeader(w, n) {
  if (n < 16) w.u8(0x90 | n);
  else if (n < 0x10000) w.typeU16(0xdc, n);
  else if (n < TWO_32) w.typeU32(0xdd, n);
  else throw new MsgpackError('array too long');
}

function mapHeader(w, n) {
  if (n < 16) w.u8(0x80 | n);
  else if (n < 0x10000) w.typeU16(0xde, n);
  else if (n < TWO_32) w.typeU32(0xdf, n);
  else throw new MsgpackError('map too long');
}

function isPlainObject(v) {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function encodeValue(w, v, depth) {
  if (depth > MAX_DEPTH) throw new MsgpackError('value nested too deeply (or cyclic)');
  switch (typeof v) {
    case 'undefined':
      w.u8(0xc0);
      return;
    case 'boolean':
      w.u8(v ? 0xc3 : 0xc2);
      return;
    case 'number':
      if (Number.isSafeInteger(v) && !Object.is(v, -0)) {
        encodeInt(w, v);
      } else {
        w.u8(0xcb); w.ensure(8); w.view.setFloat64(w.pos, v); w.pos += 8;
      }
      return;
    case 'bigint':
      encodeBigInt(w, v);
      return;
    case 'string':
      encodeString(w, v);
      return;
    case 'object':
      break;
    default:
      throw new MsgpackError(`cannot encode a ${typeof v}`);
  }
  if (v === null) { w.u8(0xc0); return; }
  if (Array.isArray(v)) {
    arrayHeader(w, v.length);
    for (const item of v) encodeValue(w, item, depth + 1);
    return;
  }
  if (v instanceof Uint8Array) { encodeBin(w, v); return; }
  if (v instanceof ArrayBuffer) { encodeBin(w, new Uint8Array(v)); return; }
  if (ArrayBuffer.isView(v)) { encodeBin(w, new Uint8Array(v.buffer, v.byteOffset, v.byteLength)); return; }
  if (v instanceof Map) {
    mapHeader(w, v.size);
    for (const [key, item] of v) {
      encodeValue(w, key, depth + 1);
      encodeValue(w, item, depth + 1);
    }
    return;
  }
  if (!isPlainObject(v)) throw new MsgpackError('cannot encode this kind of object');
  // like JSON: properties whose value is undefined are left out
  const keys = Object.keys(v).filter((k) => v[k] !== undefined);
  mapHeader(w, keys.length);
  for (const k of keys) {
    encodeString(w, k);
    encodeValue(w, v[k], depth + 1);
  }
}

/** MessagePack bytes of `value`. Throws MsgpackError for what cannot be encoded. */
export function encode(value) {
  const w = new Writer();
  encodeValue(w, value, 0);
  return w.result();
}

// ------------------------------------------------------------------ decoding
class Reader {
  constructor(bytes) {
    this.buf = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }

  need(n) {
    if (this.pos + n > this.buf.length) throw new MsgpackError('truncated MessagePack data');
  }

  u8() { this.need(1); return this.buf[this.pos++]; }
  u16() { this.need(2); const v = this.view.getUint16(this.pos); this.pos += 2; return v; }
  u32() { this.need(4); const v = this.view.getUint32(this.pos); this.pos += 4; return v; }
  i8() { this.need(1); const v = this.view.getInt8(this.pos); this.pos += 1; return v; }
  i16() { this.need(2); const v = this.view.getInt16(this.pos); this.pos += 2; return v; }
  i32() { this.need(4); const v = this.view.getInt32(this.pos); this.pos += 4; return v; }
  u64() { this.need(8); const v = this.view.getBigUint64(this.pos); this.pos += 8; return bigToNumber(v); }
  i64() { this.need(8); const v = this.view.getBigInt64(this.pos); this.pos += 8; return bigToNumber(v); }
  f32() { this.need(4); const v = this.view.getFloat32(this.pos); this.pos += 4; return v; }
  f64() { this.need(8); const v = this.view.getFloat64(this.pos); this.pos += 8; return v; }

  take(n) {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  str(n) {
    try {
      return utf8Decoder.decode(this.take(n));
    } catch (err) {
      if (err instanceof MsgpackError) throw err;
      throw new MsgpackError('invalid UTF-8 in a MessagePack string');
    }
  }
}

function bigToNumber(b) {
  return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
}

function readArray(r, n, depth) {
  // every element takes at least one byte: refuse impossible lengths before allocating
  r.need(n);
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = readValue(r, depth + 1);
  return out;
}

function readMap(r, n, depth) {
  r.need(n * 2);
  const out = {};
  for (let i = 0; i < n; i++) {
    const key = readValue(r, depth + 1);
    if (key !== null && typeof key === 'object') throw new MsgpackError('map keys must be strings or numbers');
    const value = readValue(r, depth + 1);
    const k = String(key);
    if (k === '__proto__') {
      Object.defineProperty(out, k, { value, enumerable: true, writable: true, configurable: true });
    } else {
      out[k] = value;
    }
  }
  return out;
}

function readValue(r, depth) {
  if (depth > MAX_DEPTH) throw new MsgpackError('MessagePack data nested too deeply');
  const b = r.u8();
  if (b < 0x80) return b; // positive fixint
  if (b >= 0xe0) return b - 0x100; // negative fixint
  if (b < 0x90) return readMap(r, b & 0x0f, depth);
  if (b < 0xa0) return readArray(r, b & 0x0f, depth);
  if (b < 0xc0) return r.str(b & 0x1f);
  switch (b) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xc4: return r.take(r.u8()).slice();
    case 0xc5: return r.take(r.u16()).slice();
    case 0xc6: return r.take(r.u32()).slice();
    case 0xca: return r.f32();
    case 0xcb: return r.f64();
    case 0xcc: return r.u8();
    case 0xcd: return r.u16();
    case 0xce: return r.u32();
    case 0xcf: return r.u64();
    case 0xd0: return r.i8();
    case 0xd1: return r.i16();
    case 0xd2: return r.i32();
    case 0xd3: return r.i64();
    case 0xd9: return r.str(r.u8());
    case 0xda: return r.str(r.u16());
    case 0xdb: return r.str(r.u32());
    case 0xdc: return readArray(r, r.u16(), depth);
    case 0xdd: return readArray(r, r.u32(), depth);
    case 0xde: return readMap(r, r.u16(), depth);
    case 0xdf: return readMap(r, r.u32(), depth);
    case 0xc1: throw new MsgpackError('0xc1 is never used in MessagePack');
    default: throw new MsgpackError('MessagePack extension types are not supported');
  }
}

function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new MsgpackError('decode() needs an ArrayBuffer or a typed array');
}

/** The one value held by `data` (ArrayBuffer or typed array); throws MsgpackError if malformed. */
export function decode(data) {
  const r = new Reader(toBytes(data));
  const value = readValue(r, 0);
  if (r.pos !== r.buf.length) throw new MsgpackError('trailing bytes after the MessagePack value');
  return value;
}
