/**
 * The payment system as a real process, killed with SIGKILL at random moments while it takes
 * payments and settles every second, then restarted: every payment it ever recorded ends up
 * credited exactly once, and every payment it acknowledged was recorded.
 */
import { expect } from "chai";
import { spawn, type ChildProcess } from "node:child_process";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { createGrpcClient } from "../../services/shared/grpc.js";
import { startPaymentSystem } from "../../services/payment/system.js";
import { backends, deleteRedisKeys, freshStore, paymentConfig, silentLogger, uniqueName, type Backend, type Store } from "../harness.js";
import { payRequest, storedBalance } from "./fixtures.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function startChild(backend: Backend, store: Store, prefix: string, port: number): ChildProcess {
  const env: NodeJS.ProcessEnv = {};
  for (const k of ["PATH", "HOME", "TMPDIR", "NODE_OPTIONS"]) if (process.env[k] !== undefined) env[k] = process.env[k];
  Object.assign(env, {
    HOST: "127.0.0.1",
    PAYMENT_GRPC_PORT: String(port),
    PAYMENT_HTTP_PORT: "0",
    PAYMENT_REDIS_PREFIX: prefix,
    SETTLE_CRON: "* * * * * *",
    LOG_LEVEL: "silent",
  });
  if (store.mysqlUrl) env.PAYMENT_MYSQL_URL = store.mysqlUrl;
  else env.PAYMENT_SQLITE_FILE = store.sqliteFile;
  if (backend.redisUrl) env.REDIS_URL = backend.redisUrl;
  return spawn(process.execPath, ["--import", "tsx", "services/payment/main.ts"], { cwd: repoRoot, env, stdio: "ignore" });
}

for (const backend of backends()) {
  describe(`payment process killed at random moments [${backend.name}]`, function () {
    this.timeout(240_000);
    let store: Store;
    let prefix: string;
    let child: ChildProcess | undefined;

    beforeEach(() => {
      store = freshStore(backend, "payment");
      prefix = uniqueName("tp");
    });
    afterEach(async () => {
      child?.kill("SIGKILL");
      await store.drop();
      if (backend.redisUrl) await deleteRedisKeys(backend.redisUrl, prefix);
    });

    it("credits every recorded payment exactly once after repeated SIGKILLs and restarts", async () => {
      const port = await freePort();
      const client = createGrpcClient(PaymentService, `127.0.0.1:${port}`);
      const acknowledged = new Set<string>();
      let seq = 0;
      try {
        for (let round = 0; round < 4; round++) {
          const proc = startChild(backend, store, prefix, port);
          child = proc;
          const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
          // Ready when it answers.
          for (let i = 0; ; i++) {
            try {
              await client.client.listAccounts({ pageSize: 1 }, { timeoutMs: 1000 });
              break;
            } catch {
              if (i > 600) throw new Error("payment process did not start");
              await new Promise((resolve) => setTimeout(resolve, 50));
            }
          }
          let killed = false;
          const workers = Array.from({ length: 16 }, async () => {
            while (!killed) {
              const req = payRequest(`kill${seq++ % 9}`, BigInt(1 + (seq % 997)));
              try {
                const r = await client.client.pay(req, { timeoutMs: 5000 });
                if (r.responseCode === "SUCCESS") acknowledged.add(req.requestId);
              } catch {
                // The process died under this call: it may or may not have recorded it.
              }
            }
          });
          // Let it take payments through at least one scheduled settlement, then kill it.
          await new Promise((resolve) => setTimeout(resolve, 800 + Math.floor(Math.random() * 1200)));
          proc.kill("SIGKILL");
          await exited;
          killed = true;
          await Promise.all(workers);
        }
      } finally {
        client.close();
      }
      child = undefined;

      // A fresh process on the same storage settles what the killed ones left.
      const system = await startPaymentSystem(paymentConfig(backend, store, prefix), silentLogger);
      try {
        // A process killed mid-settlement leaves its lease to expire before anyone settles again.
        for (let i = 0; !(await system.settlement.run()).ran; i++) {
          if (i > 120) throw new Error("the settlement lease was never released");
          await new Promise((resolve) => setTimeout(resolve, 1000));
        }
        const knex = system.db.knex;
        const rows = (await knex("payment_orders").select("request_id", "saler_id", "total_fee", "settlement_id")) as {
          request_id: string;
          saler_id: string;
          total_fee: unknown;
          settlement_id: unknown;
        }[];
        expect(acknowledged.size).to.be.greaterThan(0);
        const recorded = new Set(rows.map((r) => r.request_id));
        for (const id of acknowledged) expect(recorded.has(id), `acknowledged ${id} not recorded`).to.equal(true);
        expect(rows.filter((r) => r.settlement_id === null).length, "pending").to.equal(0);
        const owed = new Map<string, bigint>();
        for (const r of rows) owed.set(r.saler_id, (owed.get(r.saler_id) ?? 0n) + BigInt(String(r.total_fee)));
        for (const [a, s] of owed) expect(await storedBalance(knex, a), a).to.equal(s);
        const [sum] = (await knex("settlements").sum({ s: "amount" })) as { s: unknown }[];
        expect(BigInt(String(sum?.s ?? 0))).to.equal([...owed.values()].reduce((x, y) => x + y, 0n));
      } finally {
        await system.close();
      }
    });
  });
}
