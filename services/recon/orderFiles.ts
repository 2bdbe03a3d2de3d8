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
import { orderFileLines } from "../shared/orders/exportCodec.js";

/**
 * gRPC channel options of the clients that read exports. A message of a page of orders is about
 * 200 KB; with HTTP/2's default 64 KB flow-control window the sender stops several times per
 * message until the reader's window updates come back, and the two processes take turns instead
 * of working at once. A 4 MiB window lets about 20 messages be on their way: still bounded, and
 * the stream still stops when the reader does.
 */
export const EXPORT_CHANNEL_OPTIONS = {
  "grpc.max_receive_message_length": 64 * 1024 * 1024,
  "grpc-node.flow_control_window": 4 * 1024 * 1024,
};

export function orderFileHeader(amountColumn: string): string[] {
  return ["request_id", "response_id", "saler_id", amountColumn, "request_time", "response_time"];
}

/**
 * Writes exported orders (already in key order), as the messages of an export stream, as an
 * order file; returns the row count. A message still holding the bytes it was received as is
 * written from those bytes when its fields need no quoting (exportCodec.ts orderFileLines), the
 * same lines without building an object or a string per order.
 */
export async function writeOrderFile(path: string, amountColumn: string, messages: AsyncIterable<{ orders: ExportRow[] }>): Promise<number> {
  const w = new CsvFileWriter(path, orderFileHeader(amountColumn));
  try {
    for await (const message of messages) {
      const wire = orderFileLines(message);
      if (wire) {
        const p = w.writeLines(wire.lines, wire.rows);
        if (p) await p;
        continue;
      }
      for (const r of message.orders) {
        const p = w.write([r.requestId, r.responseId, r.salerId, r.amount.toString(), r.requestTime, r.responseTime]);
        if (p) await p;
      }
    }
  } finally {
    await w.close();
  }
  return w.rows;
}
