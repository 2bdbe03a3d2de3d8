/**
 * Live reconciliation and audit against running merchant and payment systems, on every backend:
 * a correct day balances; differences planted in either database come out as exactly those
 * rows; runs repeat; injected simulation faults are found, no more; an audit stays true while
 * credits sit in the buffer and while payments keep flowing.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { expect } from "chai";
import { type AuditRow, type DiffRow } from "../../gen/recon/v1/recon_pb.js";
import { BusinessClock } from "../../services/shared/orders/time.js";
import { backends, startPlatform, type Platform } from "../harness.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";

const clock = new BusinessClock("Asia/Shanghai");

async function diffRows(p: Platform, runId: string, orderType = OrderType.UNSPECIFIED): Promise<DiffRow[]> {
  const rows: DiffRow[] = [];
  for await (const m of p.reconClient.streamDiffRows({ runId, orderType })) rows.push(...m.rows);
  return rows;
}

async function auditRows(p: Platform, runId: string): Promise<AuditRow[]> {
  const rows: AuditRow[] = [];
  for await (const m of p.reconClient.streamAuditRows({ runId })) rows.push(...m.rows);
  return rows;
}

/** A day of business: payments, a settlement, withdrawals (some refused), all through the merchant. */
async function simulateDay(p: Platform, seed: bigint, prefix = "saler"): Promise<void> {
  const pay = await p.merchantClient.simulate({ count: 200, concurrency: 16, accounts: 8, accountPrefix: prefix, minAmount: 100n, maxAmount: 5000n, seed });
  expect(pay.succeeded).to.equal(200);
  await p.paymentClient.settle({});
  const out = await p.merchantClient.simulate({
    orderType: OrderType.WITHDRAWAL,
    count: 60,
    concurrency: 16,
    accounts: 8,
    accountPrefix: prefix,
    minAmount: 1000n,
    maxAmount: 30000n,
    seed: seed + 1n,
  });
  expect(out.succeeded + out.failed).to.equal(60);
}

