/** The payment system's OpenAPI document, with the seed's messages as examples. */
import { comments_payment_v1_payment } from "../../gen/payment/v1/payment_comments.js";
import {
  GetBalanceRequestSchema,
  GetBalanceResponseSchema,
  ListAccountsRequestSchema,
  PaymentService,
  PayRequestSchema,
  PayResponseSchema,
  QueryOrderRequestSchema,
  RefundRequestSchema,
  RefundResponseSchema,
  CloseOrderRequestSchema,
  CloseOrderResponseSchema,
  SettleRequestSchema,
  WithdrawRequestSchema,
  WithdrawResponseSchema,
} from "../../gen/payment/v1/payment_pb.js";
import { jsonExample, openApiDocument, type OpenApiDocument } from "../shared/rpc/openapi.js";
import { comments_order_v1_order } from "../../gen/order/v1/order_comments.js";
import { OrderExportService, OrderType } from "../../gen/order/v1/order_pb.js";

/** The seed's payment request (支付请求报文), exactly as it is written there. */
export const SEED_PAY_REQUEST = jsonExample(PayRequestSchema, {
  requestTime: "2019-08-29 17:15:20",
  requestId: "20190829171520123456",
  salerId: "saler2",
  totalFee: 100n,
});

/** The seed's withdrawal request (提款请求报文), exactly as it is written there. */
export const SEED_WITHDRAW_REQUEST = jsonExample(WithdrawRequestSchema, {
  requestTime: "2019-08-29 17:16:21",
  requestId: "20190829171621334455",
  withdrawMoney: 100n,
  salerId: "saler1",
});

export function paymentApiDocument(): OpenApiDocument {
  return openApiDocument({
    title: "Payment system",
    description:
      "Records payment orders, buffers their credits, settles the buffer into balances on a schedule, and executes withdrawals against settled balances.",
    services: [PaymentService, OrderExportService],
    comments: { ...comments_payment_v1_payment, ...comments_order_v1_order },
    examples: {
      "payment.v1.PaymentService/Pay": {
        request: SEED_PAY_REQUEST,
        response: jsonExample(PayResponseSchema, {
          responseTime: "2019-08-29 17:15:20",
          requestId: "20190829171520123456",
          responseId: "20190829171520000001",
          salerId: "saler2",
          totalFee: 100n,
          responseCode: "SUCCESS",
          responseMsg: "OK",
        }),
        invalid: { request: { ...(SEED_PAY_REQUEST as object), total_fee: "0" }, message: "total_fee: must be a positive integer number of fen, got 0" },
      },
      "payment.v1.PaymentService/Withdraw": {
        request: SEED_WITHDRAW_REQUEST,
        response: jsonExample(WithdrawResponseSchema, {
          responseTime: "2019-08-29 17:16:21",
          requestTime: "2019-08-29 17:16:21",
          requestId: "20190829171621334455",
          withdrawMoney: 100n,
          salerId: "saler1",
          responseId: "20190829171621000002",
          responseCode: "FAIL",
          responseMsg: "账户余额不足，提款失败",
        }),
        invalid: { request: { ...(SEED_WITHDRAW_REQUEST as object), withdraw_money: "-100" }, message: "withdraw_money: must be a positive integer number of fen, got -100" },
      },
      "payment.v1.PaymentService/Refund": {
        request: jsonExample(RefundRequestSchema, {
          requestTime: "2019-08-29 17:17:20",
          requestId: "20190829171720223344",
          salerId: "saler2",
          paymentResponseId: "20190829171520000001",
          refundFee: 40n,
        }),
        response: jsonExample(RefundResponseSchema, {
          responseTime: "2019-08-29 17:17:20",
          requestTime: "2019-08-29 17:17:20",
          requestId: "20190829171720223344",
          salerId: "saler2",
          paymentResponseId: "20190829171520000001",
          refundFee: 40n,
          responseId: "20190829171720000003",
          responseCode: "SUCCESS",
          responseMsg: "OK",
        }),
        invalid: {
          request: { request_time: "2019-08-29 17:17:20", request_id: "20190829171720223344", saler_id: "saler2", payment_response_id: "20190829171520000001", refund_fee: "0" },
          message: "refund_fee: must be a positive integer number of fen, got 0",
        },
      },
      "payment.v1.PaymentService/QueryOrder": {
        request: jsonExample(QueryOrderRequestSchema, { requestId: "20190829171520123456", orderType: OrderType.PAYMENT }),
        invalid: { request: { request_id: "2019", order_type: "ORDER_TYPE_PAYMENT" }, message: "request_id: must be exactly 20 digits" },
      },
      "payment.v1.PaymentService/CloseOrder": {
        request: jsonExample(CloseOrderRequestSchema, { requestId: "20190829171520654321", orderType: OrderType.PAYMENT }),
        response: jsonExample(CloseOrderResponseSchema, { closed: true, closeTime: "2019-08-29 17:17:20" }),
        invalid: { request: { request_id: "2019", order_type: "ORDER_TYPE_PAYMENT" }, message: "request_id: must be exactly 20 digits" },
      },
      "payment.v1.PaymentService/GetBalance": {
        request: jsonExample(GetBalanceRequestSchema, { salerId: "saler2" }),
        response: jsonExample(GetBalanceResponseSchema, { account: { salerId: "saler2", balance: 0n, pending: 100n, pendingCount: 1n } }),
        invalid: { request: { saler_id: "" }, message: "saler_id: is required" },
      },
      "payment.v1.PaymentService/ListAccounts": {
        request: jsonExample(ListAccountsRequestSchema, { pageSize: 100 }),
        invalid: { request: { page_size: 5000 }, message: "page_size: must be between 0 and 1000" },
      },
      "payment.v1.PaymentService/Settle": {
        request: jsonExample(SettleRequestSchema, { fullSweep: false }),
        invalid: {
          request: { full_sweep: "yes" },
          message: 'cannot decode field payment.v1.SettleRequest.full_sweep from JSON: expected boolean, got "yes"',
        },
      },
    },
  });
}
