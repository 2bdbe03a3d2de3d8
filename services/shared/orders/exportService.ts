/**
 * OrderExportService (proto/order/v1): the one order-export contract that both order-keeping
 * systems serve. Each system supplies its successful orders; the request is checked and the
 * pages streamed here, the same for both.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import { OrderExportService, OrderKey, OrderType } from "../../../gen/order/v1/order_pb.js";
import { invalidField } from "../errors.js";
import type { ExportRow } from "./orderExport.js";
import { optionalBusinessTime } from "./validation.js";

export type ExportedOrderType = "PAYMENT" | "WITHDRAWAL" | "REFUND";

/** A system's successful orders of one type in key order, page by page. */
export type OrderSource = (type: ExportedOrderType, key: "request_id" | "response_id", cutoffTime: string) => AsyncGenerator<ExportRow[]>;

export function orderExportService(source: OrderSource): ServiceImpl<typeof OrderExportService> {
  return {
    async *exportOrders(req, ctx) {
      if (req.orderType === OrderType.UNSPECIFIED || OrderType[req.orderType] === undefined) {
        throw invalidField("order_type", "must be ORDER_TYPE_PAYMENT, ORDER_TYPE_WITHDRAWAL or ORDER_TYPE_REFUND");
      }
      optionalBusinessTime("cutoff_time", req.cutoffTime);
      const key = req.key === OrderKey.REQUEST_ID ? "request_id" : "response_id";
      for await (const orders of source(OrderType[req.orderType] as ExportedOrderType, key, req.cutoffTime)) {
        if (ctx.signal.aborted) return;
        yield { orders };
      }
    },
  };
}
