/** Starts the reconciliation system alone, configured from the environment. */
import { createLogger } from "../shared/observability/logger.js";
import { runUntilSignal } from "../shared/runtime/lifecycle.js";
import { readReconConfig } from "./config.js";
import { startReconSystem } from "./system.js";

const logger = createLogger("recon");
await runUntilSignal(logger, async () => {
  const system = await startReconSystem(readReconConfig(), logger);
  logger.info({ grpc: system.server.grpcAddress, http: system.server.httpUrl }, "reconciliation system listening");
  return [system];
});
