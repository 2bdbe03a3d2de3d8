/** Builds the merchant system from its configuration: storage, payment client, jobs, handlers. */
import { MerchantService } from "../../gen/merchant/v1/merchant_pb.js";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { openDatabase, type Database } from "../shared/storage/database.js";
import { createGrpcClient } from "../shared/rpc/grpcClient.js";
import type { Logger } from "../shared/observability/logger.js";
import { bind, serve, type RunningServer } from "../shared/rpc/server.js";
import { operatorTokenGuard } from "../shared/auth/authentication.js";
import { signatureHeaders } from "../shared/auth/signing.js";
import { grpcChannelCredentials } from "../shared/rpc/tls.js";
import { ApiCatalog, docsRoutes } from "../shared/rpc/apiDocs.js";
import { consoleRoutes } from "../console/routes.js";
import { merchantApiDocument } from "./apiDocs.js";
import { BusinessClock } from "../shared/orders/time.js";
import { scheduleUnlessRunning } from "../shared/runtime/cron.js";
import type { MerchantConfig } from "./config.js";
import { merchantMigrations } from "./migrations/index.js";
import { OrderSender, type SenderFaults } from "./orderSender.js";
import { createMerchantService } from "./service.js";
import { ServiceMetrics } from "../shared/observability/metrics.js";
import { MerchantMetrics } from "./metrics.js";
import { databaseCheck, OutageLog, upstreamCheck } from "../shared/observability/readiness.js";
import type { ResolveResult } from "./orderSender.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { OrderExportService, OrderType } from "../../gen/order/v1/order_pb.js";
import { orderExportService } from "../shared/orders/exportService.js";
import { exportOrders } from "./exports.js";

/** The calls that need the operator token when one is configured. */
export const MERCHANT_OPERATOR_CALLS = ["Simulate", "ResolveUnknownOrders"] as const;

export interface MerchantSystem {
  server: RunningServer;
  db: Database;
  sender: OrderSender;
  /** The API documents its /docs page shows; the platform adds the other services'. */
  docs: ApiCatalog;
  metrics: MerchantMetrics;
  close(): Promise<void>;
}

export async function startMerchantSystem(
  config: MerchantConfig,
  logger: Logger,
  options: { senderFaults?: SenderFaults } = {},
): Promise<MerchantSystem> {
  const db = await openDatabase(config.database, merchantMigrations);
  const clock = new BusinessClock(config.timeZone);
  const metrics = new MerchantMetrics(new ServiceMetrics("merchant"), db, clock);
  const signing = config.signing;
  const payment = createGrpcClient(PaymentService, config.paymentAddress, {
    credentials: grpcChannelCredentials(config.paymentTlsCa),
    interceptors: [metrics.metrics.clientInterceptor("payment")],
    upstream: "payment",
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
  const base = createMerchantService({
    db,
    sender,
    resolveInitAfterSeconds: config.resolveInitAfterSeconds,
  });
  /** One log line and the metrics of every resolution run, by call or on schedule. */
  const resolved = (trigger: string, started: number, result: ResolveResult | undefined, err?: unknown) => {
    const durationMs = Date.now() - started;
    metrics.resolveFinished(result, durationMs);
    // A scheduled run with nothing open says nothing.
    if (trigger === "schedule") {
      if (result) scheduledOutage.succeeded();
      else scheduledOutage.failed(err);
    }
    if (result && (trigger === "call" || result.examined > 0)) logger.info({ trigger, ...result, durationMs }, "resolved open orders");
    else if (!result && trigger === "call") logger.warn({ trigger, err: err instanceof Error ? err.message : String(err), durationMs }, "resolving open orders failed");
  };
  const scheduledOutage = new OutageLog(logger, "scheduled resolution of open orders");
  const refused = (err: unknown) => err instanceof ConnectError && err.code === Code.InvalidArgument;
  const impl: typeof base = {
    ...base,
    async resolveUnknownOrders(req, ctx) {
      const started = Date.now();
      try {
        const result = (await base.resolveUnknownOrders(req, ctx)) as ResolveResult;
        resolved("call", started, result);
        return result;
      } catch (err) {
        if (!refused(err)) resolved("call", started, undefined, err);
        throw err;
      }
    },
    async simulate(req, ctx) {
      const report = await base.simulate(req, ctx);
      const type = report.orderType === OrderType.WITHDRAWAL ? "WITHDRAWAL" : "PAYMENT";
      const r = report as { simulationId: string; requested: number; succeeded: number; failed: number; unknown: number; amountSucceeded: bigint; elapsedMs: bigint; throughput: number; latencyP50Ms: number; latencyP99Ms: number; injected?: unknown[] };
      metrics.simulationFinished(type, r);
      logger.info(
        {
          simulationId: r.simulationId,
          orderType: type,
          seed: String(req.seed),
          requested: r.requested,
          succeeded: r.succeeded,
          failed: r.failed,
          unknown: r.unknown,
          amountSucceeded: String(r.amountSucceeded),
          elapsedMs: Number(r.elapsedMs),
          throughput: r.throughput,
          latencyP50Ms: r.latencyP50Ms,
          latencyP99Ms: r.latencyP99Ms,
          injected: r.injected?.length ?? 0,
        },
        "simulation finished",
      );
      return report;
    },
  };
  const docs = new ApiCatalog("merchant", config.serving.publicUrls);
  const upstream = upstreamCheck("payment", config.paymentAddress, PaymentService.typeName, grpcChannelCredentials(config.paymentTlsCa));
  const server = await serve({
    name: "merchant",
    listen: config.listen,
    services: [
      bind(MerchantService, impl, {
        guard: config.operatorToken ? operatorTokenGuard(config.operatorToken, MERCHANT_OPERATOR_CALLS) : undefined,
        longRunning: ["simulate", "resolveUnknownOrders"],
      }),
      // The merchant's successful orders, through the order contract both systems serve.
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
    dependencies: [databaseCheck(db.knex), upstream],
  });
  docs.add({
    name: "merchant",
    url: server.httpUrl,
    document: merchantApiDocument(),
    liveExamples: {
      "merchant.v1.MerchantService/GetOrder": async () => {
        const newest = (await db.knex("merchant_orders").orderBy("id", "desc").first("request_id")) as { request_id: string } | undefined;
        return newest ? { request_id: newest.request_id } : undefined;
      },
      "merchant.v1.MerchantService/Refund": async () => {
        const paid = (await db.knex("merchant_orders").where({ order_type: "PAYMENT", state: "SUCCESS" }).whereNull("fault").orderBy("id", "desc").first("request_id")) as
          | { request_id: string }
          | undefined;
        return paid ? { payment_request_id: paid.request_id, refund_fee: "1" } : undefined;
      },
    },
  });
  const job = scheduleUnlessRunning(config.resolveCron, () => {
    const started = Date.now();
    return sender.resolveOpenOrders(config.resolveInitAfterSeconds).then(
      (result) => resolved("schedule", started, result),
      (err: unknown) => resolved("schedule", started, undefined, err),
    );
  });
  return {
    server,
    db,
    sender,
    docs,
    metrics,
    async close() {
      const stopped = job.stop();
      await server.close();
      await stopped;
      payment.close();
      upstream.close();
      await db.close();
    },
  };
}
