import { pino, type Logger } from "pino";

export type { Logger };

/** Structured JSON logs on stderr; LOG_LEVEL sets the level ("silent" in tests). */
export function createLogger(service: string): Logger {
  return pino({ name: service, level: process.env.LOG_LEVEL ?? "info" }, pino.destination(2));
}
