/** paycli simulate: a seeded run of the merchant's Simulate, optionally in chunks to show progress. */
import { SimulateResponseSchema, type SimulateResponse } from "../../../gen/merchant/v1/merchant_pb.js";
import { call, EXIT, UsageError } from "../clients.js";
import { ProgressBar } from "../progress.js";
import { record, table } from "../table.js";
import { json } from "./format.js";
import { bigintOption, intOption, ORDER_TYPES, orderTypeOption, str, type CommandContext, type OrderTypeName, type Output } from "./options.js";

interface FaultCounts {
  lostResponses: number;
  tamperedAmounts: number;
  merchantOnly: number;
}

/** Splits the run into chunks and spreads each fault kind over them, never more than a chunk holds. */
export function planChunks(count: number, chunkSize: number, faults: FaultCounts): { count: number; faults: FaultCounts }[] {
  const chunks: { count: number; faults: FaultCounts }[] = [];
  for (let left = count; left > 0; left -= chunkSize) {
    chunks.push({ count: Math.min(chunkSize, left), faults: { lostResponses: 0, tamperedAmounts: 0, merchantOnly: 0 } });
  }
  const room = chunks.map((c) => c.count);
  let next = 0;
  for (const kind of ["lostResponses", "tamperedAmounts", "merchantOnly"] as const) {
    for (let n = faults[kind]; n > 0; n--) {
      while (room[next % chunks.length] === 0) next++;
      const i = next % chunks.length;
      chunks[i]!.faults[kind]++;
      room[i]!--;
      next++;
    }
  }
  return chunks;
}

/** A simulation as the options ask for it. */
interface SimulationPlan {
  kind: OrderTypeName;
  count: number;
  concurrency: number;
  accounts: number;
  prefix: string;
  minAmount: bigint;
  maxAmount: bigint;
  seed: bigint;
  chunkSize: number;
  chunks: { count: number; faults: FaultCounts }[];
}

function readPlan(ctx: CommandContext): SimulationPlan {
  const kind = orderTypeOption({ type: ctx.positionals[0] ?? "payment" }, "type")!;
  const v = ctx.values;
  const count = intOption(v, "count", 1000, 1, 1_000_000);
  const concurrency = intOption(v, "concurrency", 16, 1, 1024);
  const accounts = intOption(v, "accounts", 10, 1, 100_000);
  const prefix = str(v, "prefix") ?? "saler";
  if (!/^[A-Za-z0-9_-]{1,50}$/.test(prefix)) throw new UsageError(`--prefix must be 1 to 50 characters of A-Z a-z 0-9 _ -, got "${prefix}"`);
  const minAmount = bigintOption(v, "min-amount", 1n, 1n, 1_000_000_000_000n)!;
  const maxAmount = bigintOption(v, "max-amount", 10_000n, 1n, 1_000_000_000_000n)!;
  if (minAmount > maxAmount) throw new UsageError("--min-amount must not be above --max-amount");
  const seed = bigintOption(v, "seed", BigInt(Math.floor(Math.random() * 2 ** 31)), 0n, 2n ** 62n)!;
  const faults: FaultCounts = {
    lostResponses: intOption(v, "lost-responses", 0, 0, 1_000_000),
    tamperedAmounts: intOption(v, "tampered-amounts", 0, 0, 1_000_000),
    merchantOnly: intOption(v, "merchant-only", 0, 0, 1_000_000),
  };
  if (faults.lostResponses + faults.tamperedAmounts + faults.merchantOnly > count) {
    throw new UsageError("more faults than requests: --lost-responses + --tampered-amounts + --merchant-only must not exceed --count");
  }
  // One Simulate call, so that a seed gives the same orders as the Simulate RPC does. With --chunk
  // the run is sent as consecutive calls, seeded seed, seed+1, …, so that progress is real.
  const chunkSize = intOption(v, "chunk", count, 1, 1_000_000);
  return { kind, count, concurrency, accounts, prefix, minAmount, maxAmount, seed, chunkSize, chunks: planChunks(count, chunkSize, faults) };
}

