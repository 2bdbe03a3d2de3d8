/**
 * Sends one order to the payment system and keeps the merchant's record of it true:
 * stored as INIT before the call, then SUCCESS or FAIL from the answer, or UNKNOWN when the call
 * timed out or broke (the payment system may or may not have recorded it; `resolveOpenOrders`
 * asks it later with the same request_id).
 *
 * Invariant: the merchant records FAIL for an order only on an answer of the payment system
 * that settles it for good: a FAIL answer, a refusal, or the close of its request_id
 * (CloseOrder), after which the payment system records no order under it. So a FAIL at the
 * merchant is never a success at the payment system, whichever instance stalls or dies between
 * storing an order and sending it. Sending re-reads an order that waited long enough to have
 * been closed meanwhile, so a stalled instance does not send what another one resolved; the
 * close at the payment system is what makes that safe when the stall falls after the re-read.
 */
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { type PaymentService } from "../../gen/payment/v1/payment_pb.js";
import type { Database } from "../shared/storage/database.js";
import { isDuplicateKeyError, isRetryableTransactionError } from "../shared/errors.js";
import { OrderIdSequence } from "../shared/orders/ids.js";
import type { BusinessClock } from "../shared/orders/time.js";
import type { Logger } from "../shared/observability/logger.js";
import { WriteBatcher } from "../shared/storage/writeBatcher.js";
import {
  findOrder,
  insertOrder,
  insertOrders,
  openOrders,
  recordOutcome,
  recordOutcomes,
  type MerchantOrder,
  type OrderTypeName,
  type Outcome,
} from "./orders.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";

/** Injected defects (simulation only). */
export type Fault = "LOST_RESPONSE" | "TAMPERED_AMOUNT" | "MERCHANT_ONLY";

/** Answers that prove the payment system did not record the request. */
const REFUSALS = new Set([
  Code.InvalidArgument,
  Code.AlreadyExists,
  Code.Unauthenticated,
  Code.PermissionDenied,
  Code.FailedPrecondition,
  Code.OutOfRange,
  Code.Unimplemented,
  Code.ResourceExhausted,
]);

export interface SendOptions {
  fault?: Fault;
  /** Amount the merchant records instead of the one sent (TAMPERED_AMOUNT). */
  tamperedAmount?: bigint;
  simulationId?: string;
  /** A refund: the payment it refunds (its request_id here, its response_id at the payment system). */
  refundOf?: { requestId: string; responseId: string };
}

export interface ResolveResult {
  examined: number;
  succeeded: number;
  failed: number;
  stillUnknown: number;
}

export const MSG_CLOSED = "closed at the payment system before it recorded the request";

/** Points where tests hold a send, to prove that a late send moves no money after a close. */
export interface SenderFaults {
  /** Runs after the order is stored and re-read, just before the payment call. */
  beforeSend?: (order: MerchantOrder) => Promise<void>;
}

/**
 * At most 32 orders a statement: the callers of one batch all wait for it and then move on
 * together, so with every caller in one batch the database and the serving of calls take turns;
 * smaller batches overlap them (bench/analysis.md has the measurements).
 */
const ORDER_BATCHES = { maxInFlight: 4, maxBatch: 32 };

/** An order stored this long ago may have been closed by a resolver: read it again before sending. */
const REREAD_AFTER_SECONDS = 2;

const PAYMENT_ORDER_TYPE: Record<OrderTypeName, OrderType> = {
  PAYMENT: OrderType.PAYMENT,
  WITHDRAWAL: OrderType.WITHDRAWAL,
  REFUND: OrderType.REFUND,
};

type Answer = { responseId: string; responseTime: string; responseCode: string; responseMsg: string };

export class OrderSender {
  private readonly ids = new OrderIdSequence();

  /**
   * New orders of concurrent sends are stored together. A batch that meets a duplicate
   * request_id, or lock contention that outlasts its retries, is not stored at all (one
   * statement), and is then stored order by order (each retried on contention) so that each send
   * learns its own outcome. The answer per order: undefined when stored, else its error.
   */
  private readonly orderInserts = new WriteBatcher<{ order: MerchantOrder; now: string; simulationId?: string | undefined }, unknown>(
    async (items) => {
      const one = (i: (typeof items)[number]) => insertOrder(this.db.knex, i.order, i.now, i.simulationId).then(() => undefined, (err: unknown) => err);
      if (items.length === 1) return [await one(items[0]!)];
      try {
        await insertOrders(this.db.knex, items);
        return items.map(() => undefined);
      } catch (err) {
        if (!isDuplicateKeyError(err) && !isRetryableTransactionError(err)) throw err;
        return Promise.all(items.map(one));
      }
    },
    ORDER_BATCHES,
  );

