/**
 * Configuration: each service's reader takes its defaults from an empty environment, refuses a
 * malformed value with an error naming the variable, and a process started with one stops with
 * exit code 2 and the variable on stderr.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { EnvReader } from "../services/shared/runtime/config.js";
import { ConfigError } from "../services/shared/errors.js";
import { createServer, type AddressInfo, type Server } from "node:net";
import { readPaymentConfig } from "../services/payment/config.js";
import { readMerchantConfig } from "../services/merchant/config.js";
import { readReconConfig } from "../services/recon/config.js";
import { availableParallelism } from "node:os";
import { REPO_ROOT } from "./support/paths.js";

type Reader = (env: EnvReader) => unknown;

function refusal(read: Reader, env: Record<string, string>): ConfigError {
  try {
    read(new EnvReader(env));
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`accepted ${JSON.stringify(env)}`);
}

/** Bad values every service refuses, as [variable, value]. */
const SHARED_BAD: [string, string][] = [
  ["HOST", "not a host"],
  ["BUSINESS_TIME_ZONE", "Mars/Olympus_Mons"],
  ["MAX_MESSAGE_BYTES", "12"],
  ["SHUTDOWN_GRACE_MS", "-1"],
  ["SHUTDOWN_GRACE_MS", "10s"],
  ["LOG_CALLS", "loud"],
  ["CORS_ALLOWED_ORIGINS", "buf.build"],
  ["CORS_ALLOWED_ORIGINS", "https://buf.build/studio"],
  ["CORS_ALLOWED_ORIGINS", "*,https://buf.build"],
  ["CORS_ALLOWED_ORIGINS", "ftp://files.example"],
  ["PUBLIC_URLS", "wallet=http://localhost:9000"],
  ["PUBLIC_URLS", "http://localhost:8081"],
  ["PUBLIC_URLS", "payment=localhost:8081"],
  ["PUBLIC_URLS", "payment=http://localhost:8081/api"],
  ["PUBLIC_URLS", "payment=*"],
  ["PUBLIC_URLS", "payment=http://a:8081,payment=http://b:8081"],
];
/** Bad values the services with a database refuse. */
const STORAGE_BAD: [string, string][] = [
  ["MYSQL_URL", "not a url"],
  ["MYSQL_URL", "postgres://db:5432"],
  ["EXPORT_BATCH_SIZE", "0"],
];

const READERS: { name: string; read: Reader; bad: [string, string][] }[] = [
  {
    name: "payment",
    read: readPaymentConfig,
    bad: [
      ...SHARED_BAD,
      ...STORAGE_BAD,
      ["PAYMENT_GRPC_PORT", "abc"],
      ["PAYMENT_HTTP_PORT", "70000"],
      ["PAYMENT_HTTP_PORT", "-1"],
      ["PAYMENT_HOST", "a/b"],
      ["PAYMENT_MYSQL_URL", "redis://localhost"],
      ["PAYMENT_DB_POOL", "1.5"],
      ["PAYMENT_DB_POOL", "0"],
      ["REDIS_URL", "http://localhost:6379"],
      ["REDIS_CLUSTER_NODES", "10.0.0.1:7000,10.0.0.2"],
      ["REDIS_CLUSTER_NODES", "10.0.0.1:70000"],
      ["SETTLE_CRON", "every five seconds"],
      ["SETTLE_CHUNK_ACCOUNTS", "0"],
      ["SETTLE_SWEEP_EVERY", "many"],
      ["PAYMENT_REQUEST_TIME_MAX_AHEAD_SECONDS", "-1"],
      ["PAYMENT_REQUEST_TIME_MAX_AHEAD_SECONDS", "3601"],
      ["PAYMENT_REQUEST_TIME_MAX_AHEAD_SECONDS", "5m"],
    ],
  },
  {
    name: "merchant",
    read: readMerchantConfig,
    bad: [
      ...SHARED_BAD,
      ...STORAGE_BAD,
      ["MERCHANT_GRPC_PORT", "abc"],
      ["MERCHANT_HTTP_PORT", "65536"],
      ["MERCHANT_HOST", "a b"],
      ["MERCHANT_MYSQL_URL", "file:///tmp/x"],
      ["MERCHANT_DB_POOL", "lots"],
      ["PAYMENT_ADDRESS", "http://payment:50051/"],
      ["PAYMENT_ADDRESS", "10.0.0.1:50051,payment-2:50051"],
      ["PAYMENT_ADDRESS", "10.0.0.1:50051,"],
      ["PAYMENT_ADDRESS", "dns:pay ment:50051"],
      ["PAYMENT_CALL_TIMEOUT_MS", "5"],
      ["RESOLVE_CRON", "whenever"],
      ["RESOLVE_INIT_AFTER_SECONDS", "0"],
      ["CLOSE_UNKNOWN_AFTER_SECONDS", "1h"],
    ],
  },
  {
    name: "recon",
    read: readReconConfig,
    bad: [
      ...SHARED_BAD,
      ["RECON_GRPC_PORT", "abc"],
      ["RECON_HTTP_PORT", "8o83"],
      ["RECON_HOST", "x y"],
      ["MERCHANT_ADDRESS", "merchant 50052"],
      ["PAYMENT_ADDRESS", "payment:50051/x"],
      ["RECON_CUTOFF_LAG_SECONDS", "-5"],
      ["RECON_MEMORY_LIMIT", "lots"],
      ["RECON_MEMORY_LIMIT", "1MB"],
      ["RECON_THREADS", "0"],
    ],
  },
];

