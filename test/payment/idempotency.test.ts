import { expect } from "chai";
import { Code, ConnectError } from "@connectrpc/connect";
import { backends, startPlatform, type Platform } from "../harness.js";
import { amountFor, countRows, expectCode, inParallel, paymentRowCounts, payRequest, settleLoop, storedBalance, withdrawRequest } from "./fixtures.js";

for (const backend of backends()) {
  describe(`idempotency by request_id [${backend.name}]`, () => {
    let p: Platform;
    beforeEach(async () => {
      p = await startPlatform(backend);
    });
    afterEach(async () => p?.close());

    it("each of 200 payments sent 5 times at once is recorded and credited once, every copy answered alike", async () => {
      const requests = Array.from({ length: 200 }, (_, i) => payRequest(`idem${i % 7}`, amountFor(i)));
      const settling = settleLoop((r) => p.paymentClient.settle(r));
      const answers = await inParallel(requests.length * 5, 64, async (k) => {
        const req = requests[k % requests.length]!;
        return { req, res: await p.paymentClient.pay(req) };
      });
      const during = await settling.stop();
      const final = await p.paymentClient.settle({});

      const first = new Map<string, (typeof answers)[number]["res"]>();
      for (const { req, res } of answers) {
        expect(res.responseCode).to.equal("SUCCESS");
        expect(res.requestId).to.equal(req.requestId);
        expect(res.totalFee).to.equal(req.totalFee);
        expect(res.salerId).to.equal(req.salerId);
        const seen = first.get(req.requestId);
        if (seen) expect(res).to.deep.equal(seen);
        else first.set(req.requestId, res);
      }
      expect(first.size).to.equal(200);
      expect(new Set([...first.values()].map((r) => r.responseId)).size).to.equal(200);
      expect(await countRows(p.payment.db.knex, "payment_orders")).to.equal(200);

      const total = requests.reduce((a, r) => a + r.totalFee, 0n);
      expect(during.amount + final.amountSettled).to.equal(total);
      for (let a = 0; a < 7; a++) {
        const expected = requests.filter((r) => r.salerId === `idem${a}`).reduce((s, r) => s + r.totalFee, 0n);
        expect(await storedBalance(p.payment.db.knex, `idem${a}`)).to.equal(expected);
      }
      // A retry long after settlement still gets the same answer and credits nothing.
      const late = await p.paymentClient.pay(requests[0]!);
      expect(late).to.deep.equal(first.get(requests[0]!.requestId));
      expect((await p.paymentClient.settle({ fullSweep: true })).amountSettled).to.equal(0n);
    });

    it("the same request_id with a different body is refused with ALREADY_EXISTS and writes nothing", async () => {
      const original = payRequest("body-a", 1_000n);
      const stored = await p.paymentClient.pay(original);
      expect(stored.responseCode).to.equal("SUCCESS");
      const before = await paymentRowCounts(p);

      for (const changed of [
        { ...original, totalFee: 1_001n },
        { ...original, salerId: "body-b" },
        { ...original, salerId: "body-b", totalFee: 1n },
      ]) {
        const e = await expectCode(p.paymentClient.pay(changed), Code.AlreadyExists);
        expect(e.rawMessage).to.match(/^request_id: /);
      }
      expect(await paymentRowCounts(p)).to.deep.equal(before);
      await p.paymentClient.settle({});
      expect(await storedBalance(p.payment.db.knex, "body-a")).to.equal(1_000n);
      expect(await countRows(p.payment.db.knex, "accounts", { saler_id: "body-b" })).to.equal(0);

      // Withdrawals follow the same rule.
      const w = withdrawRequest("body-a", 100n);
      const wr = await p.paymentClient.withdraw(w);
      expect(wr.responseCode).to.equal("SUCCESS");
      await expectCode(p.paymentClient.withdraw({ ...w, withdrawMoney: 101n }), Code.AlreadyExists);
      await expectCode(p.paymentClient.withdraw({ ...w, salerId: "body-b" }), Code.AlreadyExists);
      expect(await p.paymentClient.withdraw(w)).to.deep.equal(wr);
      expect(await storedBalance(p.payment.db.knex, "body-a")).to.equal(900n);
      expect(await countRows(p.payment.db.knex, "withdrawal_orders")).to.equal(1);
    });

    it("different bodies racing on one request_id: one body wins, the rest are refused, nothing else is written", async () => {
      for (let round = 0; round < 10; round++) {
        const base = payRequest(`race${round}-0`, 10n);
        const bodies = Array.from({ length: 8 }, (_, i) => ({ ...base, salerId: `race${round}-${i}`, totalFee: BigInt(10 + i) }));
        const outcomes = await Promise.all(
          bodies.map((b) =>
            p.paymentClient.pay(b).then(
              (res) => ({ b, res }),
              (err: unknown) => ({ b, err: ConnectError.from(err) }),
            ),
          ),
        );
        const won = outcomes.filter((o): o is { b: (typeof bodies)[number]; res: Awaited<ReturnType<typeof p.paymentClient.pay>> } => "res" in o);
        expect(won.length, `round ${round}`).to.equal(1);
        for (const o of outcomes) if ("err" in o) expect(Code[o.err.code]).to.equal("AlreadyExists");
        const winner = won[0]!;
        const rows = (await p.payment.db.knex("payment_orders").where({ request_id: base.requestId }).select("saler_id", "total_fee")) as {
          saler_id: string;
          total_fee: unknown;
        }[];
        expect(rows.map((r) => [r.saler_id, BigInt(String(r.total_fee))])).to.deep.equal([[winner.b.salerId, winner.b.totalFee]]);
        const accounts = (await p.payment.db.knex("accounts").where("saler_id", "like", `race${round}-%`).select("saler_id")) as { saler_id: string }[];
        expect(accounts.map((a) => a.saler_id), "accounts created for refused bodies").to.deep.equal([winner.b.salerId]);
      }
    });
  });
}
