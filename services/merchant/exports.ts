/** Export of the merchant's successful orders in key order, page by page (see orderExport.ts). */
import { throughIndex, type Database } from "../shared/storage/database.js";
import { exportSuccessfulOrders, type ExportRow } from "../shared/orders/orderExport.js";
import type { OrderTypeName } from "./orders.js";

export function exportOrders(
  db: Database,
  type: OrderTypeName,
  key: "request_id" | "response_id",
  cutoffTime: string,
  batchSize: number,
): AsyncGenerator<ExportRow[]> {
  // On MySQL the statement streams every order: read in the index of (order_type, state, key),
  // the rows come in order as the scan goes, where the optimizer would otherwise sort them all
  // first (most orders are successful payments, so it prefers a table scan).
  const index = key === "request_id" ? "merchant_orders_export_by_request" : "merchant_orders_export_by_response";
  const from = throughIndex(db, "merchant_orders", index);
  const orders = () =>
    db.knex
      .from(from)
      .select("request_id", "response_id", "saler_id", "amount", "request_time", "response_time")
      .where({ order_type: type, state: "SUCCESS" });
  return exportSuccessfulOrders(db, orders, key, cutoffTime, batchSize);
}
