/** Starts the payment system alone, configured from the environment. */
import { createLogger } from "../shared/observability/logger.js";
import { runUntilSignal } from "../shared/runtime/lifecycle.js";
import { readPaymentConfig } from "./config.js";
import { startPaymentSystem } from "./system.js";

const logger = createLogger("payment");
await runUntilSignal(logger, async () => {
  const system = await startPaymentSystem(readPaymentConfig(), logger);
  logger.info({ grpc: system.server.grpcAddress, http: system.server.httpUrl }, "payment system listening");
  return [system];
});
