/**
 * Refunds (退款): all or part of one successful payment goes back out of the account's settled
 * balance.
 *
 * Invariant: the successful refunds of a payment never add up to more than its total_fee, and a
 * balance never goes below zero. One transaction records the refund order, raises the payment's
 * `refunded` sum only if the refund still fits in what is left of it (one conditional UPDATE of
 * the payment row), and debits the balance only if it covers the refund (one conditional UPDATE
 * of the account row). Either condition failing turns the refund into a recorded FAIL that moved
 * no money. The row locks are taken payment row first, account row second, as settlement takes
 * them, so concurrent refunds, withdrawals and settlements on any number of instances serialize
 * on those rows instead of overshooting them.
 */
import type { CallStop } from "../shared/rpc/callPolicy.js";
import type { Knex } from "knex";
import { create } from "@bufbuild/protobuf";
import { RefundResponseSchema, type RefundRequest, type RefundResponse } from "../../gen/payment/v1/payment_pb.js";
import { changedRows, inTransaction, sqlInt, toFen, type Database } from "../shared/storage/database.js";
import { writeWithRetry } from "../shared/storage/contention.js";
import { requireAmount, requireBusinessTime, requireOrderId, requireRequestId, requireSalerId } from "../shared/orders/validation.js";
import { debit } from "./accounts.js";
import { CLOSED } from "./orders.js";
import { conflict, MSG_OK, recordOnce, type OrderStamps } from "./recordOnce.js";

export const MSG_REFUND_INSUFFICIENT_BALANCE = "账户余额不足，退款失败";
export const MSG_REFUND_NO_PAYMENT = "原支付订单不存在，退款失败";
export const MSG_REFUND_OTHER_ACCOUNT = "原支付订单不属于该账户，退款失败";
export const MSG_REFUND_EXCEEDS_PAYMENT = "退款金额超过原支付订单可退金额，退款失败";
export const MSG_REFUND_CLOSED = "订单已关闭，退款失败";

export interface RefundOrder {
  requestId: string;
  requestTime: string;
  salerId: string;
  paymentResponseId: string;
  refundFee: bigint;
  responseId: string;
  responseTime: string;
  responseCode: string;
  responseMsg: string;
}

interface RefundRow {
  request_id: string;
  request_time: string;
  saler_id: string;
  payment_response_id: string;
  refund_fee: unknown;
  response_id: string;
  response_time: string;
  response_code: string;
  response_msg: string;
}

const REFUND_INSERT =
  "INSERT INTO refund_orders (request_id, request_time, saler_id, payment_response_id, refund_fee, response_id, response_time, response_code, response_msg) " +
  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";

export async function insertRefund(db: Knex, o: RefundOrder): Promise<void> {
  const bindings = [o.requestId, o.requestTime, o.salerId, o.paymentResponseId, sqlInt(o.refundFee), o.responseId, o.responseTime, o.responseCode, o.responseMsg];
  await writeWithRetry(db, () => db.raw(REFUND_INSERT, bindings));
}

export async function findRefund(db: Knex, requestId: string): Promise<RefundOrder | undefined> {
  const row = (await db("refund_orders").where({ request_id: requestId }).first()) as RefundRow | undefined;
  if (!row) return undefined;
  return {
    requestId: row.request_id,
    requestTime: row.request_time,
    salerId: row.saler_id,
    paymentResponseId: row.payment_response_id,
    refundFee: toFen(row.refund_fee),
    responseId: row.response_id,
    responseTime: row.response_time,
    responseCode: row.response_code,
    responseMsg: row.response_msg,
  };
}

/** A refund closed by CloseOrder: a refund row with response_code CLOSED, no account, no amount. */
export async function insertClosedRefund(db: Knex, requestId: string, responseId: string, now: string): Promise<void> {
  await insertRefund(db, {
    requestId,
    requestTime: "",
    salerId: "",
    paymentResponseId: "",
    refundFee: 0n,
    responseId,
    responseTime: now,
    responseCode: "CLOSED",
    responseMsg: "closed",
  });
}

/** Why a refund that does not fit in its payment is refused. */
async function whyNotRefundable(trx: Knex.Transaction, o: RefundOrder): Promise<string> {
  const payment = (await trx("payment_orders")
    .where({ response_id: o.paymentResponseId })
    .first("saler_id", "response_code")) as { saler_id: string; response_code: string } | undefined;
  if (!payment || payment.response_code !== "SUCCESS") return MSG_REFUND_NO_PAYMENT;
  if (payment.saler_id !== o.salerId) return MSG_REFUND_OTHER_ACCOUNT;
  return MSG_REFUND_EXCEEDS_PAYMENT;
}

/** Raises a successful payment's refunded sum by a refund that fits in what is left of it. */
const RAISE_REFUNDED =
  "UPDATE payment_orders SET refunded = refunded + ? WHERE response_id = ? AND saler_id = ? AND response_code = 'SUCCESS' AND total_fee - refunded >= ?";

