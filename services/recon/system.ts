/** Builds the reconciliation system: clients of both sides, run store, handlers. */
import { mkdir } from "node:fs/promises";
import { MerchantService } from "../../gen/merchant/v1/merchant_pb.js";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { ReconService } from "../../gen/recon/v1/recon_pb.js";
import { ApiCatalog, docsRoutes } from "../shared/apiDocs.js";
import { consoleRoutes } from "../console/routes.js";
import { createGrpcClient } from "../shared/grpc.js";
import type { Logger } from "../shared/logger.js";
import { bind, serve, type RunningServer } from "../shared/server.js";
import { operatorHeaders, operatorTokenGuard } from "../shared/authentication.js";
import { grpcChannelCredentials } from "../shared/tls.js";
import { BusinessClock } from "../shared/time.js";
import type { ReconConfig } from "./config.js";
import { Reconciler } from "./reconciler.js";
import { RunStore } from "./runs.js";
import { createReconService } from "./service.js";
import { reconApiDocument } from "./apiDocs.js";

/** The calls that start runs: they need the operator token when one is configured. */
export const RECON_OPERATOR_CALLS = ["Reconcile", "ReconcileFiles", "Audit", "AuditFiles"] as const;

export interface ReconSystem {
  server: RunningServer;
  runs: RunStore;
  /** The API documents its /docs page shows; the platform adds the other services'. */
  docs: ApiCatalog;
  close(): Promise<void>;
}

export async function startReconSystem(config: ReconConfig, logger: Logger): Promise<ReconSystem> {
  await mkdir(config.reconDir, { recursive: true });
  const channelOptions = { "grpc.max_receive_message_length": 64 * 1024 * 1024 };
  // The operator token goes with every call to the merchant system (ResolveUnknownOrders needs it).
  const operator = operatorHeaders(config.operatorToken);
  const merchant = createGrpcClient(MerchantService, config.merchantAddress, {
    channelOptions,
    credentials: grpcChannelCredentials(config.merchantTlsCa),
    callHeaders: () => operator,
  });
  const payment = createGrpcClient(PaymentService, config.paymentAddress, { channelOptions, credentials: grpcChannelCredentials(config.paymentTlsCa) });
  const clock = new BusinessClock(config.timeZone);
  const runs = new RunStore(config.reconDir);
  const reconciler = new Reconciler({ merchant: merchant.client, payment: payment.client, runs, clock, inputDir: config.inputDir });
  const impl = createReconService({ reconciler, runs, merchant: merchant.client, clock, cutoffLagSeconds: config.cutoffLagSeconds });
  const docs = new ApiCatalog("recon");
  const server = await serve({
    name: "recon",
    httpRoutes: [...docsRoutes(docs), ...consoleRoutes({ catalog: docs, timeZone: config.timeZone, logger, runs })],
    listen: config.listen,
    services: [
      bind(ReconService, impl, {
        guard: config.operatorToken ? operatorTokenGuard(config.operatorToken, RECON_OPERATOR_CALLS) : undefined,
        longRunning: ["reconcile", "reconcileFiles", "audit", "auditFiles"],
      }),
    ],
    logger,
    maxMessageBytes: config.maxMessageBytes,
    limits: config.callLimits,
    tls: config.tls,
  });
  docs.add({ name: "recon", url: server.httpUrl, document: reconApiDocument() });
  return {
    server,
    runs,
    docs,
    async close() {
      await server.close();
      merchant.close();
      payment.close();
    },
  };
}
