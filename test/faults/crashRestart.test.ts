/**
 * Crash and restart under load, with real processes on MariaDB and Redis.
 *
 * A steady stream of payments and withdrawals flows through the merchant's gRPC API while one
 * part of the platform is killed with SIGKILL at seeded random moments and brought back:
 * 1. the payment service (also inside settlement runs and during start-up);
 * 2. the merchant service (the INIT orders it leaves must be closed by its scheduled resolver);
 * 3. the payment service's Redis (a private redis-server that keeps nothing on disk);
 * 4. MariaDB (a private mariadbd with its own data directory; where none can run, every
 *    connection of the test databases on the shared server is killed instead).
 * At the end the merchant resolves its open orders, the payment system settles, and the run
 * must show: every account's settled balance plus pending credit equal to its successful
 * payments minus its successful withdrawals, no balance ever negative, every acknowledged order
 * kept, the merchant's and the payment system's successful orders identical, reconciliation all
 * F000, and no process that died by itself.
 *
 * FAULT_SEED replays a run; FAULT_KILLS sets the number of payment kills (15), and the other
 * faults scale with it unless FAULT_MERCHANT_KILLS, FAULT_REDIS_RESTARTS or
 * FAULT_MARIADB_RESTARTS say otherwise. FAULT_MARIADB_MODE=kill-connections takes the weaker
 * MariaDB fault (connections killed on the shared server) even where a private server can run.
 */
import { expect } from "chai";
import { BalanceSampler, Load } from "./load.js";
import { trace, envCount, faultSchedule, faultSeed } from "./schedule.js";
import { describeReport, finishRun, type FaultReport } from "./accounting.js";
import { FaultPlatform } from "./platform.js";
import { killConnections, PrivateMariaDb, PrivateRedis, sleep } from "./processes.js";
import { Random } from "../support/random.js";

const mysqlUrl = process.env.TEST_MYSQL_URL;
const redisUrl = process.env.TEST_REDIS_URL;
if ((!mysqlUrl || !redisUrl) && process.env.REQUIRE_REAL_BACKENDS === "1") {
  throw new Error("REQUIRE_REAL_BACKENDS=1 but TEST_MYSQL_URL and TEST_REDIS_URL are not both set");
}

const BASE_SEED = faultSeed();
const PAYMENT_KILLS = envCount("FAULT_KILLS", 15, 1);
const MERCHANT_KILLS = envCount("FAULT_MERCHANT_KILLS", Math.max(2, Math.round(PAYMENT_KILLS * 0.4)), 1);
const REDIS_RESTARTS = envCount("FAULT_REDIS_RESTARTS", Math.max(2, Math.round(PAYMENT_KILLS / 3)), 1);
const MARIADB_RESTARTS = envCount("FAULT_MARIADB_RESTARTS", Math.max(2, Math.round(PAYMENT_KILLS / 3)), 1);
/** Longest a restarted component may take to carry a payment end to end again. */
const RECOVERY_MS = 60_000;

function serverUrl(url: string): string {
  const u = new URL(url);
  u.pathname = "/";
  return u.toString();
}

/** The assertions every run ends with; the report names what broke. */
function expectClean(r: FaultReport, planned: number): void {
  const why = `\n${describeReport(r)}\nreplay with FAULT_SEED=${r.seed}`;
  expect(r.crashPoints, `crash points${why}`).to.equal(planned);
  expect(r.restartsSurvived, `restarts survived${why}`).to.equal(r.restarts);
  expect(r.acknowledged, `orders acknowledged${why}`).to.be.greaterThan(0);
  expect(r.creditsLost, `credits lost${why}`).to.equal(0);
  expect(r.amountLost, `amount lost${why}`).to.equal(0n);
  expect(r.creditsDoubled, `credits doubled${why}`).to.equal(0);
  expect(r.amountDoubled, `amount doubled${why}`).to.equal(0n);
  expect(r.stuckOrders, `stuck orders${why}`).to.equal(0);
  expect(r.processesCrashed, `processes crashed${why}`).to.equal(0);
  expect(r.negativeBalances, `negative balances${why}`).to.equal(0);
  expect(r.balanceSamples, `balance samples${why}`).to.be.greaterThan(0);
  expect(r.reconBalanced, `reconciliation balanced${why}`).to.equal(true);
  expect(r.problems, `problems${why}`).to.deep.equal([]);
}

