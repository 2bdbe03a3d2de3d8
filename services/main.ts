/**
 * Starts the whole platform in one process: payment, merchant and reconciliation systems, each
 * on its own ports. With no configuration it runs on the embedded default (SQLite files under
 * data/, an in-process credit buffer); MYSQL_URL and REDIS_URL switch to the real backends.
 */
import { EnvReader } from "./shared/runtime/config.js";
import { createLogger } from "./shared/observability/logger.js";
import { runUntilSignal } from "./shared/runtime/lifecycle.js";
import { readPaymentConfig } from "./payment/config.js";
import { startPaymentSystem } from "./payment/system.js";
import { readMerchantConfig } from "./merchant/config.js";
import { startMerchantSystem } from "./merchant/system.js";
import { readReconConfig } from "./recon/config.js";
import { startReconSystem } from "./recon/system.js";
import { linkApiCatalogs } from "./shared/rpc/apiDocs.js";

const logger = createLogger("platform");
await runUntilSignal(logger, async () => {
  const env = new EnvReader();
  const paymentConfig = readPaymentConfig(env);
  const merchantConfig = readMerchantConfig(env);
  const payment = await startPaymentSystem(paymentConfig, logger.child({ service: "payment" }));
  const merchant = await startMerchantSystem(
    { ...merchantConfig, paymentAddress: env.optional("PAYMENT_ADDRESS") ?? payment.server.grpcAddress },
    logger.child({ service: "merchant" }),
  );
  const recon = await startReconSystem(
    {
      ...readReconConfig(env),
      merchantAddress: env.optional("MERCHANT_ADDRESS") ?? merchant.server.grpcAddress,
      paymentAddress: env.optional("PAYMENT_ADDRESS") ?? payment.server.grpcAddress,
    },
    logger.child({ service: "recon" }),
  );
  // Every service's /docs page offers every service's API.
  linkApiCatalogs([payment.docs, merchant.docs, recon.docs]);
  const backend = paymentConfig.database.mysqlUrl ? "MySQL" : "SQLite (embedded)";
  const buffer = paymentConfig.redisClusterNodes ? "Redis Cluster" : paymentConfig.redisUrl ? "Redis" : "in-process";
  const lines = [
    `Payment platform running — storage: ${backend}, credit buffer: ${buffer}`,
    "",
    "  service    gRPC                 HTTP (Connect JSON)",
    ...[
      ["payment", payment.server],
      ["merchant", merchant.server],
      ["recon", recon.server],
    ].map(([name, s]) => {
      const srv = s as typeof payment.server;
      return `  ${String(name).padEnd(10)} ${srv.grpcAddress.padEnd(20)} ${srv.httpUrl}`;
    }),
    "",
    `Try:  curl -s -X POST ${merchant.server.httpUrl}/merchant.v1.MerchantService/Pay -H 'content-type: application/json' -d '{"saler_id":"saler1","total_fee":"100"}'`,
    `Swagger UI: ${merchant.server.httpUrl}/docs   (any service's /docs; OpenAPI at /openapi.json)`,
    "Stop with Ctrl-C.",
    "",
  ];
  process.stdout.write(lines.join("\n"));
  return [payment, merchant, recon];
});
