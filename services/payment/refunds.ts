/**
 * Refunds (退款): all or part of one successful payment goes back out of the account's settled
 * balance.
 *
 * Invariant: the successful refunds of a payment never add up to more than its total_fee, and a
 * balance never goes below zero. A refund is recorded in one transaction with its order, a raise
 * of the payment's `refunded` sum only if the refund still fits in what is left of it (one
 * conditional UPDATE of the payment row), and a debit of the balance only if it covers the refund
 * (one conditional UPDATE of the account row). Either condition failing turns the refund into a
 * recorded FAIL that moved no money. Concurrent refunds share that transaction (see `writes`).
 * The row locks are taken payment rows first, account rows second, each kind in saler_id order,
 * as settlement takes them, so concurrent refunds, withdrawals and settlements on any number of
 * instances serialize on those rows instead of overshooting them.
 */
import type { CallStop } from "../shared/rpc/callPolicy.js";
import type { Knex } from "knex";
import { create } from "@bufbuild/protobuf";
import { RefundResponseSchema, type RefundRequest, type RefundResponse } from "../../gen/payment/v1/payment_pb.js";
import { changedRows, inTransaction, sqlInt, toFen, valuesList, type Database } from "../shared/storage/database.js";
import { writeWithRetry } from "../shared/storage/contention.js";
import { requireAmount, requireBusinessTime, requireOrderId, requireRequestId, requireSalerId } from "../shared/orders/validation.js";
import { debit } from "./accounts.js";
import { CLOSED } from "./orders.js";
import { BatchDoesNotFit, orderBatches } from "./orderBatches.js";
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
  "INSERT INTO refund_orders (request_id, request_time, saler_id, payment_response_id, refund_fee, response_id, response_time, response_code, response_msg) VALUES ";
const REFUND_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?)";

export async function insertRefund(db: Knex, o: RefundOrder): Promise<void> {
  await writeWithRetry(db, () => insertRefunds(db, [o]));
}

/** One statement for several refund orders: all of them are recorded, or (on any duplicate) none. */
async function insertRefunds(db: Knex, orders: readonly RefundOrder[]): Promise<void> {
  const bindings: Knex.RawBinding[] = [];
  for (const o of orders) {
    bindings.push(o.requestId, o.requestTime, o.salerId, o.paymentResponseId, sqlInt(o.refundFee), o.responseId, o.responseTime, o.responseCode, o.responseMsg);
  }
  await db.raw(REFUND_INSERT + valuesList(REFUND_VALUES, orders.length), bindings);
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

/**
 * Whether a batch of refunds may be tried together: no request_id twice (the second would be a
 * replay of the first) and each payment named with one saler_id (a refund naming another
 * account's payment is refused). A batch that fails this runs alone at once.
 */
function sharable(orders: readonly RefundOrder[]): boolean {
  const requestIds = new Set<string>();
  const salerOf = new Map<string, string>();
  for (const o of orders) {
    if (requestIds.has(o.requestId)) return false;
    requestIds.add(o.requestId);
    const saler = salerOf.get(o.paymentResponseId);
    if (saler === undefined) salerOf.set(o.paymentResponseId, o.salerId);
    else if (saler !== o.salerId) return false;
  }
  return true;
}

/** Payment rows in the order settlement stamps them: account by account in saler_id order. */
function paymentOrder(a: { salerId: string; paymentResponseId: string }, b: { salerId: string; paymentResponseId: string }): number {
  if (a.salerId !== b.salerId) return a.salerId < b.salerId ? -1 : 1;
  return a.paymentResponseId < b.paymentResponseId ? -1 : a.paymentResponseId > b.paymentResponseId ? 1 : 0;
}

export class Refunds {
  constructor(
    private readonly db: Database,
    private readonly stamps: OrderStamps,
    /** Told of every refund recorded (not of replayed answers). */
    private readonly onRecorded?: ((responseCode: string) => void) | undefined,
  ) {
    this.write = orderBatches<RefundOrder>(this.db, {
      together: (trx, orders) => this.recordTogether(trx, orders),
      alone: (o) => this.refundAlone(o),
      sharable,
    });
  }

  /** One refund in a transaction of its own: its answer, SUCCESS or FAIL with the reason. */
  private refundAlone(o: RefundOrder): Promise<RefundOrder> {
    return inTransaction(this.db, (trx) => recordRefund(trx, o));
  }

  /**
   * Refunds of concurrent calls share a transaction: their orders in one INSERT, then for each
   * payment one conditional raise of its `refunded` sum by the total of its refunds in the
   * batch, then for each account one conditional debit of its total; payments and accounts each
   * in saler_id order (payments of one account in response_id order), payment rows before
   * account rows, as settlement and a refund alone lock them. When every payment takes its total
   * and every balance covers its total, they all succeed together: each would have succeeded
   * alone, in any order. When one does not, an order is a duplicate, or contention outlasts the
   * transaction's retries, it rolls back and each refund runs alone (retried on contention too)
   * and gets the answer it would have got alone. Either way every raise and every debit is one
   * conditional UPDATE, so no payment is over-refunded and no balance goes below zero, not even
   * for an instant.
   */
  private readonly write: (order: RefundOrder, signal: CallStop) => Promise<RefundOrder>;

  /** Records a sharable batch as all SUCCESS, or throws BatchDoesNotFit when a payment or an account does not take it as a whole. */
  private async recordTogether(trx: Knex.Transaction, orders: readonly RefundOrder[]): Promise<void> {
    await insertRefunds(trx, orders);
    const payments = new Map<string, { salerId: string; paymentResponseId: string; total: bigint }>();
    const accounts = new Map<string, bigint>();
    let now = "";
    for (const o of orders) {
      const p = payments.get(o.paymentResponseId);
      if (p) p.total += o.refundFee;
      else payments.set(o.paymentResponseId, { salerId: o.salerId, paymentResponseId: o.paymentResponseId, total: o.refundFee });
      accounts.set(o.salerId, (accounts.get(o.salerId) ?? 0n) + o.refundFee);
      if (o.responseTime > now) now = o.responseTime;
    }
    for (const p of [...payments.values()].sort(paymentOrder)) {
      const total = sqlInt(p.total);
      if ((await changedRows(trx, RAISE_REFUNDED, [total, p.paymentResponseId, p.salerId, total])) !== 1) throw new BatchDoesNotFit();
    }
    for (const salerId of [...accounts.keys()].sort()) {
      if (!(await debit(trx, salerId, accounts.get(salerId)!, now))) throw new BatchDoesNotFit();
    }
  }

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
      // A request_id seen before fails as a duplicate (its transaction, raise and debit included, rolls back).
      write: (order) => this.write(order, signal),
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
