/**
 * The wire form of order.v1.ExportOrdersResponse, written and read directly. An export streams
 * every successful order of a period, and the generic (reflective) protobuf codec spends more
 * time per order than reading it from the database does; this codec handles the one message
 * shape and gives the same bytes and the same messages as @bufbuild/protobuf's toBinary and
 * fromBinary (test/shared/exportCodec.test.ts compares them on random and hostile values).
 * A message it does not expect (an unknown field, another wire type) is left to fromBinary.
 */
import { isUtf8 } from "node:buffer";
import { create, fromBinary, toBinary, type MessageShape } from "@bufbuild/protobuf";
import { ExportOrdersResponseSchema, type ExportedOrder } from "../../../gen/order/v1/order_pb.js";
import type { ExportRow } from "./orderExport.js";

type Response = MessageShape<typeof ExportOrdersResponseSchema>;

/** An exported order's fields; in field-number order: 1, 2, 3 strings, 4 int64, 5, 6 strings. */
type OrderFields = ExportRow;

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** The int64 as the 64-bit two's complement its varint carries. */
function int64Bits(v: bigint): bigint {
  return v < 0n ? BigInt.asUintN(64, v) : v;
}

function int64Size(v: bigint): number {
  let u = int64Bits(v);
  if (u < 0x20000000000000n) return varintSize(Number(u));
  let size = 1;
  while (u >= 0x80n) {
    u >>= 7n;
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

function writeInt64(buf: Buffer, at: number, v: bigint): number {
  let u = int64Bits(v);
  if (u < 0x20000000000000n) return writeVarint(buf, at, Number(u));
  while (u >= 0x80n) {
    buf[at++] = Number(u & 0x7fn) | 0x80;
    u >>= 7n;
  }
  buf[at++] = Number(u);
  return at;
}

/** The string fields of an order and their tags (field number << 3 | length-delimited). */
const STRINGS = ["requestId", "responseId", "salerId", "requestTime", "responseTime"] as const;
const STRING_TAGS = [0x0a, 0x12, 0x1a, 0x2a, 0x32] as const;

function fieldSize(n: number): number {
  return n === 0 ? 0 : 1 + varintSize(n) + n;
}

/** A string field of n bytes taken from bytes[from…]; nothing when empty. */
function copyField(buf: Buffer, at: number, tag: number, bytes: Buffer, from: number, n: number): number {
  if (n === 0) return at;
  buf[at++] = tag;
  at = writeVarint(buf, at, n);
  for (let k = 0; k < n; k++) buf[at + k] = bytes[from + k]!;
  return at + n;
}

/**
 * The usual case, every string ASCII: all strings are encoded to bytes by one call, their byte
 * lengths are their lengths, and the message is laid out by copying from those bytes.
 * Undefined when a string is not ASCII.
 */
function encodeAscii(orders: readonly OrderFields[]): Buffer | undefined {
  let text = "";
  let total = 0;
  const sizes: number[] = new Array(orders.length);
  for (let i = 0; i < orders.length; i++) {
    const o = orders[i]!;
    text += o.requestId + o.responseId + o.salerId + o.requestTime + o.responseTime;
    let size = fieldSize(o.requestId.length) + fieldSize(o.responseId.length) + fieldSize(o.salerId.length) + fieldSize(o.requestTime.length) + fieldSize(o.responseTime.length);
    if (o.amount !== 0n) size += 1 + int64Size(o.amount);
    sizes[i] = size;
    total += 1 + varintSize(size) + size;
  }
  const bytes = Buffer.allocUnsafe(text.length * 3);
  if (bytes.write(text, "utf8") !== text.length) return undefined; // a character of more than one byte
  const buf = Buffer.allocUnsafe(total);
  let at = 0;
  let from = 0;
  for (let i = 0; i < orders.length; i++) {
    const o = orders[i]!;
    buf[at++] = 0x0a;
    at = writeVarint(buf, at, sizes[i]!);
    at = copyField(buf, at, 0x0a, bytes, from, o.requestId.length);
    from += o.requestId.length;
    at = copyField(buf, at, 0x12, bytes, from, o.responseId.length);
    from += o.responseId.length;
    at = copyField(buf, at, 0x1a, bytes, from, o.salerId.length);
    from += o.salerId.length;
    if (o.amount !== 0n) {
      buf[at++] = 0x20;
      at = writeInt64(buf, at, o.amount);
    }
    at = copyField(buf, at, 0x2a, bytes, from, o.requestTime.length);
    from += o.requestTime.length;
    at = copyField(buf, at, 0x32, bytes, from, o.responseTime.length);
    from += o.responseTime.length;
  }
  if (at !== total) throw new Error(`export codec: wrote ${at} bytes of ${total}`);
  return buf;
}

function isOrder(o: unknown): o is OrderFields {
  if (typeof o !== "object" || o === null) return false;
  const r = o as Record<string, unknown>;
  return (
    typeof r.requestId === "string" &&
    typeof r.responseId === "string" &&
    typeof r.salerId === "string" &&
    typeof r.amount === "bigint" &&
    typeof r.requestTime === "string" &&
    typeof r.responseTime === "string"
  );
}

/**
 * A response (a message, or what create() takes: `{ orders }` with every field of every order
 * given) as toBinary writes it; anything else goes through create() and toBinary.
 */
export function encodeExportOrdersResponseMessage(message: unknown): Buffer {
  const orders = (message as { orders?: unknown } | null)?.orders;
  if (Array.isArray(orders) && orders.every(isOrder)) return encodeExportOrdersResponse(orders);
  const bytes = toBinary(ExportOrdersResponseSchema, create(ExportOrdersResponseSchema, message as never));
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** toBinary(ExportOrdersResponseSchema, { orders }), byte for byte. */
export function encodeExportOrdersResponse(orders: readonly OrderFields[]): Buffer {
  return encodeAscii(orders) ?? encodeUtf8(orders);
}

/** Any text: each string's UTF-8 length measured, and the string written, one by one. */
function encodeUtf8(orders: readonly OrderFields[]): Buffer {
  const lengths = orders.map((o) => STRINGS.map((k) => Buffer.byteLength(o[k], "utf8")));
  const sizes = orders.map((o, i) => lengths[i]!.reduce((sum, n) => sum + fieldSize(n), 0) + (o.amount !== 0n ? 1 + int64Size(o.amount) : 0));
  const buf = Buffer.allocUnsafe(sizes.reduce((sum, size) => sum + 1 + varintSize(size) + size, 0));
  let at = 0;
  orders.forEach((o, i) => {
    buf[at++] = 0x0a;
    at = writeVarint(buf, at, sizes[i]!);
    STRINGS.forEach((k, j) => {
      if (j === 3 && o.amount !== 0n) {
        buf[at++] = 0x20; // field 4 comes between the third and the fourth string
        at = writeInt64(buf, at, o.amount);
      }
      const n = lengths[i]![j]!;
      if (n === 0) return;
      buf[at++] = STRING_TAGS[j]!;
      at = writeVarint(buf, at, n);
      at += buf.write(o[k], at, n, "utf8");
    });
  });
  if (at !== buf.length) throw new Error(`export codec: wrote ${at} bytes of ${buf.length}`);
  return buf;
}

/** Thrown inside the decoder when the bytes are not the shape it reads; fromBinary takes over. */
class NotTheShape extends Error {}

function readVarint(buf: Uint8Array, at: { pos: number }, end: number): number {
  let result = 0;
  let scale = 1;
  for (let i = 0; i < 5; i++) {
    if (at.pos >= end) throw new NotTheShape();
    const b = buf[at.pos++]!;
    result += (b & 0x7f) * scale;
    if (b < 0x80) return result;
    scale *= 128;
  }
  throw new NotTheShape(); // a length beyond 2^35 is not ours to read
}

function readInt64(buf: Uint8Array, at: { pos: number }, end: number): bigint {
  let result = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (at.pos >= end) throw new NotTheShape();
    const b = buf[at.pos++]!;
    result |= BigInt(b & 0x7f) << shift;
    if (b < 0x80) return BigInt.asIntN(64, result);
    shift += 7n;
  }
  throw new NotTheShape();
}

const STRING_BY_TAG: Record<number, keyof OrderFields> = Object.fromEntries(STRING_TAGS.map((tag, j) => [tag, STRINGS[j]!]));

function readString(buf: Buffer, start: number, end: number): string {
  let i = start;
  while (i < end && buf[i]! < 0x80) i++;
  if (i === end) return buf.toString("latin1", start, end); // ASCII
  // fromBinary refuses a string that is not UTF-8; it gives that refusal.
  if (!isUtf8(buf.subarray(start, end))) throw new NotTheShape();
  return buf.toString("utf8", start, end);
}

function readOrder(buf: Buffer, at: { pos: number }, end: number): ExportedOrder {
  const o = { $typeName: "order.v1.ExportedOrder", requestId: "", responseId: "", salerId: "", amount: 0n, requestTime: "", responseTime: "" } as ExportedOrder;
  while (at.pos < end) {
    const tag = buf[at.pos++]!;
    if (tag === 0x20) {
      o.amount = readInt64(buf, at, end);
      continue;
    }
    const name = STRING_BY_TAG[tag];
    if (name === undefined) throw new NotTheShape();
    const n = readVarint(buf, at, end);
    if (at.pos + n > end) throw new NotTheShape();
    (o as unknown as Record<string, string>)[name] = readString(buf, at.pos, at.pos + n);
    at.pos += n;
  }
  return o;
}

function readOrders(buf: Buffer): ExportedOrder[] {
  const orders: ExportedOrder[] = [];
  const at = { pos: 0 };
  while (at.pos < buf.length) {
    if (buf[at.pos++] !== 0x0a) throw new NotTheShape();
    const n = readVarint(buf, at, buf.length);
    const end = at.pos + n;
    if (end > buf.length) throw new NotTheShape();
    orders.push(readOrder(buf, at, end));
  }
  return orders;
}

/**
 * Whether readOrders reads the bytes without falling back to fromBinary and every string in
 * them is ASCII: a walk over tags and lengths that builds no message. Lengths have at most 5 bytes
 * and amounts at most 10, as readVarint and readInt64 read them.
 */
function isAsciiShape(buf: Buffer): boolean {
  const len = buf.length;
  const at = { pos: 0 };
  try {
    while (at.pos < len) {
      if (buf[at.pos++] !== 0x0a) return false;
      const n = readVarint(buf, at, len);
      const end = at.pos + n;
      if (end > len) return false;
      while (at.pos < end) {
        const tag = buf[at.pos++]!;
        if (tag === 0x20) {
          for (let i = 0; ; i++) {
            if (i === 10 || at.pos >= end) return false;
            if (buf[at.pos++]! < 0x80) break;
          }
          continue;
        }
        if (tag !== 0x0a && tag !== 0x12 && tag !== 0x1a && tag !== 0x2a && tag !== 0x32) return false;
        const m = readVarint(buf, at, end);
        const stop = at.pos + m;
        if (stop > end) return false;
        for (; at.pos < stop; at.pos++) if (buf[at.pos]! >= 0x80) return false;
      }
    }
  } catch (err) {
    if (err instanceof NotTheShape) return false;
    throw err;
  }
  return true;
}

/** The bytes a response from decodeExportOrdersResponse was read from, while its orders are unread. */
const WIRE = new WeakMap<object, Buffer>();

/**
 * fromBinary(ExportOrdersResponseSchema, bytes), for the shape the export writes. When every
 * string is ASCII (the bytes were checked whole, so a refusal still comes here and not later)
 * the orders are read from the bytes on first access, and until then orderFileLines can turn
 * the bytes into file lines without building them.
 */
export function decodeExportOrdersResponse(bytes: Uint8Array): Response {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  try {
    if (isAsciiShape(buf)) return lazyResponse(buf);
    return { $typeName: "order.v1.ExportOrdersResponse", orders: readOrders(buf) } as Response;
  } catch (err) {
    if (err instanceof NotTheShape) return fromBinary(ExportOrdersResponseSchema, bytes);
    throw err;
  }
}

function lazyResponse(buf: Buffer): Response {
  const message = { $typeName: "order.v1.ExportOrdersResponse" } as Response;
  const settle = (orders: ExportedOrder[]) => {
    WIRE.delete(message);
    Object.defineProperty(message, "orders", { value: orders, writable: true, enumerable: true, configurable: true });
  };
  Object.defineProperty(message, "orders", {
    enumerable: true,
    configurable: true,
    get() {
      settle(readOrders(buf));
      return message.orders;
    },
    set: settle,
  });
  WIRE.set(message, buf);
  return message;
}

const COMMA = 0x2c;
const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;
const ZERO = 0x30;

/** Where orderFileLines writes before copying out; kept between calls up to SCRATCH_KEPT bytes. */
let scratch = Buffer.allocUnsafe(1 << 16);
const SCRATCH_KEPT = 1 << 20;

/**
 * A decoded response's orders as lines of an order file (services/recon/orderFiles.ts), read
 * straight from the bytes it was decoded from: per order request_id, response_id, saler_id,
 * the amount in decimal, request_time and response_time, comma-separated, CRLF-ended, which is
 * what the file's writer gives for fields it does not quote. Undefined when the message was
 * not decoded from bytes or its orders have been read, or when the bytes hold anything else
 * than that plain case: a field the writer would quote (a comma, a line feed or a quote), an
 * amount below 0 or of 2^49 and more, fields out of order or repeated.
 */
export function orderFileLines(message: object): { lines: Buffer; rows: number } | undefined {
  const buf = WIRE.get(message);
  if (buf === undefined) return undefined;
  const len = buf.length;
  let out = scratch;
  let o = 0;
  let rows = 0;
  let p = 0;
  while (p < len) {
    p++; // 0x0a, checked by isAsciiShape as everything the loops below skip
    let n = 0;
    for (let scale = 1; ; scale *= 128) {
      const b = buf[p++]!;
      n += (b & 0x7f) * scale;
      if (b < 0x80) break;
    }
    const end = p + n;
    // The order's text, plus 5 commas, CRLF and at most 15 digits of the amount.
    if (o + n + 32 > out.length) {
      const grown = Buffer.allocUnsafe(Math.max(out.length * 2, o + n + 32));
      out.copy(grown, 0, 0, o);
      out = grown;
      if (grown.length <= SCRATCH_KEPT) scratch = grown;
    }
    let field = 0; // the last field number written
    let amount = 0;
    while (p < end) {
      const tag = buf[p++]!;
      const number = tag >> 3;
      if (number <= field) return undefined;
      // Fields left out are empty strings (zero for the amount); their commas come first.
      for (; field < number - 1; field++) {
        if (field === 3) o = writeAmount(out, o, amount);
        out[o++] = COMMA;
      }
      field = number;
      if (tag === 0x20) {
        let scale = 1;
        for (let i = 0; ; i++) {
          if (i === 7) return undefined;
          const b = buf[p++]!;
          amount += (b & 0x7f) * scale;
          if (b < 0x80) break;
          scale *= 128;
        }
        o = writeAmount(out, o, amount);
        if (field < 6) out[o++] = COMMA;
        continue;
      }
      let m = 0;
      for (let scale = 1; ; scale *= 128) {
        const b = buf[p++]!;
        m += (b & 0x7f) * scale;
        if (b < 0x80) break;
      }
      for (const stop = p + m; p < stop; p++) {
        const c = buf[p]!;
        if (c === COMMA || c === LF || c === QUOTE) return undefined;
        out[o++] = c;
      }
      if (field < 6) out[o++] = COMMA;
    }
    for (; field < 6; field++) {
      if (field === 3) o = writeAmount(out, o, amount);
      if (field < 5) out[o++] = COMMA;
    }
    out[o++] = CR;
    out[o++] = LF;
    rows++;
  }
  const lines = Buffer.allocUnsafe(o);
  out.copy(lines, 0, 0, o);
  return { lines, rows };
}

/** A non-negative integer below 2^53 in decimal. */
function writeAmount(out: Buffer, o: number, amount: number): number {
  let digits = 1;
  for (let v = amount; v >= 10; v = Math.floor(v / 10)) digits++;
  for (let i = o + digits - 1, v = amount; i >= o; i--, v = Math.floor(v / 10)) out[i] = ZERO + (v % 10);
  return o + digits;
}
