/** The merchant system's OpenAPI document, with examples a person can execute as they are. */
import { comments_merchant_v1_merchant } from "../../gen/merchant/v1/merchant_comments.js";
import {
  CountOrdersRequestSchema,
  GetOrderRequestSchema,
  ListOrdersRequestSchema,
  MerchantService,
  PayRequestSchema,
  PayResponseSchema,
  ResolveUnknownOrdersRequestSchema,
  SimulateRequestSchema,
  SimulateResponseSchema,
  WithdrawRequestSchema,
  RefundRequestSchema,
  RefundResponseSchema,
  WithdrawResponseSchema,
} from "../../gen/merchant/v1/merchant_pb.js";
import { jsonExample, openApiDocument, type OpenApiDocument } from "../shared/rpc/openapi.js";
import { comments_order_v1_order } from "../../gen/order/v1/order_comments.js";
import { OrderExportService, OrderType } from "../../gen/order/v1/order_pb.js";

export function merchantApiDocument(): OpenApiDocument {
  return openApiDocument({
    title: "Merchant system",
    description:
      "The shop: builds payment and withdrawal requests, stores them as orders, sends them to the payment system over gRPC and records the outcome. " +
      "Simulate fires many requests at once, optionally with injected faults that a reconciliation run should then find.",
    services: [MerchantService, OrderExportService],
    comments: { ...comments_merchant_v1_merchant, ...comments_order_v1_order },
    examples: {
      "merchant.v1.MerchantService/Pay": {
        request: jsonExample(PayRequestSchema, { salerId: "saler1", totalFee: 100n }),
        response: jsonExample(PayResponseSchema, {
          order: {
            requestId: "20190829171520123456",
            orderType: OrderType.PAYMENT,
            salerId: "saler1",
            amount: 100n,
            requestTime: "2019-08-29 17:15:20",
            state: "SUCCESS",
            responseId: "20190829171520000001",
            responseTime: "2019-08-29 17:15:20",
            responseCode: "SUCCESS",
            responseMsg: "OK",
          },
        }),
        invalid: { request: { saler_id: "saler1", total_fee: "0" }, message: "total_fee: must be a positive integer number of fen, got 0" },
      },
      "merchant.v1.MerchantService/Refund": {
        // The served document refunds 1 fen of the newest successful payment instead, once there is one.
        request: jsonExample(RefundRequestSchema, { paymentRequestId: "20190829171520123456", refundFee: 40n }),
        invalid: { request: { payment_request_id: "abc", refund_fee: "40" }, message: "payment_request_id: must be exactly 20 digits" },
        response: jsonExample(RefundResponseSchema, {
          order: {
            requestId: "20190829171720223344",
            orderType: OrderType.REFUND,
            salerId: "saler1",
            amount: 40n,
            requestTime: "2019-08-29 17:17:20",
            state: "SUCCESS",
            responseId: "20190829171720000003",
            responseTime: "2019-08-29 17:17:20",
            responseCode: "SUCCESS",
            responseMsg: "OK",
            paymentRequestId: "20190829171520123456",
          },
        }),
      },
      "merchant.v1.MerchantService/Withdraw": {
        request: jsonExample(WithdrawRequestSchema, { salerId: "saler1", withdrawMoney: 10n }),
        response: jsonExample(WithdrawResponseSchema, {
          order: {
            requestId: "20190829171621334455",
            orderType: OrderType.WITHDRAWAL,
            salerId: "saler1",
            amount: 10n,
            requestTime: "2019-08-29 17:16:21",
            state: "FAIL",
            responseId: "20190829171621000002",
            responseTime: "2019-08-29 17:16:21",
            responseCode: "FAIL",
            responseMsg: "账户余额不足，提款失败",
          },
        }),
        invalid: { request: { saler_id: "saler 1", withdraw_money: "10" }, message: "saler_id: must be 1 to 64 characters of A-Z a-z 0-9 _ -" },
      },
      "merchant.v1.MerchantService/GetOrder": {
        // The served document shows the newest order instead, once there is one.
        request: jsonExample(GetOrderRequestSchema, { requestId: "20190829171520123456" }),
        invalid: { request: { request_id: "abc" }, message: "request_id: must be exactly 20 digits" },
      },
      "merchant.v1.MerchantService/ListOrders": {
        request: jsonExample(ListOrdersRequestSchema, { pageSize: 20 }),
        invalid: { request: { state: "LOST" }, message: "state: must be one of INIT, SUCCESS, FAIL, UNKNOWN or empty" },
      },
      "merchant.v1.MerchantService/CountOrders": {
        request: jsonExample(CountOrdersRequestSchema, {}),
        invalid: { request: { order_type: 7 }, message: "order_type: must be ORDER_TYPE_PAYMENT, ORDER_TYPE_WITHDRAWAL or ORDER_TYPE_REFUND" },
      },
      "merchant.v1.MerchantService/ResolveUnknownOrders": {
        request: jsonExample(ResolveUnknownOrdersRequestSchema, {}),
        invalid: { request: { init_older_than_seconds: -1 }, message: "init_older_than_seconds: must not be negative" },
      },
      "merchant.v1.MerchantService/Simulate": {
        // Faults are off here; set a count in faults to inject them.
        request: jsonExample(SimulateRequestSchema, {
          orderType: OrderType.PAYMENT,
          count: 1000,
          concurrency: 32,
          accounts: 10,
          accountPrefix: "saler",
          minAmount: 1n,
          maxAmount: 10000n,
          seed: 42n,
          faults: { lostResponses: 0, tamperedAmounts: 0, merchantOnly: 0 },
        }),
        invalid: { request: { count: 0 }, message: "count: must be between 1 and 1000000" },
        response: jsonExample(SimulateResponseSchema, {
          simulationId: "0b8f8a4e-5d0c-4c5e-9a55-6f1f7c3a2d10",
          orderType: OrderType.PAYMENT,
          requested: 1000,
          succeeded: 999,
          failed: 0,
          unknown: 1,
          amountSucceeded: 5012345n,
          elapsedMs: 1850n,
          throughput: 540.5,
          latencyP50Ms: 48.2,
          latencyP99Ms: 120.7,
          injected: [
            {
              kind: "LOST_RESPONSE",
              requestId: "20190829171520123456",
              responseId: "20190829171520000001",
              salerId: "saler3",
              merchantAmount: 0n,
              paymentAmount: 4321n,
              expectedDiffType: "F113",
            },
          ],
        }),
      },
    },
  });
}
