/**
 * The services the contract suites call, on one platform: for each, where it is served, one unary
 * call that must succeed (with the check of its answer) and one server-streaming call that must
 * show what the unary calls did. Every transport in clients.ts runs the same probes.
 */
import { expect } from "chai";
import type { DescService, JsonObject, JsonValue } from "@bufbuild/protobuf";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { MerchantService } from "../../gen/merchant/v1/merchant_pb.js";
import { OrderExportService } from "../../gen/order/v1/order_pb.js";
import { ReconService } from "../../gen/recon/v1/recon_pb.js";
import type { RunningServer } from "../../services/shared/rpc/server.js";
import { idPrefix, isBusinessTime } from "../../services/shared/orders/time.js";
import { startPlatform, type Backend, type Platform } from "../harness.js";
import { requestIdentityJson } from "../support/requestIdentity.js";

/** The services under contract, in the order the suites call them. */
export const TARGET_NAMES = ["payment", "merchant", "recon"] as const;

export interface ContractTarget {
  name: (typeof TARGET_NAMES)[number];
  service: DescService;
  server: RunningServer;
  unary: {
    method: string;
    request(): JsonObject;
    /** Checks the answer; returns the key the stream below must show (a request_id, a run_id). */
    check(request: JsonObject, answer: JsonObject): string;
  };
  stream: {
    /** The service of the stream when it is not the target's own (order.v1.OrderExportService). */
    service?: DescService;
    method: string;
    request(keys: string[]): JsonObject;
    /** Checks the streamed messages against the keys of every unary call made so far. */
    check(keys: string[], messages: JsonObject[]): void;
  };
}

/** The field names of the seed's payment response, in the order SPEC section 2 shows them. */
export const PAY_RESPONSE_FIELDS = ["response_time", "request_id", "response_id", "saler_id", "total_fee", "response_code", "response_msg"];
/** The field names of the seed's withdrawal response, in SPEC order. */
export const WITHDRAW_RESPONSE_FIELDS = [
  "response_time",
  "request_time",
  "request_id",
  "withdraw_money",
  "saler_id",
  "response_id",
  "response_code",
  "response_msg",
];

/** A response id: 20 digits whose first 14 are the response time. */
export function expectResponseId(answer: JsonObject): void {
  const time = answer.response_time as string;
  expect(isBusinessTime(time), `response_time ${time}`).to.equal(true);
  expect(answer.response_id).to.match(/^\d{20}$/);
  expect((answer.response_id as string).slice(0, 14)).to.equal(idPrefix(time));
}

function exportedRequestIds(messages: JsonObject[]): string[] {
  return messages.flatMap((m) => (m.orders as JsonValue[]).map((o) => (o as JsonObject).request_id as string));
}

export const PROBE_ACCOUNT = "contract1";

export function paymentTarget(server: RunningServer): ContractTarget {
  return {
    name: "payment",
    service: PaymentService,
    server,
    unary: {
      method: "Pay",
      request: () => ({ ...requestIdentityJson(), saler_id: PROBE_ACCOUNT, total_fee: "100" }),
      check(request, answer) {
        expect(Object.keys(answer)).to.deep.equal(PAY_RESPONSE_FIELDS);
        expect(answer).to.include({
          request_id: request.request_id,
          saler_id: PROBE_ACCOUNT,
          total_fee: "100",
          response_code: "SUCCESS",
          response_msg: "OK",
        });
        expectResponseId(answer);
        return request.request_id as string;
      },
    },
    stream: {
      service: OrderExportService,
      method: "ExportOrders",
      request: () => ({ order_type: "ORDER_TYPE_PAYMENT", key: "ORDER_KEY_REQUEST_ID" }),
      check(keys, messages) {
        const ids = exportedRequestIds(messages);
        expect(ids).to.include.members(keys);
        expect(ids).to.deep.equal([...ids].sort(), "exported in request_id order");
      },
    },
  };
}

export function merchantTarget(server: RunningServer): ContractTarget {
  return {
    name: "merchant",
    service: MerchantService,
    server,
    unary: {
      method: "Pay",
      request: () => ({ saler_id: PROBE_ACCOUNT, total_fee: "100" }),
      check(_request, answer) {
        const order = answer.order as JsonObject;
        expect(order).to.include({
          order_type: "ORDER_TYPE_PAYMENT",
          saler_id: PROBE_ACCOUNT,
          amount: "100",
          state: "SUCCESS",
          response_code: "SUCCESS",
        });
        expect(order.request_id).to.match(/^\d{20}$/);
        expect((order.request_id as string).slice(0, 14)).to.equal(idPrefix(order.request_time as string));
        expectResponseId(order);
        return order.request_id as string;
      },
    },
    stream: {
      service: OrderExportService,
      method: "ExportOrders",
      request: () => ({ order_type: "ORDER_TYPE_PAYMENT", key: "ORDER_KEY_REQUEST_ID" }),
      check(keys, messages) {
        expect(exportedRequestIds(messages)).to.include.members(keys);
      },
    },
  };
}

const DIFF_TYPES = ["F000", "F113", "F114", "F115"];

function paymentDiffSummary(answer: JsonObject): JsonObject {
  const run = answer.run as JsonObject;
  const summary = (run.diffs as JsonObject[]).find((d) => d.order_type === "ORDER_TYPE_PAYMENT");
  expect(summary, "a payment diff summary").to.not.equal(undefined);
  return summary!;
}

export function reconTarget(server: RunningServer): ContractTarget {
  return {
    name: "recon",
    service: ReconService,
    server,
    unary: {
      method: "Reconcile",
      request: () => ({}),
      check(_request, answer) {
        const run = answer.run as JsonObject;
        expect(run).to.include({ kind: "RUN_KIND_RECONCILIATION", source: "live" });
        expect(run.run_id).to.be.a("string").and.not.equal("");
        // Every order on either side has exactly one diff_type.
        const s = paymentDiffSummary(answer);
        const n = (field: string) => BigInt(s[field] as string);
        expect(n("payment_rows") > 0n, "payment rows").to.equal(true);
        expect(n("f000_count") + n("f113_count") + n("f115_count")).to.equal(n("payment_rows"));
        expect(n("f000_count") + n("f114_count") + n("f115_count")).to.equal(n("merchant_rows"));
        return run.run_id as string;
      },
    },
    stream: {
      method: "StreamDiffRows",
      request: (keys) => ({ run_id: keys[keys.length - 1]!, order_type: "ORDER_TYPE_PAYMENT" }),
      check(_keys, messages) {
        const rows = messages.flatMap((m) => m.rows as JsonObject[]);
        expect(rows).to.not.have.length(0);
        for (const row of rows) {
          expect(DIFF_TYPES).to.include(row.diff_type);
          // Every probe paid 100 fen.
          expect(row).to.include({ order_type: "ORDER_TYPE_PAYMENT", amount: "100" });
          expect(row.request_id).to.match(/^\d{20}$/);
        }
      },
    },
  };
}

/** The contract targets of a running platform, in TARGET_NAMES order. */
export function targetsOf(platform: Platform): ContractTarget[] {
  return [paymentTarget(platform.payment.server), merchantTarget(platform.merchant.server), reconTarget(platform.recon.server)];
}

export interface ContractPlatform {
  platform: Platform;
  targets: ContractTarget[];
  close(): Promise<void>;
}

/** The three systems on fresh storage, as contract targets. */
export async function startContractPlatform(backend: Backend): Promise<ContractPlatform> {
  const platform = await startPlatform(backend);
  return { platform, targets: targetsOf(platform), close: () => platform.close() };
}
