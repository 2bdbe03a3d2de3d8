/**
 * Readiness: /healthz stays liveness while /readyz and the gRPC health status of each service
 * follow its dependencies, with the reason in the body. A Redis of the test's own (a
 * redis-server on a spare port, stopped and started again) goes down under the payment system:
 * payments still succeed, the outage is logged once as a warning and once on recovery, and
 * readiness comes back by itself. A stopped payment system makes its callers unready, naming it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { expect } from "chai";
import { pino } from "pino";
import { Redis } from "ioredis";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { createGrpcClient } from "../../services/shared/rpc/grpcClient.js";
import { startPaymentSystem, type PaymentSystem } from "../../services/payment/system.js";
import { startMerchantSystem, type MerchantSystem } from "../../services/merchant/system.js";
import { startReconSystem, type ReconSystem } from "../../services/recon/system.js";
import { DEFAULT_SERVING } from "../../services/shared/rpc/serving.js";
import { freshStore, merchantConfig, paymentConfig, reconConfig, uniqueName, type Store } from "../harness.js";
import { grpcHealthCheck } from "../contract/clients.js";
import { payRequest } from "../payment/fixtures.js";

type Line = Record<string, unknown> & { msg: string; level: number };

async function sparePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A redis-server of this test's own, without persistence. */
async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
  for (let i = 0; i < 100; i++) {
    const probe = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on("error", () => {});
    try {
      await probe.connect();
      await probe.ping();
      return child;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      probe.disconnect();
    }
  }
  child.kill("SIGKILL");
  throw new Error(`redis-server did not start on ${port}`);
}

