/** Starts the merchant system alone, configured from the environment. */
import { createLogger } from "../shared/observability/logger.js";
import { runUntilSignal } from "../shared/runtime/lifecycle.js";
import { readMerchantConfig } from "./config.js";
import { startMerchantSystem } from "./system.js";

const logger = createLogger("merchant");
await runUntilSignal(logger, async () => {
  const system = await startMerchantSystem(readMerchantConfig(), logger);
  logger.info({ grpc: system.server.grpcAddress, http: system.server.httpUrl }, "merchant system listening");
  return [system];
});
