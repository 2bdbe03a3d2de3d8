/**
 * How every service's ports behave towards operators and browsers, the same for all three:
 * LOG_CALLS, the level of the one log line written per call ("off" for none), and
 * CORS_ALLOWED_ORIGINS, the web origins whose pages may call the HTTP port (cors.ts);
 * READINESS_INTERVAL_MS, how often the dependencies are checked (readiness.ts); PUBLIC_URLS, the
 * HTTP URLs at which a browser reaches each service, for the pages (/docs, the console) of a
 * service that runs in its own process (apiDocs.ts).
 */
import { EnvReader } from "../runtime/config.js";
import { ConfigError } from "../errors.js";
import type { Logger } from "../observability/logger.js";
import type { CallObserver } from "./callPolicy.js";
import { codeName } from "../observability/metrics.js";

export const CALL_LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "off"] as const;
export type CallLogLevel = (typeof CALL_LOG_LEVELS)[number];

export interface ServingConfig {
  /** Level of the per-call log line; "off" writes none. */
  logCalls: CallLogLevel;
  /** Origins allowed to call the HTTP port from a browser; "*" alone allows any. Empty: none. */
  corsAllowedOrigins: readonly string[];
  /** How often the dependencies are checked for the gRPC health status (GET /readyz checks anew). */
  readinessIntervalMs: number;
  /**
   * Service name -> the origin a browser reaches its HTTP port at, e.g. payment ->
   * http://localhost:8081. Empty: a service alone knows only itself.
   */
  publicUrls: Readonly<Record<string, string>>;
}

export const DEFAULT_SERVING: ServingConfig = { logCalls: "info", corsAllowedOrigins: [], readinessIntervalMs: 5000, publicUrls: {} };

/** The services whose pages link to each other. */
export const SERVICE_NAMES = ["payment", "merchant", "recon"] as const;

export function readServing(env: EnvReader): ServingConfig {
  const level = env.string("LOG_CALLS", DEFAULT_SERVING.logCalls).toLowerCase();
  if (!(CALL_LOG_LEVELS as readonly string[]).includes(level)) {
    throw new ConfigError("LOG_CALLS", `must be one of ${CALL_LOG_LEVELS.join(", ")}, got "${level}"`);
  }
  return {
    logCalls: level as CallLogLevel,
    corsAllowedOrigins: readOrigins(env, "CORS_ALLOWED_ORIGINS"),
    readinessIntervalMs: env.int("READINESS_INTERVAL_MS", DEFAULT_SERVING.readinessIntervalMs, 100, 3_600_000),
    publicUrls: readPublicUrls(env, "PUBLIC_URLS"),
  };
}

/** A comma-separated list of name=origin, e.g. "payment=http://localhost:8081,merchant=…". */
export function readPublicUrls(env: EnvReader, name: string): Record<string, string> {
  const raw = env.optional(name);
  if (raw === undefined) return {};
  const urls: Record<string, string> = {};
  for (const item of raw.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
    const eq = item.indexOf("=");
    const service = eq < 0 ? "" : item.slice(0, eq).trim();
    if (!(SERVICE_NAMES as readonly string[]).includes(service)) {
      throw new ConfigError(name, `must list ${SERVICE_NAMES.join(", ")} as name=http://host:port, got "${item.slice(0, 100)}"`);
    }
    if (urls[service] !== undefined) throw new ConfigError(name, `names ${service} twice`);
    const origin = readOrigins(new EnvReader({ [name]: item.slice(eq + 1).trim() }), name);
    if (origin.length !== 1 || origin[0] === "*") throw new ConfigError(name, `${service} must be one origin such as http://localhost:8081, got "${item.slice(eq + 1, eq + 101)}"`);
    urls[service] = origin[0]!;
  }
  return urls;
}

/** A comma-separated list of origins (scheme://host[:port]), or "*". */
export function readOrigins(env: EnvReader, name: string): string[] {
  const raw = env.optional(name);
  if (raw === undefined) return [];
  const items = raw
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (items.includes("*")) {
    if (items.length > 1) throw new ConfigError(name, `"*" allows every origin and cannot be combined with others, got "${raw}"`);
    return ["*"];
  }
  return items.map((item) => {
    let url: URL;
    try {
      url = new URL(item);
    } catch {
      throw new ConfigError(name, `must list origins such as https://buf.build, got "${item}"`);
    }
    if (!/^https?:$/.test(url.protocol) || url.origin !== item.replace(/\/$/, "")) {
      throw new ConfigError(name, `must list origins (scheme://host[:port], no path), got "${item}"`);
    }
    return url.origin;
  });
}

/** One structured line per call: service, method, transport, code, duration, request id, peer. */
export function callLogObserver(logger: Logger, level: CallLogLevel): CallObserver | undefined {
  // A level the logger does not write costs nothing per call.
  if (level === "off" || !logger.isLevelEnabled(level)) return undefined;
  return (call) => (outcome) => {
    logger[level](
      {
        service: call.service,
        method: call.method,
        transport: call.transport,
        code: codeName(outcome.code),
        durationMs: Math.round(outcome.durationMs * 1000) / 1000,
        requestId: call.requestId,
        peer: call.peer,
        ...(outcome.messagesSent !== 1 || call.kind !== "unary" ? { messages: outcome.messagesSent } : {}),
        ...(outcome.error ? { error: outcome.error.rawMessage } : {}),
      },
      "call",
    );
  };
}