async function stopRedis(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

async function readyz(httpUrl: string): Promise<{ status: number; body: { status: string; service: string; checks: { name: string; ok: boolean; reason?: string }[] } }> {
  const res = await fetch(`${httpUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as never };
}

async function eventually<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > until) throw new Error(`${what}: still ${JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? `${x}n` : x))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const hasRedisServer = await new Promise<boolean>((resolve) => {
  const c = spawn("redis-server", ["--version"], { stdio: "ignore" });
  c.on("error", () => resolve(false));
  c.on("exit", (code) => resolve(code === 0));
});

describe("readiness [embedded storage, own Redis]", function () {
  if (!hasRedisServer) {
    it.skip("needs redis-server on PATH");
    return;
  }
  let redisPort: number;
  let redis: ChildProcess;
  let payment: PaymentSystem;
  let merchant: MerchantSystem;
  let recon: ReconSystem;
  let stores: Store[];
  let reconDir: string;
  const lines: Line[] = [];

  before(async () => {
    redisPort = await sparePort();
    redis = await startRedis(redisPort);
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split("\n")) if (l !== "") lines.push(JSON.parse(l) as Line);
        done();
      },
    });
    const logger = pino({ level: "info" }, sink);
    const serving = { ...DEFAULT_SERVING, logCalls: "off" as const, readinessIntervalMs: 200 };
    const backend = { name: "embedded" as const };
    stores = [freshStore(backend, "payment"), freshStore(backend, "merchant")];
    payment = await startPaymentSystem(
      paymentConfig(backend, stores[0]!, uniqueName("tr"), { redisUrl: `redis://127.0.0.1:${redisPort}`, settleCron: "* * * * * *", serving }),
      logger.child({ service: "payment" }),
    );
    merchant = await startMerchantSystem(merchantConfig(stores[1]!, payment.server.grpcAddress, { serving }), logger.child({ service: "merchant" }));
    reconDir = mkdtempSync(join(tmpdir(), "recon-"));
    recon = await startReconSystem(reconConfig(reconDir, merchant.server.grpcAddress, payment.server.grpcAddress, { serving }), logger.child({ service: "recon" }));
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed" && process.env.READINESS_DEBUG) for (const l of lines) console.log(JSON.stringify(l));
  });

  after(async () => {
    await recon?.close();
    await merchant?.close();
    await payment?.close();
    if (redis) await stopRedis(redis);
    for (const s of stores ?? []) await s.drop();
    if (reconDir) rmSync(reconDir, { recursive: true, force: true });
  });

  it("is ready with every dependency up, on /readyz and the gRPC health status", async () => {
    for (const [system, service, deps] of [
      [payment, "payment.v1.PaymentService", ["database", "redis"]],
      [merchant, "merchant.v1.MerchantService", ["database", "payment"]],
      [recon, "recon.v1.ReconService", ["merchant", "payment", "reconciliation directory"]],
    ] as const) {
      const r = await readyz(system.server.httpUrl);
      expect(r.status).to.equal(200);
      expect(r.body.status).to.equal("SERVING");
      expect(r.body.checks.map((c) => c.name)).to.deep.equal(deps);
      expect(r.body.checks.every((c) => c.ok)).to.equal(true);
      expect(await grpcHealthCheck(system.server.grpcAddress, service)).to.equal("SERVING");
    }
  });

  it("turns unready with Redis down, keeps taking payments, logs the outage once, and recovers by itself", async () => {
    const client = createGrpcClient(PaymentService, payment.server.grpcAddress);
    try {
      const from = lines.length;
      await stopRedis(redis);
      const down = await eventually("payment /readyz", () => readyz(payment.server.httpUrl), (r) => r.status === 503);
      const redisCheck = down.body.checks.find((c) => c.name === "redis")!;
      expect(redisCheck.ok).to.equal(false);
      expect(redisCheck.reason).to.match(/Redis|ECONNREFUSED|connect/i);
      expect(down.body.checks.find((c) => c.name === "database")!.ok).to.equal(true);
      // Liveness is not readiness.
      const live = await fetch(`${payment.server.httpUrl}/healthz`);
      expect(live.status).to.equal(200);
      await eventually("gRPC health", () => grpcHealthCheck(payment.server.grpcAddress, "payment.v1.PaymentService"), (s) => s === "NOT_SERVING");
      expect(await grpcHealthCheck(payment.server.grpcAddress, "")).to.equal("SERVING");
      // Its callers can still call it.
      expect((await readyz(merchant.server.httpUrl)).status).to.equal(200);

      for (let i = 0; i < 5; i++) expect((await client.client.pay(payRequest("ready_a", 10n))).responseCode).to.equal("SUCCESS");
      // Several scheduled settlements fail meanwhile (one a second).
      await new Promise((r) => setTimeout(r, 2500));
      const during = lines.slice(from);
      // The payment system's warnings (on a loaded machine a caller's health check of it may time
      // out now and then; that is the callers' business, tested below).
      const warnings = during.filter((l) => l.level >= 40 && l.service === "payment");
      const warned = (msg: string) => warnings.filter((l) => l.msg === msg).length;
      expect(warned("dependency redis failing"), JSON.stringify(warnings)).to.equal(1);
      expect(warned("scheduled settlement failing"), JSON.stringify(warnings)).to.equal(1);
      expect(warned("credit buffer writes (settlement sweeps the orders table meanwhile) failing"), JSON.stringify(warnings)).to.equal(1);
      expect(warnings.length, JSON.stringify(warnings)).to.equal(3);
      expect(during.some((l) => "stack" in l || (typeof l.err === "object" && l.err !== null)), "no stack traces").to.equal(false);

      // The outage shows in the metrics too.
      const scraped = await (await fetch(`${payment.server.httpUrl}/metrics`)).text();
      const redisErrors = Number(/^payment_redis_errors_total\{[^}]*\} (\d+)$/m.exec(scraped)?.[1] ?? 0);
      expect(redisErrors).to.be.greaterThan(0);
      expect(scraped).to.match(/^payment_settlement_runs_total\{outcome="failed",[^}]*\} [1-9]\d*$/m);

      redis = await startRedis(redisPort);
      await eventually("payment /readyz", () => readyz(payment.server.httpUrl), (r) => r.status === 200);
      await eventually("gRPC health", () => grpcHealthCheck(payment.server.grpcAddress, "payment.v1.PaymentService"), (s) => s === "SERVING");
      // The payments taken during the outage reach the balance.
      await eventually(
        "balance",
        () => client.client.getBalance({ salerId: "ready_a" }).then((r) => r.account!.balance),
        (b) => b === 50n,
      );
      await eventually("recovery lines", async () => lines.slice(from).map((l) => l.msg), (msgs) => msgs.includes("dependency redis recovered") && msgs.includes("scheduled settlement recovered"));
      const after = lines.slice(from);
      expect(after.filter((l) => l.msg === "dependency redis recovered")).to.have.length(1);
      expect(after.filter((l) => l.level >= 40 && l.service === "payment")).to.have.length(3);
    } finally {
      client.close();
    }
  });

  it("makes the merchant and recon unready, naming the payment system, when it stops", async () => {
    // Once the merchant sees the payment system up (a loaded machine may have timed a check out).
    await eventually("merchant /readyz", () => readyz(merchant.server.httpUrl), (r) => r.status === 200);
    const from = lines.length;
    await payment.server.close(100);
    const m = await eventually("merchant /readyz", () => readyz(merchant.server.httpUrl), (r) => r.status === 503);
    const check = m.body.checks.find((c) => c.name === "payment")!;
    expect(check.ok).to.equal(false);
    expect(check.reason).to.contain(payment.server.grpcAddress);
    expect(m.body.checks.find((c) => c.name === "database")!.ok).to.equal(true);
    await eventually("merchant gRPC health", () => grpcHealthCheck(merchant.server.grpcAddress, "merchant.v1.MerchantService"), (s) => s === "NOT_SERVING");
    const r = await readyz(recon.server.httpUrl);
    expect(r.status).to.equal(503);
    expect(r.body.checks.filter((c) => !c.ok).map((c) => c.name)).to.deep.equal(["payment"]);
    // One warning for the outage, however many checks failed since.
    await new Promise((r) => setTimeout(r, 1000));
    expect(lines.slice(from).filter((l) => l.msg === "dependency payment failing" && l.service === "merchant")).to.have.length(1);
  });
});

