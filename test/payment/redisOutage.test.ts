/**
 * Redis unreachable or restarted empty while payments are taken: the database holds every
 * acknowledged payment, and settlement credits each once when Redis is back.
 */
import { expect } from "chai";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { createGrpcClient, type GrpcClientHandle } from "../../services/shared/rpc/grpcClient.js";
import { startPaymentSystem, type PaymentSystem } from "../../services/payment/system.js";
import { backends, freshStore, paymentConfig, silentLogger, uniqueName, type Store } from "../harness.js";
import { amountFor, countRows, inParallel, payRequest, storedBalance } from "./fixtures.js";
import { Relay } from "./relay.js";
import { deleteRedisKeys } from "../support/cleanup.js";

for (const backend of backends().filter((b) => b.redisUrl !== undefined)) {
  describe(`Redis outage [${backend.name}]`, () => {
    let store: Store;
    let prefix: string;
    let relay: Relay;
    let system: PaymentSystem;
    let handle: GrpcClientHandle<typeof PaymentService>;
    let owed: Map<string, bigint>;

    beforeEach(async () => {
      store = freshStore(backend, "payment");
      prefix = uniqueName("tp");
      const redis = new URL(backend.redisUrl!);
      relay = await Relay.start(`${redis.hostname}:${redis.port || 6379}`);
      system = await startPaymentSystem(paymentConfig(backend, store, prefix, { redisUrl: `redis://${relay.address}` }), silentLogger);
      handle = createGrpcClient(PaymentService, system.server.grpcAddress);
      owed = new Map();
      await handle.client.settle({});
    });
    afterEach(async () => {
      handle.close();
      relay.restore();
      await system.close();
      await relay.close();
      await deleteRedisKeys(backend.redisUrl!, prefix);
      await store.drop();
    });

    async function pay(count: number, tag: string): Promise<void> {
      await inParallel(count, 16, async (i) => {
        const req = payRequest(`${tag}${i % 5}`, amountFor(i));
        const r = await handle.client.pay(req);
        expect(r.responseCode).to.equal("SUCCESS");
        owed.set(req.salerId, (owed.get(req.salerId) ?? 0n) + req.totalFee);
      });
    }

    /** Waits until the buffer answers again (the client reconnects on its own schedule). */
    async function redisBack(): Promise<void> {
      for (let i = 0; i < 200; i++) {
        try {
          await system.buffer.isIntact();
          return;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      throw new Error("Redis did not come back");
    }

    async function expectExactlyCredited(): Promise<void> {
      for (const [a, s] of owed) expect(await storedBalance(system.db.knex, a), a).to.equal(s);
      expect(await countRows(system.db.knex, "payment_orders", { settlement_id: null })).to.equal(0);
    }

    it("payments taken while Redis is unreachable succeed and are credited once it is back", async () => {
      await pay(40, "before");
      relay.cut();
      await pay(30, "during");
      relay.restore();
      await redisBack();
      const r = await handle.client.settle({});
      expect(r.ran).to.equal(true);
      await expectExactlyCredited();
      expect((await handle.client.settle({ fullSweep: true })).amountSettled).to.equal(0n);
    });

    it("settlement attempted during the outage credits nothing; Redis back empty, everything is credited once", async () => {
      await pay(40, "before");
      relay.cut();
      await pay(30, "during");
      let failed = false;
      try {
        await handle.client.settle({});
      } catch {
        failed = true;
      }
      expect(failed, "settlement without Redis").to.equal(true);
      expect(await countRows(system.db.knex, "payment_orders", { settlement_id: null })).to.equal(70);
      // Redis restarts without its data.
      await deleteRedisKeys(backend.redisUrl!, prefix);
      relay.restore();
      await redisBack();
      await pay(10, "after");
      await handle.client.settle({});
      await expectExactlyCredited();
    });
  });
}
