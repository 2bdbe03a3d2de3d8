/**
 * The platform on a 3-node MariaDB Galera cluster (multi-primary, synchronous replication with
 * certification at commit), every node a mariadbd of its own on loopback, started by the test
 * and removed by it.
 *
 * Two payment instances and two merchant instances write through different nodes: payments,
 * withdrawals on a few hot accounts (write conflicts between nodes surface as deadlock errors at
 * commit), settlement from both payment instances in turn, reconciliation. One node is SIGKILLed
 * under load: the others carry on, the killed node rejoins by state transfer. At the end: no
 * balance ever negative, every acknowledged order on every node, settled + pending = paid −
 * withdrawn for every account, reconciliation all F000 and the audit clean.
 */
import { expect } from "chai";
import mysql from "mysql2/promise";
import { BalanceSampler, Load } from "../faults/load.js";
import { describeReport, finishRun } from "../faults/accounting.js";
import { faultSeed } from "../faults/schedule.js";
import { FaultPlatform } from "../faults/platform.js";
import { databaseUrl, sleep } from "../faults/processes.js";
import { LocalGalera } from "./engines.js";
import { engineMissing, expectClean, expectNoFailuresBefore, redisUrl, summarize } from "./common.js";

if (!redisUrl && process.env.REQUIRE_REAL_BACKENDS === "1") throw new Error("REQUIRE_REAL_BACKENDS=1 but TEST_REDIS_URL is not set");

const unavailable = LocalGalera.unavailableReason() ?? (redisUrl ? undefined : "TEST_REDIS_URL is not set");

/** Every order's id and outcome as one node holds them, in a stable order. */
async function ordersOn(url: string, db: string, sql: string): Promise<string[]> {
  const conn = await mysql.createConnection({ uri: databaseUrl(url, db), supportBigNumbers: true, bigNumberStrings: true });
  try {
    const [rows] = (await conn.query(sql)) as unknown as [Record<string, unknown>[]];
    return rows.map((r) => Object.values(r).join("|"));
  } finally {
    await conn.end();
  }
}

if (unavailable) {
  engineMissing(unavailable);
  describe(`Galera cluster (skipped: ${unavailable})`, () => {
    it("needs mariadbd, galera-4, rsync, a mysql user and TEST_REDIS_URL");
  });
} else {
  describe("platform on a 3-node Galera cluster", function () {
    this.timeout(600_000);
    let galera: LocalGalera | undefined;

    after(async () => {
      await galera?.close();
    });

    it("keeps every invariant with instances on different nodes and one node SIGKILLed under load", async () => {
      galera = await LocalGalera.start(3);
      const urls = galera.nodes.map((n) => galera!.url(n));
      const seed = faultSeed();
      const platform = new FaultPlatform({
        scenario: "Galera node SIGKILL",
        seed,
        mysqlServerUrl: urls[0]!,
        redisUrl: redisUrl!,
        paymentInstances: 2,
        merchantInstances: 2,
        // Payment and merchant instance i on node i: writes to the same rows from two nodes.
        instanceServerUrls: [urls[0]!, urls[1]!],
      });
      const load = new Load(platform, seed, 8);
      const sampler = new BalanceSampler(platform);
      try {
        await platform.start();
        load.start();
        sampler.start();
        await sleep(10_000);
        expect(load.successes, "orders before the kill").to.be.greaterThan(0);
        expectNoFailuresBefore(load, Date.now());

        const victim = galera.nodes[1]!;
        const killedAt = Date.now();
        await galera.kill(victim);
        await galera.waitSynced(galera.nodes[0]!, 30_000, 2);
        const successes = load.successes;
        await sleep(8_000);
        expect(load.successes, "orders while a node is down").to.be.greaterThan(successes);
        await galera.rejoin(victim);
        const rejoinedMs = Date.now() - killedAt;
        const afterRejoin = load.successes;
        await sleep(8_000);
        expect(load.successes, "orders after the node rejoined").to.be.greaterThan(afterRejoin);

        const report = await finishRun(platform, load, sampler, {
          crashPointsByKind: { "galera node SIGKILL": 1 },
          killedInSettlement: 0,
          restarts: 1,
          restartsSurvived: 1,
          notes: [`node down and rejoined within ${rejoinedMs} ms; ${summarize(load, killedAt)}`],
        });
        const status = await galera.status(galera.nodes[0]!);
        report.notes.push(
          `certification failures ${status.wsrep_local_cert_failures}, brute-force aborts ${status.wsrep_local_bf_aborts} (node0), ` +
            `cluster size ${status.wsrep_cluster_size}`,
        );
        console.log(describeReport(report));
        expectClean(report);

        // Every node holds the same orders, acknowledged ones included.
        for (const n of galera.nodes) await galera.waitSynced(n, 60_000, 3);
        const payments = "SELECT request_id, response_code, CAST(settlement_id AS CHAR) FROM payment_orders ORDER BY request_id";
        const withdrawals = "SELECT request_id, response_code FROM withdrawal_orders ORDER BY request_id";
        const balances = "SELECT saler_id, CAST(balance AS CHAR) FROM accounts ORDER BY saler_id";
        const merchant = "SELECT request_id, state, COALESCE(response_id, '') FROM merchant_orders ORDER BY request_id";
        const reference = {
          payments: await ordersOn(urls[0]!, platform.paymentDb, payments),
          withdrawals: await ordersOn(urls[0]!, platform.paymentDb, withdrawals),
          balances: await ordersOn(urls[0]!, platform.paymentDb, balances),
          merchant: await ordersOn(urls[0]!, platform.merchantDb, merchant),
        };
        for (const url of urls.slice(1)) {
          expect(await ordersOn(url, platform.paymentDb, payments), `payment orders on ${url}`).to.deep.equal(reference.payments);
          expect(await ordersOn(url, platform.paymentDb, withdrawals), `withdrawal orders on ${url}`).to.deep.equal(reference.withdrawals);
          expect(await ordersOn(url, platform.paymentDb, balances), `balances on ${url}`).to.deep.equal(reference.balances);
          expect(await ordersOn(url, platform.merchantDb, merchant), `merchant orders on ${url}`).to.deep.equal(reference.merchant);
        }
        const held = new Set([...reference.payments, ...reference.withdrawals].map((r) => r.split("|")[0]));
        const missing = [...load.acknowledged.entries()].filter(([id, a]) => a.state === "SUCCESS" && !held.has(id)).map(([id]) => id);
        expect(missing, "acknowledged orders missing on the nodes").to.deep.equal([]);
        expect(galera.nodes.flatMap((n) => n.process.crashes).map((c) => `${c.process}: ${c.output.slice(-1500)}`), "nodes that died by themselves").to.deep.equal([]);
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