describe("readiness checks of an upstream started later [embedded storage]", function () {
  /**
   * The merchant starts first and its readiness check finds the payment system down, again and
   * again. Once the payment system listens, the merchant's very first payments reach it: the
   * failed checks leave no reconnect back-off on the connection the calls use (a connection
   * shared with the checks would fail the first calls at once with UNAVAILABLE, their orders
   * UNKNOWN).
   */
  for (const instances of [1, 3]) {
    it(`sends the first payments once the payment system is up (${instances === 1 ? "one address" : "a list of three"})`, async () => {
      const lines: Line[] = [];
      const sink = new Writable({
        write(chunk: Buffer, _enc, done) {
          for (const l of chunk.toString().split("\n")) if (l !== "") lines.push(JSON.parse(l) as Line);
          done();
        },
      });
      const logger = pino({ level: "info" }, sink);
      const serving = { ...DEFAULT_SERVING, logCalls: "off" as const, readinessIntervalMs: 100 };
      const backend = { name: "embedded" as const };
      const ports = await Promise.all(Array.from({ length: instances }, sparePort));
      const stores = [freshStore(backend, "payment"), freshStore(backend, "merchant")];
      const payments: PaymentSystem[] = [];
      let merchant: MerchantSystem | undefined;
      try {
        merchant = await startMerchantSystem(
          merchantConfig(stores[1]!, ports.map((p) => `127.0.0.1:${p}`).join(","), { serving, callTimeoutMs: 5000 }),
          logger.child({ service: "merchant" }),
        );
        const m = merchant;
        const failing = await eventually("merchant /readyz", () => readyz(m.server.httpUrl), (r) => r.status === 503);
        expect(failing.body.checks.find((c) => c.name === "payment")!.reason).to.match(/unreachable/);
        // Several failed checks: a shared connection would now be in a back-off of a second or more.
        await new Promise((r) => setTimeout(r, 1500));
        const prefix = uniqueName("late");
        for (const port of ports) {
          payments.push(
            await startPaymentSystem(
              paymentConfig(backend, stores[0]!, prefix, { listen: { host: "127.0.0.1", grpcPort: port, httpPort: 0 }, serving }),
              logger.child({ service: "payment" }),
            ),
          );
        }
        const orders = [];
        for (let i = 0; i < 10; i++) orders.push(await m.sender.send("PAYMENT", `late${i}`, 100n));
        expect(orders.map((o) => `${o.state} ${o.responseMsg}`)).to.deep.equal(orders.map(() => "SUCCESS OK"));
      } finally {
        await merchant?.close();
        for (const p of payments) await p.close();
        for (const s of stores) await s.drop();
      }
    });
  }
});
