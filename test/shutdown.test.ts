/**
 * Graceful shutdown of the real process: `node --import tsx services/main.ts` (what `npm start`
 * and the Dockerfile run) on free ports, SIGTERM while
 * simulations are in flight over gRPC and over the Connect JSON gateway. The calls complete in
 * full, the process exits 0, and the databases hold every order as finished.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { expect } from "chai";
import mysql from "mysql2/promise";
import { MerchantService } from "../gen/merchant/v1/merchant_pb.js";
import { openDatabase, toCount, type DatabaseConfig } from "../services/shared/storage/database.js";
import { createGrpcClient } from "../services/shared/rpc/grpcClient.js";
import { merchantMigrations } from "../services/merchant/migrations/index.js";
import { paymentMigrations } from "../services/payment/migrations/index.js";
import { backends, uniqueName, type Backend } from "./harness.js";
import { REPO_ROOT } from "./support/paths.js";
import { deleteRedisKeys } from "./support/cleanup.js";
import { freePort } from "./support/ports.js";

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
}

/** Polls until `ready` holds; fails at once if the process ends first. */
async function until(child: ChildProcess, what: string, ready: () => Promise<boolean>): Promise<void> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the process exited (${child.exitCode}) before ${what}`);
    if (await ready().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function databaseUrl(server: string, name: string): string {
  const u = new URL(server);
  u.pathname = `/${name}`;
  return u.toString();
}

const COUNT = 200;
/** tsx as a loader, by location: the child's working directory is a scratch folder. */
const TSX_LOADER = pathToFileURL(createRequire(join(REPO_ROOT, "package.json")).resolve("tsx")).href;

for (const backend of backends()) {
  describe(`graceful shutdown of services/main.ts [${backend.name}]`, function () {
    // Start-up and the drain of 400 orders take a while on a loaded machine.
    this.timeout(300_000);
    let dir: string;
    let paymentDb: DatabaseConfig;
    let merchantDb: DatabaseConfig;
    let redisPrefix: string;
    let child: ChildProcess | undefined;

    before(() => {
      dir = mkdtempSync(join(tmpdir(), "shutdown-"));
      redisPrefix = uniqueName("sd");
      const names = { payment: uniqueName("t_sd_payment"), merchant: uniqueName("t_sd_merchant") };
      paymentDb = { sqliteFile: join(dir, "payment.sqlite"), poolSize: 2, ...(backend.mysqlUrl ? { mysqlUrl: databaseUrl(backend.mysqlUrl, names.payment) } : {}) };
      merchantDb = { sqliteFile: join(dir, "merchant.sqlite"), poolSize: 2, ...(backend.mysqlUrl ? { mysqlUrl: databaseUrl(backend.mysqlUrl, names.merchant) } : {}) };
    });

    after(async () => {
      if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      if (backend.mysqlUrl) {
        const conn = await mysql.createConnection(backend.mysqlUrl);
        for (const config of [paymentDb, merchantDb]) await conn.query(`DROP DATABASE IF EXISTS \`${new URL(config.mysqlUrl!).pathname.slice(1)}\``);
        await conn.end();
      }
      if (backend.redisUrl) await deleteRedisKeys(backend.redisUrl, redisPrefix);
      rmSync(dir, { recursive: true, force: true });
    });

    it("finishes the calls in flight on SIGTERM and exits 0", async () => {
      const [paymentGrpc, paymentHttp, merchantGrpc, merchantHttp, reconGrpc, reconHttp] = await Promise.all(Array.from({ length: 6 }, freePort));
      const env: NodeJS.ProcessEnv = { ...process.env };
      for (const name of ["MYSQL_URL", "REDIS_URL", "PAYMENT_MYSQL_URL", "MERCHANT_MYSQL_URL", "PAYMENT_ADDRESS", "MERCHANT_ADDRESS", "HOST"]) delete env[name];
      Object.assign(env, {
        LOG_LEVEL: "info",
        // Long enough that the drain never runs out on a loaded machine: what is checked is that
        // the calls in flight finish, not how fast (past the grace they would be cut off).
        SHUTDOWN_GRACE_MS: "100000",
        PAYMENT_GRPC_PORT: String(paymentGrpc),
        PAYMENT_HTTP_PORT: String(paymentHttp),
        MERCHANT_GRPC_PORT: String(merchantGrpc),
        MERCHANT_HTTP_PORT: String(merchantHttp),
        RECON_GRPC_PORT: String(reconGrpc),
        RECON_HTTP_PORT: String(reconHttp),
        PAYMENT_SQLITE_FILE: paymentDb.sqliteFile,
        MERCHANT_SQLITE_FILE: merchantDb.sqliteFile,
        RECON_DIR: join(dir, "reconciliation"),
        ...(paymentDb.mysqlUrl ? { PAYMENT_MYSQL_URL: paymentDb.mysqlUrl, MERCHANT_MYSQL_URL: merchantDb.mysqlUrl } : {}),
        ...(backend.redisUrl ? { REDIS_URL: backend.redisUrl, PAYMENT_REDIS_PREFIX: redisPrefix } : {}),
      });
      // cwd is a scratch folder, so any default relative path lands there too. Started as `npm start`
      // and the Dockerfile start it: node itself with tsx as a loader, so the signal reaches the
      // service. (The tsx command is a second process that relays a signal to its child and
      // SIGKILLs the child when it has not acknowledged the signal within about 60 ms, which a
      // loaded machine easily misses: the calls in flight were then dropped.)
      const proc = spawn(process.execPath, ["--import", TSX_LOADER, join(REPO_ROOT, "services", "main.ts")], {
        cwd: dir,
        env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      child = proc;
      let output = "";
      proc.stdout!.on("data", (d: Buffer) => (output += d.toString()));
      proc.stderr!.on("data", (d: Buffer) => (output += d.toString()));
      const exited = exitOf(proc);

      for (const port of [paymentHttp, merchantHttp, reconHttp]) {
        await until(proc, `port ${port} answered`, async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok);
      }

      const merchant = createGrpcClient(MerchantService, `127.0.0.1:${merchantGrpc}`);
      const probe = createGrpcClient(MerchantService, `127.0.0.1:${merchantGrpc}`);
      try {
        const plan = { count: COUNT, concurrency: 4, accounts: 1, minAmount: 1n, maxAmount: 100n, seed: 7n };
        const overGrpc = merchant.client.simulate({ ...plan, accountPrefix: "drain_grpc" });
        const overHttp = fetch(`http://127.0.0.1:${merchantHttp}/merchant.v1.MerchantService/Simulate`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ count: COUNT, concurrency: 4, accounts: 1, min_amount: "1", max_amount: "100", seed: "8", account_prefix: "drain_http" }),
        });
        // Both simulations are inside the server once each has stored an order.
        for (const salerId of ["drain_grpc1", "drain_http1"]) {
          await until(proc, `${salerId} has an order`, async () => (await probe.client.listOrders({ salerId, pageSize: 1 })).orders.length > 0);
        }
        probe.close();
        proc.kill("SIGTERM");

        const grpcReport = await overGrpc.catch(async (err: Error) => {
          // The platform's own account of what happened, once it has ended (or 15 s later).
          const end = await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000, "still running"))]);
          throw new Error(`Simulate over gRPC: ${err.message}\n--- platform (${JSON.stringify(end)}) ---\n${output}`);
        });
        expect({ requested: grpcReport.requested, succeeded: grpcReport.succeeded, failed: grpcReport.failed, unknown: grpcReport.unknown }).to.deep.equal({
          requested: COUNT,
          succeeded: COUNT,
          failed: 0,
          unknown: 0,
        });
        const httpRes = await overHttp;
        expect(httpRes.status).to.equal(200);
        // The gateway ends a kept-alive connection after the answer instead of holding it open.
        expect(httpRes.headers.get("connection")).to.equal("close");
        expect(await httpRes.json()).to.include({ requested: COUNT, succeeded: COUNT, failed: 0, unknown: 0 });
      } finally {
        merchant.close();
        probe.close();
      }

      const { code, signal } = await exited;
      expect({ code, signal }, output).to.deep.equal({ code: 0, signal: null });
      expect(output).to.contain("draining and stopping");

      // What the calls did is durable on both sides: every order finished, none left open.
      const m = await openDatabase(merchantDb, merchantMigrations);
      const p = await openDatabase(paymentDb, paymentMigrations);
      try {
        const states = (await m.knex("merchant_orders").select("state").count({ n: "*" }).groupBy("state")) as { state: string; n: unknown }[];
        expect(states.map((r) => [r.state, toCount(r.n)])).to.deep.equal([["SUCCESS", 2 * COUNT]]);
        const [paid] = await p.knex("payment_orders").count({ n: "*" });
        expect(toCount(paid!.n)).to.equal(2 * COUNT);
      } finally {
        await m.close();
        await p.close();
      }
    });
  });
}
