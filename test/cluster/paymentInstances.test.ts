/**
 * Three payment instances behind one merchant: PAYMENT_ADDRESS lists them, and the merchant's
 * gRPC client balances over them round-robin. Under payment and withdrawal load one instance is
 * SIGKILLed: its in-flight calls end UNKNOWN at the merchant and are resolved there (QueryOrder,
 * CloseOrder before FAIL); afterwards calls go to the two left, so callers see failures
 * only in a bounded window after the kill and none before it (start-up included); at the end
 * both sides agree on every order.
 */
import { expect } from "chai";
import { BalanceSampler, Load } from "../faults/load.js";
import { describeReport, finishRun } from "../faults/accounting.js";
import { faultSeed } from "../faults/schedule.js";
import { FaultPlatform } from "../faults/platform.js";
import { sleep } from "../faults/processes.js";
import { expectClean, expectFailuresWithin, expectNoFailuresBefore, mysqlUrl, redisUrl, serverUrl, summarize } from "./common.js";

if ((!mysqlUrl || !redisUrl) && process.env.REQUIRE_REAL_BACKENDS === "1") {
  throw new Error("REQUIRE_REAL_BACKENDS=1 but TEST_MYSQL_URL and TEST_REDIS_URL are not both set");
}

/** How long after the kill callers may see calls end without an outcome. */
const KILL_WINDOW_MS = 10_000;

if (!mysqlUrl || !redisUrl) {
  describe("several payment instances (skipped: TEST_MYSQL_URL and TEST_REDIS_URL are not set)", () => {
    it("needs TEST_MYSQL_URL and TEST_REDIS_URL");
  });
} else {
  describe("several payment instances behind one merchant [mariadb+redis]", function () {
    this.timeout(240_000);

    it("keeps both sides in agreement when one of three payment instances is SIGKILLed under load", async () => {
      const seed = faultSeed();
      const platform = new FaultPlatform({
        scenario: "1 of 3 payment instances SIGKILLed",
        seed,
        mysqlServerUrl: serverUrl(mysqlUrl!),
        redisUrl: redisUrl!,
        paymentInstances: 3,
      });
      const load = new Load(platform, seed, 6);
      const sampler = new BalanceSampler(platform);
      try {
        await platform.start();
        load.start();
        sampler.start();
        await sleep(6_000);
        expect(load.successes, "payments before the kill").to.be.greaterThan(0);
        expectNoFailuresBefore(load, Date.now());
        const killedAt = Date.now();
        await platform.payments[1]!.kill();
        const successes = load.successes;
        await sleep(KILL_WINDOW_MS + 4_000);
        expect(load.successes, "orders after the kill").to.be.greaterThan(successes);
        // Nothing after the window failed: the killed instance no longer receives calls.
        expectFailuresWithin(load, killedAt, KILL_WINDOW_MS);
        const report = await finishRun(platform, load, sampler, {
          crashPointsByKind: { "payment instance SIGKILL": 1 },
          killedInSettlement: 0,
          restarts: 0,
          restartsSurvived: 0,
          notes: [summarize(load, killedAt)],
        });
        console.log(describeReport(report));
        expectClean(report);
      } catch (err) {
        for (const p of platform.processes) console.log(`    --- last output of ${p.name}:\n${p.tail(3000)}`);
        throw err;
      } finally {
        await load.stop().catch(() => {});
        await sampler.stop();
        await platform.close();
        await platform.dropStorage(redisUrl);
      }
    });
  });
}