describe("configuration", () => {
  describe("payment", () => {
    it("defaults to loopback, its own ports, SQLite under data/ and the in-process buffer", () => {
      const c = readPaymentConfig(new EnvReader({}));
      expect(c.listen).to.deep.equal({ host: "127.0.0.1", grpcPort: 50051, httpPort: 8081 });
      expect(c.database.mysqlUrl).to.equal(undefined);
      expect(c.database.sqliteFile).to.equal("data/payment.sqlite");
      expect(c.redisUrl).to.equal(undefined);
      expect(c.redisClusterNodes).to.equal(undefined);
      expect(c.timeZone).to.equal("Asia/Shanghai");
    });

    it("gives calls in flight SHUTDOWN_GRACE_MS (10 s by default) to finish once told to stop", () => {
      expect(readPaymentConfig(new EnvReader({})).callLimits?.shutdownGraceMs).to.equal(10_000);
      expect(readPaymentConfig(new EnvReader({ SHUTDOWN_GRACE_MS: "60000" })).callLimits?.shutdownGraceMs).to.equal(60_000);
      expect(readMerchantConfig(new EnvReader({ SHUTDOWN_GRACE_MS: "0" })).callLimits?.shutdownGraceMs).to.equal(0);
    });

    it("takes its own database on the server MYSQL_URL names, and REDIS_URL for the buffer", () => {
      const c = readPaymentConfig(new EnvReader({ MYSQL_URL: "mysql://root:pw@db:3306", REDIS_URL: "redis://cache:6379", HOST: "0.0.0.0" }));
      expect(c.database.mysqlUrl).to.equal("mysql://root:pw@db:3306/payment");
      expect(c.redisUrl).to.equal("redis://cache:6379");
      expect(c.listen.host).to.equal("0.0.0.0");
    });

    it("takes REDIS_CLUSTER_NODES for a Redis Cluster, never together with REDIS_URL", () => {
      const c = readPaymentConfig(new EnvReader({ REDIS_CLUSTER_NODES: "10.0.0.1:7000, redis-2:7001,[::1]:7002" }));
      expect(c.redisClusterNodes).to.deep.equal([
        { host: "10.0.0.1", port: 7000 },
        { host: "redis-2", port: 7001 },
        { host: "::1", port: 7002 },
      ]);
      expect(c.redisUrl).to.equal(undefined);
      expect(() => readPaymentConfig(new EnvReader({ REDIS_CLUSTER_NODES: "10.0.0.1:7000", REDIS_URL: "redis://cache:6379" }))).to.throw(
        /REDIS_CLUSTER_NODES: cannot be set together with REDIS_URL/,
      );
    });

    it("takes PUBLIC_URLS, the origins a browser reaches each service's pages at", () => {
      expect(readPaymentConfig(new EnvReader({})).serving?.publicUrls).to.deep.equal({});
      const c = readPaymentConfig(new EnvReader({ PUBLIC_URLS: " payment=http://localhost:8081, recon=https://recon.example/ ,merchant=http://[::1]:8082" }));
      expect(c.serving?.publicUrls).to.deep.equal({ payment: "http://localhost:8081", recon: "https://recon.example", merchant: "http://[::1]:8082" });
    });

    it("prefers PAYMENT_MYSQL_URL and PAYMENT_HOST over the shared settings", () => {
      const c = readPaymentConfig(
        new EnvReader({ MYSQL_URL: "mysql://root@db:3306", PAYMENT_MYSQL_URL: "mysql://pay@paydb:3306/pay", HOST: "0.0.0.0", PAYMENT_HOST: "::1" }),
      );
      expect(c.database.mysqlUrl).to.equal("mysql://pay@paydb:3306/pay");
      expect(c.listen.host).to.equal("::1");
    });
  });

  describe("merchant", () => {
    it("defaults to loopback, its own ports, SQLite under data/ and the payment system on loopback", () => {
      const c = readMerchantConfig(new EnvReader({}));
      expect(c.listen).to.deep.equal({ host: "127.0.0.1", grpcPort: 50052, httpPort: 8082 });
      expect(c.database.mysqlUrl).to.equal(undefined);
      expect(c.database.sqliteFile).to.equal("data/merchant.sqlite");
      expect(c.paymentAddress).to.equal("127.0.0.1:50051");
    });

    it("takes its own database, not the payment system's, on the server MYSQL_URL names", () => {
      const c = readMerchantConfig(new EnvReader({ MYSQL_URL: "mysql://root:pw@db:3306", PAYMENT_ADDRESS: "payment:50051" }));
      expect(c.database.mysqlUrl).to.equal("mysql://root:pw@db:3306/merchant");
      expect(c.paymentAddress).to.equal("payment:50051");
    });

    it("takes several payment instances as a list of IP:port or a dns: name", () => {
      expect(readMerchantConfig(new EnvReader({ PAYMENT_ADDRESS: "10.0.0.1:50051, 10.0.0.2:50051" })).paymentAddress).to.equal("10.0.0.1:50051,10.0.0.2:50051");
      expect(readMerchantConfig(new EnvReader({ PAYMENT_ADDRESS: "dns:payment:50051" })).paymentAddress).to.equal("dns:payment:50051");
    });
  });

  describe("recon", () => {
    it("defaults to loopback, its own ports, both other services on loopback and data/reconciliation", () => {
      const c = readReconConfig(new EnvReader({}));
      expect(c.listen).to.deep.equal({ host: "127.0.0.1", grpcPort: 50053, httpPort: 8083 });
      expect(c.merchantAddress).to.equal("127.0.0.1:50052");
      expect(c.paymentAddress).to.equal("127.0.0.1:50051");
      expect(c.reconDir).to.equal("data/reconciliation");
      expect(c.inputDir).to.equal("data/reconciliation");
      expect(c.memoryLimit).to.equal("512MB");
      expect(c.threads).to.equal(availableParallelism());
      expect(readReconConfig(new EnvReader({ RECON_MEMORY_LIMIT: "2GiB", RECON_THREADS: "1" }))).to.include({ memoryLimit: "2GiB", threads: 1 });
    });
  });

  for (const { name, read, bad } of READERS) {
    describe(`${name} refuses bad values naming the variable`, () => {
      for (const [variable, value] of bad) {
        it(`${variable}=${JSON.stringify(value)}`, () => {
          const err = refusal(read, { [variable]: value });
          expect(err.variable).to.equal(variable);
          expect(err.message).to.contain(variable);
        });
      }
    });
  }

  describe("a process started with a bad value", () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), "config-"));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    for (const [entry, variable, value] of [
      ["services/payment/main.ts", "PAYMENT_GRPC_PORT", "abc"],
      ["services/merchant/main.ts", "MERCHANT_HTTP_PORT", "99999"],
      ["services/recon/main.ts", "RECON_CUTOFF_LAG_SECONDS", "soon"],
      ["services/main.ts", "SETTLE_CRON", "sometimes"],
    ] as const) {
      it(`${entry} with ${variable}=${value} exits 2 naming ${variable}`, async () => {
        const child = spawn(join(REPO_ROOT, "node_modules", ".bin", "tsx"), [join(REPO_ROOT, entry)], {
          cwd: dir,
          env: { ...process.env, [variable]: value },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let stderr = "";
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        child.stdout.resume();
        const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
        expect(code, stderr).to.equal(2);
        expect(stderr).to.contain(variable);
        expect(stderr).to.contain(value);
      });
    }
  });

  describe("a process whose port is taken", () => {
    let dir: string;
    let holder: Server;
    let port: number;
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), "config-"));
      holder = createServer();
      await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
      port = (holder.address() as AddressInfo).port;
    });
    after(async () => {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    });

    for (const [entry, variable] of [
      ["services/payment/main.ts", "PAYMENT_HTTP_PORT"],
      ["services/payment/main.ts", "PAYMENT_GRPC_PORT"],
      ["services/main.ts", "MERCHANT_GRPC_PORT"],
      ["services/main.ts", "RECON_HTTP_PORT"],
    ] as const) {
      it(`${entry} exits 2 naming ${variable}, without a stack trace`, async () => {
        // Every other port picked by the system, so only the one under test is taken.
        const free = Object.fromEntries(
          ["PAYMENT", "MERCHANT", "RECON"].flatMap((s) => [`${s}_GRPC_PORT`, `${s}_HTTP_PORT`].map((v) => [v, "0"])),
        );
        const child = spawn(join(REPO_ROOT, "node_modules", ".bin", "tsx"), [join(REPO_ROOT, entry)], {
          cwd: dir,
          env: { ...process.env, ...free, SETTLE_CRON: "off", RESOLVE_CRON: "off", [variable]: String(port) },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let stderr = "";
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        child.stdout.resume();
        const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
        expect(code, stderr).to.equal(2);
        expect(stderr).to.contain(`configuration ${variable}: port ${port} on 127.0.0.1 is already in use`);
        expect(stderr).to.not.match(/\n\s+at /);
        expect(stderr).to.not.contain("EADDRINUSE");
      });
    }
  });
});
