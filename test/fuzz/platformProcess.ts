/**
 * The three systems in one child process, configured from the environment like services/main.ts,
 * announcing where they listen as one JSON line on stdout (ports may be 0).
 */
import { EnvReader } from "../../services/shared/runtime/config.js";
import { createLogger } from "../../services/shared/observability/logger.js";
import { runUntilSignal } from "../../services/shared/runtime/lifecycle.js";
import { readPaymentConfig } from "../../services/payment/config.js";
import { startPaymentSystem } from "../../services/payment/system.js";
import { readMerchantConfig } from "../../services/merchant/config.js";
import { startMerchantSystem } from "../../services/merchant/system.js";
import { readReconConfig } from "../../services/recon/config.js";
import { startReconSystem } from "../../services/recon/system.js";

export interface PlatformAddresses {
  pid: number;
  payment: { grpc: string; http: string };
  merchant: { grpc: string; http: string };
  recon: { grpc: string; http: string };
}

const logger = createLogger("platform");
await runUntilSignal(logger, async () => {
  const env = new EnvReader();
  const payment = await startPaymentSystem(readPaymentConfig(env), logger.child({ service: "payment" }));
  const merchant = await startMerchantSystem({ ...readMerchantConfig(env), paymentAddress: payment.server.grpcAddress }, logger.child({ service: "merchant" }));
  const recon = await startReconSystem(
    { ...readReconConfig(env), merchantAddress: merchant.server.grpcAddress, paymentAddress: payment.server.grpcAddress },
    logger.child({ service: "recon" }),
  );
  const addresses: PlatformAddresses = {
    pid: process.pid,
    payment: { grpc: payment.server.grpcAddress, http: payment.server.httpUrl },
    merchant: { grpc: merchant.server.grpcAddress, http: merchant.server.httpUrl },
    recon: { grpc: recon.server.grpcAddress, http: recon.server.httpUrl },
  };
  process.stdout.write(`${JSON.stringify(addresses)}\n`);
  return [payment, merchant, recon];
});