function tally(counts: Record<string, number>, kind: string): void {
  counts[kind] = (counts[kind] ?? 0) + 1;
}

if (!mysqlUrl || !redisUrl) {
  describe("crash and restart under load (skipped: TEST_MYSQL_URL and TEST_REDIS_URL are not set; these tests need MariaDB and Redis)", () => {
    it("needs TEST_MYSQL_URL and TEST_REDIS_URL");
  });
} else {
  describe("crash and restart under load [mariadb+redis]", function () {
    this.timeout(300_000);
    let platform: FaultPlatform | undefined;
    let privateRedis: PrivateRedis | undefined;
    let privateMariaDb: PrivateMariaDb | undefined;

    before(() => {
      console.log(`    fault seed ${BASE_SEED} (replay with FAULT_SEED=${BASE_SEED}); payment kills ${PAYMENT_KILLS}, merchant kills ${MERCHANT_KILLS}, Redis restarts ${REDIS_RESTARTS}, MariaDB restarts ${MARIADB_RESTARTS}`);
    });

    afterEach(async function () {
      if (this.currentTest?.state === "failed") {
        console.log(`    ${this.currentTest.title}: failed; replay with FAULT_SEED=${BASE_SEED}`);
        for (const p of platform?.processes ?? []) console.log(`    --- last output of ${p.name}:\n${p.tail(3000)}`);
      }
      await platform?.close();
      await platform?.dropStorage(redisUrl);
      await privateRedis?.close();
      await privateMariaDb?.close();
      platform = privateRedis = privateMariaDb = undefined;
    });

    async function startPlatform(scenario: string, options: { mysqlServerUrl?: string; redisUrl?: string } = {}): Promise<{ p: FaultPlatform; load: Load; sampler: BalanceSampler }> {
      const p = new FaultPlatform({
        scenario,
        seed: BASE_SEED,
        mysqlServerUrl: options.mysqlServerUrl ?? serverUrl(mysqlUrl!),
        redisUrl: options.redisUrl ?? redisUrl!,
      });
      platform = p;
      await p.start();
      const load = new Load(p, Random.derive(BASE_SEED, `${scenario}/load`).next() * 2 ** 32);
      const sampler = new BalanceSampler(p);
      load.start();
      sampler.start();
      expect(await load.successAfter(0, RECOVERY_MS), "the platform takes payments before any fault").to.equal(true);
      return { p, load, sampler };
    }

    it(`credits every acknowledged payment exactly once across ${PAYMENT_KILLS} SIGKILLs of the payment service`, async () => {
      const rng = Random.derive(BASE_SEED, "payment-kill/schedule");
      const { p, load, sampler } = await startPlatform("payment SIGKILL");
      const kinds: Record<string, number> = {};
      let killedInSettlement = 0;
      let restarts = 0;
      let survived = 0;
      let stale: string | null = null;
      const bringBack = async () => {
        trace("payment: restarting");
        await p.payment.start();
        restarts++;
        trace("payment: ready");
        if (await load.successAfter(load.successes, RECOVERY_MS)) survived++;
        trace("payment: carried a payment end to end");
      };
      const modes = faultSchedule(rng, PAYMENT_KILLS, [["load", 0.45], ["settlement", 0.4], ["start-up", 0.15]], "start-up");
      for (let k = 0; k < PAYMENT_KILLS; k++) {
        const mode = modes[k]!;
        const offsetMs = mode === "start-up" ? rng.int(100, 2_500) : mode === "settlement" ? rng.int(0, 40) : rng.int(100, 2_500);
        trace(`payment kill ${k + 1}: ${mode} +${offsetMs} ms`);
        if (mode === "start-up") {
          // The previous kill left it down: start it and kill it before or just after it is ready.
          void p.payment.spawnDetached();
          await sleep(offsetMs);
          tally(kinds, p.payment.ready ? "just after start-up" : "during start-up");
          await p.payment.kill();
          stale = await p.leaseToken();
          continue;
        }
        if (!p.payment.running) await bringBack();
        if (mode === "settlement") {
          // A lease left by the process killed before is not a settlement running now.
          const token = await p.nextSettlement(stale, 5_000);
          if (token === undefined) {
            // No settlement started: kill under load instead.
            await sleep(offsetMs);
            tally(kinds, "under load");
          } else {
            if (offsetMs > 0) await sleep(offsetMs);
            tally(kinds, "settlement running");
            await p.payment.kill();
            // A run the kill cut short never released its lease.
            stale = await p.leaseToken();
            if (stale === token) killedInSettlement++;
            continue;
          }
        } else {
          await sleep(offsetMs);
          tally(kinds, "under load");
        }
        await p.payment.kill();
        stale = await p.leaseToken();
      }
      if (!p.payment.running) await bringBack();
      const report = await finishRun(p, load, sampler, { crashPointsByKind: kinds, killedInSettlement, restarts, restartsSurvived: survived });
      console.log(describeReport(report));
      expectClean(report, PAYMENT_KILLS);
      // The schedule aims half of its kills at settlement runs; some of them must land inside one.
      expect(killedInSettlement, `kills inside a settlement run\n${describeReport(report)}`).to.be.greaterThan(0);
    });

    it(`resolves the orders a merchant SIGKILLed ${MERCHANT_KILLS} times leaves behind, losing nothing`, async () => {
      const rng = Random.derive(BASE_SEED, "merchant-kill/schedule");
      const { p, load, sampler } = await startPlatform("merchant SIGKILL");
      const kinds: Record<string, number> = {};
      const leftBehind = new Set<string>();
      let restarts = 0;
      let survived = 0;
      const bringBack = async () => {
        await p.merchant.start();
        restarts++;
        if (await load.successAfter(load.successes, RECOVERY_MS)) survived++;
      };
      const modes = faultSchedule(rng, MERCHANT_KILLS, [["load", 0.75], ["start-up", 0.25]], "start-up");
      for (let k = 0; k < MERCHANT_KILLS; k++) {
        const mode = modes[k]!;
        const offsetMs = rng.int(100, 2_500);
        if (mode === "start-up") {
          void p.merchant.spawnDetached();
          await sleep(offsetMs);
          tally(kinds, p.merchant.ready ? "just after start-up" : "during start-up");
          await p.merchant.kill();
          continue;
        }
        if (!p.merchant.running) await bringBack();
        await sleep(offsetMs);
        tally(kinds, "under load");
        await p.merchant.kill();
        // Orders the dead merchant stored but never learned the outcome of.
        for (const r of await p.query<{ request_id: string }>("merchant", "SELECT request_id FROM merchant_orders WHERE state = 'INIT'")) {
          leftBehind.add(r.request_id);
        }
      }
      if (!p.merchant.running) await bringBack();
      const report = await finishRun(
        p,
        load,
        sampler,
        { crashPointsByKind: kinds, killedInSettlement: 0, restarts, restartsSurvived: survived, notes: [`INIT orders left by killed merchants: ${leftBehind.size}`] },
        { resolveBy: "schedule" },
      );
      console.log(describeReport(report));
      expectClean(report, MERCHANT_KILLS);
      expect(leftBehind.size, `INIT orders left behind\n${describeReport(report)}`).to.be.greaterThan(0);
      const states = await p.query<{ state: string }>("merchant", `SELECT state FROM merchant_orders WHERE request_id IN (?)`, [[...leftBehind]]);
      expect(states.map((s) => s.state).filter((s) => s !== "SUCCESS" && s !== "FAIL")).to.deep.equal([]);
    });

    it(`loses and doubles nothing when the payment service's Redis is SIGKILLed ${REDIS_RESTARTS} times`, async function () {
      if (!PrivateRedis.available()) this.skip();
      const rng = Random.derive(BASE_SEED, "redis-restart/schedule");
      privateRedis = await PrivateRedis.start();
      const { p, load, sampler } = await startPlatform("Redis SIGKILL", { redisUrl: privateRedis.url });
      const kinds: Record<string, number> = {};
      let killedInSettlement = 0;
      let restarts = 0;
      let survived = 0;
      const modes = faultSchedule(rng, REDIS_RESTARTS, [["load", 0.3], ["settlement", 0.35], ["quiet", 0.35]]);
      for (let k = 0; k < REDIS_RESTARTS; k++) {
        const mode = modes[k]!;
        const offsetMs = mode === "settlement" ? rng.int(0, 40) : rng.int(100, 2_500);
        const downMs = rng.int(0, 1_500);
        trace(`redis kill ${k + 1}: ${mode} +${offsetMs} ms, down ${downMs} ms`);
        const token = mode === "settlement" ? await p.nextSettlement(null, 5_000) : undefined;
        await sleep(offsetMs);
        // Quiet: no order arrives while Redis is away, so no failed buffer write tells the
        // payment service that credits were lost; only the vanished buffer can.
        if (mode === "quiet") await load.pause();
        tally(kinds, mode === "quiet" ? "no traffic" : token === undefined ? "under load" : "settlement running");
        if (token !== undefined && (await p.leaseToken().catch(() => null)) === token) killedInSettlement++;
        await privateRedis.kill();
        await sleep(downMs);
        await privateRedis.restart();
        if (mode === "quiet") {
          await sleep(3_000);
          load.resume();
        }
        restarts++;
        // Credits buffered before the kill are gone from Redis; they must come back from the table.
        const before = load.successes;
        if (await load.successAfter(before, RECOVERY_MS)) survived++;
      }
      const report = await finishRun(p, load, sampler, { crashPointsByKind: kinds, killedInSettlement, restarts, restartsSurvived: survived });
      console.log(describeReport(report));
      expectClean(report, REDIS_RESTARTS);
      expect(privateRedis.process.crashes, "private redis-server").to.deep.equal([]);
    });

    it(`loses and doubles nothing when MariaDB is SIGKILLed ${MARIADB_RESTARTS} times`, async () => {
      const rng = Random.derive(BASE_SEED, "mariadb-restart/schedule");
      const notes: string[] = [];
      const unavailable =
        process.env.FAULT_MARIADB_MODE === "kill-connections" ? "FAULT_MARIADB_MODE=kill-connections" : PrivateMariaDb.unavailableReason();
      if (unavailable === undefined) {
        try {
          privateMariaDb = await PrivateMariaDb.start();
        } catch (err) {
          notes.push(`private mariadbd failed (${err instanceof Error ? err.message.split("\n")[0] : String(err)}); killed connections on the shared server instead`);
        }
      } else {
        notes.push(`private mariadbd unavailable (${unavailable}); killed connections on the shared server instead`);
      }
      const { p, load, sampler } = await startPlatform(privateMariaDb ? "MariaDB SIGKILL" : "MariaDB connections killed", {
        ...(privateMariaDb ? { mysqlServerUrl: privateMariaDb.url } : {}),
      });
      const kinds: Record<string, number> = {};
      let killedInSettlement = 0;
      let restarts = 0;
      let survived = 0;
      const modes = faultSchedule(rng, MARIADB_RESTARTS, [["load", 0.5], ["settlement", 0.5]]);
      for (let k = 0; k < MARIADB_RESTARTS; k++) {
        const inSettlement = modes[k] === "settlement";
        const offsetMs = inSettlement ? rng.int(0, 40) : rng.int(100, 2_500);
        const downMs = rng.int(0, 1_500);
        const token = inSettlement ? await p.nextSettlement(null, 5_000) : undefined;
        await sleep(offsetMs);
        tally(kinds, token === undefined ? "under load" : "settlement running");
        if (token !== undefined && (await p.leaseToken().catch(() => null)) === token) killedInSettlement++;
        const before = load.successes;
        if (privateMariaDb) {
          await privateMariaDb.kill();
          await sleep(downMs);
          await privateMariaDb.restart();
        } else {
          await killConnections(serverUrl(mysqlUrl!), [p.paymentDb, p.merchantDb]);
        }
        restarts++;
        if (await load.successAfter(before, RECOVERY_MS)) survived++;
      }
      const report = await finishRun(p, load, sampler, { crashPointsByKind: kinds, killedInSettlement, restarts, restartsSurvived: survived, notes });
      console.log(describeReport(report));
      expectClean(report, MARIADB_RESTARTS);
      if (privateMariaDb) expect(privateMariaDb.process.crashes, "private mariadbd").to.deep.equal([]);
    });
  });
}
