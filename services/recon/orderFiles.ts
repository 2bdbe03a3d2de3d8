/**
 * Order files: one successful order per row, as exported by either side or handed in.
 *
 *   request_id,response_id,saler_id,<amount>,request_time,response_time
 *
 * <amount> is total_fee for payments and withdraw_money for withdrawals ("amount" is accepted
 * too). Only the key column (response_id or request_id) and the amount column are required;
 * columns may come in any order and extra columns are ignored. Amounts are integers of fen.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CsvFileWriter, CsvFormatError, readCsvFile } from "./csv.js";
import type { ExportRow } from "../shared/orderExport.js";

/** A file's order numbers are out of order (files handed in are then sorted first). */
export class UnsortedError extends CsvFormatError {}

export type KeyColumn = "response_id" | "request_id";
/** The key column of temporary sorted runs. */
type ColumnOfKey = KeyColumn | "sort_key";

/** An exported order with the value it is matched on. */
export interface OrderRecord extends ExportRow {
  key: string;
}

export const AMOUNT_COLUMNS = ["total_fee", "withdraw_money", "amount"] as const;

export function orderFileHeader(amountColumn: string): string[] {
  return ["request_id", "response_id", "saler_id", amountColumn, "request_time", "response_time"];
}

const INTEGER = /^-?\d{1,19}$/;

/** A fen amount from a CSV field, or a message naming what is wrong. */
export function parseFen(file: string, record: number, column: string, text: string): bigint {
  let t = text;
  if (!INTEGER.test(t)) {
    t = text.trim();
    if (!INTEGER.test(t)) throw new CsvFormatError(file, record, `${column} must be an integer number of fen, got "${text}"`);
  }
  const v = BigInt(t);
  if (v < 0n) throw new CsvFormatError(file, record, `${column} must not be negative, got ${v}`);
  return v;
}

/** Maps a header row to column positions; throws naming the missing column. */
export function columnsOf(file: string, header: string[], required: string[]): Map<string, number> {
  const index = new Map<string, number>();
  header.forEach((name, i) => {
    const n = name.trim().toLowerCase();
    if (!index.has(n)) index.set(n, i);
  });
  for (const r of required) {
    const alternatives = r.split("|");
    if (!alternatives.some((a) => index.has(a))) {
      throw new CsvFormatError(file, 1, `the header has no ${alternatives.join(" or ")} column (header: ${header.join(",")})`);
    }
  }
  return index;
}

/** Reads order records from CSV record batches (header first). */
export async function* orderRecords(file: string, batches: AsyncIterable<string[][]>, key: ColumnOfKey): AsyncGenerator<OrderRecord[]> {
  let header = true;
  let keyAt = -1;
  let amountAt = -1;
  let requestAt = -1;
  let responseAt = -1;
  let salerAt = -1;
  let requestTimeAt = -1;
  let responseTimeAt = -1;
  let record = 0;
  for await (const batch of batches) {
    const out: OrderRecord[] = [];
    for (const row of batch) {
      record++;
      if (header) {
        const cols = columnsOf(file, row, [key, AMOUNT_COLUMNS.join("|")]);
        const at = (name: string) => cols.get(name) ?? -1;
        keyAt = at(key);
        amountAt = AMOUNT_COLUMNS.map(at).find((i) => i >= 0)!;
        requestAt = at("request_id");
        responseAt = at("response_id");
        salerAt = at("saler_id");
        requestTimeAt = at("request_time");
        responseTimeAt = at("response_time");
        header = false;
        continue;
      }
      const k = field(row, keyAt);
      if (k === "") throw new CsvFormatError(file, record, `${key} is empty`);
      out.push({
        key: k,
        requestId: field(row, requestAt),
        responseId: field(row, responseAt),
        salerId: field(row, salerAt),
        amount: parseFen(file, record, "amount", row[amountAt] ?? ""),
        requestTime: field(row, requestTimeAt),
        responseTime: field(row, responseTimeAt),
      });
    }
    if (out.length > 0) yield out;
  }
  if (header) throw new CsvFormatError(file, 1, "the file is empty: it needs at least a header row");
}

function field(row: string[], at: number): string {
  if (at < 0) return "";
  const v = row[at];
  if (v === undefined) return "";
  // Trim only when there is something to trim: most fields are clean.
  const first = v.charCodeAt(0);
  const last = v.charCodeAt(v.length - 1);
  return first === 32 || last === 32 || first === 9 || last === 9 ? v.trim() : v;
}

