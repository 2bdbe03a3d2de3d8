/**
 * Order files: one successful order per row, as exported by either side.
 *
 *   request_id,response_id,saler_id,<amount>,request_time,response_time
 *
 * <amount> is total_fee for payments and withdraw_money for withdrawals. Amounts are integers of
 * fen. Files handed in may order their columns differently (see engine.ts).
 */
import { CsvFileWriter } from "./csv.js";
import type { ExportRow } from "../shared/orders/orderExport.js";

export function orderFileHeader(amountColumn: string): string[] {
  return ["request_id", "response_id", "saler_id", amountColumn, "request_time", "response_time"];
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
