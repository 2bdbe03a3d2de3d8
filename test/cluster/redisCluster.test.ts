/**
 * The credit buffer on a real Redis Cluster: 3 masters with a replica each, every node a
 * redis-server of its own on loopback, created by the test and removed by it.
 *
 * 1. Every transaction and script of the buffer runs on one hash slot: a cross-slot command is
 *    refused by the cluster (CROSSSLOT), and the buffer's keys, all under one hash tag, are served
 *    by every operation of the buffer.
 * 2. A client that sees a cluster node go away marks the due set incomplete once the cluster
 *    answers again: the promoted replica may lack credits the lost master acknowledged.
 * 3. Under payment load with settlement every second, the master serving the buffer's slot is
 *    SIGKILLed; its replica is promoted, callers see no failure before the kill (start-up
 *    included) nor beyond a bounded window after it, and at the end every acknowledged payment
 *    is settled exactly once and reconciliation is clean.
 */
import { expect } from "chai";
import { RedisCreditBuffer } from "../../services/payment/creditBuffer.js";
import { uniqueName } from "../harness.js";
import { BalanceSampler, Load } from "../faults/load.js";
import { describeReport, finishRun } from "../faults/accounting.js";
import { faultSeed } from "../faults/schedule.js";
import { FaultPlatform } from "../faults/platform.js";
import { sleep } from "../faults/processes.js";
import { LocalRedisCluster } from "./engines.js";
import { engineMissing, expectClean, expectFailuresWithin, expectNoFailuresBefore, mysqlUrl, serverUrl, summarize } from "./common.js";

if (!mysqlUrl && process.env.REQUIRE_REAL_BACKENDS === "1") throw new Error("REQUIRE_REAL_BACKENDS=1 but TEST_MYSQL_URL is not set");

/** How long after the kill callers may see calls end without an outcome. */
const FAILOVER_WINDOW_MS = 20_000;

