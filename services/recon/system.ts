/** Builds the reconciliation system: clients of both sides, run store, handlers. */
import { mkdir } from "node:fs/promises";
import { MerchantService } from "../../gen/merchant/v1/merchant_pb.js";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { ReconService } from "../../gen/recon/v1/recon_pb.js";
import { ApiCatalog, docsRoutes } from "../shared/apiDocs.js";
import { createGrpcClient } from "../shared/grpc.js";
import type { Logger } from "../shared/logger.js";
import { bind, serve, type RunningServer } from "../shared/server.js";
import { BusinessClock } from "../shared/time.js";
import type { ReconConfig } from "./config.js";
import { Reconciler } from "./reconciler.js";
import { RunStore } from "./runs.js";
import { createReconService } from "./service.js";
import { reconApiDocument } from "./apiDocs.js";

export interface ReconSystem {
  server: RunningServer;
  runs: RunStore;
  /** The API documents its /docs page shows; the platform adds the other services'. */
  docs: ApiCatalog;
  close(): Promise<void>;
}

export async function startReconSystem(config: ReconConfig, logger: Logger): Promise<ReconSystem> {
  await mkdir(config.reconDir, { recursive: true });
  const merchant = createGrpcClient(MerchantService, config.merchantAddress, { channelOptions: { "grpc.max_receive_message_length": 64 * 1024 * 1024 } });
  const payment = createGrpcClient(PaymentService, config.paymentAddress, { channelOptions: { "grpc.max_receive_message_length": 64 * 1024 * 1024 } });
  const clock = new BusinessClock(config.timeZone);
  const runs = new RunStore(config.reconDir);
  const reconciler = new Reconciler({ merchant: merchant.client, payment: payment.client, runs, clock, inputDir: config.inputDir });
  const impl = createReconService({ reconciler, runs, merchant: merchant.client, clock, cutoffLagSeconds: config.cutoffLagSeconds });
  const docs = new ApiCatalog("recon");
  const server = await serve({
    name: "recon",
    httpRoutes: docsRoutes(docs),
    listen: config.listen,
    services: [bind(ReconService, impl)],
    logger,
    maxMessageBytes: config.maxMessageBytes,
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
