import { ConfigError } from "./errors.js";
import { assertTimeZone } from "./time.js";

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
