/**
 * Files handed in to a run: opened safely, checked byte by byte while they are copied into the
 * run's directory, and, when something is wrong, located as a person finds it in an editor.
 *
 * The copy pass is linear and holds at most one chunk plus one line: it refuses a line longer
 * than LINE_LIMIT_BYTES as soon as the limit is passed, refuses text that is not valid in the
 * declared encoding, and transcodes GB18030/GBK to UTF-8. DuckDB then reads the copy.
 *
 * The record scanner below (RFC 4180: quotes, doubled quotes, line breaks inside quotes, blank
 * lines skipped) is only used once a file has been refused, to turn a record number into the
 * physical line an editor shows and to say what is wrong with it; it follows DuckDB's reading
 * of the file (blank lines are not records, the header is record 0).
 */
import { constants } from "node:fs";
import { open, realpath, type FileHandle } from "node:fs/promises";
import { isUtf8 } from "node:buffer";
import { resolve, sep } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { invalidField } from "../shared/errors.js";

/** The longest physical line accepted, in bytes (line end excluded). */
export const LINE_LIMIT_BYTES = 64 * 1024;
/** How much of an offending value an error message shows. */
export const EXCERPT_CHARS = 100;
const CHUNK = 1 << 20;
/** What copyChecked reads at a time. */
const COPY_CHUNK = 4 << 20;

export type Encoding = "utf-8" | "gb18030";

/** The encodings a file handed in may declare; GBK is read as GB18030, its superset. */
export function encodingOf(field: string, name: string): Encoding {
  const n = name.trim().toLowerCase();
  if (n === "" || n === "utf-8" || n === "utf8") return "utf-8";
  if (n === "gb18030" || n === "gbk" || n === "gb2312") return "gb18030";
  throw invalidField(field, `must be UTF-8 (the default), GB18030 or GBK, got ${excerpt(name)}`);
}

/**
 * At most EXCERPT_CHARS characters of a value, quoted, with control characters escaped; a longer
 * value says how long it is (in bytes when `bytes`, its length in the file, is given).
 */
export function excerpt(value: string, bytes?: number): string {
  const chars = [...value.slice(0, EXCERPT_CHARS * 2)];
  const cut = chars.length > EXCERPT_CHARS || value.length > EXCERPT_CHARS * 2 || (bytes !== undefined && bytes > Buffer.byteLength(value));
  const size = bytes !== undefined ? `${bytes} bytes` : `${value.length} characters`;
  return JSON.stringify(chars.slice(0, EXCERPT_CHARS).join("")) + (cut ? ` (${size}, first ${EXCERPT_CHARS} characters shown)` : "");
}

/** A file handed in broke a rule: INVALID_ARGUMENT naming the file, line and column. */
export function refuseFile(file: string, line: number | undefined, column: string | undefined, reason: string): ConnectError {
  const where = [file, line === undefined ? undefined : `line ${line}`, column === undefined ? undefined : `column ${column}`].filter(Boolean).join(", ");
  return new ConnectError(`${where}: ${reason}`, Code.InvalidArgument);
}

/**
 * Opens a file named by a path under the input directory. The path is checked to lie under the
 * directory before the file system is asked anything about it, and a path outside and a missing
 * file get the same answer. Only regular files are opened: a FIFO or a device is opened without
 * blocking and refused, as is a directory.
 */
