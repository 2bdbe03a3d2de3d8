/**
 * The payment system as a real process, killed with SIGKILL at random moments while it takes
 * payments and settles every second, then restarted: every payment it ever recorded ends up
 * credited exactly once, and every payment it acknowledged was recorded. Likewise while it takes
 * refunds and withdrawals: every acknowledged refund is recorded, a refund left without an answer
 * gets one when sent again, and no payment is refunded beyond its total nor any balance overdrawn.
 */
import { expect } from "chai";
import { spawn, type ChildProcess } from "node:child_process";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { createGrpcClient, type GrpcClientHandle } from "../../services/shared/rpc/grpcClient.js";
import { startPaymentSystem } from "../../services/payment/system.js";
import { backends, freshStore, paymentConfig, silentLogger, uniqueName, type Backend, type Store } from "../harness.js";
import { inParallel, payRequest, refundRequest, storedBalance, withdrawRequest } from "./fixtures.js";
import { MSG_REFUND_EXCEEDS_PAYMENT } from "../../services/payment/refunds.js";
import { deleteRedisKeys } from "../support/cleanup.js";
import { REPO_ROOT } from "../support/paths.js";
import { freePort } from "../support/ports.js";

/** Waits until the process answers; fails at once, with its last output, if it exits first. */
async function whenAnswering(client: GrpcClientHandle<typeof PaymentService>, proc: ChildProcess): Promise<void> {
  const until = Date.now() + 120_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`payment process exited (${proc.exitCode ?? proc.signalCode}) before answering: ${stderrOf.get(proc) ?? ""}`);
    }
    try {
      await client.client.listAccounts({ pageSize: 1 }, { timeoutMs: 1000 });
      return;
    } catch {
      if (Date.now() > until) throw new Error("payment process did not answer within 120 s");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** The last 4 KiB each child wrote to stderr. */
const stderrOf = new WeakMap<ChildProcess, string>();

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
  const proc = spawn(process.execPath, ["--import", "tsx", "services/payment/main.ts"], { cwd: REPO_ROOT, env, stdio: ["ignore", "ignore", "pipe"] });
  proc.stderr!.on("data", (d: Buffer) => stderrOf.set(proc, ((stderrOf.get(proc) ?? "") + d.toString()).slice(-4096)));
  return proc;
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
          await whenAnswering(client, proc);
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

    it("while it refunds: records every acknowledged refund, answers every unanswered one when sent again, and never over-refunds or overdraws", async () => {
      const port = await freePort();
      const client = createGrpcClient(PaymentService, `127.0.0.1:${port}`);
      const start = async () => {
        const proc = startChild(backend, store, prefix, port);
        child = proc;
        const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
        await whenAnswering(client, proc);
        return { proc, exited };
      };
      type Sent = { kind: "refund"; req: ReturnType<typeof refundRequest> } | { kind: "withdraw"; req: ReturnType<typeof withdrawRequest> };
      const answered = new Map<string, { code: string; responseId: string }>();
      const unanswered: Sent[] = [];
      const sent = new Map<string, Sent>();
      const send = (s: Sent, timeoutMs: number) => (s.kind === "refund" ? client.client.refund(s.req, { timeoutMs }) : client.client.withdraw(s.req, { timeoutMs }));
      const accounts = Array.from({ length: 6 }, (_, i) => `rk${i}`);
      const payments: { salerId: string; responseId: string }[] = [];
      try {
        // Payments to refund, settled into the balances by the process's own schedule.
        let proc = await start();
        // Few small payments, so that the refunds exhaust many of them and the withdrawals the balances.
        const paid = await inParallel(24, 16, async (i) => {
          const salerId = accounts[i % accounts.length]!;
          const r = await client.client.pay(payRequest(salerId, 500n + BigInt(i)), { timeoutMs: 10_000 });
          expect(r.responseCode).to.equal("SUCCESS");
          return { salerId, responseId: r.responseId };
        });
        payments.push(...paid);
        for (let i = 0; ; i++) {
          const pending = await Promise.all(accounts.map(async (a) => (await client.client.getBalance({ salerId: a })).account?.pending ?? 0n));
          if (pending.every((p) => p === 0n)) break;
          if (i > 300) throw new Error("the payments were never settled");
          await new Promise((resolve) => setTimeout(resolve, 100));
        }

        let seq = 0;
        for (let round = 0; round < 3; round++) {
          if (round > 0) proc = await start();
          let killed = false;
          let sentThisRound = 0;
          const workers = Array.from({ length: 12 }, async () => {
            while (!killed) {
              sentThisRound++;
              const n = seq++;
              const payment = payments[(n * 7919) % payments.length]!;
              // Mostly partial refunds (some of them more than is left), now and then a withdrawal.
              const s: Sent =
                n % 10 === 9
                  ? { kind: "withdraw", req: withdrawRequest(payment.salerId, 500n + BigInt(n % 300)) }
                  : { kind: "refund", req: refundRequest(payment.salerId, payment, 50n + BigInt((n * 31) % 400)) };
              sent.set(s.req.requestId, s);
              try {
                const r = await send(s, 5000);
                answered.set(s.req.requestId, { code: r.responseCode, responseId: r.responseId });
              } catch {
                // The process died under this call: it may or may not have recorded it.
                unanswered.push(s);
              }
            }
          });
          // However loaded the machine, each round carries at least 40 calls before the kill lands.
          while (sentThisRound < 40) await new Promise((resolve) => setTimeout(resolve, 20));
          await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 800)));
          proc.proc.kill("SIGKILL");
          await proc.exited;
          killed = true;
          await Promise.all(workers);
        }

        // Sent again after a restart, every unanswered call gets an answer, and every answered one
        // gets the same answer again.
        proc = await start();
        expect(unanswered.length, "calls cut off by the kills").to.be.greaterThan(0);
        for (const s of unanswered) {
          const r = await send(s, 10_000);
          answered.set(s.req.requestId, { code: r.responseCode, responseId: r.responseId });
        }
        for (const s of [...sent.values()].slice(0, 100)) {
          const r = await send(s, 10_000);
          expect({ code: r.responseCode, responseId: r.responseId }, `${s.req.requestId} sent again`).to.deep.equal(answered.get(s.req.requestId));
        }
        proc.proc.kill("SIGKILL");
        await proc.exited;
      } finally {
        client.close();
      }
      child = undefined;

      const refundsAcknowledged = [...answered.values()].filter((a) => a.code === "SUCCESS").length;
      console.log(
        `      3 SIGKILLs; calls ${sent.size}, cut off by a kill ${unanswered.length} (answered when sent again); ` +
          `SUCCESS ${refundsAcknowledged}, FAIL ${[...answered.values()].filter((a) => a.code === "FAIL").length}`,
      );
      expect(refundsAcknowledged, "successful refunds and withdrawals").to.be.greaterThan(10);
      expect([...answered.values()].filter((a) => a.code === "FAIL").length, "refused ones (over-refunds, uncovered)").to.be.greaterThan(0);

      const system = await startPaymentSystem(paymentConfig(backend, store, prefix), silentLogger);
      try {
        const knex = system.db.knex;
        const refunds = (await knex("refund_orders").select("request_id", "saler_id", "payment_response_id", "refund_fee", "response_id", "response_code", "response_msg")) as {
          request_id: string;
          saler_id: string;
          payment_response_id: string;
          refund_fee: unknown;
          response_id: string;
          response_code: string;
          response_msg: string;
        }[];
        const withdrawals = (await knex("withdrawal_orders").select("request_id", "saler_id", "withdraw_money", "response_id", "response_code")) as {
          request_id: string;
          saler_id: string;
          withdraw_money: unknown;
          response_id: string;
          response_code: string;
        }[];
        // Every answer given is the stored order: same response_id and code, nothing acknowledged lost.
        const stored = new Map([...refunds, ...withdrawals].map((r) => [r.request_id, r]));
        for (const [id, a] of answered) {
          const row = stored.get(id);
          expect(row, `answered ${id} not recorded`).to.not.equal(undefined);
          expect({ code: row!.response_code, responseId: row!.response_id }, id).to.deep.equal(a);
        }
        // No payment refunded beyond its total; its refunded sum is exactly its successful refunds.
        const payRows = (await knex("payment_orders").select("saler_id", "total_fee", "response_id", "refunded", "settlement_id")) as {
          saler_id: string;
          total_fee: unknown;
          response_id: string;
          refunded: unknown;
          settlement_id: unknown;
        }[];
        const refundedOf = new Map<string, bigint>();
        for (const r of refunds) if (r.response_code === "SUCCESS") refundedOf.set(r.payment_response_id, (refundedOf.get(r.payment_response_id) ?? 0n) + BigInt(String(r.refund_fee)));
        for (const p of payRows) {
          const refunded = BigInt(String(p.refunded));
          expect(refunded, p.response_id).to.equal(refundedOf.get(p.response_id) ?? 0n);
          expect(refunded <= BigInt(String(p.total_fee)), `${p.response_id} refunded ${refunded} of ${String(p.total_fee)}`).to.equal(true);
          expect(p.settlement_id, "settled").to.not.equal(null);
        }
        expect(refunds.filter((r) => r.response_msg === MSG_REFUND_EXCEEDS_PAYMENT).length, "refunds refused for more than was left of their payment").to.be.greaterThan(0);
        // Every balance is its payments less its successful withdrawals and refunds, never below zero.
        for (const a of accounts) {
          const paidIn = payRows.filter((p) => p.saler_id === a).reduce((s, p) => s + BigInt(String(p.total_fee)), 0n);
          const out =
            refunds.filter((r) => r.saler_id === a && r.response_code === "SUCCESS").reduce((s, r) => s + BigInt(String(r.refund_fee)), 0n) +
            withdrawals.filter((w) => w.saler_id === a && w.response_code === "SUCCESS").reduce((s, w) => s + BigInt(String(w.withdraw_money)), 0n);
          const balance = await storedBalance(knex, a);
          expect(balance, a).to.equal(paidIn - out);
          expect(balance >= 0n, a).to.equal(true);
        }
      } finally {
        await system.close();
      }
    });
  });
}
