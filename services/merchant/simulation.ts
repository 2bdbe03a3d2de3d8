/**
 * Concurrent simulation: N payments, withdrawals or refunds over a set of accounts with amounts
 * from a range, reproducible from a seed (and, for refunds, the payments there are to refund), optionally with injected faults whose ground truth is
 * reported so that a reconciliation run can be checked against it.
 */
import { randomUUID } from "node:crypto";
import type { Fault, OrderSender } from "./orderSender.js";
import type { OrderTypeName } from "./orders.js";

export interface SimulationPlan {
  orderType: OrderTypeName;
  count: number;
  concurrency: number;
  accounts: number;
  accountPrefix: string;
  minAmount: bigint;
  maxAmount: bigint;
  seed: bigint;
  faults: { lostResponses: number; tamperedAmounts: number; merchantOnly: number };
  /** Refunds: the successful payments they may refund, in a fixed order. */
  refundable?: readonly RefundablePayment[];
}

export interface RefundablePayment {
  requestId: string;
  responseId: string;
  salerId: string;
  /** What is left of it to refund. */
  left: bigint;
}

export interface InjectedFault {
  kind: Fault;
  orderType: OrderTypeName;
  requestId: string;
  responseId: string;
  salerId: string;
  merchantAmount: bigint;
  paymentAmount: bigint;
  expectedDiffType: "F113" | "F114" | "F115";
}

export interface SimulationReport {
  simulationId: string;
  requested: number;
  succeeded: number;
  failed: number;
  unknown: number;
  amountSucceeded: bigint;
  elapsedMs: number;
  throughput: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  injected: InjectedFault[];
}

/** xoshiro128** seeded through splitmix32: fast, and the same seed gives the same run. */
export class SeededRandom {
  private s: Uint32Array;

  constructor(seed: bigint) {
    let x = Number(BigInt.asUintN(32, seed ^ (seed >> 32n))) >>> 0;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s = new Uint32Array([next(), next(), next(), next()]);
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    const s = this.s;
    const result = Math.imul(((Math.imul(s[1]!, 5) << 7) | (Math.imul(s[1]!, 5) >>> 25)) >>> 0, 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = (s[3]! << 11) | (s[3]! >>> 21);
    return result;
  }

  /** Uniform integer in [0, n). */
  below(n: number): number {
    return Math.floor((this.u32() / 2 ** 32) * n);
  }

  /** Uniform bigint in [min, max]. */
  between(min: bigint, max: bigint): bigint {
    const span = max - min + 1n;
    const r = (BigInt(this.u32()) << 32n) | BigInt(this.u32());
    return min + (r % span);
  }
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

export async function runSimulation(sender: OrderSender, plan: SimulationPlan, onProgress?: (done: number) => void): Promise<SimulationReport> {
  const rng = new SeededRandom(plan.seed);
  // Decide everything up front from the seed, so concurrency cannot change what is sent.
  const accountOf = new Uint32Array(plan.count);
  const amounts: bigint[] = new Array(plan.count);
  const refundOf: (RefundablePayment | undefined)[] = new Array(plan.count);
  const left = new Map(plan.refundable?.map((p) => [p, p.left]));
  for (let i = 0; i < plan.count; i++) {
    accountOf[i] = 1 + rng.below(plan.accounts);
    amounts[i] = rng.between(plan.minAmount, plan.maxAmount);
    if (plan.refundable && plan.refundable.length > 0) {
      // A refund of a payment the seed picks, for no more than the plan left of it (when it left
      // nothing, the amount stands and the payment system refuses it).
      const payment = plan.refundable[rng.below(plan.refundable.length)]!;
      const remaining = left.get(payment)!;
      if (remaining > 0n && amounts[i]! > remaining) amounts[i] = remaining;
      left.set(payment, remaining > amounts[i]! ? remaining - amounts[i]! : 0n);
      refundOf[i] = payment;
    }
  }
  const faultOf = new Map<number, Fault>();
  const pick = (kind: Fault, n: number) => {
    while (n > 0) {
      const i = rng.below(plan.count);
      if (faultOf.has(i)) continue;
      faultOf.set(i, kind);
      n--;
    }
  };
  pick("LOST_RESPONSE", plan.faults.lostResponses);
  pick("TAMPERED_AMOUNT", plan.faults.tamperedAmounts);
  pick("MERCHANT_ONLY", plan.faults.merchantOnly);
  const tamperBy = new Map<number, bigint>();
  for (const [i, kind] of faultOf) if (kind === "TAMPERED_AMOUNT") tamperBy.set(i, 1n + rng.between(0n, 99n));

  const simulationId = randomUUID();
  const latencies = new Float64Array(plan.count);
  const report: SimulationReport = {
    simulationId,
    requested: plan.count,
    succeeded: 0,
    failed: 0,
    unknown: 0,
    amountSucceeded: 0n,
    elapsedMs: 0,
    throughput: 0,
    latencyP50Ms: 0,
    latencyP99Ms: 0,
    injected: [],
  };
  const started = performance.now();
  let next = 0;
  let done = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= plan.count) return;
      const refund = refundOf[i];
      const salerId = refund ? refund.salerId : `${plan.accountPrefix}${accountOf[i]}`;
      const amount = amounts[i]!;
      const fault = faultOf.get(i);
      const orderType = plan.orderType;
      const t0 = performance.now();
      const order = await sender.send(plan.orderType, salerId, amount, {
        simulationId,
        ...(refund ? { refundOf: { requestId: refund.requestId, responseId: refund.responseId } } : {}),
        ...(fault ? { fault } : {}),
        ...(fault === "TAMPERED_AMOUNT" ? { tamperedAmount: amount + tamperBy.get(i)! } : {}),
      });
      latencies[i] = performance.now() - t0;
      if (fault === "LOST_RESPONSE") {
        // The merchant is in the dark; the payment system may still have done the work.
        report.unknown++;
        if (order.responseCode === "SUCCESS") {
          report.amountSucceeded += amount;
          report.injected.push({ kind: fault, orderType, requestId: order.requestId, responseId: order.responseId, salerId, merchantAmount: 0n, paymentAmount: amount, expectedDiffType: "F113" });
        }
      } else if (order.state === "SUCCESS") {
        report.succeeded++;
        if (fault === "MERCHANT_ONLY") {
          report.injected.push({ kind: fault, orderType, requestId: order.requestId, responseId: order.responseId, salerId, merchantAmount: amount, paymentAmount: 0n, expectedDiffType: "F114" });
        } else {
          report.amountSucceeded += amount;
          if (fault === "TAMPERED_AMOUNT") {
            report.injected.push({ kind: fault, orderType, requestId: order.requestId, responseId: order.responseId, salerId, merchantAmount: order.amount, paymentAmount: amount, expectedDiffType: "F115" });
          }
        }
      } else if (order.state === "FAIL") report.failed++;
      else report.unknown++;
      done++;
      onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(plan.concurrency, plan.count) }, worker));
  report.elapsedMs = Math.round(performance.now() - started);
  report.throughput = report.elapsedMs > 0 ? (plan.count * 1000) / report.elapsedMs : plan.count;
  latencies.sort();
  report.latencyP50Ms = percentile(latencies, 0.5);
  report.latencyP99Ms = percentile(latencies, 0.99);
  report.injected.sort((a, b) => (a.requestId < b.requestId ? -1 : 1));
  return report;
}
