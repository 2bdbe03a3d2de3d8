/** The reconciliation system's OpenAPI document, with the seed's examples as file contents. */
import { comments_recon_v1_recon } from "../../gen/recon/v1/recon_comments.js";
import {
  AuditFilesRequestSchema,
  AuditRequestSchema,
  GetRunRequestSchema,
  ListDiffRowsRequestSchema,
  ListRunsRequestSchema,
  ReconcileFilesRequestSchema,
  ReconcileRequestSchema,
  ReconService,
  RunKind,
} from "../../gen/recon/v1/recon_pb.js";
import { jsonExample, openApiDocument, type OpenApiDocument } from "../shared/rpc/openapi.js";
import { comments_order_v1_order } from "../../gen/order/v1/order_comments.js";
import { OrderKey, OrderType } from "../../gen/order/v1/order_pb.js";

const content = (text: string) => ({ source: { case: "content" as const, value: text } });

export function reconApiDocument(): OpenApiDocument {
  return openApiDocument({
    title: "Reconciliation system",
    description:
      "Pulls both sides' successful orders, writes them as CSV into the reconciliation directory, compares them order by order " +
      "(F000 same, F113 payment only, F114 merchant only, F115 amounts differ) and audits every account's balance against the merchant's records.",
    services: [ReconService],
    comments: { ...comments_recon_v1_recon, ...comments_order_v1_order },
    examples: {
      "recon.v1.ReconService/Reconcile": {
        request: jsonExample(ReconcileRequestSchema, { key: OrderKey.RESPONSE_ID, cutoffTime: "", resolveUnknown: true }),
        invalid: { request: { cutoff_time: "yesterday" }, message: 'cutoff_time: must be empty or a real time written "yyyy-MM-dd HH:mm:ss"' },
      },
      "recon.v1.ReconService/ReconcileFiles": {
        // The seed's example: merchant {1:10, 2:20, 3:3}, payment {1:10, 3:4, 4:40}.
        request: jsonExample(ReconcileFilesRequestSchema, {
          orderType: OrderType.PAYMENT,
          key: OrderKey.RESPONSE_ID,
          merchant: content("request_id,response_id,total_fee\nrequest_id_1,response_id_1,10\nrequest_id_2,response_id_2,20\nrequest_id_3,response_id_3,3\n"),
          payment: content("request_id,response_id,total_fee\nrequest_id_1,response_id_1,10\nrequest_id_3,response_id_3,4\nrequest_id_4,response_id_4,40\n"),
        }),
        invalid: {
          request: { order_type: "ORDER_TYPE_PAYMENT", merchant: { content: "request_id,response_id,total_fee\n" } },
          message: "payment: is required: give a path or the CSV text as content",
        },
      },
      "recon.v1.ReconService/Audit": {
        request: jsonExample(AuditRequestSchema, { cutoffTime: "", resolveUnknown: true }),
        invalid: { request: { cutoff_time: "2019-02-30 00:00:00" }, message: 'cutoff_time: must be empty or a real time written "yyyy-MM-dd HH:mm:ss"' },
      },
      "recon.v1.ReconService/AuditFiles": {
        // The seed's example: saler1 balances (SUCCESS 60), saler2 does not (FAIL 80).
        request: jsonExample(AuditFilesRequestSchema, {
          merchantPayments: content("saler_id,total_fee\nsaler1,10\nsaler1,40\nsaler1,20\nsaler2,100\n"),
          merchantWithdrawals: content("saler_id,withdraw_money\nsaler1,10\nsaler2,10\nsaler2,5\nsaler2,5\n"),
          balances: content("saler_id,balance\nsaler1,60\nsaler2,100\n"),
        }),
        invalid: {
          request: { merchant_payments: { content: "saler_id,total_fee\nsaler1,10\n" } },
          message: "merchant_withdrawals: is required: give a path or the CSV text as content",
        },
      },
      "recon.v1.ReconService/ListRuns": {
        request: jsonExample(ListRunsRequestSchema, { kind: RunKind.UNSPECIFIED, pageSize: 20 }),
        invalid: { request: { page_size: 5000 }, message: "page_size: must be between 0 and 1000" },
      },
      "recon.v1.ReconService/GetRun": {
        // The served document shows the newest run instead, once there is one (run the
        // ReconcileFiles example first on a fresh service).
        request: jsonExample(GetRunRequestSchema, { runId: "20190829171520000-recon-0000" }),
        invalid: { request: { run_id: "" }, message: "run_id: is not a run id (yyyyMMddHHmmssSSS-recon|audit-xxxx)" },
      },
      "recon.v1.ReconService/ListDiffRows": {
        // The served document shows the newest reconciliation run instead, once there is one.
        request: jsonExample(ListDiffRowsRequestSchema, { runId: "20190829171520000-recon-0000", orderType: OrderType.PAYMENT, diffTypes: ["F113", "F114", "F115"], pageSize: 50 }),
        invalid: { request: { run_id: "" }, message: "run_id: is not a run id (yyyyMMddHHmmssSSS-recon|audit-xxxx)" },
      },
    },
  });
}
