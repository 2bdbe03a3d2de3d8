import { ConfigError } from "../errors.js";
import type { Logger } from "../observability/logger.js";

export interface Closable {
  close(): Promise<void>;
}

/**
 * Starts the given systems and keeps them until SIGTERM or SIGINT, then closes them in reverse
 * order (in-flight calls drain, pools close). A configuration error stops start-up with a
 * message naming the variable and exit code 2; any other start-up failure exits with 1.
 */
export async function runUntilSignal(logger: Logger, start: () => Promise<Closable[]>): Promise<void> {
  let systems: Closable[];
  try {
    systems = await start();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    logger.fatal({ err }, "start-up failed");
    process.exit(1);
  }
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "draining and stopping");
    for (const s of [...systems].reverse()) {
      await s.close().catch((err: unknown) => logger.error({ err }, "close failed"));
    }
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
}
