/** Export of the merchant's successful orders in key order, page by page. */
import type { Knex } from "knex";
import { keysetPages, toFen } from "../shared/database.js";
import { lastIdAt, type ExportRow } from "../shared/orderExport.js";
import type { OrderTypeName } from "./orders.js";

export async function* exportOrders(
  knex: Knex,
  type: OrderTypeName,
  key: "request_id" | "response_id",
  cutoffTime: string,
  batchSize: number,
): AsyncGenerator<ExportRow[]> {
  type Row = { request_id: string; response_id: string; saler_id: string; amount: unknown; request_time: string; response_time: string };
  const query = () => {
    const q = knex("merchant_orders")
      .select("request_id", "response_id", "saler_id", "amount", "request_time", "response_time")
      .where({ order_type: type, state: "SUCCESS" });
    return cutoffTime === "" ? q : q.where("response_id", "<=", lastIdAt(cutoffTime));
  };
  for await (const rows of keysetPages<Row>(query, key, batchSize)) {
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
