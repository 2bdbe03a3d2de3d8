/** MerchantService handlers: transport-free, served by grpc-js and connect-node alike. */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  MerchantService,
  OrderSchema,
  type Order,
} from "../../gen/merchant/v1/merchant_pb.js";
import type { Database } from "../shared/storage/database.js";
import { invalidField } from "../shared/errors.js";
import { optionalBusinessTime, pageSize, requireAmount, requireOrderId, requireSalerId } from "../shared/orders/validation.js";
import type { OrderSender } from "./orderSender.js";
import {
  countOrders,
  findOrder,
  listOrders,
  ORDER_STATES,
  refundableOf,
  refundablePayments,
  refundsOf,
  sumRefunds,
  refundTotals,
  type MerchantOrder,
  type OrderState,
  type OrderTypeName,
  type RefundTotals,
} from "./orders.js";
import { runSimulation, type RefundablePayment } from "./simulation.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";

export interface MerchantDeps {
  db: Database;
  sender: OrderSender;
  /** Default age (seconds) after which an INIT order counts as open. */
  resolveInitAfterSeconds: number;
}

const ORDER_TYPE: Record<OrderTypeName, OrderType> = {
  PAYMENT: OrderType.PAYMENT,
  WITHDRAWAL: OrderType.WITHDRAWAL,
  REFUND: OrderType.REFUND,
};

/** An order as the API shows it; a payment with its refund sums when they are given. */
export function toOrderMessage(o: MerchantOrder, refunds?: RefundTotals): Order {
  const refundable = o.orderType === "PAYMENT" && o.state === "SUCCESS" ? refundableOf(o.amount, refunds) : 0n;
  return create(OrderSchema, {
    requestId: o.requestId,
    orderType: ORDER_TYPE[o.orderType],
    salerId: o.salerId,
    amount: o.amount,
    requestTime: o.requestTime,
    state: o.state,
    responseId: o.responseId,
    responseTime: o.responseTime,
    responseCode: o.responseCode,
    responseMsg: o.responseMsg,
    paymentRequestId: o.paymentRequestId ?? "",
    refunded: refunds?.refunded ?? 0n,
    refundable,
  });
}

/** Orders with the refund sums of the payments among them. */
async function withRefunds(db: Database, orders: readonly MerchantOrder[]): Promise<Order[]> {
  const totals = await refundTotals(
    db.knex,
    orders.filter((o) => o.orderType === "PAYMENT").map((o) => o.requestId),
  );
  return orders.map((o) => toOrderMessage(o, totals.get(o.requestId)));
}

function typeName(field: string, t: OrderType, allowUnspecified: boolean): OrderTypeName | undefined {
  if (t === OrderType.PAYMENT) return "PAYMENT";
  if (t === OrderType.WITHDRAWAL) return "WITHDRAWAL";
  if (t === OrderType.REFUND) return "REFUND";
  if (t === OrderType.UNSPECIFIED && allowUnspecified) return undefined;
  throw invalidField(field, "must be ORDER_TYPE_PAYMENT, ORDER_TYPE_WITHDRAWAL or ORDER_TYPE_REFUND");
}

const MAX_SIMULATION = 1_000_000;

