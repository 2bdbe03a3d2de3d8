import { expect } from "chai";
import { Code } from "@connectrpc/connect";
import type { SettlementFaults } from "../../services/payment/settlement.js";
import { backends, startPlatform, type Platform } from "../harness.js";
import { amountFor, countRows, expectCode, inParallel, payRequest, storedBalance, sumBy, wipeCreditBuffer } from "./fixtures.js";

class InjectedFailure extends Error {}

for (const backend of backends()) {
  describe(`settlement interrupted [${backend.name}]`, () => {
    let p: Platform;
    /** Hooks read at call time: each test arms and disarms them. */
    const faults: SettlementFaults = {};
    let owed: Map<string, bigint>;

    beforeEach(async () => {
      for (const k of Object.keys(faults)) delete faults[k as keyof SettlementFaults];
      // Three accounts per settlement transaction, so a run spans several chunks.
      p = await startPlatform(backend, { settlementFaults: faults, payment: { settleChunkSize: 3 } });
      owed = new Map();
      // A first, clean settlement: later runs start from a rebuilt buffer, not a first-run sweep.
      await p.paymentClient.settle({});
    });
    afterEach(async () => p?.close());

    async function pay(count: number, accounts: number, prefix = "acct"): Promise<void> {
      const answers = await inParallel(count, 32, async (i) => {
        const req = payRequest(`${prefix}${i % accounts}`, amountFor(i));
        const r = await p.paymentClient.pay(req);
        expect(r.responseCode).to.equal("SUCCESS");
        return req;
      });
      for (const [a, s] of sumBy(answers, (r) => r.salerId, (r) => r.totalFee)) owed.set(a, (owed.get(a) ?? 0n) + s);
    }

    function total(): bigint {
      return [...owed.values()].reduce((a, b) => a + b, 0n);
    }

    /** Balances equal what is owed, nothing pending, and the settlements table adds up. */
    async function expectExactlyCredited(): Promise<void> {
      const knex = p.payment.db.knex;
      for (const [a, s] of owed) expect(await storedBalance(knex, a), a).to.equal(s);
      expect(await countRows(knex, "payment_orders", { settlement_id: null })).to.equal(0);
      const [row] = (await knex("settlements").sum({ s: "amount" })) as { s: unknown }[];
      expect(BigInt(String(row?.s ?? 0))).to.equal(total());
      const [stamped] = (await knex("payment_orders").whereNotNull("settlement_id").sum({ s: "total_fee" })) as { s: unknown }[];
      expect(BigInt(String(stamped?.s ?? 0))).to.equal(total());
    }

    async function balances(): Promise<bigint> {
      let sum = 0n;
      for (const a of owed.keys()) sum += await storedBalance(p.payment.db.knex, a);
      return sum;
    }

    it("fails after draining the buffer: nothing is credited, the next run credits all of it once", async () => {
      await pay(120, 10);
      faults.afterDrain = async () => {
        throw new InjectedFailure("after drain");
      };
      await expectCode(p.paymentClient.settle({}), Code.Internal);
      expect(await balances()).to.equal(0n);
      delete faults.afterDrain;
      const r = await p.paymentClient.settle({});
      expect(r.amountSettled).to.equal(total());
      expect((await p.paymentClient.settle({})).amountSettled).to.equal(0n);
      await expectExactlyCredited();
    });

    it("fails before committing a chunk: that chunk rolls back and its accounts settle one by one in the same run, each once", async () => {
      await pay(120, 10);
      const transactions: (readonly string[])[] = [];
      faults.beforeCommit = async (_trx, accounts) => {
        transactions.push(accounts);
        // Let the first chunk commit, fail the second.
        if (transactions.length === 2) throw new InjectedFailure("before commit");
      };
      const r = await p.paymentClient.settle({});
      expect(r.amountSettled).to.equal(total());
      // 10 accounts in chunks of 3: the second chunk again, as three transactions of one account.
      expect(transactions.map((t) => t.length)).to.deep.equal([3, 3, 1, 1, 1, 3, 1]);
      expect(transactions.slice(2, 5).flat()).to.deep.equal([...transactions[1]!]);
      delete faults.beforeCommit;
      expect((await p.paymentClient.settle({ fullSweep: true })).amountSettled).to.equal(0n);
      await expectExactlyCredited();
    });

    it("fails before committing every transaction: the run answers, credits nothing, and the next run credits all of it once", async () => {
      await pay(60, 7);
      faults.beforeCommit = async () => {
        throw new InjectedFailure("before commit");
      };
      const r = await p.paymentClient.settle({});
      expect(r.ran).to.equal(true);
      expect(r.amountSettled).to.equal(0n);
      expect(await balances()).to.equal(0n);
      delete faults.beforeCommit;
      expect((await p.paymentClient.settle({})).amountSettled).to.equal(total());
      await expectExactlyCredited();
    });

    it("fails after committing a chunk, before the buffer hears of it: the retry credits nothing twice", async () => {
      await pay(120, 10);
      faults.afterCommit = async () => {
        throw new InjectedFailure("after commit");
      };
      await expectCode(p.paymentClient.settle({}), Code.Internal);
      const partial = await balances();
      expect(partial > 0n && partial < total()).to.equal(true);
      delete faults.afterCommit;
      const r = await p.paymentClient.settle({});
      expect(partial + r.amountSettled).to.equal(total());
      expect((await p.paymentClient.settle({})).amountSettled).to.equal(0n);
      await expectExactlyCredited();
    });

    it("fails at every point in turn while payments keep coming: everything ends credited exactly once", async () => {
      const points: (keyof SettlementFaults)[] = ["afterDrain", "beforeCommit", "afterCommit"];
      for (let round = 0; round < 6; round++) {
        await pay(40, 8, `r${round % 2}-`);
        const point = points[round % points.length]!;
        faults[point] = async () => {
          throw new InjectedFailure(point);
        };
        // A failure inside the settlement transactions is the accounts' (each is skipped and
        // stays pending); one outside them stops the run.
        if (point === "beforeCommit") expect((await p.paymentClient.settle({})).amountSettled).to.equal(0n);
        else await expectCode(p.paymentClient.settle({}), Code.Internal);
        delete faults[point];
      }
      await p.paymentClient.settle({});
      await expectExactlyCredited();
    });

    it("the buffer is wiped after payments were acknowledged: the next run still credits each once", async () => {
      await pay(150, 12);
      await wipeCreditBuffer(p);
      const r = await p.paymentClient.settle({});
      expect(r.swept).to.equal(true);
      expect(r.amountSettled).to.equal(total());
      await expectExactlyCredited();
    });

    it("the buffer is wiped after a run died with drained accounts: the next run credits them once", async () => {
      await pay(90, 9);
      faults.afterCommit = async () => {
        throw new InjectedFailure("after commit");
      };
      await expectCode(p.paymentClient.settle({}), Code.Internal);
      delete faults.afterCommit;
      await wipeCreditBuffer(p);
      await pay(30, 5, "late");
      await p.paymentClient.settle({});
      await expectExactlyCredited();
    });

    for (const why of ["a full sweep", "a sweep after an earlier wipe", "a run from the buffer"] as const) {
      it(`the buffer is wiped during ${why}, after a payment the run did not see: the next run credits it`, async () => {
        await pay(30, 6);
        if (why === "a sweep after an earlier wipe") await wipeCreditBuffer(p);
        let once = true;
        faults.afterCommit = async () => {
          if (!once) return;
          once = false;
          // A payment acknowledged mid-run, then the buffer loses everything, the new credit included.
          const req = payRequest("mid-run", 777n);
          expect((await p.paymentClient.pay(req)).responseCode).to.equal("SUCCESS");
          owed.set("mid-run", 777n);
          await wipeCreditBuffer(p);
        };
        const first = await p.paymentClient.settle({ fullSweep: why === "a full sweep" });
        expect(first.swept).to.equal(why !== "a run from the buffer");
        delete faults.afterCommit;
        await p.paymentClient.settle({});
        await expectExactlyCredited();
      });
    }

    it("payments recorded while a settlement transaction is open are credited by the next run, not lost", async () => {
      await pay(30, 6);
      const during: Promise<unknown>[] = [];
      faults.beforeCommit = async () => {
        // Not awaited: on the embedded database the payment waits for this transaction's connection.
        for (let i = 0; i < 3; i++) {
          const req = payRequest(`acct${i}`, 1_000n + BigInt(i));
          owed.set(req.salerId, (owed.get(req.salerId) ?? 0n) + req.totalFee);
          during.push(p.paymentClient.pay(req));
        }
      };
      await p.paymentClient.settle({});
      delete faults.beforeCommit;
      await Promise.all(during);
      await p.paymentClient.settle({});
      await expectExactlyCredited();
    });
  });
}
