/**
 * Several payment processes on one database: each is a full payment system (its own pool,
 * buffer client, id sequence and settlement), as separate processes would be.
 */
import { expect } from "chai";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { createGrpcClient, type GrpcClientHandle } from "../../services/shared/rpc/grpcClient.js";
import { startPaymentSystem, type PaymentSystem } from "../../services/payment/system.js";
import { backends, freshStore, paymentConfig, silentLogger, uniqueName, type Backend, type Store } from "../harness.js";
import { amountFor, countRows, inParallel, payRequest, settleLoop, storedBalance, withdrawRequest, MSG_INSUFFICIENT_BALANCE } from "./fixtures.js";
import { deleteRedisKeys } from "../support/cleanup.js";

interface Instance {
  system: PaymentSystem;
  client: GrpcClientHandle<typeof PaymentService>;
  prefix: string;
}

async function startInstances(backend: Backend, store: Store, prefixes: string[]): Promise<Instance[]> {
  const instances: Instance[] = [];
  for (const prefix of prefixes) {
    const system = await startPaymentSystem(paymentConfig(backend, store, prefix, { settleChunkSize: 4 }), silentLogger);
    instances.push({ system, client: createGrpcClient(PaymentService, system.server.grpcAddress), prefix });
  }
  return instances;
}

for (const backend of backends().filter((b) => b.mysqlUrl !== undefined)) {
  describe(`several payment processes on one database [${backend.name}]`, () => {
    let store: Store;
    let instances: Instance[] = [];

    beforeEach(() => {
      store = freshStore(backend, "payment");
    });
    afterEach(async () => {
      for (const i of instances) {
        i.client.close();
        await i.system.close();
      }
      for (const prefix of new Set(instances.map((i) => i.prefix))) await deleteRedisKeys(backend.redisUrl!, prefix);
      instances = [];
      await store.drop();
    });

    async function payThroughAll(count: number, accounts: number): Promise<Map<string, bigint>> {
      const owed = new Map<string, bigint>();
      await inParallel(count, 64, async (i) => {
        const req = payRequest(`multi${i % accounts}`, amountFor(i));
        const via = instances[i % instances.length]!;
        const r = await via.client.client.pay(req);
        expect(r.responseCode).to.equal("SUCCESS");
        owed.set(req.salerId, (owed.get(req.salerId) ?? 0n) + req.totalFee);
      });
      return owed;
    }

    async function expectExactlyCredited(owed: Map<string, bigint>, settledByRuns: bigint): Promise<void> {
      const knex = instances[0]!.system.db.knex;
      const total = [...owed.values()].reduce((a, b) => a + b, 0n);
      expect(settledByRuns, "sum of what the settlement runs reported").to.equal(total);
      for (const [a, s] of owed) expect(await storedBalance(knex, a), a).to.equal(s);
      expect(await countRows(knex, "payment_orders", { settlement_id: null })).to.equal(0);
      const [row] = (await knex("settlements").sum({ s: "amount" })) as { s: unknown }[];
      expect(BigInt(String(row?.s ?? 0))).to.equal(total);
    }

    it("two instances sharing one Redis prefix take payments and settle in loops at once: each credit once", async () => {
      const prefix = uniqueName("tp");
      instances = await startInstances(backend, store, [prefix, prefix]);
      const loops = instances.map((i) => settleLoop((r) => i.client.client.settle(r), { fullSweepEvery: 7 }));
      const owed = await payThroughAll(1200, 30);
      let settled = 0n;
      for (const l of loops) settled += (await l.stop()).amount;
      for (const i of instances) settled += (await i.client.client.settle({ fullSweep: true })).amountSettled;
      await expectExactlyCredited(owed, settled);
    });

    it("three instances with separate buffers (no shared lease) sweeping and settling at once: each credit once", async () => {
      instances = await startInstances(backend, store, [uniqueName("tp"), uniqueName("tp"), uniqueName("tp")]);
      // Every settler sweeps the whole table each time, so they contend for the same rows.
      const loops = instances.map((i) => settleLoop((r) => i.client.client.settle(r), { fullSweepEvery: 1 }));
      const owed = await payThroughAll(1200, 12);
      let settled = 0n;
      for (const l of loops) settled += (await l.stop()).amount;
      const finals = await Promise.all(instances.map((i) => i.client.client.settle({ fullSweep: true })));
      for (const f of finals) settled += f.amountSettled;
      await expectExactlyCredited(owed, settled);
    });

    it("withdrawals through two instances while both settle never overdraw", async () => {
      const prefix = uniqueName("tp");
      instances = await startInstances(backend, store, [prefix, prefix]);
      const [a, b] = instances as [Instance, Instance];
      await a.client.client.pay(payRequest("shared", 10_000n));
      await a.client.client.settle({});
      const loops = instances.map((i) => settleLoop((r) => i.client.client.settle(r)));
      const answers = await inParallel(200, 64, async (i) => (i % 2 === 0 ? a : b).client.client.withdraw(withdrawRequest("shared", 300n)));
      for (const l of loops) await l.stop();
      const ok = answers.filter((w) => w.responseCode === "SUCCESS");
      expect(ok.length).to.equal(33);
      for (const w of answers.filter((x) => x.responseCode !== "SUCCESS")) expect(w.responseMsg).to.equal(MSG_INSUFFICIENT_BALANCE);
      expect(await storedBalance(a.system.db.knex, "shared")).to.equal(100n);
      expect(new Set(answers.map((w) => w.responseId)).size).to.equal(200);
    });
  });
}