export function createMerchantService(deps: MerchantDeps): ServiceImpl<typeof MerchantService> {
  const { db, sender } = deps;
  return {
    async pay(req) {
      requireSalerId("saler_id", req.salerId);
      requireAmount("total_fee", req.totalFee);
      return { order: toOrderMessage(await sender.send("PAYMENT", req.salerId, req.totalFee)) };
    },

    async withdraw(req) {
      requireSalerId("saler_id", req.salerId);
      requireAmount("withdraw_money", req.withdrawMoney);
      return { order: toOrderMessage(await sender.send("WITHDRAWAL", req.salerId, req.withdrawMoney)) };
    },

    async refund(req) {
      requireOrderId("payment_request_id", req.paymentRequestId);
      requireAmount("refund_fee", req.refundFee);
      const payment = await findOrder(db.knex, req.paymentRequestId);
      if (!payment || payment.orderType !== "PAYMENT") {
        throw new ConnectError(`payment_request_id: no payment ${req.paymentRequestId}`, Code.NotFound);
      }
      if (payment.state !== "SUCCESS") {
        throw new ConnectError(`payment_request_id: payment ${req.paymentRequestId} is ${payment.state}; only a successful payment can be refunded`, Code.FailedPrecondition);
      }
      // What the merchant already refunded or is refunding; the payment system decides for good.
      const left = refundableOf(payment.amount, (await refundTotals(db.knex, [payment.requestId])).get(payment.requestId));
      if (req.refundFee > left) {
        throw new ConnectError(`refund_fee: ${req.refundFee} fen is more than the ${left} fen refundable of payment ${payment.requestId}`, Code.FailedPrecondition);
      }
      const order = await sender.send("REFUND", payment.salerId, req.refundFee, { refundOf: { requestId: payment.requestId, responseId: payment.responseId } });
      return { order: toOrderMessage(order) };
    },

    async getOrder(req) {
      requireOrderId("request_id", req.requestId);
      const order = await sender.find(req.requestId);
      if (!order) throw new ConnectError(`request_id: no order ${req.requestId}`, Code.NotFound);
      if (order.orderType !== "PAYMENT") return { order: toOrderMessage(order) };
      const refunds = await refundsOf(db.knex, order.requestId);
      return { order: toOrderMessage(order, sumRefunds(refunds)), refunds: refunds.map((r) => toOrderMessage(r)) };
    },

    async listOrders(req) {
      const limit = pageSize("page_size", req.pageSize, 50, 1000);
      const orderType = typeName("order_type", req.orderType, true);
      if (req.state !== "" && !ORDER_STATES.includes(req.state as OrderState)) {
        throw invalidField("state", `must be one of ${ORDER_STATES.join(", ")} or empty`);
      }
      if (req.salerId !== "") requireSalerId("saler_id", req.salerId);
      if (req.pageToken !== "" && !/^\d{1,19}$/.test(req.pageToken)) throw invalidField("page_token", "is not a token this service issued");
      const rows = await listOrders(db.knex, {
        limit: limit + 1,
        ...(orderType ? { orderType } : {}),
        ...(req.state ? { state: req.state as OrderState } : {}),
        ...(req.salerId ? { salerId: req.salerId } : {}),
        ...(req.pageToken ? { beforeId: BigInt(req.pageToken) } : {}),
      });
      const page = rows.slice(0, limit);
      return {
        orders: await withRefunds(db, page),
        nextPageToken: rows.length > limit ? String(page[page.length - 1]!.id) : "",
      };
    },

    async resolveUnknownOrders(req) {
      if (req.initOlderThanSeconds < 0) throw invalidField("init_older_than_seconds", "must not be negative");
      return sender.resolveOpenOrders(req.initOlderThanSeconds || deps.resolveInitAfterSeconds);
    },

    async simulate(req) {
      const orderType = typeName("order_type", req.orderType, true) ?? "PAYMENT";
      if (req.count < 1 || req.count > MAX_SIMULATION) throw invalidField("count", `must be between 1 and ${MAX_SIMULATION}`);
      if (req.concurrency < 0 || req.concurrency > 1024) throw invalidField("concurrency", "must be between 0 and 1024");
      if (req.accounts < 0 || req.accounts > 100_000) throw invalidField("accounts", "must be between 0 and 100000");
      const prefix = req.accountPrefix || "saler";
      if (!/^[A-Za-z0-9_-]{1,50}$/.test(prefix)) throw invalidField("account_prefix", "must be 1 to 50 characters of A-Z a-z 0-9 _ -");
      const minAmount = req.minAmount === 0n ? 1n : req.minAmount;
      const maxAmount = req.maxAmount === 0n ? 10_000n : req.maxAmount;
      requireAmount("min_amount", minAmount);
      requireAmount("max_amount", maxAmount);
      if (minAmount > maxAmount) throw invalidField("max_amount", "must not be below min_amount");
      const faults = {
        lostResponses: req.faults?.lostResponses ?? 0,
        tamperedAmounts: req.faults?.tamperedAmounts ?? 0,
        merchantOnly: req.faults?.merchantOnly ?? 0,
      };
      for (const [field, n] of [
        ["faults.lost_responses", faults.lostResponses],
        ["faults.tampered_amounts", faults.tamperedAmounts],
        ["faults.merchant_only", faults.merchantOnly],
      ] as const) {
        if (n < 0) throw invalidField(field, "must not be negative");
      }
      if (faults.lostResponses + faults.tamperedAmounts + faults.merchantOnly > req.count) {
        throw invalidField("faults", "more faults than requests");
      }
      let refundable: RefundablePayment[] | undefined;
      if (orderType === "REFUND") {
        refundable = await refundablePayments(db.knex, prefix, req.accounts || 10);
        if (refundable.length === 0) {
          throw new ConnectError(`order_type: the accounts ${prefix}1..${prefix}${req.accounts || 10} have no successful payment left to refund`, Code.FailedPrecondition);
        }
      }
      const report = await runSimulation(sender, {
        ...(refundable ? { refundable } : {}),
        orderType,
        count: req.count,
        concurrency: req.concurrency || 16,
        accounts: req.accounts || 10,
        accountPrefix: prefix,
        minAmount,
        maxAmount,
        seed: req.seed,
        faults,
      });
      return {
        ...report,
        injected: report.injected.map((f) => ({ ...f, orderType: ORDER_TYPE[f.orderType] })),
        orderType: ORDER_TYPE[orderType],
        elapsedMs: BigInt(report.elapsedMs),
      };
    },

    async countOrders(req) {
      const orderType = typeName("order_type", req.orderType, true);
      const found = await countOrders(db.knex, orderType);
      const types: OrderTypeName[] = orderType ? [orderType] : ["PAYMENT", "WITHDRAWAL"];
      return {
        counts: types.flatMap((t) =>
          ORDER_STATES.map((state) => {
            const hit = found.find((f) => f.orderType === t && f.state === state);
            return { orderType: t === "PAYMENT" ? OrderType.PAYMENT : OrderType.WITHDRAWAL, state, count: hit?.count ?? 0n, amount: hit?.amount ?? 0n };
          }),
        ),
      };
    },
  };
}