for (const backend of backends()) {
  describe(`live reconciliation and audit [${backend.name}]`, () => {
    let p: Platform;
    beforeEach(async () => {
      p = await startPlatform(backend);
    });
    afterEach(async () => p?.close());

    it("after a correct day every order is F000 and every account SUCCESS", async () => {
      await simulateDay(p, 42n);
      const { run } = await p.reconClient.reconcile({});
      const [payments, withdrawals] = run!.diffs;
      expect(payments).to.include({ orderType: OrderType.PAYMENT, f000Count: 200n, f113Count: 0n, f114Count: 0n, f115Count: 0n });
      expect(withdrawals!.f000Count > 0n, "some withdrawals succeeded").to.equal(true);
      expect(withdrawals).to.include({ f113Count: 0n, f114Count: 0n, f115Count: 0n });
      expect(run!.balanced).to.equal(true);
      // Four exports and two diffs kept in the run's directory.
      for (const name of ["merchant_payments.csv", "payment_payments.csv", "merchant_withdrawals.csv", "payment_withdrawals.csv", "payment_diff.csv", "withdrawal_diff.csv", "summary.json"]) {
        expect((await readFile(join(run!.directory, name), "utf8")).length, name).to.be.greaterThan(0);
      }
      const audit = await p.reconClient.audit({});
      expect(audit.run!.audit).to.include({ accounts: 8n, success: 8n, fail: 0n });
      const rows = await auditRows(p, audit.run!.runId);
      for (const r of rows) {
        const { account } = await p.paymentClient.getBalance({ salerId: r.salerId });
        expect(r.balance).to.equal(account!.balance + account!.pending);
        expect(r.auditAmount).to.equal(r.balance);
      }
    });

    it("finds exactly the differences planted in either database", async () => {
      await simulateDay(p, 7n);
      const merchantDb = p.merchant.db.knex;
      const paymentDb = p.payment.db.knex;
      const ok = await merchantDb("merchant_orders").where({ order_type: "PAYMENT", state: "SUCCESS" }).orderBy("response_id").limit(3);
      const [lost, tampered, extra] = ok as { request_id: string; response_id: string; saler_id: string; amount: unknown }[];
      // Only in the payment system: the merchant lost its record.
      await merchantDb("merchant_orders").where({ request_id: lost!.request_id }).delete();
      // Amount differs: the merchant's record was altered.
      await merchantDb("merchant_orders").where({ request_id: tampered!.request_id }).update({ amount: 1n });
      // Only in the merchant system: the payment system lost its order row.
      await paymentDb("payment_orders").where({ request_id: extra!.request_id }).delete();

      const { run } = await p.reconClient.reconcile({});
      const rows = (await diffRows(p, run!.runId, OrderType.PAYMENT)).filter((r) => r.diffType !== "F000");
      expect(rows.map((r) => [r.diffType, r.responseId])).to.deep.equal([
        ["F113", lost!.response_id],
        ["F115", tampered!.response_id],
        ["F114", extra!.response_id],
      ]);
      expect(rows[1]!.merchantAmount).to.equal(1n);
      expect(rows[1]!.amount).to.equal(rows[1]!.paymentAmount);
      expect(run!.diffs[0]).to.include({ f000Count: 197n, f113Count: 1n, f114Count: 1n, f115Count: 1n });

      // The audit fails exactly the accounts whose merchant records no longer add up: the lost
      // and the tampered order's accounts (the deleted payment row was already in the balance).
      const audit = await p.reconClient.audit({});
      const failed = (await auditRows(p, audit.run!.runId)).filter((r) => r.result === "FAIL").map((r) => r.salerId).sort();
      expect(failed).to.deep.equal([...new Set([lost!.saler_id, tampered!.saler_id])].sort());
    });

    it("refuses a cut-off later than now minus the lag, which could give false differences, and creates no run", async () => {
      const before = (await p.reconClient.listRuns({})).runs.length;
      for (const call of [() => p.reconClient.reconcile({ cutoffTime: clock.secondsAgo(-60) }), () => p.reconClient.audit({ cutoffTime: clock.secondsAgo(-60) })]) {
        const e = await call().then(
          () => undefined,
          (err: unknown) => err as { code: number; rawMessage: string },
        );
        expect(e, "refused").to.not.equal(undefined);
        expect(e!.rawMessage).to.match(/^cutoff_time: must not be later than now minus 0 s/);
      }
      expect((await p.reconClient.listRuns({})).runs.length).to.equal(before);
    });

    it("repeats: the same cut-off gives byte-identical diff files and the same summary", async () => {
      await simulateDay(p, 99n);
      await p.merchant.db.knex("merchant_orders").where({ order_type: "PAYMENT" }).orderBy("id").limit(1).update({ amount: 3n });
      const cutoffTime = clock.current();
      while (clock.current() === cutoffTime) await new Promise((r) => setTimeout(r, 50));
      const a = (await p.reconClient.reconcile({ cutoffTime })).run!;
      await p.merchantClient.simulate({ count: 20, concurrency: 4, accounts: 3, seed: 5n }); // after the cut-off
      const b = (await p.reconClient.reconcile({ cutoffTime })).run!;
      expect(b.runId).to.not.equal(a.runId);
      expect(b.diffs).to.deep.equal(a.diffs);
      for (const name of ["payment_diff.csv", "withdrawal_diff.csv"]) {
        expect(await readFile(join(b.directory, name), "utf8")).to.equal(await readFile(join(a.directory, name), "utf8"));
      }
    });

    it("finds exactly the faults a simulation injected, no more", async () => {
      const sim = await p.merchantClient.simulate({
        count: 300,
        concurrency: 16,
        accounts: 10,
        minAmount: 1n,
        maxAmount: 9999n,
        seed: 2026n,
        faults: { lostResponses: 4, tamperedAmounts: 3, merchantOnly: 2 },
      });
      expect(sim.injected).to.have.length(9);
      const { run } = await p.reconClient.reconcile({ resolveUnknown: true });
      const found = (await diffRows(p, run!.runId, OrderType.PAYMENT))
        .filter((r) => r.diffType !== "F000")
        .map((r) => `${r.diffType} ${r.responseId} m=${r.merchantAmount} p=${r.paymentAmount}`)
        .sort();
      const expected = sim.injected
        .map((f) => `${f.expectedDiffType} ${f.responseId} m=${f.merchantAmount} p=${f.paymentAmount}`)
        .sort();
      expect(found).to.deep.equal(expected);
      expect(run!.diffs[0]!.f000Count).to.equal(BigInt(300 - 4 - 3 - 2));
    });

    it("audits true while credits are still buffered and while payments and settlements keep flowing", async () => {
      await p.merchantClient.simulate({ count: 150, concurrency: 16, accounts: 6, seed: 11n });
      // Nothing settled yet: every credit is still pending.
      let audit = await p.reconClient.audit({});
      expect(audit.run!.audit).to.include({ accounts: 6n, success: 6n, fail: 0n });

      let flowing = true;
      const traffic = (async () => {
        let seed = 100n;
        while (flowing) await p.merchantClient.simulate({ count: 40, concurrency: 8, accounts: 6, seed: seed++ });
      })();
      const settling = (async () => {
        while (flowing) await p.paymentClient.settle({});
      })();
      try {
        await new Promise((r) => setTimeout(r, 1500));
        for (let i = 0; i < 3; i++) {
          // Orders answered up to two seconds ago are all recorded on both sides by now.
          audit = await p.reconClient.audit({ cutoffTime: clock.secondsAgo(2) });
          expect(audit.run!.audit!.fail, `audit ${i}`).to.equal(0n);
          const recon = await p.reconClient.reconcile({ cutoffTime: clock.secondsAgo(2) });
          expect(recon.run!.balanced, `reconciliation ${i}`).to.equal(true);
          await new Promise((r) => setTimeout(r, 500));
        }
      } finally {
        flowing = false;
        await Promise.all([traffic, settling]);
      }
    });
  });
}
