import type { DatabaseConfig } from "../storage/database.js";
import { ConfigError } from "../errors.js";
import { assertTimeZone } from "../orders/time.js";

/** Reads environment variables with defaults; a malformed value stops start-up naming it. */
export class EnvReader {
  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  string(name: string, fallback: string): string {
    const v = this.env[name];
    return v === undefined || v === "" ? fallback : v;
  }

  optional(name: string): string | undefined {
    const v = this.env[name];
    return v === undefined || v === "" ? undefined : v;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const raw = this.optional(name);
    if (raw === undefined) return fallback;
    if (!/^-?\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
    const n = Number(raw);
    if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
    return n;
  }

  port(name: string, fallback: number): number {
    return this.int(name, fallback, 0, 65535);
  }

  bool(name: string, fallback: boolean): boolean {
    const raw = this.optional(name);
    if (raw === undefined) return fallback;
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    throw new ConfigError(name, `must be true or false, got "${raw}"`);
  }

  url(name: string, protocols: string[]): string | undefined {
    const raw = this.optional(name);
    if (raw === undefined) return undefined;
    let parsed: URL;
    try {
      parsed = new URL(raw);
    } catch {
      throw new ConfigError(name, `must be a URL, got "${raw}"`);
    }
    if (!protocols.includes(parsed.protocol.replace(/:$/, ""))) {
      throw new ConfigError(name, `must use ${protocols.join(" or ")}://, got "${parsed.protocol}"`);
    }
    return raw;
  }

  timeZone(name: string, fallback: string): string {
    const tz = this.string(name, fallback);
    try {
      assertTimeZone(tz);
    } catch {
      throw new ConfigError(name, `must be an IANA time zone such as Asia/Shanghai, got "${tz}"`);
    }
    return tz;
  }

  host(name: string, fallback: string): string {
    const h = this.string(name, fallback);
    if (!/^[A-Za-z0-9.:_-]+$/.test(h)) throw new ConfigError(name, `must be a host name or address, got "${h}"`);
    return h;
  }
}

/** Where one service listens. */
export interface ListenConfig {
  host: string;
  grpcPort: number;
  httpPort: number;
}

export function readListen(env: EnvReader, prefix: string, grpcPort: number, httpPort: number): ListenConfig {
  return {
    host: env.host(`${prefix}_HOST`, env.host("HOST", "127.0.0.1")),
    grpcPort: env.port(`${prefix}_GRPC_PORT`, grpcPort),
    httpPort: env.port(`${prefix}_HTTP_PORT`, httpPort),
  };
}

/**
 * The address of a gRPC service another calls: "host:port"; a list "ip:port,ip:port,..." of
 * instances (IP literals, IPv6 in brackets); or "dns:name:port", every address the name resolves
 * to. A list or a DNS name is balanced round-robin by the client (createGrpcClient).
 */
export function readGrpcAddress(env: EnvReader, name: string, fallback: string): string {
  const text = env.string(name, fallback);
  if (!text.includes(",")) {
    const h = env.host(name, fallback);
    if (h.startsWith("dns:") && !/^dns:[A-Za-z0-9._-]+(:\d{1,5})?$/.test(h)) {
      throw new ConfigError(name, `must be dns:name:port, got "${h}"`);
    }
    return h;
  }
  for (const raw of text.split(",")) {
    const entry = raw.trim();
    if (!/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/.test(entry)) {
      throw new ConfigError(name, `a list takes IP:port entries (use dns:name:port for a host name), got "${entry}"`);
    }
  }
  return text
    .split(",")
    .map((e) => e.trim())
    .join(",");
}

/**
 * A service's own MySQL URL (`own`), else MYSQL_URL (the server every service shares) with the
 * service's database name; undefined for the embedded SQLite file.
 */
export function mysqlDatabaseUrl(env: EnvReader, own: string, database: string): string | undefined {
  const url = env.url(own, ["mysql"]);
  if (url) return url;
  const server = env.url("MYSQL_URL", ["mysql"]);
  if (!server) return undefined;
  const u = new URL(server);
  u.pathname = `/${database}`;
  return u.toString();
}

/**
 * One service's database: <PREFIX>_MYSQL_URL, or MYSQL_URL with <PREFIX>_MYSQL_DATABASE (default
 * `name`); else the SQLite file <PREFIX>_SQLITE_FILE (default data/<name>.sqlite); a pool of
 * <PREFIX>_DB_POOL connections (default 32).
 */
export function readDatabaseConfig(env: EnvReader, prefix: string, name: string): DatabaseConfig {
  return {
    mysqlUrl: mysqlDatabaseUrl(env, `${prefix}_MYSQL_URL`, env.string(`${prefix}_MYSQL_DATABASE`, name)),
    sqliteFile: env.string(`${prefix}_SQLITE_FILE`, `data/${name}.sqlite`),
    poolSize: env.int(`${prefix}_DB_POOL`, 32, 1, 1000),
  };
}