/** Sends the plan's Simulate calls one after the other; the reports in order. */
async function send(ctx: CommandContext, plan: SimulationPlan): Promise<SimulateResponse[]> {
  const { kind, count, chunks, seed } = plan;
  if (ctx.progress && chunks.length === 1) process.stderr.write(`simulating ${count} ${kind}s in one Simulate call (seed ${seed}); --chunk N shows progress\n`);
  const bar = new ProgressBar({ label: `simulate ${kind}s`, total: count, enabled: ctx.progress && chunks.length > 1 });
  const reports: SimulateResponse[] = [];
  let done = 0;
  try {
    for (const [i, chunk] of chunks.entries()) {
      const report = await call("merchant", ctx.services.addresses, () =>
        ctx.services.merchant.simulate({
          orderType: ORDER_TYPES[kind],
          count: chunk.count,
          concurrency: plan.concurrency,
          accounts: plan.accounts,
          accountPrefix: plan.prefix,
          minAmount: plan.minAmount,
          maxAmount: plan.maxAmount,
          // Each chunk has its own seed, derived from the run's, so the whole run repeats.
          seed: seed + BigInt(i),
          faults: chunk.faults,
        }),
      );
      reports.push(report);
      done += chunk.count;
      bar.update(done);
    }
  } finally {
    bar.finish();
  }
  return reports;
}

/** The calls' reports as one run's figures. */
function tally(reports: SimulateResponse[], count: number, elapsedMs: number) {
  const sum = (f: (r: SimulateResponse) => number) => reports.reduce((a, r) => a + f(r), 0);
  // Latency: the median of the calls' medians (weighted by size) and the worst call's p99.
  const byP50 = [...reports].sort((a, b) => a.latencyP50Ms - b.latencyP50Ms);
  let half = count / 2;
  let p50 = 0;
  for (const r of byP50) {
    p50 = r.latencyP50Ms;
    half -= r.requested;
    if (half <= 0) break;
  }
  return {
    succeeded: sum((r) => r.succeeded),
    failed: sum((r) => r.failed),
    unknown: sum((r) => r.unknown),
    amountSucceeded: reports.reduce((a, r) => a + r.amountSucceeded, 0n),
    p50,
    p99: Math.max(...reports.map((r) => r.latencyP99Ms)),
    injected: reports.flatMap((r) => r.injected),
    throughput: elapsedMs > 0 ? (count * 1000) / elapsedMs : count,
  };
}

export async function simulate(ctx: CommandContext): Promise<Output> {
  const plan = readPlan(ctx);
  const { kind, count, accounts, prefix, minAmount, maxAmount, seed, concurrency, chunks, chunkSize } = plan;
  const started = performance.now();
  const reports = await send(ctx, plan);
  const elapsedMs = performance.now() - started;
  const { succeeded, failed, unknown, amountSucceeded, p50, p99, injected, throughput } = tally(reports, count, elapsedMs);

  const lines: string[] = [];
  lines.push(
    `Simulated ${count} ${kind}s over ${accounts} account(s) ${prefix}1..${prefix}${accounts}, amounts ${minAmount}..${maxAmount} fen, ` +
      `seed ${seed}, concurrency ${concurrency} (sent as ${chunks.length} Simulate call(s) of up to ${chunkSize})`,
    "",
  );
  lines.push(
    table(
      ["outcome", "orders"],
      [
        ["SUCCESS", succeeded],
        ["FAIL", failed],
        ["UNKNOWN", unknown],
      ],
      ["total", succeeded + failed + unknown],
    ),
  );
  lines.push(
    record([
      ["amount succeeded (fen)", amountSucceeded],
      ["elapsed", `${(elapsedMs / 1000).toFixed(2)}s`],
      ["throughput", `${throughput.toFixed(1)} requests/s`],
      ["latency p50", `${p50.toFixed(1)} ms${reports.length > 1 ? " (median of the calls' medians)" : ""}`],
      ["latency p99", `${p99.toFixed(1)} ms${reports.length > 1 ? " (worst call's p99)" : ""}`],
    ]),
  );
  if (injected.length > 0) {
    lines.push(`Injected faults (${injected.length}): the differences a reconciliation run should report, and no others`);
    lines.push(
      table(
        ["kind", "request_id", "response_id", "saler_id", "merchant_amount", "payment_amount", "expected"],
        injected.map((f) => [f.kind, f.requestId, f.responseId || "-", f.salerId, f.merchantAmount, f.paymentAmount, f.expectedDiffType]),
      ),
    );
  }
  return {
    text: lines.join("\n"),
    json: {
      order_type: kind,
      requested: count,
      succeeded,
      failed,
      unknown,
      amount_succeeded: String(amountSucceeded),
      elapsed_ms: Math.round(elapsedMs),
      throughput,
      latency_p50_ms: p50,
      latency_p99_ms: p99,
      seed: String(seed),
      calls: reports.map((r) => json(SimulateResponseSchema, r)),
      injected: reports.flatMap((r) => (json(SimulateResponseSchema, r) as { injected: unknown[] }).injected),
    },
    exitCode: EXIT.ok,
  };
}