if (!LocalRedisCluster.available()) {
  engineMissing("redis-server or redis-cli is not installed");
  describe("Redis Cluster (skipped: redis-server and redis-cli are not installed)", () => {
    it("needs redis-server and redis-cli");
  });
} else {
  describe("credit buffer on a Redis Cluster", function () {
    this.timeout(240_000);
    let cluster: LocalRedisCluster;

    before(async () => {
      cluster = await LocalRedisCluster.start(3, 1, 2000);
    });

    after(async () => {
      await cluster?.close();
    });

    it("runs every multi-key command of the buffer on one slot, where a cross-slot command is refused", async () => {
      const node = cluster.liveNodes[0]!;
      // Without a common hash tag the drain script's keys fall in different slots: refused.
      const untagged = ["payment:due", "payment:settling"];
      const slots = await Promise.all(untagged.map((k) => cluster.command<number>(node, "CLUSTER", "KEYSLOT", k)));
      expect(slots[0]).to.not.equal(slots[1]);
      const owner = await cluster.masterOf(untagged[0]!);
      let refused: unknown;
      try {
        await cluster.command(owner, "EVAL", "return redis.call('SUNIONSTORE', KEYS[2], KEYS[2], KEYS[1])", 2, untagged[0]!, untagged[1]!);
      } catch (err) {
        refused = err;
      }
      expect(String(refused)).to.match(/CROSSSLOT/);

      const prefix = uniqueName("slot");
      const buffer = RedisCreditBuffer.connect({ clusterNodes: cluster.nodes.map((n) => ({ host: "127.0.0.1", port: n.port })) }, prefix);
      try {
        const keySlots = new Set(await Promise.all(buffer.allKeys().map((k) => cluster.command<number>(node, "CLUSTER", "KEYSLOT", k))));
        expect(keySlots.size).to.equal(1);
        // Every operation, multi-key ones included, on the real cluster.
        await buffer.markRebuilt();
        expect(await buffer.isIntact()).to.equal(true);
        await buffer.addAll([
          { salerId: "a", amount: 100n },
          { salerId: "b", amount: 7n },
          { salerId: "a", amount: 5n },
        ]);
        await buffer.add("c", 1n);
        expect(await buffer.buffered("a")).to.equal(105n);
        expect((await buffer.beginDrain()).sort()).to.deep.equal(["a", "b", "c"]);
        await buffer.add("d", 2n);
        await buffer.finishDrain(new Map([["a", 105n], ["b", 7n]]), ["a", "b"]);
        expect(await buffer.buffered("a")).to.equal(0n);
        expect(await buffer.buffered("c")).to.equal(1n);
        expect((await buffer.beginDrain()).sort()).to.deep.equal(["c", "d"]);
        const lease = await buffer.acquireLease(5000);
        expect(lease).to.not.equal(undefined);
        expect(await buffer.acquireLease(5000)).to.equal(undefined);
        expect(await lease!.renew()).to.equal(true);
        await lease!.release();
        expect(await buffer.acquireLease(5000)).to.not.equal(undefined);
        await buffer.invalidate();
        expect(await buffer.isIntact()).to.equal(false);
      } finally {
        await buffer.close();
      }
    });

    it("marks the due set incomplete after a failover, so the next settlement sweeps the orders table", async () => {
      const prefix = uniqueName("failover");
      const buffer = RedisCreditBuffer.connect({ clusterNodes: cluster.nodes.map((n) => ({ host: "127.0.0.1", port: n.port })) }, prefix);
      try {
        await buffer.markRebuilt();
        await buffer.add("a", 1n);
        expect(await buffer.isIntact()).to.equal(true);
        // Long enough for the replica to hold the marker: only the client can tell it is stale.
        await sleep(1_000);
        // Writes the lost master acknowledged may never have reached the promoted replica.
        const master = await cluster.masterOf(`{${prefix}}:due`);
        await master.process.kill();
        await cluster.waitHealthy(30_000);
        const until = Date.now() + 15_000;
        while ((await buffer.isIntact().catch(() => true)) && Date.now() < until) await sleep(200);
        expect(await buffer.isIntact(), "due set marked incomplete").to.equal(false);
        // The killed node comes back as a replica of the promoted one.
        await master.process.start();
        await cluster.waitHealthy(30_000);
        expect((await cluster.masterOf(`{${prefix}}:due`)).port).to.not.equal(master.port);
      } finally {
        await buffer.close();
      }
    });

    if (!mysqlUrl) {
      it("settles every acknowledged payment once across a failover (skipped: TEST_MYSQL_URL is not set)");
    } else {
      it("settles every acknowledged payment exactly once when the master of the buffer's slot is SIGKILLed and its replica promoted", async function () {
        const seed = faultSeed();
        const platform = new FaultPlatform({
          scenario: "Redis Cluster master SIGKILL",
          seed,
          mysqlServerUrl: serverUrl(mysqlUrl!),
          redisUrl: "",
          redisClusterNodes: cluster.seedList,
        });
        const load = new Load(platform, seed, 6);
        const sampler = new BalanceSampler(platform);
        try {
          await platform.start();
          load.start();
          sampler.start();
          await sleep(6_000);
          const [settledBefore] = await platform.query<{ n: string }>("payment", "SELECT COUNT(*) AS n FROM payment_orders WHERE settlement_id IS NOT NULL");
          expect(Number(settledBefore!.n), "payments settled before the kill").to.be.greaterThan(0);

          const master = await cluster.masterOf(`{${platform.redisPrefix}}:due`);
          expectNoFailuresBefore(load, Date.now());
          const killedAt = Date.now();
          await master.process.kill();
          await cluster.waitHealthy(30_000);
          const promoted = await cluster.masterOf(`{${platform.redisPrefix}}:due`);
          expect(promoted.port, "a replica took over the buffer's slot").to.not.equal(master.port);
          const failoverMs = Date.now() - killedAt;
          const successes = load.successes;
          await sleep(6_000);
          expect(load.successes, "payments after the failover").to.be.greaterThan(successes);

          const report = await finishRun(platform, load, sampler, {
            crashPointsByKind: { "redis master SIGKILL": 1 },
            killedInSettlement: 0,
            restarts: 0,
            restartsSurvived: 0,
            notes: [`failover took ${failoverMs} ms; ${summarize(load, killedAt)}`],
          });
          console.log(describeReport(report));
          expectClean(report);
          expectFailuresWithin(load, killedAt, FAILOVER_WINDOW_MS);
        } catch (err) {
          for (const p of platform.processes) console.log(`    --- last output of ${p.name}:\n${p.tail(3000)}`);
          throw err;
        } finally {
          await load.stop().catch(() => {});
          await sampler.stop();
          await platform.close();
          await platform.dropStorage(undefined);
        }
      });
    }
  });
}
