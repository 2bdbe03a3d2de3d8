/** Builds the merchant system from its configuration: storage, payment client, jobs, handlers. */
import schedule from "node-schedule";
import { MerchantService } from "../../gen/merchant/v1/merchant_pb.js";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { openDatabase, type Database } from "../shared/database.js";
import { createGrpcClient } from "../shared/grpc.js";
import type { Logger } from "../shared/logger.js";
import { bind, serve, type RunningServer } from "../shared/server.js";
import { operatorTokenGuard } from "../shared/authentication.js";
import { signatureHeaders } from "../shared/signing.js";
import { grpcChannelCredentials } from "../shared/tls.js";
import { ApiCatalog, docsRoutes } from "../shared/apiDocs.js";
import { consoleRoutes } from "../console/routes.js";
import { merchantApiDocument } from "./apiDocs.js";
import { BusinessClock } from "../shared/time.js";
import type { MerchantConfig } from "./config.js";
import { merchantMigrations } from "./migrations/index.js";
import { OrderSender, type SenderFaults } from "./orderSender.js";
import { createMerchantService } from "./service.js";

/** The calls that need the operator token when one is configured. */
export const MERCHANT_OPERATOR_CALLS = ["Simulate", "ResolveUnknownOrders"] as const;

export interface MerchantSystem {
  server: RunningServer;
  db: Database;
  sender: OrderSender;
  /** The API documents its /docs page shows; the platform adds the other services'. */
  docs: ApiCatalog;
  close(): Promise<void>;
}

export async function startMerchantSystem(
  config: MerchantConfig,
  logger: Logger,
  options: { senderFaults?: SenderFaults } = {},
): Promise<MerchantSystem> {
  const db = await openDatabase(config.database, merchantMigrations);
  const clock = new BusinessClock(config.timeZone);
  const signing = config.signing;
  const payment = createGrpcClient(PaymentService, config.paymentAddress, {
    credentials: grpcChannelCredentials(config.paymentTlsCa),
    ...(signing
      ? {
          callHeaders: (method, message) =>
            signatureHeaders(signing, `/${method.parent.typeName}/${method.name}`, method.input, message as never, clock.current()),
        }
      : {}),
  });
  const sender = new OrderSender(db, payment.client, clock, logger, {
    callTimeoutMs: config.callTimeoutMs,
    closeUnknownAfterSeconds: config.closeUnknownAfterSeconds,
    ...(options.senderFaults ? { faults: options.senderFaults } : {}),
  });
  const impl = createMerchantService({
    db,
    sender,
    exportBatchSize: config.exportBatchSize,
    resolveInitAfterSeconds: config.resolveInitAfterSeconds,
  });
  const docs = new ApiCatalog("merchant");
  const server = await serve({
    name: "merchant",
    listen: config.listen,
    services: [
      bind(MerchantService, impl, {
        guard: config.operatorToken ? operatorTokenGuard(config.operatorToken, MERCHANT_OPERATOR_CALLS) : undefined,
        longRunning: ["simulate", "resolveUnknownOrders"],
      }),
    ],
    logger,
    httpRoutes: [...docsRoutes(docs), ...consoleRoutes({ catalog: docs, timeZone: config.timeZone, logger })],
    maxMessageBytes: config.maxMessageBytes,
    limits: config.callLimits,
    tls: config.tls,
  });
  docs.add({ name: "merchant", url: server.httpUrl, document: merchantApiDocument() });
  let running: Promise<unknown> | undefined;
  const job =
    config.resolveCron === "off"
      ? undefined
      : schedule.scheduleJob(config.resolveCron, () => {
          if (running) return;
          running = sender
            .resolveOpenOrders(config.resolveInitAfterSeconds)
            .catch((err: unknown) => logger.error({ err }, "resolving open orders failed"))
            .finally(() => (running = undefined));
        });
  return {
    server,
    db,
    sender,
    docs,
    async close() {
      job?.cancel();
      await server.close();
      await running;
      payment.close();
      await db.close();
    },
  };
}
