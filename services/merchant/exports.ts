/** Export of the merchant's successful orders in key order, page by page. */
import type { Knex } from "knex";
import { exportSuccessfulOrders, type ExportRow } from "../shared/orders/orderExport.js";
import type { OrderTypeName } from "./orders.js";

export function exportOrders(
  knex: Knex,
  type: OrderTypeName,
  key: "request_id" | "response_id",
  cutoffTime: string,
  batchSize: number,
): AsyncGenerator<ExportRow[]> {
  const orders = () =>
    knex("merchant_orders")
      .select("request_id", "response_id", "saler_id", "amount", "request_time", "response_time")
      .where({ order_type: type, state: "SUCCESS" });
  return exportSuccessfulOrders(orders, key, cutoffTime, batchSize);
}
