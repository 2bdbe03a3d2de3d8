/** What both order-keeping systems export for reconciliation. */
import type { Knex } from "knex";
import { keysetPages, streamedPages, toFen, type Database } from "../storage/database.js";
import { idPrefix } from "./time.js";

/** One successful order; amount is total_fee or withdraw_money, in fen. */
export interface ExportRow {
  requestId: string;
  responseId: string;
  salerId: string;
  amount: bigint;
  requestTime: string;
  responseTime: string;
}

/**
 * The largest response_id answered at or before a business time. Response ids start with their
 * response time, so "answered by the cut-off" is a range of the unique response_id index.
 */
export function lastIdAt(cutoffTime: string): string {
  return `${idPrefix(cutoffTime)}999999`;
}

type ExportedColumns = { request_id: string; response_id: string; saler_id: string; amount: unknown; request_time: string; response_time: string };

/**
 * Streams successful orders in key order, page by page, answered at or before the cut-off (all
 * when empty). `orders` selects request_id, response_id, saler_id, amount (aliased), request_time
 * and response_time of the successful orders of one type, in that order. On MySQL one statement
 * streams them all (streamedPages: one snapshot, read once); on SQLite, whose one connection
 * every write also needs, each page is a query of its own (keysetPages). Either way the orders
 * answered by the cut-off are the same: they are not changed once answered.
 */
export async function* exportSuccessfulOrders(
  db: Database,
  orders: () => Knex.QueryBuilder,
  key: "request_id" | "response_id",
  cutoffTime: string,
  batchSize: number,
): AsyncGenerator<ExportRow[]> {
  const query = () => (cutoffTime === "" ? orders() : orders().where("response_id", "<=", lastIdAt(cutoffTime)));
  if (db.dialect === "mysql") {
    for await (const rows of streamedPages(db.knex, query().orderBy(key), batchSize)) {
      const page: ExportRow[] = new Array(rows.length);
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i]!;
        page[i] = {
          requestId: r[0] as string,
          responseId: r[1] as string,
          salerId: r[2] as string,
          amount: toFen(r[3]),
          requestTime: r[4] as string,
          responseTime: r[5] as string,
        };
      }
      yield page;
    }
    return;
  }
  for await (const rows of keysetPages<ExportedColumns>(query, key, batchSize)) {
    yield rows.map((r) => ({
      requestId: r.request_id,
      responseId: r.response_id,
      salerId: r.saler_id,
      amount: toFen(r.amount),
      requestTime: r.request_time,
      responseTime: r.response_time,
    }));
  }
}
