/**
 * Handler-level tests: the services' own implementations, each behind the call policy as serve()
 * puts it in front of both transports, called in this process through connect's in-memory router
 * transport (no sockets, no ports). They cover the parts whose answer is a matter of logic:
 * the reconciliation's comparison, the settlement's plan and totals, and the batching of
 * concurrent withdrawals and refunds. Storage is the embedded default (a SQLite file); the network suites
 * check the same parts end to end.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { createClient, createRouterTransport, type Client, type Transport } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { OrderExportService, OrderKey, OrderType } from "../gen/order/v1/order_pb.js";
import { PaymentService } from "../gen/payment/v1/payment_pb.js";
import { MerchantService } from "../gen/merchant/v1/merchant_pb.js";
import { ReconService, type DiffRow } from "../gen/recon/v1/recon_pb.js";
import { applyCallPolicy } from "../services/shared/rpc/callPolicy.js";
import { bind, type ServiceBinding } from "../services/shared/rpc/server.js";
import { orderExportService, type ExportedOrderType } from "../services/shared/orders/exportService.js";
import type { ExportRow } from "../services/shared/orders/orderExport.js";
import { BusinessClock } from "../services/shared/orders/time.js";
import { openDatabase, type Database } from "../services/shared/storage/database.js";
import { readReconConfig } from "../services/recon/config.js";
import { ReconEngine } from "../services/recon/engine.js";
import { Reconciler } from "../services/recon/reconciler.js";
import { RunStore } from "../services/recon/runs.js";
import { createReconService } from "../services/recon/service.js";
import { readPaymentConfig } from "../services/payment/config.js";
import { MemoryCreditBuffer } from "../services/payment/creditBuffer.js";
import { paymentMigrations } from "../services/payment/migrations/index.js";
import { createPaymentService } from "../services/payment/service.js";
import { planChunks, Settlement } from "../services/payment/settlement.js";
import { MSG_INSUFFICIENT_BALANCE } from "../services/payment/withdrawals.js";
import { OrderStamps } from "../services/payment/recordOnce.js";
import { Refunds } from "../services/payment/refunds.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { NO_ENV, silentLogger } from "./harness.js";
import { requestIdentity } from "./support/requestIdentity.js";

/** A transport that serves the bindings in this process, each behind the call policy. */
function inMemory(...bindings: ServiceBinding[]): Transport {
  const limits = readPaymentConfig(NO_ENV).callLimits;
  return createRouterTransport(({ service }) => {
    for (const b of bindings) service(b.service as DescService, applyCallPolicy(b, silentLogger, limits));
  });
}

const clock = new BusinessClock("Asia/Shanghai");

