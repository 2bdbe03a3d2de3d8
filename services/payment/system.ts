/** Builds the payment system from its configuration: storage, buffer, settlement job, handlers. */
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { openDatabase, type Database } from "../shared/storage/database.js";
import { BusinessClock } from "../shared/orders/time.js";
import { scheduleUnlessRunning } from "../shared/runtime/cron.js";
import type { Logger } from "../shared/observability/logger.js";
import { bind, serve, type RunningServer } from "../shared/rpc/server.js";
import { combineGuards, merchantSignatureGuard, operatorTokenGuard } from "../shared/auth/authentication.js";
import { ApiCatalog, docsRoutes } from "../shared/rpc/apiDocs.js";
import { consoleRoutes } from "../console/routes.js";
import { paymentApiDocument } from "./apiDocs.js";
import { MemoryCreditBuffer, RedisCreditBuffer, type CreditBuffer } from "./creditBuffer.js";
import type { PaymentConfig } from "./config.js";
import { paymentMigrations } from "./migrations/index.js";
import { Settlement, type SettlementFaults } from "./settlement.js";
import { createPaymentService } from "./service.js";
import { ServiceMetrics } from "../shared/observability/metrics.js";
import { PaymentMetrics } from "./metrics.js";
import { databaseCheck, OutageLog } from "../shared/observability/readiness.js";
import { OrderExportService } from "../../gen/order/v1/order_pb.js";
import { orderExportService } from "../shared/orders/exportService.js";
import { exportOrders } from "./exports.js";

/** The calls a merchant signs when merchant keys are configured. */
export const MERCHANT_CALLS = ["Pay", "Withdraw", "Refund", "QueryOrder", "CloseOrder"] as const;
/** The calls that need the operator token when one is configured. */
export const PAYMENT_OPERATOR_CALLS = ["Settle"] as const;

export interface PaymentSystem {
  server: RunningServer;
  db: Database;
  buffer: CreditBuffer;
  settlement: Settlement;
  /** The API documents its /docs page shows; the platform adds the other services'. */
  docs: ApiCatalog;
  metrics: PaymentMetrics;
  close(): Promise<void>;
}

export async function startPaymentSystem(
  config: PaymentConfig,
  logger: Logger,
  options: { settlementFaults?: SettlementFaults } = {},
): Promise<PaymentSystem> {
  const db = await openDatabase(config.database, paymentMigrations);
  const redisTarget = config.redisClusterNodes ? { clusterNodes: config.redisClusterNodes } : config.redisUrl ? { url: config.redisUrl } : undefined;
  const buffer: CreditBuffer = redisTarget
    ? RedisCreditBuffer.connect(redisTarget, config.redisPrefix)
    : new MemoryCreditBuffer();
  const clock = new BusinessClock(config.timeZone);
  const metrics = new PaymentMetrics(new ServiceMetrics("payment"), db, buffer);
  if (buffer instanceof RedisCreditBuffer) buffer.onError(() => metrics.redisError());
  const settlement = new Settlement(db, buffer, clock, logger, {
    observer: metrics.settlement,
    chunkSize: config.settleChunkSize,
    sweepEvery: config.settleSweepEvery,
    leaseMs: config.settleLeaseMs,
    ...(options.settlementFaults ? { faults: options.settlementFaults } : {}),
  });
  const impl = createPaymentService({
    db,
    buffer,
    settlement,
    clock,
    logger,
    exportBatchSize: config.exportBatchSize,
    requestTimeMaxAheadSeconds: config.requestTimeMaxAheadSeconds,
    onRecorded: (type, code) => metrics.orderRecorded(type, code),
    bufferOutage: new OutageLog(logger, "credit buffer writes (settlement sweeps the orders table meanwhile)"),
  });
  const docs = new ApiCatalog("payment", config.serving.publicUrls);
  const server = await serve({
    name: "payment",
    listen: config.listen,
    services: [
      bind(PaymentService, impl, {
        guard: combineGuards(
          config.merchantKeys
            ? merchantSignatureGuard({ keys: config.merchantKeys, windowSeconds: config.requestWindowSeconds }, clock, MERCHANT_CALLS)
            : undefined,
          config.operatorToken ? operatorTokenGuard(config.operatorToken, PAYMENT_OPERATOR_CALLS) : undefined,
        ),
        longRunning: ["settle"],
      }),
      // The payment system's successful orders, through the order contract both systems serve.
      bind(
        OrderExportService,
        orderExportService((type, key, cutoffTime) => exportOrders(db, type, key, cutoffTime, config.exportBatchSize)),
      ),
    ],
    logger,
    httpRoutes: [...docsRoutes(docs), ...consoleRoutes({ catalog: docs, timeZone: config.timeZone, logger })],
    maxMessageBytes: config.maxMessageBytes,
    limits: config.callLimits,
    tls: config.tls,
    metrics: metrics.metrics,
    serving: config.serving,
    dependencies: [databaseCheck(db.knex), ...(config.redisUrl ? [{ name: "redis", check: () => buffer.check() }] : [])],
  });
  docs.add({
    name: "payment",
    url: server.httpUrl,
    document: paymentApiDocument(),
    liveExamples: {
      "payment.v1.PaymentService/GetBalance": async () => {
        const first = (await db.knex("accounts").orderBy("saler_id").first("saler_id")) as { saler_id: string } | undefined;
        return first ? { saler_id: first.saler_id } : undefined;
      },
    },
  });
  const scheduled = new OutageLog(logger, "scheduled settlement");
  const job = scheduleUnlessRunning(config.settleCron, () =>
    settlement.run().then(
      () => scheduled.succeeded(),
      (err: unknown) => scheduled.failed(err),
    ),
  );
  return {
    server,
    db,
    buffer,
    settlement,
    docs,
    metrics,
    async close() {
      const stopped = job.stop();
      await server.close();
      await stopped;
      await buffer.close();
      await db.close();
    },
  };
}