/**
 * Records one refund and, when it fits in its payment and the balance covers it, moves the
 * money, all in the caller's transaction. Answers the order as recorded: SUCCESS, or FAIL with
 * its reason. A duplicate request_id fails the insert (nothing else happened).
 */
export async function recordRefund(trx: Knex.Transaction, o: RefundOrder): Promise<RefundOrder> {
  const order = { ...o };
  await insertRefund(trx, order);
  const fee = sqlInt(order.refundFee);
  const fits = await changedRows(trx, RAISE_REFUNDED, [fee, order.paymentResponseId, order.salerId, fee]);
  let reason: string | undefined;
  if (fits !== 1) reason = await whyNotRefundable(trx, order);
  else if (!(await debit(trx, order.salerId, order.refundFee, order.responseTime))) {
    // The payment row is locked by this transaction: handing the amount back is exact.
    await trx("payment_orders").where({ response_id: order.paymentResponseId }).update({ refunded: trx.raw("refunded - ?", [fee]) });
    reason = MSG_REFUND_INSUFFICIENT_BALANCE;
  }
  if (reason !== undefined) {
    order.responseCode = "FAIL";
    order.responseMsg = reason;
    await trx("refund_orders").where({ request_id: order.requestId }).update({ response_code: "FAIL", response_msg: reason });
  }
  return order;
}

/** What is left to refund of a payment: total_fee less its successful refunds. */
export async function refundable(db: Knex, paymentResponseId: string): Promise<{ totalFee: bigint; refunded: bigint } | undefined> {
  const row = (await db("payment_orders").where({ response_id: paymentResponseId, response_code: "SUCCESS" }).first("total_fee", "refunded")) as
    | { total_fee: unknown; refunded: unknown }
    | undefined;
  return row ? { totalFee: toFen(row.total_fee), refunded: toFen(row.refunded) } : undefined;
}

export function validateRefund(req: RefundRequest): void {
  requireBusinessTime("request_time", req.requestTime);
  requireRequestId("request_id", req.requestId, req.requestTime);
  requireSalerId("saler_id", req.salerId);
  requireOrderId("payment_response_id", req.paymentResponseId);
  requireAmount("refund_fee", req.refundFee);
}

export function refundResponse(o: RefundOrder): RefundResponse {
  return create(RefundResponseSchema, {
    responseTime: o.responseTime,
    requestTime: o.requestTime,
    requestId: o.requestId,
    salerId: o.salerId,
    paymentResponseId: o.paymentResponseId,
    refundFee: o.refundFee,
    responseId: o.responseId,
    responseCode: o.responseCode,
    responseMsg: o.responseMsg,
  });
}

/** Same request_id again: the stored answer if the body is the same; a closed one answers FAIL. */
function replayRefund(existing: RefundOrder, req: RefundRequest): RefundResponse {
  if (existing.responseCode === CLOSED) {
    return refundResponse({
      ...existing,
      requestTime: req.requestTime,
      salerId: req.salerId,
      paymentResponseId: req.paymentResponseId,
      refundFee: req.refundFee,
      responseCode: "FAIL",
      responseMsg: MSG_REFUND_CLOSED,
    });
  }
  if (
    existing.requestTime !== req.requestTime ||
    existing.salerId !== req.salerId ||
    existing.paymentResponseId !== req.paymentResponseId ||
    existing.refundFee !== req.refundFee
  ) {
    throw conflict(req.requestId);
  }
  return refundResponse(existing);
}

export class Refunds {
  constructor(
    private readonly db: Database,
    private readonly stamps: OrderStamps,
    /** Told of every refund recorded (not of replayed answers). */
    private readonly onRecorded?: ((responseCode: string) => void) | undefined,
  ) {}

  /** Refund: validated by the caller (validateRefund and the request_time range). */
  async refund(req: RefundRequest, signal: CallStop): Promise<RefundResponse> {
    const outcome = await recordOnce(this.stamps, {
      signal,
      order: ({ now, responseId }): RefundOrder => ({
        requestId: req.requestId,
        requestTime: req.requestTime,
        salerId: req.salerId,
        paymentResponseId: req.paymentResponseId,
        refundFee: req.refundFee,
        responseId,
        responseTime: now,
        responseCode: "SUCCESS",
        responseMsg: MSG_OK,
      }),
      // A request_id seen before fails as a duplicate (its transaction rolls back).
      write: (order) => inTransaction(this.db, (trx) => recordRefund(trx, order)),
      replay: async () => {
        const existing = await findRefund(this.db.knex, req.requestId);
        return existing && replayRefund(existing, req);
      },
    });
    if ("replayed" in outcome) return outcome.replayed;
    this.onRecorded?.(outcome.recorded.responseCode);
    return refundResponse(outcome.recorded);
  }
}