  /**
   * Answers of concurrent sends are recorded together, one statement per batch; a batch that
   * contention defeats is recorded order by order.
   */
  private readonly outcomeWrites = new WriteBatcher<{ requestId: string; outcome: Outcome; now: string }, void>(
    async (items) => {
      const each = () => Promise.all(items.map((i) => recordOutcome(this.db.knex, i.requestId, i.outcome, i.now)));
      if (items.length === 1) await each();
      else {
        try {
          await recordOutcomes(this.db.knex, items);
        } catch (err) {
          if (!isRetryableTransactionError(err)) throw err;
          await each();
        }
      }
      return items.map(() => undefined);
    },
    ORDER_BATCHES,
  );

  constructor(
    private readonly db: Database,
    private readonly payment: Client<typeof PaymentService>,
    private readonly clock: BusinessClock,
    private readonly logger: Logger,
    private readonly options: { callTimeoutMs: number; closeUnknownAfterSeconds: number; faults?: SenderFaults },
  ) {}

  /** A fresh request_id, stored as INIT (retried on the rare clash with another instance). */
  private async createOrder(type: OrderTypeName, salerId: string, amount: bigint, opts: SendOptions): Promise<MerchantOrder> {
    for (let attempt = 1; ; attempt++) {
      const requestTime = this.clock.current();
      const requestId = this.ids.idFor(requestTime);
      if (requestId === undefined) throw new ConnectError("too many orders this second; retry", Code.ResourceExhausted);
      const order: MerchantOrder = {
        requestId,
        orderType: type,
        salerId,
        amount,
        requestTime,
        state: "INIT",
        responseId: "",
        responseTime: "",
        responseCode: "",
        responseMsg: "",
        fault: opts.fault ?? null,
        paymentRequestId: opts.refundOf?.requestId ?? null,
      };
      const failed = await this.orderInserts.submit({ order, now: requestTime, simulationId: opts.simulationId });
      if (failed === undefined) return order;
      if (!isDuplicateKeyError(failed) || attempt >= 8) throw failed;
    }
  }

  async send(type: OrderTypeName, salerId: string, amount: bigint, opts: SendOptions = {}): Promise<MerchantOrder> {
    const order = await this.createOrder(type, salerId, amount, opts);
    if (opts.fault === "MERCHANT_ONLY") {
      // Never sent: the merchant records a success the payment system knows nothing of.
      const now = this.clock.current();
      const fake = { state: "SUCCESS" as const, responseId: this.ids.idFor(now) ?? "", responseTime: now, responseCode: "SUCCESS", responseMsg: "OK" };
      await recordOutcome(this.db.knex, order.requestId, fake, now);
      return { ...order, ...fake };
    }
    if (order.requestTime <= this.clock.secondsAgo(REREAD_AFTER_SECONDS)) {
      // Stored a while ago (a stalled process, a long pause): another instance may have resolved it.
      const current = await findOrder(this.db.knex, order.requestId);
      if (current === undefined || current.state !== "INIT") {
        this.logger.warn({ requestId: order.requestId, state: current?.state }, "order resolved elsewhere before it was sent; not sending it");
        return current ?? order;
      }
    }
    await this.options.faults?.beforeSend?.(order);
    let answer: { responseId: string; responseTime: string; responseCode: string; responseMsg: string };
    try {
      const call = { timeoutMs: this.options.callTimeoutMs };
      const { requestTime, requestId } = order;
      if (type === "PAYMENT") answer = await this.payment.pay({ requestTime, requestId, salerId, totalFee: amount }, call);
      else if (type === "WITHDRAWAL") answer = await this.payment.withdraw({ requestTime, requestId, salerId, withdrawMoney: amount }, call);
      else {
        const paymentResponseId = opts.refundOf?.responseId ?? "";
        answer = await this.payment.refund({ requestTime, requestId, salerId, paymentResponseId, refundFee: amount }, call);
      }
    } catch (err) {
      const e = ConnectError.from(err);
      const now = this.clock.current();
      if (REFUSALS.has(e.code)) {
        const outcome = { state: "FAIL" as const, responseId: "", responseTime: now, responseCode: "FAIL", responseMsg: `refused by the payment system: ${e.rawMessage}` };
        await recordOutcome(this.db.knex, order.requestId, outcome, now);
        return { ...order, ...outcome };
      }
      this.logger.warn({ requestId: order.requestId, code: Code[e.code] }, "payment call failed; order is UNKNOWN");
      const outcome = { state: "UNKNOWN" as const, responseId: "", responseTime: "", responseCode: "", responseMsg: `no answer from the payment system: ${Code[e.code]}` };
      await recordOutcome(this.db.knex, order.requestId, outcome, now);
      return { ...order, ...outcome };
    }
    const now = this.clock.current();
    if (opts.fault === "LOST_RESPONSE") {
      // The answer is dropped: the order stays UNKNOWN and the resolver leaves it alone.
      const outcome = { state: "UNKNOWN" as const, responseId: "", responseTime: "", responseCode: "", responseMsg: "response lost (injected fault)" };
      await recordOutcome(this.db.knex, order.requestId, outcome, now);
      // The caller (the simulation) still learns what the payment system answered.
      return { ...order, ...outcome, responseId: answer.responseId, responseCode: answer.responseCode };
    }
    const state = answer.responseCode === "SUCCESS" ? ("SUCCESS" as const) : ("FAIL" as const);
    const tampered = opts.fault === "TAMPERED_AMOUNT" && state === "SUCCESS" ? opts.tamperedAmount : undefined;
    const outcome = {
      state,
      responseId: answer.responseId,
      responseTime: answer.responseTime,
      responseCode: answer.responseCode,
      responseMsg: answer.responseMsg,
      ...(tampered === undefined ? {} : { amount: tampered }),
    };
    if (tampered === undefined) await this.outcomeWrites.submit({ requestId: order.requestId, outcome, now });
    else await recordOutcome(this.db.knex, order.requestId, outcome, now);
    return { ...order, ...outcome };
  }

