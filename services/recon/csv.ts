/**
 * Streaming CSV of the service's own files (the diff and audit files it streams back): a reader
 * that yields records in batches (RFC 4180 quoting, CRLF or LF, a UTF-8
 * byte order mark, quoted fields spanning lines), and a writer that formats rows with
 * csv-writer and writes them through a file stream with back-pressure. Neither ever holds a
 * whole file in memory.
 */
import { createReadStream, createWriteStream, type WriteStream } from "node:fs";
import { once } from "node:events";
import { createArrayCsvStringifier } from "csv-writer/dist/index.js";

export class CsvFormatError extends Error {
  constructor(readonly file: string, readonly record: number, readonly reason: string) {
    super(`${file}, record ${record}: ${reason}`);
    this.name = "CsvFormatError";
  }
}

const QUOTE = 34;
const COMMA = 44;
const CR = 13;
const LF = 10;

/** Parses one quoted-or-not record starting at `start`; undefined when the text ends inside it. */
function parseRecord(text: string, start: number, final: boolean): { fields: string[]; end: number } | undefined {
  const fields: string[] = [];
  let i = start;
  const n = text.length;
  for (;;) {
    if (i < n && text.charCodeAt(i) === QUOTE) {
      let value = "";
      let j = i + 1;
      for (;;) {
        const q = text.indexOf('"', j);
        if (q === -1) return undefined; // needs more text
        value += text.slice(j, q);
        if (q + 1 < n && text.charCodeAt(q + 1) === QUOTE) {
          value += '"';
          j = q + 2;
          continue;
        }
        if (q + 1 >= n && !final) return undefined;
        i = q + 1;
        break;
      }
      fields.push(value);
    } else {
      let j = i;
      while (j < n) {
        const c = text.charCodeAt(j);
        if (c === COMMA || c === LF || c === CR) break;
        j++;
      }
      fields.push(text.slice(i, j));
      i = j;
    }
    if (i >= n) return final ? { fields, end: n } : undefined;
    const c = text.charCodeAt(i);
    if (c === COMMA) {
      i++;
      continue;
    }
    if (c === CR) {
      if (i + 1 >= n) return final ? { fields, end: n } : undefined;
      if (text.charCodeAt(i + 1) === LF) return { fields, end: i + 2 };
      return { fields, end: i + 1 };
    }
    if (c === LF) return { fields, end: i + 1 };
    throw new Error(`unexpected character after a quoted field at offset ${i}`);
  }
}

/** Records of a CSV text stream, in batches; empty lines are skipped. */
export async function* csvRecords(file: string, chunks: AsyncIterable<string>): AsyncGenerator<string[][]> {
  let carry = "";
  let first = true;
  let record = 0;
  const parse = (text: string, final: boolean): { rows: string[][]; rest: string } => {
    const rows: string[][] = [];
    let pos = 0;
    const n = text.length;
    while (pos < n) {
      const nl = text.indexOf("\n", pos);
      if (nl === -1 && !final) break;
      const lineEnd = nl === -1 ? n : nl;
      const line = text.charCodeAt(lineEnd - 1) === CR ? text.slice(pos, lineEnd - 1) : text.slice(pos, lineEnd);
      if (line.indexOf('"') === -1) {
        if (line.length > 0) {
          rows.push(line.split(","));
          record++;
        }
        pos = lineEnd + 1;
        continue;
      }
      let parsed;
      try {
        parsed = parseRecord(text, pos, final);
      } catch (err) {
        throw new CsvFormatError(file, record + 1, (err as Error).message);
      }
      if (!parsed) {
        if (final) throw new CsvFormatError(file, record + 1, "a quoted field is not closed");
        break;
      }
      rows.push(parsed.fields);
      record++;
      pos = parsed.end;
    }
    return { rows, rest: text.slice(pos) };
  };
  for await (let chunk of chunks) {
    if (first) {
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
      first = false;
    }
    const { rows, rest } = parse(carry + chunk, false);
    carry = rest;
    if (rows.length > 0) yield rows;
  }
  if (carry.length > 0) {
    const { rows } = parse(carry, true);
    if (rows.length > 0) yield rows;
  }
}

export function readCsvFile(path: string, label = path): AsyncGenerator<string[][]> {
  // Small chunks: each chunk, and the batch of records sliced from it, dies young. A chunk's
  // text, even decoded to two-byte characters, stays under V8's large-object size (128 KiB);
  // larger ones are allocated straight into the old generation and pile up until a full GC
  // (with 256 KiB chunks a reconciliation peaked at 1.7 times the RSS).
  return csvRecords(label, createReadStream(path, { encoding: "utf8", highWaterMark: 32 * 1024 }));
}

/** What makes csv-writer quote a field (its default field stringifier, comma-delimited). */
const NEEDS_QUOTES = /[,\n"]/;

/**
 * Writes a CSV file: a UTF-8 byte order mark (so Excel reads the Chinese text right), the
 * header, then rows formatted by csv-writer, buffered and flushed with back-pressure.
 */
export class CsvFileWriter {
  readonly stream: WriteStream;
  private readonly stringifier;
  // Rows are formatted as they come: a formatted line is a copy, whereas the fields themselves
  // may be slices of a large input chunk that they would keep alive while they wait here.
  private pending: string[] = [];
  rows = 0;

  constructor(readonly path: string, header: string[]) {
    this.stream = createWriteStream(path, { encoding: "utf8", highWaterMark: 1 << 20 });
    this.stringifier = createArrayCsvStringifier({ header, recordDelimiter: "\r\n" });
    this.stream.write("\ufeff" + this.stringifier.getHeaderString());
  }

  /** Adds a row; awaits only when the buffer is due to be flushed. */
  write(row: string[]): Promise<void> | undefined {
    // csv-writer quotes a field holding a comma, a line feed or a quote and leaves every other
    // field as it is; a row with none of those is formatted here the same way, without the
    // per-field calls, arrays and closures it costs csv-writer (most of a reconciliation's time).
    let plain = true;
    for (let i = 0; i < row.length; i++) {
      if (NEEDS_QUOTES.test(row[i]!)) {
        plain = false;
        break;
      }
    }
    this.pending.push(plain ? row.join(",") + "\r\n" : this.stringifier.stringifyRecords([row]));
    this.rows++;
    return this.pending.length >= 2000 ? this.flush() : undefined;
  }

  /**
   * Adds `rows` rows already formatted as this writer formats them, as UTF-8 bytes; awaits only
   * when the file stream is full.
   */
  writeLines(lines: Buffer, rows: number): Promise<void> | undefined {
    if (this.pending.length > 0) {
      this.stream.write(this.pending.join(""));
      this.pending = [];
    }
    this.rows += rows;
    return this.stream.write(lines) ? undefined : once(this.stream, "drain").then(() => undefined);
  }

  /** Writes already formatted CSV text (whole rows); false when the caller should await drain. */
  writeRaw(text: string): boolean {
    return this.stream.write(text);
  }

  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const text = this.pending.join("");
    this.pending = [];
    if (!this.stream.write(text)) await once(this.stream, "drain");
  }

  private closing: Promise<void> | undefined;

  /** Flushes and closes the file; later calls wait for the same close. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.flush();
      this.stream.end();
      await once(this.stream, "finish");
    })();
    return this.closing;
  }
}