describe("handlers through an in-memory transport [embedded]", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "handlers-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  describe("reconciliation: ReconService over two OrderExportService implementations", () => {
    let engine: ReconEngine;
    let recon: Client<typeof ReconService>;

    /** One side's successful payments, as its OrderExportService serves them; no other orders. */
    const side = (amounts: Record<number, bigint>) =>
      orderExportService(async function* (type: ExportedOrderType, key) {
        if (type !== "PAYMENT") return;
        const rows: ExportRow[] = Object.entries(amounts).map(([n, amount]) => ({
          requestId: `2019082917152000000${n}`,
          responseId: `2019082917152100000${n}`,
          salerId: "saler1",
          amount,
          requestTime: "2019-08-29 17:15:20",
          responseTime: "2019-08-29 17:15:21",
        }));
        yield rows.sort((a, b) => (key === "request_id" ? a.requestId : a.responseId).localeCompare(key === "request_id" ? b.requestId : b.responseId));
      });

    before(() => {
      const defaults = readReconConfig(NO_ENV);
      engine = new ReconEngine({ memoryLimit: defaults.memoryLimit, threads: defaults.threads, spillDir: mkdtempSync(join(dir, "spill-")) });
      // The seed's example: the merchant has 1:10, 2:20, 3:3; the payment system 1:10, 3:4, 4:40.
      const merchantOrders = createClient(OrderExportService, inMemory(bind(OrderExportService, side({ 1: 10n, 2: 20n, 3: 3n }))));
      const paymentOrders = createClient(OrderExportService, inMemory(bind(OrderExportService, side({ 1: 10n, 3: 4n, 4: 40n }))));
      const runs = new RunStore(mkdtempSync(join(dir, "runs-")));
      const reconciler = new Reconciler({
        merchantOrders,
        paymentOrders,
        // Not called by a reconciliation (only audits read balances, and only resolve_unknown calls the merchant).
        payment: createClient(PaymentService, inMemory()),
        runs,
        clock,
        inputDir: dir,
        engine,
      });
      const merchant = createClient(MerchantService, inMemory());
      recon = createClient(ReconService, inMemory(bind(ReconService, createReconService({ reconciler, runs, merchant, clock, cutoffLagSeconds: 0 }))));
    });
    after(() => engine?.close());

    it("compares the seed's example order by order: 1 F000, 2 F114, 3 F115, 4 F113", async () => {
      const { run } = await recon.reconcile({ key: OrderKey.RESPONSE_ID });
      expect(run!.balanced).to.equal(false);
      const payments = run!.diffs.find((d) => d.orderType === OrderType.PAYMENT)!;
      expect(payments).to.include({
        merchantRows: 3n,
        paymentRows: 3n,
        f000Count: 1n,
        f000Amount: 10n,
        f113Count: 1n,
        f113Amount: 40n,
        f114Count: 1n,
        f114Amount: 20n,
        f115Count: 1n,
        f115Amount: 4n,
      });
      for (const type of [OrderType.WITHDRAWAL, OrderType.REFUND]) {
        expect(run!.diffs.find((d) => d.orderType === type)).to.include({ merchantRows: 0n, paymentRows: 0n, f000Count: 0n, f113Count: 0n, f114Count: 0n, f115Count: 0n });
      }
      const rows: DiffRow[] = [];
      for await (const m of recon.streamDiffRows({ runId: run!.runId, orderType: OrderType.PAYMENT })) rows.push(...m.rows);
      expect(rows.map((r) => [r.responseId.slice(-1), r.diffType, r.merchantAmount, r.paymentAmount]).sort()).to.deep.equal([
        ["1", "F000", 10n, 10n],
        ["2", "F114", 20n, 0n],
        ["3", "F115", 3n, 4n],
        ["4", "F113", 0n, 40n],
      ]);
    });

    it("matches on request_id when asked, with the same outcome", async () => {
      const { run } = await recon.reconcile({ key: OrderKey.REQUEST_ID });
      expect(run!.key).to.equal(OrderKey.REQUEST_ID);
      expect(run!.diffs.find((d) => d.orderType === OrderType.PAYMENT)).to.include({ f000Count: 1n, f113Count: 1n, f114Count: 1n, f115Count: 1n });
    });
  });

  describe("payment system: settlement and withdrawals", () => {
    let db: Database;
    let payment: Client<typeof PaymentService>;
    const committed: bigint[] = [];

    before(async () => {
      const config = readPaymentConfig(NO_ENV);
      db = await openDatabase({ sqliteFile: join(dir, "payment.db"), poolSize: 1 }, paymentMigrations);
      const buffer = new MemoryCreditBuffer();
      // Two accounts to a settlement transaction, so that five accounts take three.
      const settlement = new Settlement(db, buffer, clock, silentLogger, {
        chunkSize: 2,
        sweepEvery: config.settleSweepEvery,
        leaseMs: config.settleLeaseMs,
        observer: { finished: () => {}, committed: async (id) => void committed.push(id) },
      });
      const impl = createPaymentService({
        db,
        buffer,
        settlement,
        clock,
        logger: silentLogger,
        exportBatchSize: config.exportBatchSize,
        requestTimeMaxAheadSeconds: config.requestTimeMaxAheadSeconds,
      });
      payment = createClient(PaymentService, inMemory(bind(PaymentService, impl)));
    });
    after(async () => db?.close());

    const pay = async (salerId: string, totalFee: bigint) => {
      const res = await payment.pay({ ...requestIdentity(), salerId, totalFee });
      expect(res.responseCode, `${salerId} ${totalFee}`).to.equal("SUCCESS");
    };
    const withdraw = (salerId: string, withdrawMoney: bigint) => payment.withdraw({ ...requestIdentity(), salerId, withdrawMoney });
    const balance = async (salerId: string) => (await payment.getBalance({ salerId })).account!.balance;

    it("plans a settlement: due accounts in saler_id order, chunk by chunk, then each account that failed alone", () => {
      expect(planChunks(["e", "a", "d", "b", "c"], new Set(), 2)).to.deep.equal([["a", "b"], ["c", "d"], ["e"]]);
      expect(planChunks(["c", "a", "b"], new Set(["b", "z"]), 2)).to.deep.equal([["a", "c"], ["b"], ["z"]]);
      expect(planChunks([], new Set(), 200)).to.deep.equal([]);
    });

    it("settles five accounts in three transactions, every payment credited once", async () => {
      for (const [salerId, fee] of [
        ["st-a", 100n],
        ["st-b", 200n],
        ["st-c", 300n],
        ["st-d", 400n],
        ["st-e", 500n],
        ["st-a", 50n],
      ] as const) {
        await pay(salerId, fee);
      }
      expect((await payment.getBalance({ salerId: "st-a" })).account).to.include({ balance: 0n, pending: 150n, pendingCount: 2n });
      const settled = await payment.settle({});
      expect(settled).to.include({ ran: true, accountsSettled: 5, creditsApplied: 6n, amountSettled: 1550n });
      expect(committed).to.have.length(3);
      expect((await payment.getBalance({ salerId: "st-a" })).account).to.include({ balance: 150n, pending: 0n, pendingCount: 0n });
      expect(await balance("st-e")).to.equal(500n);
      // Nothing is credited twice.
      expect(await payment.settle({})).to.include({ accountsSettled: 0, creditsApplied: 0n, amountSettled: 0n });
      expect(await balance("st-a")).to.equal(150n);
    });

    it("answers concurrent withdrawals that one balance does not cover as each would be answered alone", async () => {
      await pay("wd-a", 100n);
      await payment.settle({});
      const answers = await Promise.all(Array.from({ length: 5 }, () => withdraw("wd-a", 30n)));
      expect(answers.filter((a) => a.responseCode === "SUCCESS")).to.have.length(3);
      const refused = answers.filter((a) => a.responseCode === "FAIL");
      expect(refused).to.have.length(2);
      for (const a of refused) expect(a.responseMsg).to.equal(MSG_INSUFFICIENT_BALANCE);
      expect(await balance("wd-a")).to.equal(10n);
    });

    it("records concurrent withdrawals that every balance covers, all of them, to the last fen", async () => {
      await pay("wd-b", 100n);
      await pay("wd-c", 50n);
      await payment.settle({});
      const answers = await Promise.all([withdraw("wd-b", 40n), withdraw("wd-b", 60n), withdraw("wd-c", 50n), withdraw("wd-none", 1n)]);
      expect(answers.map((a) => a.responseCode)).to.deep.equal(["SUCCESS", "SUCCESS", "SUCCESS", "FAIL"]);
      expect(answers[3]!.responseMsg).to.equal(MSG_INSUFFICIENT_BALANCE);
      expect([await balance("wd-b"), await balance("wd-c")]).to.deep.equal([0n, 0n]);
      // An account with nothing to withdraw is not created by the refusal.
      expect((await payment.listAccounts({ pageSize: 1000 })).accounts.map((a) => a.salerId)).to.not.include("wd-none");
    });

    it("leaves out of a refund batch a call that stopped waiting before the batch ran: it answers DEADLINE_EXCEEDED and nothing of it is written", async () => {
      const paid = await payment.pay({ ...requestIdentity(), salerId: "rf-stop", totalFee: 1_000n });
      await payment.settle({});
      const refunds = new Refunds(db, new OrderStamps(clock));
      const refund = (refundFee: bigint, stop: { aborted: boolean }) => {
        const req = { ...requestIdentity(), salerId: "rf-stop", paymentResponseId: paid.responseId, refundFee };
        return { req, answer: refunds.refund(req as Parameters<Refunds["refund"]>[0], stop).then((r) => r, (err: unknown) => err) };
      };
      const stop = { aborted: false };
      const calls = [refund(100n, { aborted: false }), refund(200n, stop), refund(300n, { aborted: false })];
      // Queued in this turn of the event loop; the batch runs in a later one.
      stop.aborted = true;
      const [kept, left, alsoKept] = await Promise.all(calls.map((c) => c.answer));
      expect(kept).to.include({ responseCode: "SUCCESS", refundFee: 100n });
      expect(alsoKept).to.include({ responseCode: "SUCCESS", refundFee: 300n });
      expect(left).to.be.instanceOf(ConnectError);
      expect((left as ConnectError).code).to.equal(Code.DeadlineExceeded);
      expect(await db.knex("refund_orders").where({ request_id: calls[1]!.req.requestId }).first()).to.equal(undefined);
      expect(await balance("rf-stop")).to.equal(600n);
    });
  });
});
