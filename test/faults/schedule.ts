/**
 * What drives a fault run: one seed (FAULT_SEED replays a run), the shuffled fault schedule, counts
 * from the environment, and the FAULT_TRACE timeline.
 */
import { randomInt } from "node:crypto";
import { Random } from "../support/random.js";

const traceStart = Date.now();

/** With FAULT_TRACE=1, a timeline of the faults and recoveries on stderr. */
export function trace(message: string): void {
  if (process.env.FAULT_TRACE === "1") process.stderr.write(`      [${((Date.now() - traceStart) / 1000).toFixed(2)}s] ${message}\n`);
}

/**
 * A shuffled list of n fault kinds in the given shares (rounded; the first kind takes what
 * rounding leaves), never starting with `notFirst`.
 */
export function faultSchedule<K extends string>(rng: Random, n: number, shares: [K, number][], notFirst?: K): K[] {
  const list: K[] = [];
  for (const [kind, share] of shares.slice(1)) for (let i = 0; i < Math.round(n * share) && list.length < n; i++) list.push(kind);
  while (list.length < n) list.push(shares[0]![0]);
  for (let i = list.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [list[i], list[j]] = [list[j]!, list[i]!];
  }
  const swap = list.findIndex((k) => k !== notFirst);
  if (notFirst !== undefined && list[0] === notFirst && swap > 0) [list[0], list[swap]] = [list[swap]!, list[0]!];
  return list;
}

/** FAULT_SEED when set (to replay a run), else a fresh one. */
export function faultSeed(): number {
  const raw = process.env.FAULT_SEED;
  if (raw === undefined || raw === "") return randomInt(1, 2 ** 31);
  if (!/^\d{1,10}$/.test(raw) || Number(raw) >= 2 ** 32) throw new Error(`FAULT_SEED must be an integer in [0, 2^32), got "${raw}"`);
  return Number(raw);
}

/** A whole number from the environment, or the fallback. */
export function envCount(name: string, fallback: number, min = 0, max = 10_000): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new Error(`${name} must be an integer in [${min}, ${max}], got "${raw}"`);
  return Number(raw);
}
