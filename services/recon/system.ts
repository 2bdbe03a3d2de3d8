/** Builds the reconciliation system: clients of both sides, run store, handlers. */
import { mkdir } from "node:fs/promises";
import { MerchantService } from "../../gen/merchant/v1/merchant_pb.js";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { ReconService } from "../../gen/recon/v1/recon_pb.js";
import { ApiCatalog, docsRoutes } from "../shared/rpc/apiDocs.js";
import { consoleRoutes } from "../console/routes.js";
import { createGrpcClient } from "../shared/rpc/grpcClient.js";
import type { Logger } from "../shared/observability/logger.js";
import { bind, serve, type RunningServer } from "../shared/rpc/server.js";
import { operatorHeaders, operatorTokenGuard } from "../shared/auth/authentication.js";
import { grpcChannelCredentials } from "../shared/rpc/tls.js";
import { BusinessClock } from "../shared/orders/time.js";
import type { ReconConfig } from "./config.js";
import { Reconciler } from "./reconciler.js";
import { EXPORT_CHANNEL_OPTIONS } from "./orderFiles.js";
import { ReconEngine } from "./engine.js";
import { join } from "node:path";
import { RunStore } from "./runs.js";
import { createReconService } from "./service.js";
import { reconApiDocument } from "./apiDocs.js";
import { ServiceMetrics } from "../shared/observability/metrics.js";
import { ReconMetrics } from "./metrics.js";
import { upstreamCheck } from "../shared/observability/readiness.js";
import { access, constants } from "node:fs/promises";
import { RunKind, RunSchema } from "../../gen/recon/v1/recon_pb.js";
import { create } from "@bufbuild/protobuf";
import { OrderExportService, OrderType } from "../../gen/order/v1/order_pb.js";

/** The calls that start runs: they need the operator token when one is configured. */
export const RECON_OPERATOR_CALLS = ["Reconcile", "ReconcileFiles", "Audit", "AuditFiles"] as const;

export interface ReconSystem {
  server: RunningServer;
  runs: RunStore;
  /** The API documents its /docs page shows; the platform adds the other services'. */
  docs: ApiCatalog;
  metrics: ReconMetrics;
  close(): Promise<void>;
}

export async function startReconSystem(config: ReconConfig, logger: Logger): Promise<ReconSystem> {
  await mkdir(config.reconDir, { recursive: true });
  const channelOptions = EXPORT_CHANNEL_OPTIONS;
  const metrics = new ReconMetrics(new ServiceMetrics("recon"));
  // The operator token goes with every call to the merchant system (ResolveUnknownOrders needs it).
  const operator = operatorHeaders(config.operatorToken);
  const merchantOptions = {
    channelOptions,
    credentials: grpcChannelCredentials(config.merchantTlsCa),
    callHeaders: () => operator,
    interceptors: [metrics.metrics.clientInterceptor("merchant")],
    upstream: "merchant",
  };
  const paymentOptions = {
    channelOptions,
    credentials: grpcChannelCredentials(config.paymentTlsCa),
    interceptors: [metrics.metrics.clientInterceptor("payment")],
    upstream: "payment",
  };
  const merchant = createGrpcClient(MerchantService, config.merchantAddress, merchantOptions);
  const payment = createGrpcClient(PaymentService, config.paymentAddress, paymentOptions);
  // Both sides' orders come through the order contract each of them serves.
  const merchantOrders = createGrpcClient(OrderExportService, config.merchantAddress, merchantOptions);
  const paymentOrders = createGrpcClient(OrderExportService, config.paymentAddress, paymentOptions);
  const clock = new BusinessClock(config.timeZone);
  const runs = new RunStore(config.reconDir);
  // The engine's spill files live in a directory of the reconciliation directory, apart from the runs.
  const spillDir = join(config.reconDir, ".spill");
  await mkdir(spillDir, { recursive: true });
  const engine = new ReconEngine({ memoryLimit: config.memoryLimit, threads: config.threads, spillDir });
  const reconciler = new Reconciler({
    merchantOrders: merchantOrders.client,
    paymentOrders: paymentOrders.client,
    payment: payment.client,
    runs,
    clock,
    inputDir: config.inputDir,
    engine,
  });
  const base = createReconService({ reconciler, runs, merchant: merchant.client, clock, cutoffLagSeconds: config.cutoffLagSeconds });
  /** A run method counted and logged with its figures. */
  const observed = <Req, Res extends { run?: unknown }>(
    kind: "reconciliation" | "audit",
    source: "live" | "files",
    fn: (req: Req, ctx: never) => Promise<Res> | Res,
  ) =>
    async (req: Req, ctx: never): Promise<Res> => {
      const started = Date.now();
      try {
        const res = await fn(req, ctx);
        metrics.runFinished(logger, kind, source, res.run ? create(RunSchema, res.run as never) : undefined, undefined, Date.now() - started);
        return res;
      } catch (err) {
        metrics.runFinished(logger, kind, source, undefined, err, Date.now() - started);
        throw err;
      }
    };
  const impl: typeof base = {
    ...base,
    reconcile: observed("reconciliation", "live", base.reconcile.bind(base)),
    reconcileFiles: observed("reconciliation", "files", base.reconcileFiles.bind(base)),
    audit: observed("audit", "live", base.audit.bind(base)),
    auditFiles: observed("audit", "files", base.auditFiles.bind(base)),
  } as typeof base;
  const docs = new ApiCatalog("recon", config.serving.publicUrls);
  const upstreams = [
    upstreamCheck("merchant", config.merchantAddress, MerchantService.typeName, grpcChannelCredentials(config.merchantTlsCa)),
    upstreamCheck("payment", config.paymentAddress, PaymentService.typeName, grpcChannelCredentials(config.paymentTlsCa)),
  ];
  const server = await serve({
    name: "recon",
    httpRoutes: [...docsRoutes(docs), ...consoleRoutes({ catalog: docs, timeZone: config.timeZone, logger, runs, cutoffLagSeconds: config.cutoffLagSeconds })],
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
    metrics: metrics.metrics,
    serving: config.serving,
    dependencies: [
      ...upstreams,
      { name: "reconciliation directory", check: () => access(config.reconDir, constants.W_OK) },
    ],
  });
  docs.add({
    name: "recon",
    url: server.httpUrl,
    document: reconApiDocument(),
    liveExamples: {
      "recon.v1.ReconService/GetRun": async () => {
        const [newest] = await runs.list(RunKind.UNSPECIFIED, 1);
        return newest ? { run_id: newest.runId } : undefined;
      },
      "recon.v1.ReconService/ListDiffRows": async () => {
        const [newest] = await runs.list(RunKind.RECONCILIATION, 1);
        const summary = newest?.diffs[0];
        if (!newest || !summary) return undefined;
        const orderType = summary.orderType === OrderType.WITHDRAWAL ? "ORDER_TYPE_WITHDRAWAL" : "ORDER_TYPE_PAYMENT";
        return { run_id: newest.runId, order_type: orderType, diff_types: ["F113", "F114", "F115"], page_size: 50 };
      },
    },
  });
  return {
    server,
    runs,
    docs,
    metrics,
    async close() {
      await server.close();
      engine.close();
      for (const client of [merchant, payment, merchantOrders, paymentOrders]) client.close();
      for (const u of upstreams) u.close();
    },
  };
}