  /**
   * Asks the payment system about every UNKNOWN order and every INIT order older than
   * `initOlderThanSeconds`. Found: the stored answer decides. Not found and older than the
   * close-after age: the request_id is closed at the payment system (CloseOrder), which answers
   * either the order that got there first (its answer decides) or the close, after which no
   * payment under it can be recorded, and only then is the order FAIL here.
   */
  async resolveOpenOrders(initOlderThanSeconds: number): Promise<ResolveResult> {
    const result: ResolveResult = { examined: 0, succeeded: 0, failed: 0, stillUnknown: 0 };
    const initBefore = this.clock.secondsAgo(initOlderThanSeconds);
    const closeBefore = this.clock.secondsAgo(this.options.closeUnknownAfterSeconds);
    let afterId = 0n;
    for (;;) {
      const batch = await openOrders(this.db.knex, initBefore, afterId, 200);
      if (batch.length === 0) break;
      afterId = batch[batch.length - 1]!.id!;
      for (const order of batch) {
        result.examined++;
        const outcome = await this.ask(order, closeBefore);
        if (outcome === "SUCCESS") result.succeeded++;
        else if (outcome === "FAIL") result.failed++;
        else result.stillUnknown++;
      }
    }
    return result;
  }

  private async ask(order: MerchantOrder, closeBefore: string): Promise<"SUCCESS" | "FAIL" | "OPEN"> {
    const request = { requestId: order.requestId, orderType: PAYMENT_ORDER_TYPE[order.orderType] };
    const call = { timeoutMs: this.options.callTimeoutMs };
    let found: { closed: boolean; closeTime: string; order: { case: undefined; value?: undefined } | { case: "payment" | "withdrawal" | "refund"; value: Answer } };
    try {
      found = order.requestTime <= closeBefore ? await this.payment.closeOrder(request, call) : await this.payment.queryOrder(request, call);
    } catch {
      if (order.state === "INIT") {
        await recordOutcome(this.db.knex, order.requestId, { state: "UNKNOWN", responseId: "", responseTime: "", responseCode: "", responseMsg: "payment system unreachable" }, this.clock.current());
      }
      return "OPEN";
    }
    const now = this.clock.current();
    if (found.order.case !== undefined) {
      const r = found.order.value;
      const state = r.responseCode === "SUCCESS" ? "SUCCESS" : "FAIL";
      await recordOutcome(this.db.knex, order.requestId, { state, responseId: r.responseId, responseTime: r.responseTime, responseCode: r.responseCode, responseMsg: r.responseMsg }, now);
      return state;
    }
    if (found.closed) {
      await recordOutcome(this.db.knex, order.requestId, { state: "FAIL", responseId: "", responseTime: found.closeTime, responseCode: "FAIL", responseMsg: MSG_CLOSED }, now);
      return "FAIL";
    }
    if (order.state === "INIT") {
      await recordOutcome(this.db.knex, order.requestId, { state: "UNKNOWN", responseId: "", responseTime: "", responseCode: "", responseMsg: "not yet recorded by the payment system" }, now);
    }
    return "OPEN";
  }

  find(requestId: string): Promise<MerchantOrder | undefined> {
    return findOrder(this.db.knex, requestId);
  }
}
