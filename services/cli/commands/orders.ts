/** Orders through the merchant system: pay, withdraw, refund, list them, resolve the UNKNOWN ones. */
import { OrderSchema, type Order } from "../../../gen/merchant/v1/merchant_pb.js";
import { call, EXIT, UsageError } from "../clients.js";
import { record, table } from "../table.js";
import { json, orderTypeName, zoned } from "./format.js";
import { intOption, ORDER_TYPES, orderTypeOption, required, requiredAmount, str, type CommandContext, type Output } from "./options.js";
import { OrderType } from "../../../gen/order/v1/order_pb.js";

/** The merchant's response_msg of an order left UNKNOWN by an injected lost response (orderSender.ts). */
const LOST_RESPONSE_MSG = "response lost (injected fault)";

function orderRecord(o: Order): string {
  return record([
    ["request_id", o.requestId],
    ["type", orderTypeName(o.orderType)],
    ["saler_id", o.salerId],
    ["amount (fen)", o.amount],
    ["state", o.state],
    [zoned("request_time"), o.requestTime],
    ["response_id", o.responseId || "-"],
    [zoned("response_time"), o.responseTime || "-"],
    ["response_code", o.responseCode || "-"],
    ["response_msg", o.responseMsg || "-"],
  ]);
}

function orderOutcome(o: Order): Output {
  const text = orderRecord(o) + (o.state === "UNKNOWN" ? "\nThe outcome is unknown (the call timed out or broke); `resolve` asks the payment system.\n" : "");
  return { text, json: json(OrderSchema, o), exitCode: o.state === "SUCCESS" ? EXIT.ok : EXIT.businessFailure };
}

// --- commands ---------------------------------------------------------------------------------

export async function pay(ctx: CommandContext): Promise<Output> {
  const salerId = required(ctx.values, "saler");
  const totalFee = requiredAmount(ctx.values, "amount");
  const { order } = await call("merchant", ctx.services.addresses, () => ctx.services.merchant.pay({ salerId, totalFee }));
  return orderOutcome(order!);
}

export async function withdraw(ctx: CommandContext): Promise<Output> {
  const salerId = required(ctx.values, "saler");
  const withdrawMoney = requiredAmount(ctx.values, "amount");
  const { order } = await call("merchant", ctx.services.addresses, () => ctx.services.merchant.withdraw({ salerId, withdrawMoney }));
  return orderOutcome(order!);
}

export async function refund(ctx: CommandContext): Promise<Output> {
  const paymentRequestId = required(ctx.values, "of");
  if (!/^\d{20}$/.test(paymentRequestId)) throw new UsageError(`--of must be a 20-digit request_id, got "${paymentRequestId}"`);
  const refundFee = requiredAmount(ctx.values, "amount");
  const { order } = await call("merchant", ctx.services.addresses, () => ctx.services.merchant.refund({ paymentRequestId, refundFee }));
  return orderOutcome(order!);
}

interface Skipped {
  reason: string;
  count: number;
  requestIds: string[];
}

/** What the merchant's resolver does not examine, and why: the orders of an injected lost response. */
async function skippedByResolver(ctx: CommandContext): Promise<Skipped[]> {
  const lost: string[] = [];
  let count = 0;
  let pageToken = "";
  do {
    const page = await call("merchant", ctx.services.addresses, () => ctx.services.merchant.listOrders({ state: "UNKNOWN", pageSize: 1000, pageToken }));
    for (const o of page.orders) {
      if (o.responseMsg !== LOST_RESPONSE_MSG) continue;
      count++;
      if (lost.length < 20) lost.push(o.requestId);
    }
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return count === 0
    ? []
    : [
        {
          reason:
            "UNKNOWN by an injected lost response (simulation fault): left alone on purpose, since they stand for answers the merchant never got; reconciliation reports them as F113",
          count,
          requestIds: lost,
        },
      ];
}

export async function resolve(ctx: CommandContext): Promise<Output> {
  const initOlderThanSeconds = intOption(ctx.values, "init-older-than", 0, 0, 86_400 * 30);
  const res = await call("merchant", ctx.services.addresses, () => ctx.services.merchant.resolveUnknownOrders({ initOlderThanSeconds }));
  const skipped = await skippedByResolver(ctx);
  const skippedCount = skipped.reduce((n, s) => n + s.count, 0);
  let text = record([
    ["orders examined", res.examined],
    ["now SUCCESS", res.succeeded],
    ["now FAIL", res.failed],
    ["still UNKNOWN", res.stillUnknown],
    ["skipped", skippedCount],
  ]);
  if (res.stillUnknown > 0) text += "\nSome orders stay UNKNOWN: the payment system could not be asked.\n";
  for (const s of skipped) {
    text += `\nSkipped ${s.count} order(s) ${s.reason}.\n  ${s.requestIds.join("\n  ")}${s.count > s.requestIds.length ? `\n  (first ${s.requestIds.length}; paycli orders --state UNKNOWN lists all)` : ""}\n`;
  }
  text += `\nINIT orders newer than ${initOlderThanSeconds || "the merchant's RESOLVE_INIT_AFTER_SECONDS"} s are not examined: their calls may still be under way.\n`;
  return {
    text,
    json: {
      examined: res.examined,
      succeeded: res.succeeded,
      failed: res.failed,
      still_unknown: res.stillUnknown,
      skipped: skipped.map((s) => ({ reason: s.reason, count: s.count, request_ids: s.requestIds })),
    },
    exitCode: res.stillUnknown > 0 ? EXIT.businessFailure : EXIT.ok,
  };
}

export async function orders(ctx: CommandContext): Promise<Output> {
  const type = orderTypeOption(ctx.values, "type");
  const state = (str(ctx.values, "state") ?? "").toUpperCase();
  const salerId = str(ctx.values, "saler") ?? "";
  const limit = intOption(ctx.values, "limit", 20, 1, 100_000);
  const found: Order[] = [];
  let pageToken = str(ctx.values, "page") ?? "";
  do {
    const page = await call("merchant", ctx.services.addresses, () =>
      ctx.services.merchant.listOrders({
        orderType: type === undefined ? OrderType.UNSPECIFIED : ORDER_TYPES[type],
        state,
        salerId,
        pageSize: Math.min(1000, limit - found.length),
        pageToken,
      }),
    );
    found.push(...page.orders);
    pageToken = page.nextPageToken;
  } while (pageToken !== "" && found.length < limit);
  const text =
    found.length === 0
      ? "No orders match.\n"
      : table(
          ["request_id", "type", "saler_id", "amount", "state", "response_id", zoned("request_time"), "response_msg"],
          found.map((o) => [o.requestId, orderTypeName(o.orderType), o.salerId, o.amount, o.state, o.responseId || "-", o.requestTime, o.responseMsg || "-"]),
        ) + (pageToken !== "" ? `(${found.length} shown; next page: --page ${pageToken})\n` : "");
  return { text, json: { orders: found.map((o) => json(OrderSchema, o)), next_page_token: pageToken }, exitCode: EXIT.ok };
}
