/** What the cluster suites share: the backends they need, and the checks every run ends with. */
import { expect } from "chai";
import { describeReport, type FaultReport } from "../faults/accounting.js";
import { type Load } from "../faults/load.js";

export const mysqlUrl = process.env.TEST_MYSQL_URL;
export const redisUrl = process.env.TEST_REDIS_URL;

/** The shared MariaDB server's URL without a database. */
export function serverUrl(url: string): string {
  const u = new URL(url);
  u.pathname = "/";
  return u.toString();
}

/** The run kept every promise: the report names what broke. */
export function expectClean(r: FaultReport): void {
  const why = `\n${describeReport(r)}\nreplay with FAULT_SEED=${r.seed}`;
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

/**
 * Calls that ended without SUCCESS or FAIL all ended inside [from, from + windowMs]: a fault is
 * felt by callers for a bounded time only.
 */
export function expectFailuresWithin(load: Load, from: number, windowMs: number): void {
  const outside = load.failures.filter((f) => f.at < from || f.at > from + windowMs);
  expect(
    outside.map((f) => `${new Date(f.at).toISOString()} ${f.what}`),
    `calls without an outcome outside the ${windowMs} ms after the fault`,
  ).to.deep.equal([]);
}

/**
 * No call ended without SUCCESS or FAIL before `at` (the first fault): services that came up
 * in any order answer every call from the start.
 */
export function expectNoFailuresBefore(load: Load, at: number): void {
  const before = load.failures.filter((f) => f.at < at);
  expect(
    before.map((f) => `${new Date(f.at).toISOString()} ${f.what}`),
    "calls without an outcome before any fault (start-up)",
  ).to.deep.equal([]);
}

export function summarize(load: Load, from: number): string {
  const inWindow = load.failures.map((f) => `${((f.at - from) / 1000).toFixed(1)}s ${f.what}`);
  return `calls ${load.calls}, successes ${load.successes}, without outcome ${load.failures.length}${inWindow.length ? `: ${inWindow.slice(0, 8).join("; ")}` : ""}`;
}

/** A suite that cannot run here: skipped, or a failure when REQUIRE_CLUSTER_ENGINES=1 (CI). */
export function engineMissing(reason: string): void {
  if (process.env.REQUIRE_CLUSTER_ENGINES === "1") throw new Error(`REQUIRE_CLUSTER_ENGINES=1 but ${reason}`);
}