/** Writes exported rows (already in key order) as an order file; returns the row count. */
export async function writeOrderFile(path: string, amountColumn: string, batches: AsyncIterable<ExportRow[]>): Promise<number> {
  const w = new CsvFileWriter(path, orderFileHeader(amountColumn));
  try {
    for await (const batch of batches) {
      for (const r of batch) {
        const p = w.write([r.requestId, r.responseId, r.salerId, r.amount.toString(), r.requestTime, r.responseTime]);
        if (p) await p;
      }
    }
  } finally {
    await w.close();
  }
  return w.rows;
}

/**
 * A cursor over order records in key order. Records arrive in batches, so the merge loop reads
 * `current` synchronously and awaits only when a batch is used up.
 */
export class OrderCursor {
  private batch: OrderRecord[] = [];
  private i = 0;
  private previous: string | undefined;
  current: OrderRecord | undefined;
  count = 0;

  constructor(
    private readonly label: string,
    private readonly source: AsyncIterator<OrderRecord[]>,
    private readonly allowEqual = false,
  ) {}

  /** `allowEqual` lets equal keys through (sorted runs whose duplicates the caller reports). */
  static async open(label: string, source: AsyncIterable<OrderRecord[]>, allowEqual = false): Promise<OrderCursor> {
    const c = new OrderCursor(label, source[Symbol.asyncIterator](), allowEqual);
    await c.advance();
    return c;
  }

  /** Moves to the next record; checks that keys strictly increase. */
  advance(): Promise<void> | undefined {
    if (this.i < this.batch.length) {
      this.take();
      return undefined;
    }
    return this.refill();
  }

  private take(): void {
    const r = this.batch[this.i++]!;
    if (this.previous !== undefined && (r.key < this.previous || (r.key === this.previous && !this.allowEqual))) {
      if (r.key === this.previous) throw new CsvFormatError(this.label, this.count + 2, `duplicate order number ${r.key}`);
      throw new UnsortedError(this.label, this.count + 2, `order numbers are not sorted (${r.key} after ${this.previous})`);
    }
    this.previous = r.key;
    this.current = r;
    this.count++;
  }

  private async refill(): Promise<void> {
    for (;;) {
      const next = await this.source.next();
      if (next.done) {
        this.current = undefined;
        return;
      }
      if (next.value.length > 0) {
        this.batch = next.value;
        this.i = 0;
        this.take();
        return;
      }
    }
  }
}

const byKey = (a: OrderRecord, b: OrderRecord) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
const SPILL_HEADER = ["sort_key", "request_id", "response_id", "saler_id", "amount", "request_time", "response_time"];

/**
 * Order records sorted by key with bounded memory: runs of `runSize` records are sorted in memory
 * and spilled to temporary files, then merged. Used for files handed in that are not sorted.
 */
export async function* externalSort(records: AsyncIterable<OrderRecord[]>, runSize = 200_000): AsyncGenerator<OrderRecord[]> {
  let buf: OrderRecord[] = [];
  const runs: string[] = [];
  let dir: string | undefined;
  try {
    const spill = async () => {
      buf.sort(byKey);
      dir ??= await mkdtemp(join(tmpdir(), "recon-sort-"));
      const path = join(dir, `run-${runs.length}.csv`);
      const w = new CsvFileWriter(path, SPILL_HEADER);
      for (const r of buf) {
        const p = w.write([r.key, r.requestId, r.responseId, r.salerId, r.amount.toString(), r.requestTime, r.responseTime]);
        if (p) await p;
      }
      await w.close();
      runs.push(path);
      buf = [];
    };
    for await (const batch of records) {
      for (const r of batch) {
        buf.push(r);
        if (buf.length >= runSize) await spill();
      }
    }
    if (runs.length === 0) {
      buf.sort(byKey);
      for (let i = 0; i < buf.length; i += 2000) yield buf.slice(i, i + 2000);
      return;
    }
    if (buf.length > 0) await spill();
    // Each run is sorted; duplicates across runs surface in the caller's cursor.
    const cursors = await Promise.all(runs.map((p) => OrderCursor.open(p, orderRecords(p, readCsvFile(p), "sort_key"), true)));
    let out: OrderRecord[] = [];
    for (;;) {
      let best: OrderCursor | undefined;
      for (const c of cursors) if (c.current && (!best || c.current.key < best.current!.key)) best = c;
      if (!best) break;
      out.push(best.current!);
      const p = best.advance();
      if (p) await p;
      if (out.length >= 2000) {
        yield out;
        out = [];
      }
    }
    if (out.length > 0) yield out;
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}
