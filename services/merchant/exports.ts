/** Export of the merchant's successful orders in key order, page by page (see orderExport.ts). */
import type { Database } from "../shared/storage/database.js";
import { exportSuccessfulOrders, type ExportRow } from "../shared/orders/orderExport.js";
import type { OrderTypeName } from "./orders.js";

export function exportOrders(
  db: Database,
  type: OrderTypeName,
  key: "request_id" | "response_id",
  cutoffTime: string,
  batchSize: number,
): AsyncGenerator<ExportRow[]> {
  const orders = () =>
    db.knex("merchant_orders")
      .select("request_id", "response_id", "saler_id", "amount", "request_time", "response_time")
      .where({ order_type: type, state: "SUCCESS" });
  return exportSuccessfulOrders(db, orders, key, cutoffTime, batchSize);
}
