/** The reconciliation system's OpenAPI document, with the seed's examples as file contents. */
import { comments_recon_v1_recon } from "../../gen/recon/v1/recon_comments.js";
import {
  AuditFilesRequestSchema,
  AuditRequestSchema,
  GetRunRequestSchema,
  ListRunsRequestSchema,
  OrderKey,
  OrderType,
  ReconcileFilesRequestSchema,
  ReconcileRequestSchema,
  ReconService,
  RunKind,
} from "../../gen/recon/v1/recon_pb.js";
import { jsonExample, openApiDocument, type OpenApiDocument } from "../shared/openapi.js";

const content = (text: string) => ({ source: { case: "content" as const, value: text } });

export function reconApiDocument(): OpenApiDocument {
  return openApiDocument({
    title: "Reconciliation system",
    description:
      "Pulls both sides' successful orders, writes them as CSV into the reconciliation directory, compares them order by order " +
      "(F000 same, F113 payment only, F114 merchant only, F115 amounts differ) and audits every account's balance against the merchant's records.",
    services: [ReconService],
    comments: comments_recon_v1_recon,
    examples: {
      "recon.v1.ReconService/Reconcile": {
        request: jsonExample(ReconcileRequestSchema, { key: OrderKey.RESPONSE_ID, cutoffTime: "", resolveUnknown: true }),
      },
      "recon.v1.ReconService/ReconcileFiles": {
        // The seed's example: merchant {1:10, 2:20, 3:3}, payment {1:10, 3:4, 4:40}.
        request: jsonExample(ReconcileFilesRequestSchema, {
          orderType: OrderType.PAYMENT,
          key: OrderKey.RESPONSE_ID,
          merchant: content("request_id,response_id,total_fee\nrequest_id_1,response_id_1,10\nrequest_id_2,response_id_2,20\nrequest_id_3,response_id_3,3\n"),
          payment: content("request_id,response_id,total_fee\nrequest_id_1,response_id_1,10\nrequest_id_3,response_id_3,4\nrequest_id_4,response_id_4,40\n"),
        }),
      },
      "recon.v1.ReconService/Audit": { request: jsonExample(AuditRequestSchema, { cutoffTime: "", resolveUnknown: true }) },
      "recon.v1.ReconService/AuditFiles": {
        // The seed's example: saler1 balances (SUCCESS 60), saler2 does not (FAIL 80).
        request: jsonExample(AuditFilesRequestSchema, {
          merchantPayments: content("saler_id,total_fee\nsaler1,10\nsaler1,40\nsaler1,20\nsaler2,100\n"),
          merchantWithdrawals: content("saler_id,withdraw_money\nsaler1,10\nsaler2,10\nsaler2,5\nsaler2,5\n"),
          balances: content("saler_id,balance\nsaler1,60\nsaler2,100\n"),
        }),
      },
      "recon.v1.ReconService/ListRuns": { request: jsonExample(ListRunsRequestSchema, { kind: RunKind.UNSPECIFIED, pageSize: 20 }) },
      "recon.v1.ReconService/GetRun": { request: jsonExample(GetRunRequestSchema, { runId: "" }) },
    },
  });
}
