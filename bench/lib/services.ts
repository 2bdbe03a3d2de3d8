/**
 * The payment and merchant systems as they are deployed: each its own Node process started from
 * its main.ts and configured through the environment, on fresh databases and a fresh Redis key
 * prefix, with the Node.js flags they are deployed with (services/shared/runtime/nodeFlags.ts).
 * BENCH_PROFILE=1 starts them with --cpu-prof (profiles under data/bench/profiles).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { Redis } from "ioredis";
import { FLAGGED_SERVICES, SERVICE_NODE_FLAGS } from "../../services/shared/runtime/nodeFlags.js";
import { DATA_DIR, MYSQL_URL, REDIS_URL, ROOT, databaseUrl, dropDatabase, uniqueName } from "./common.js";

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface ServiceProcess {
  name: string;
  child: ChildProcess;
  grpcAddress: string;
  httpUrl: string;
  /** CPU time (user + system) the process used so far, in seconds, from /proc. */
  cpuSeconds(): Promise<number>;
  stop(): Promise<void>;
}

export const PROFILE_DIR = join(DATA_DIR, "profiles");

export async function procCpuSeconds(pid: number): Promise<number> {
  const { readFile } = await import("node:fs/promises");
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of /proc/<pid>/stat, in clock ticks (100 per second).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Starts `services/<service>/main.ts` with the environment given; resolves once it answers /healthz. */
export async function startService(service: string, env: Record<string, string>, profileName?: string): Promise<ServiceProcess> {
  const grpcPort = await freePort();
  const httpPort = await freePort();
  const upper = service.toUpperCase();
  const args = [...(FLAGGED_SERVICES.includes(service) ? SERVICE_NODE_FLAGS : []), "--import", "tsx"];
  if (profileName && process.env.BENCH_PROFILE === "1") {
    // One folder per process: the module loader's worker thread writes a profile of its own.
    const dir = join(PROFILE_DIR, profileName);
    mkdirSync(dir, { recursive: true });
    args.push("--cpu-prof", `--cpu-prof-dir=${dir}`);
  }
  args.push(join(ROOT, "services", service, "main.ts"));
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    stdio: ["ignore", "inherit", "inherit"],
    env: {
      ...process.env,
      LOG_LEVEL: process.env.BENCH_SERVICE_LOG_LEVEL ?? "warn",
      [`${upper}_HOST`]: "127.0.0.1",
      [`${upper}_GRPC_PORT`]: String(grpcPort),
      [`${upper}_HTTP_PORT`]: String(httpPort),
      ...env,
    },
  });
  let exited = false;
  child.once("exit", () => (exited = true));
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`${service} exited during start-up`);
    try {
      const res = await fetch(`${httpUrl}/healthz`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${service} did not start within 60 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    name: service,
    child,
    grpcAddress: `127.0.0.1:${grpcPort}`,
    httpUrl,
    cpuSeconds: () => procCpuSeconds(child.pid!),
    async stop() {
      if (exited) return;
      const done = once(child, "exit");
      child.kill("SIGTERM");
      await done;
    },
  };
}

export interface Deployment {
  payment: ServiceProcess;
  /** Absent when only the payment system was asked for. */
  merchant: ServiceProcess | undefined;
  paymentDatabase: string;
  merchantDatabase: string;
  redisPrefix: string;
  close(): Promise<void>;
}

async function deleteRedisKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    const keys = await redis.keys(`{${prefix}}:*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}

/** Payment and merchant processes on fresh databases; `close` stops them and drops their data. */
export async function deploy(
  options: { paymentEnv?: Record<string, string>; merchantEnv?: Record<string, string>; profileTag?: string; merchant?: boolean } = {},
): Promise<Deployment> {
  const paymentDatabase = uniqueName("bench_payment");
  const merchantDatabase = uniqueName("bench_merchant");
  const redisPrefix = uniqueName("bench");
  const tag = options.profileTag;
  const payment = await startService(
    "payment",
    {
      PAYMENT_MYSQL_URL: databaseUrl(paymentDatabase),
      REDIS_URL,
      PAYMENT_REDIS_PREFIX: redisPrefix,
      ...options.paymentEnv,
    },
    tag ? `payment-${tag}` : undefined,
  );
  let merchant: ServiceProcess | undefined;
  try {
    if (options.merchant !== false)
      merchant = await startService(
      "merchant",
      {
        MERCHANT_MYSQL_URL: databaseUrl(merchantDatabase),
        PAYMENT_ADDRESS: payment.grpcAddress,
        ...options.merchantEnv,
      },
      tag ? `merchant-${tag}` : undefined,
    );
  } catch (err) {
    await payment.stop();
    throw err;
  }
  return {
    payment,
    merchant,
    paymentDatabase,
    merchantDatabase,
    redisPrefix,
    async close() {
      await merchant?.stop();
      await payment.stop();
      await dropDatabase(merchantDatabase);
      await dropDatabase(paymentDatabase);
      await deleteRedisKeys(redisPrefix);
    },
  };
}

export { MYSQL_URL };