export async function openInput(inputDir: string, requested: string, field: string): Promise<FileHandle> {
  const absent = () => invalidField(field, `no regular file ${excerpt(requested)} under the input directory`);
  const root = resolve(inputDir);
  const lexical = resolve(root, requested);
  if (requested === "" || requested.includes("\0") || !lexical.startsWith(root + sep)) throw absent();
  let real: string;
  let realRoot: string;
  try {
    realRoot = await realpath(root);
    real = await realpath(lexical);
  } catch {
    throw absent();
  }
  if (!real.startsWith(realRoot + sep)) throw absent();
  let fh: FileHandle;
  try {
    fh = await open(real, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch {
    throw absent();
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw invalidField(field, `${excerpt(requested)} is not a regular file`);
  } catch (err) {
    await fh.close();
    throw err;
  }
  return fh;
}

/** Where a file's bytes come from: an open file or text given in the request. */
export type Source = { handle: FileHandle } | { text: Buffer };

/** Reads into buf[at, end) from `position` of the source; the count read, 0 at its end. */
async function readAt(source: Source, buf: Buffer, position: number, at = 0): Promise<number> {
  if ("handle" in source) return (await source.handle.read(buf, at, buf.length - at, position)).bytesRead;
  return source.text.copy(buf, at, position, Math.min(source.text.length, position + buf.length - at));
}

/** The physical line (1-based) holding byte `offset` of the source. */
async function lineAtOffset(source: Source, offset: number): Promise<number> {
  const buf = Buffer.allocUnsafe(CHUNK);
  let line = 1;
  for (let pos = 0; pos < offset; ) {
    const n = await readAt(source, buf, pos);
    if (n === 0) break;
    const end = Math.min(n, offset - pos);
    for (let i = buf.indexOf(10, 0); i !== -1 && i < end; i = buf.indexOf(10, i + 1)) line++;
    pos += n;
  }
  return line;
}

/**
 * Copies a file handed in to `target` (UTF-8), refusing overlong lines and text invalid in its
 * encoding, naming the line. Linear in the file's size; memory is one chunk plus one line.
 */
export async function copyChecked(source: Source, target: string, encoding: Encoding, label: string): Promise<void> {
  const out = await open(target, "wx");
  try {
    const decoder = encoding === "gb18030" ? new TextDecoder("gb18030", { fatal: true }) : undefined;
    const buf = Buffer.allocUnsafe(COPY_CHUNK + LINE_LIMIT_BYTES + 1);
    let carried = 0; // bytes at the start of buf not yet written: a partial line
    let consumed = 0; // source offset of buf[0]
    const tooLong = async (offset: number) => refuseFile(label, await lineAtOffset(source, offset), undefined, `the line is longer than ${LINE_LIMIT_BYTES} bytes`);
    const badText = async (region: Buffer, regionOffset: number) => {
      // Find the first line of the region that does not decode, to name it.
      let start = 0;
      for (;;) {
        const nl = region.indexOf(10, start);
        const end = nl === -1 ? region.length : nl + 1;
        const part = region.subarray(start, end);
        const ok = decoder ? decodes(part) : isUtf8(part);
        if (!ok || nl === -1) {
          const what = encoding === "gb18030" ? "not valid GB18030" : "not valid UTF-8 (declare encoding GB18030 for a GBK/GB18030 file)";
          return refuseFile(label, await lineAtOffset(source, regionOffset + start), undefined, `the text is ${what}`);
        }
        start = end;
      }
    };
    const emit = async (region: Buffer, regionOffset: number, final: boolean) => {
      if (region.length === 0 && !final) return;
      let bytes: Buffer;
      if (decoder) {
        let text: string;
        try {
          text = decoder.decode(region, { stream: !final });
        } catch {
          throw await badText(region, regionOffset);
        }
        bytes = Buffer.from(text, "utf8");
      } else {
        if (!isUtf8(region)) throw await badText(region, regionOffset);
        bytes = region;
      }
      if (bytes.length > 0) await out.write(bytes);
    };
    for (;;) {
      // buf holds the partial last line of the previous read (at most LINE_LIMIT_BYTES, else
      // refused), then what this read adds.
      const n = await readAt(source, buf, consumed + carried, carried);
      if (n === 0) break;
      const data = buf.subarray(0, carried + n);
      const lastNl = data.lastIndexOf(10);
      const complete = lastNl + 1;
      // Every line within [0, complete) must be short: step from line end to line end, at most
      // LINE_LIMIT_BYTES at a time, so the check costs one search per limit's worth of bytes.
      let pos = 0;
      while (complete - pos > LINE_LIMIT_BYTES + 1) {
        const nl = data.lastIndexOf(10, pos + LINE_LIMIT_BYTES);
        if (nl < pos) throw await tooLong(consumed + pos);
        pos = nl + 1;
      }
      if (data.length - complete > LINE_LIMIT_BYTES) throw await tooLong(consumed + complete);
      // Written before the next read reuses the buffer; the partial line moves to its start.
      await emit(data.subarray(0, complete), consumed, false);
      carried = data.copy(buf, 0, complete);
      consumed += complete;
    }
    await emit(buf.subarray(0, carried), consumed, true);
  } finally {
    await out.close();
  }
}

function decodes(part: Buffer): boolean {
  try {
    new TextDecoder("gb18030", { fatal: true }).decode(part);
    return true;
  } catch {
    return false;
  }
}

/** One record as the scanner saw it. */
export interface ScannedRecord {
  /** 0 for the header, then 1, 2, … for the data records (DuckDB's order). */
  ordinal: number;
  /** The physical line the record starts on. */
  line: number;
  /** Field values (each cut to a few hundred bytes: enough to show). */
  fields: string[];
  /** Each field's length in bytes, uncut. */
  lengths: number[];
  /** How the record ended: "\n", "\r\n", or "" at the end of the file. */
  end: string;
  /** A quoting error in the record, with the line it was found on. */
  error?: { line: number; reason: string };
}

const FIELD_KEEP = 4 * EXCERPT_CHARS;

/**
 * Visits the records of a UTF-8 CSV file in order until `visit` returns false. Blank lines
 * between records are skipped. Linear; memory is one chunk and the current record (each field
 * cut to FIELD_KEEP bytes).
 */
export async function scanRecords(path: string, visit: (r: ScannedRecord) => boolean | void): Promise<void> {
  const fh = await open(path, "r");
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    let line = 1;
    let ordinal = 0;
    let fields: string[] = [];
    let lengths: number[] = [];
    let field: number[] = [];
    let fieldLen = 0;
    let inQuotes = false;
    let quoted = false; // the current field started with a quote
    let afterQuote = false; // a closing quote was seen in the current field
    let start = true; // at the start of a record
    let recordLine = 1;
    let error: ScannedRecord["error"];
    let pendingCr = false;
    let first = true;
    let stop = false;
    const endField = () => {
      fields.push(Buffer.from(field).toString("utf8"));
      lengths.push(fieldLen);
      field = [];
      fieldLen = 0;
      quoted = false;
      afterQuote = false;
    };
    const endRecord = (end: string) => {
      endField();
      const r: ScannedRecord = { ordinal, line: recordLine, fields, lengths, end };
      if (error) r.error = error;
      if (visit(r) === false) stop = true;
      ordinal++;
      fields = [];
      lengths = [];
      error = undefined;
      start = true;
    };
    const push = (b: number) => {
      if (fieldLen++ < FIELD_KEEP) field.push(b);
    };
    let position = 0;
    while (!stop) {
      const n = (await fh.read(buf, 0, CHUNK, position)).bytesRead;
      if (n === 0) break;
      let i = 0;
      if (first) {
        first = false;
        if (n >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) i = 3;
      }
      for (; i < n && !stop; i++) {
        const b = buf[i]!;
        if (pendingCr) {
          pendingCr = false;
          if (b === 10) {
            line++;
            if (start) continue; // a blank CRLF line
            endRecord("\r\n");
            continue;
          }
          if (!start) endRecord("\r");
        }
        if (start) {
          if (b === 10) {
            line++;
            continue;
          }
          if (b === 13) {
            pendingCr = true;
            continue;
          }
          start = false;
          recordLine = line;
        }
        if (inQuotes) {
          if (b === 34) {
            inQuotes = false;
            afterQuote = true;
          } else {
            if (b === 10) line++;
            push(b);
          }
          continue;
        }
        if (b === 34) {
          if (afterQuote) {
            // A doubled quote inside a quoted field.
            push(34);
            inQuotes = true;
            afterQuote = false;
          } else if (fieldLen === 0 && !quoted) {
            quoted = true;
            inQuotes = true;
          } else push(b);
          continue;
        }
        if (b === 44) {
          endField();
          continue;
        }
        if (b === 10) {
          line++;
          endRecord("\n");
          continue;
        }
        if (b === 13) {
          pendingCr = true;
          continue;
        }
        if (afterQuote && !error) error = { line, reason: "a character follows the closing quote of a field" };
        push(b);
      }
      position += n;
    }
    if (!stop) {
      if (inQuotes) {
        error ??= { line: recordLine, reason: "a quoted field is not closed before the end of the file" };
        endRecord("");
      } else if (!start) endRecord(pendingCr ? "\r" : "");
    }
  } finally {
    await fh.close();
  }
}

/** The first record of a file (its header), or undefined for a file without one. */
export async function headerOf(path: string): Promise<ScannedRecord | undefined> {
  let header: ScannedRecord | undefined;
  await scanRecords(path, (r) => {
    header = r;
    return false;
  });
  return header;
}

/** The records with the given ordinals (DuckDB's data record numbers, 1-based). */
export async function recordsAt(path: string, ordinals: number[]): Promise<Map<number, ScannedRecord>> {
  const wanted = new Set(ordinals);
  const max = Math.max(...ordinals);
  const found = new Map<number, ScannedRecord>();
  await scanRecords(path, (r) => {
    if (wanted.has(r.ordinal)) found.set(r.ordinal, r);
    return r.ordinal < max;
  });
  return found;
}

/**
 * Why DuckDB could not read a file: the first record with a quoting error, a number of fields
 * other than the header's, or a line end unlike the header's. Undefined when none is found.
 */
export async function diagnose(path: string, label: string): Promise<ConnectError | undefined> {
  let found: ConnectError | undefined;
  let columns = 0;
  let lineEnd = "";
  await scanRecords(path, (r) => {
    if (r.error) {
      found = refuseFile(label, r.error.line, undefined, r.error.reason);
      return false;
    }
    if (r.ordinal === 0) {
      columns = r.fields.length;
      lineEnd = r.end;
      return true;
    }
    if (r.fields.length !== columns) {
      found = refuseFile(label, r.line, undefined, `the row has ${r.fields.length} fields but the header has ${columns}`);
      return false;
    }
    if (r.end !== "" && lineEnd !== "" && r.end !== lineEnd) {
      const name = (e: string) => (e === "\r\n" ? "CRLF" : e === "\n" ? "LF" : "CR");
      found = refuseFile(label, r.line, undefined, `the line ends in ${name(r.end)} but the header's in ${name(lineEnd)}; a file's line ends must all be alike`);
      return false;
    }
    if (lineEnd === "") lineEnd = r.end;
    return true;
  });
  return found;
}
