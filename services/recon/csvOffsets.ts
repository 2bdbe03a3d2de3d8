/**
 * Reads the records of an RFC 4180 CSV file from any record boundary, with the byte offset at
 * which each record ends, so that a reader can stop after a page and a later call can continue
 * from exactly there without reading the file from its start.
 *
 * Works on bytes: in UTF-8 the bytes of a comma, a quote, CR and LF never occur inside another
 * character, so record and field boundaries are found without decoding; each field is decoded
 * once it is complete. A UTF-8 byte order mark at the start of the file is skipped.
 */
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";

const QUOTE = 0x22;
const COMMA = 0x2c;
const LF = 0x0a;
const CR = 0x0d;

export interface CsvRecordAt {
  fields: string[];
  /** Byte offset of the record's first byte. */
  start: number;
  /** Byte offset just past the record's line ending: where the next record starts. */
  end: number;
}

/** Splits one record (without its line ending) into fields. */
export function splitRecord(buf: Buffer, from: number, to: number): string[] {
  const fields: string[] = [];
  let i = from;
  for (;;) {
    if (i < to && buf[i] === QUOTE) {
      // Quoted field: "" stands for one quote.
      const parts: Buffer[] = [];
      let j = i + 1;
      for (;;) {
        const q = buf.indexOf(QUOTE, j);
        if (q === -1 || q >= to) {
          parts.push(buf.subarray(j, to));
          j = to;
          break;
        }
        parts.push(buf.subarray(j, q));
        if (q + 1 < to && buf[q + 1] === QUOTE) {
          parts.push(buf.subarray(q, q + 1));
          j = q + 2;
          continue;
        }
        j = q + 1;
        break;
      }
      fields.push(Buffer.concat(parts).toString("utf8"));
      const comma = buf.indexOf(COMMA, j);
      if (comma === -1 || comma >= to) return fields;
      i = comma + 1;
    } else {
      const comma = buf.indexOf(COMMA, i);
      if (comma === -1 || comma >= to) {
        fields.push(buf.toString("utf8", i, to));
        return fields;
      }
      fields.push(buf.toString("utf8", i, comma));
      i = comma + 1;
    }
  }
}

/** The records from byte offset `start` (a record boundary) to the end of the file. */
export async function* csvRecordsFrom(path: string, start: number, signal?: AbortSignal): AsyncGenerator<CsvRecordAt> {
  let carry: Buffer = Buffer.alloc(0);
  // File offset of carry[0].
  let base = start;
  let first = start === 0;
  for await (const chunk of createReadStream(path, { start, highWaterMark: 64 * 1024 })) {
    if (signal?.aborted) return;
    let buf: Buffer = carry.length > 0 ? Buffer.concat([carry, chunk as Buffer]) : (chunk as Buffer);
    if (first) {
      if (buf.length < 3) {
        carry = buf;
        continue;
      }
      if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) {
        buf = buf.subarray(3);
        base += 3;
      }
      first = false;
    }
    let recordStart = 0;
    let inQuotes = false;
    for (let i = 0; i < buf.length; i++) {
      const b = buf[i];
      if (b === QUOTE) inQuotes = !inQuotes;
      else if (b === LF && !inQuotes) {
        const to = i > recordStart && buf[i - 1] === CR ? i - 1 : i;
        yield { fields: splitRecord(buf, recordStart, to), start: base + recordStart, end: base + i + 1 };
        recordStart = i + 1;
      }
    }
    carry = buf.subarray(recordStart);
    base += recordStart;
  }
  if (carry.length > 0) {
    let to = carry.length;
    if (carry[to - 1] === CR) to--;
    yield { fields: splitRecord(carry, 0, to), start: base, end: base + carry.length };
  }
}

/** True when `offset` is the start of a record: 0 or just after a line feed. */
export async function isRecordBoundary(path: string, offset: number): Promise<boolean> {
  if (offset === 0) return true;
  const file = await open(path, "r");
  try {
    const { size } = await file.stat();
    if (offset > size) return false;
    const one = Buffer.alloc(1);
    const { bytesRead } = await file.read(one, 0, 1, offset - 1);
    return bytesRead === 1 && one[0] === LF;
  } finally {
    await file.close();
  }
}
