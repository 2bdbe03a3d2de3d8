/**
 * What a request_id came to, for a merchant that got no answer (UNKNOWN): QueryOrder looks it up,
 * CloseOrder fences it. A close is a row of the order's own table with response_code CLOSED
 * (orders.ts), so the unique request_id index decides in one statement whether the order or the
 * close came first, on every instance.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  CloseOrderResponseSchema,
  type CloseOrderRequest,
  type CloseOrderResponse,
  type QueryOrderRequest,
  type QueryOrderResponseSchema,
} from "../../gen/payment/v1/payment_pb.js";
import type { Database } from "../shared/storage/database.js";
import { invalidField } from "../shared/errors.js";
import type { Logger } from "../shared/observability/logger.js";
import { requireOrderId } from "../shared/orders/validation.js";
import { CLOSED, findPayment, findWithdrawal, insertClosed } from "./orders.js";
import { payResponse } from "./payments.js";
import { recordOnce, type OrderStamps } from "./recordOnce.js";
import { findRefund, insertClosedRefund, refundResponse } from "./refunds.js";
import { withdrawResponse } from "./withdrawals.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";

export class OrderOutcomes {
  constructor(
    private readonly db: Database,
    private readonly stamps: OrderStamps,
    private readonly logger: Logger,
  ) {}

  async query(req: QueryOrderRequest): Promise<MessageInitShape<typeof QueryOrderResponseSchema>> {
    const knex = this.db.knex;
    requireOrderId("request_id", req.requestId);
    let closed: { closeTime: string; orderType: OrderType } | undefined;
    if (req.orderType === OrderType.UNSPECIFIED || req.orderType === OrderType.PAYMENT) {
      const p = await findPayment(knex, req.requestId);
      if (p?.responseCode === CLOSED) closed = { closeTime: p.responseTime, orderType: OrderType.PAYMENT };
      else if (p) return { found: true, orderType: OrderType.PAYMENT, order: { case: "payment", value: payResponse(p) } };
    }
    if (req.orderType === OrderType.UNSPECIFIED || req.orderType === OrderType.WITHDRAWAL) {
      const w = await findWithdrawal(knex, req.requestId);
      if (w?.responseCode === CLOSED) closed ??= { closeTime: w.responseTime, orderType: OrderType.WITHDRAWAL };
      else if (w) return { found: true, orderType: OrderType.WITHDRAWAL, order: { case: "withdrawal", value: withdrawResponse(w) } };
    }
    if (req.orderType === OrderType.UNSPECIFIED || req.orderType === OrderType.REFUND) {
      const r = await findRefund(knex, req.requestId);
      if (r?.responseCode === CLOSED) closed ??= { closeTime: r.responseTime, orderType: OrderType.REFUND };
      else if (r) return { found: true, orderType: OrderType.REFUND, order: { case: "refund", value: refundResponse(r) } };
    }
    return closed ? { found: false, closed: true, ...closed } : { found: false };
  }

  async close(req: CloseOrderRequest): Promise<CloseOrderResponse> {
    requireOrderId("request_id", req.requestId);
    const type = req.orderType;
    if (type !== OrderType.PAYMENT && type !== OrderType.WITHDRAWAL && type !== OrderType.REFUND) {
      throw invalidField("order_type", "must be ORDER_TYPE_PAYMENT, ORDER_TYPE_WITHDRAWAL or ORDER_TYPE_REFUND");
    }
    const knex = this.db.knex;
    const outcome = await recordOnce(this.stamps, {
      order: (stamp) => stamp,
      write: async ({ now, responseId }) => {
        if (type === OrderType.REFUND) await insertClosedRefund(knex, req.requestId, responseId, now);
        else await insertClosed(knex, type === OrderType.PAYMENT ? "payment_orders" : "withdrawal_orders", req.requestId, responseId, now);
        return { now, responseId };
      },
      // Either the request_id is taken (an order, or an earlier close) or the response_id clashed.
      replay: () => this.closeOutcome(type, req.requestId),
    });
    if ("replayed" in outcome) return outcome.replayed;
    this.logger.info({ requestId: req.requestId, orderType: OrderType[type] }, "request closed");
    return create(CloseOrderResponseSchema, { closed: true, closeTime: outcome.recorded.now });
  }

  /** What a request_id already holds, for CloseOrder: the close, the order, or nothing yet. */
  private async closeOutcome(type: OrderType, requestId: string): Promise<CloseOrderResponse | undefined> {
    const knex = this.db.knex;
    if (type === OrderType.REFUND) {
      const r = await findRefund(knex, requestId);
      if (!r) return undefined;
      return create(CloseOrderResponseSchema, r.responseCode === CLOSED ? { closed: true, closeTime: r.responseTime } : { order: { case: "refund", value: refundResponse(r) } });
    }
    if (type === OrderType.PAYMENT) {
      const p = await findPayment(knex, requestId);
      if (!p) return undefined;
      return create(CloseOrderResponseSchema, p.responseCode === CLOSED ? { closed: true, closeTime: p.responseTime } : { order: { case: "payment", value: payResponse(p) } });
    }
    const w = await findWithdrawal(knex, requestId);
    if (!w) return undefined;
    return create(CloseOrderResponseSchema, w.responseCode === CLOSED ? { closed: true, closeTime: w.responseTime } : { order: { case: "withdrawal", value: withdrawResponse(w) } });
  }
}
