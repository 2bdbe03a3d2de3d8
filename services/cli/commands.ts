/** The CLI's commands: each turns parsed options into calls and a printable result. */
import { readFile } from "node:fs/promises";
import { toJson, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { OrderType as MerchantOrderType, OrderSchema, SimulateResponseSchema, type Order, type SimulateResponse } from "../../gen/merchant/v1/merchant_pb.js";
import { AccountSchema, SettleResponseSchema, type Account } from "../../gen/payment/v1/payment_pb.js";
import {
  AuditRowSchema,
  DiffRowSchema,
  OrderKey,
  OrderType as ReconOrderType,
  RunKind,
  RunSchema,
  type AuditRow,
  type CsvSourceSchema,
  type DiffRow,
  type Run,
} from "../../gen/recon/v1/recon_pb.js";
import { call, EXIT, UsageError, type Services } from "./clients.js";
import { formatDuration, ProgressBar } from "./progress.js";
import { record, table, type Cell } from "./table.js";

export type OptionValues = Record<string, string | boolean | undefined>;

export interface CommandContext {
  services: Services;
  values: OptionValues;
  positionals: string[];
  /** Progress output (stderr) wanted. */
  progress: boolean;
}

export interface Output {
  text: string;
  json: unknown;
  exitCode: number;
}

const JSON_OPTIONS = { useProtoFieldName: true, alwaysEmitImplicit: true } as const;

/** The zone of the services' business times, shown next to every time printed. */
const ZONE = process.env.BUSINESS_TIME_ZONE || "Asia/Shanghai";
const zoned = (label: string) => `${label} (${ZONE})`;

/** The merchant's response_msg of an order left UNKNOWN by an injected lost response (orderSender.ts). */
const LOST_RESPONSE_MSG = "response lost (injected fault)";

function json<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): unknown {
  return toJson(schema, message, JSON_OPTIONS);
}

// --- option parsing -----------------------------------------------------------------------------

function str(values: OptionValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === "string" ? v : undefined;
}

function required(values: OptionValues, name: string): string {
  const v = str(values, name);
  if (v === undefined || v === "") throw new UsageError(`--${name} is required`);
  return v;
}

export function intOption(values: OptionValues, name: string, fallback: number, min: number, max: number): number {
  const raw = str(values, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new UsageError(`--${name} must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

/** Money and seeds: integers that may not fit a double, so read as bigint. */
export function bigintOption(values: OptionValues, name: string, fallback: bigint | undefined, min: bigint, max: bigint): bigint | undefined {
  const raw = str(values, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new UsageError(`--${name} must be a whole number of fen, got "${raw}"`);
  const n = BigInt(raw);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

function requiredAmount(values: OptionValues, name: string): bigint {
  const v = bigintOption(values, name, undefined, 1n, 1_000_000_000_000n);
  if (v === undefined) throw new UsageError(`--${name} is required (an integer number of fen)`);
  return v;
}

type OrderTypeName = "payment" | "withdrawal" | "refund";
const MERCHANT_ORDER_TYPES: Record<OrderTypeName, MerchantOrderType> = {
  payment: MerchantOrderType.PAYMENT,
  withdrawal: MerchantOrderType.WITHDRAWAL,
  refund: MerchantOrderType.REFUND,
};
const RECON_ORDER_TYPES: Record<OrderTypeName, ReconOrderType> = {
  payment: ReconOrderType.PAYMENT,
  withdrawal: ReconOrderType.WITHDRAWAL,
  refund: ReconOrderType.REFUND,
};

function orderTypeOption(values: OptionValues, name: string): OrderTypeName | undefined {
  const raw = str(values, name);
  if (raw === undefined) return undefined;
  const t = raw.toLowerCase().replace(/s$/, "");
  if (!Object.hasOwn(MERCHANT_ORDER_TYPES, t)) throw new UsageError(`--${name} must be payment, withdrawal or refund, got "${raw}"`);
  return t as OrderTypeName;
}

function keyOption(values: OptionValues): OrderKey {
  const raw = str(values, "key") ?? "response_id";
  if (raw === "response_id") return OrderKey.RESPONSE_ID;
  if (raw === "request_id") return OrderKey.REQUEST_ID;
  throw new UsageError(`--key must be response_id or request_id, got "${raw}"`);
}

function cutoffOption(values: OptionValues): string {
  const raw = str(values, "cutoff") ?? "";
  if (raw !== "" && !/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/.test(raw)) {
    throw new UsageError(`--cutoff must be "yyyy-MM-dd HH:mm:ss", got "${raw}"`);
  }
  return raw;
}

async function csvSource(values: OptionValues, name: string): Promise<MessageInitShape<typeof CsvSourceSchema> | undefined> {
  const path = str(values, name);
  if (path === undefined) return undefined;
  try {
    // Sent as content, so the file need not be readable by the reconciliation service.
    return { source: { case: "content", value: await readFile(path, "utf8") } };
  } catch (err) {
    throw new UsageError(`--${name}: cannot read ${path} (${(err as Error).message})`);
  }
}

// --- formatting -------------------------------------------------------------------------------

const merchantTypeName = (t: MerchantOrderType) =>
  t === MerchantOrderType.PAYMENT ? "payment" : t === MerchantOrderType.WITHDRAWAL ? "withdrawal" : t === MerchantOrderType.REFUND ? "refund" : "-";
const reconTypeName = (t: ReconOrderType) =>
  t === ReconOrderType.PAYMENT ? "payment" : t === ReconOrderType.WITHDRAWAL ? "withdrawal" : t === ReconOrderType.REFUND ? "refund" : "-";
const keyName = (k: OrderKey) => (k === OrderKey.REQUEST_ID ? "request_id" : "response_id");
const ms = (n: bigint | number) => formatDuration(Number(n) / 1000).replace(/^0s$/, `${Number(n)}ms`);

function orderRecord(o: Order): string {
  return record([
    ["request_id", o.requestId],
    ["type", merchantTypeName(o.orderType)],
    ["saler_id", o.salerId],
    ["amount (fen)", o.amount],
    ["state", o.state],
    [zoned("request_time"), o.requestTime],
    ["response_id", o.responseId || "-"],
    [zoned("response_time"), o.responseTime || "-"],
    ["response_code", o.responseCode || "-"],
    ["response_msg", o.responseMsg || "-"],
  ]);
}

function orderOutcome(o: Order): Output {
  const text = orderRecord(o) + (o.state === "UNKNOWN" ? "\nThe outcome is unknown (the call timed out or broke); `resolve` asks the payment system.\n" : "");
  return { text, json: json(OrderSchema, o), exitCode: o.state === "SUCCESS" ? EXIT.ok : EXIT.businessFailure };
}

// --- commands ---------------------------------------------------------------------------------

export async function pay(ctx: CommandContext): Promise<Output> {
  const salerId = required(ctx.values, "saler");
  const totalFee = requiredAmount(ctx.values, "amount");
  const { order } = await call("merchant", ctx.services.addresses, () => ctx.services.merchant.pay({ salerId, totalFee }));
  return orderOutcome(order!);
}

export async function withdraw(ctx: CommandContext): Promise<Output> {
  const salerId = required(ctx.values, "saler");
  const withdrawMoney = requiredAmount(ctx.values, "amount");
  const { order } = await call("merchant", ctx.services.addresses, () => ctx.services.merchant.withdraw({ salerId, withdrawMoney }));
  return orderOutcome(order!);
}

export async function refund(ctx: CommandContext): Promise<Output> {
  const paymentRequestId = required(ctx.values, "of");
  if (!/^\d{20}$/.test(paymentRequestId)) throw new UsageError(`--of must be a 20-digit request_id, got "${paymentRequestId}"`);
  const refundFee = requiredAmount(ctx.values, "amount");
  const { order } = await call("merchant", ctx.services.addresses, () => ctx.services.merchant.refund({ paymentRequestId, refundFee }));
  return orderOutcome(order!);
}

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

export async function simulate(ctx: CommandContext): Promise<Output> {
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
  const chunks = planChunks(count, chunkSize, faults);

  if (ctx.progress && chunks.length === 1) process.stderr.write(`simulating ${count} ${kind}s in one Simulate call (seed ${seed}); --chunk N shows progress\n`);
  const bar = new ProgressBar({ label: `simulate ${kind}s`, total: count, enabled: ctx.progress && chunks.length > 1 });
  const started = performance.now();
  const reports: SimulateResponse[] = [];
  let done = 0;
  try {
    for (const [i, chunk] of chunks.entries()) {
      const report = await call("merchant", ctx.services.addresses, () =>
        ctx.services.merchant.simulate({
          orderType: MERCHANT_ORDER_TYPES[kind],
          count: chunk.count,
          concurrency,
          accounts,
          accountPrefix: prefix,
          minAmount,
          maxAmount,
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
  const elapsedMs = performance.now() - started;
  const sum = (f: (r: SimulateResponse) => number) => reports.reduce((a, r) => a + f(r), 0);
  const succeeded = sum((r) => r.succeeded);
  const failed = sum((r) => r.failed);
  const unknown = sum((r) => r.unknown);
  const amountSucceeded = reports.reduce((a, r) => a + r.amountSucceeded, 0n);
  // Latency: the median of the calls' medians (weighted by size) and the worst call's p99.
  const byP50 = [...reports].sort((a, b) => a.latencyP50Ms - b.latencyP50Ms);
  let half = count / 2;
  let p50 = 0;
  for (const r of byP50) {
    p50 = r.latencyP50Ms;
    half -= r.requested;
    if (half <= 0) break;
  }
  const p99 = Math.max(...reports.map((r) => r.latencyP99Ms));
  const injected = reports.flatMap((r) => r.injected);
  const throughput = elapsedMs > 0 ? (count * 1000) / elapsedMs : count;

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

export async function settle(ctx: CommandContext): Promise<Output> {
  const res = await call("payment", ctx.services.addresses, () => ctx.services.payment.settle({ fullSweep: ctx.values["full-sweep"] === true }));
  const text = res.ran
    ? record([
        ["accounts settled", res.accountsSettled],
        ["credits applied", res.creditsApplied],
        ["amount settled (fen)", res.amountSettled],
        ["database sweep", res.swept],
        ["took", ms(res.durationMs)],
      ])
    : "Another settler holds the settlement lease; nothing was done this time.\n";
  return { text, json: json(SettleResponseSchema, res), exitCode: EXIT.ok };
}

/** Open orders the resolver leaves alone, by reason. */
interface Skipped {
  reason: string;
  count: number;
  requestIds: string[];
}

/** What the merchant's resolver does not examine, and why: the orders of an injected lost response. */
async function skippedByResolver(ctx: CommandContext): Promise<Skipped[]> {
  const lost: string[] = [];
  let count = 0;
  let pageToken = "";
  do {
    const page = await call("merchant", ctx.services.addresses, () => ctx.services.merchant.listOrders({ state: "UNKNOWN", pageSize: 1000, pageToken }));
    for (const o of page.orders) {
      if (o.responseMsg !== LOST_RESPONSE_MSG) continue;
      count++;
      if (lost.length < 20) lost.push(o.requestId);
    }
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return count === 0
    ? []
    : [
        {
          reason:
            "UNKNOWN by an injected lost response (simulation fault): left alone on purpose, since they stand for answers the merchant never got; reconciliation reports them as F113",
          count,
          requestIds: lost,
        },
      ];
}

export async function resolve(ctx: CommandContext): Promise<Output> {
  const initOlderThanSeconds = intOption(ctx.values, "init-older-than", 0, 0, 86_400 * 30);
  const res = await call("merchant", ctx.services.addresses, () => ctx.services.merchant.resolveUnknownOrders({ initOlderThanSeconds }));
  const skipped = await skippedByResolver(ctx);
  const skippedCount = skipped.reduce((n, s) => n + s.count, 0);
  let text = record([
    ["orders examined", res.examined],
    ["now SUCCESS", res.succeeded],
    ["now FAIL", res.failed],
    ["still UNKNOWN", res.stillUnknown],
    ["skipped", skippedCount],
  ]);
  if (res.stillUnknown > 0) text += "\nSome orders stay UNKNOWN: the payment system could not be asked.\n";
  for (const s of skipped) {
    text += `\nSkipped ${s.count} order(s) ${s.reason}.\n  ${s.requestIds.join("\n  ")}${s.count > s.requestIds.length ? `\n  (first ${s.requestIds.length}; paycli orders --state UNKNOWN lists all)` : ""}\n`;
  }
  text += `\nINIT orders newer than ${initOlderThanSeconds || "the merchant's RESOLVE_INIT_AFTER_SECONDS"} s are not examined: their calls may still be under way.\n`;
  return {
    text,
    json: {
      examined: res.examined,
      succeeded: res.succeeded,
      failed: res.failed,
      still_unknown: res.stillUnknown,
      skipped: skipped.map((s) => ({ reason: s.reason, count: s.count, request_ids: s.requestIds })),
    },
    exitCode: res.stillUnknown > 0 ? EXIT.businessFailure : EXIT.ok,
  };
}

export async function balances(ctx: CommandContext): Promise<Output> {
  const saler = str(ctx.values, "saler");
  let accounts: Account[] = [];
  if (saler !== undefined) {
    const res = await call("payment", ctx.services.addresses, () => ctx.services.payment.getBalance({ salerId: saler }));
    accounts = res.account ? [res.account] : [];
  } else {
    let pageToken = "";
    do {
      const page = await call("payment", ctx.services.addresses, () => ctx.services.payment.listAccounts({ pageSize: 1000, pageToken }));
      accounts.push(...page.accounts);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
  }
  const total = accounts.reduce((t, a) => ({ balance: t.balance + a.balance, pending: t.pending + a.pending, count: t.count + a.pendingCount }), {
    balance: 0n,
    pending: 0n,
    count: 0n,
  });
  const text =
    accounts.length === 0
      ? "No accounts yet.\n"
      : table(
          ["saler_id", "balance (fen)", "pending (fen)", "pending payments"],
          accounts.map((a) => [a.salerId, a.balance, a.pending, a.pendingCount]),
          accounts.length > 1 ? [`${accounts.length} accounts`, total.balance, total.pending, total.count] : undefined,
        );
  return { text, json: accounts.map((a) => json(AccountSchema, a)), exitCode: EXIT.ok };
}

export async function orders(ctx: CommandContext): Promise<Output> {
  const type = orderTypeOption(ctx.values, "type");
  const state = (str(ctx.values, "state") ?? "").toUpperCase();
  const salerId = str(ctx.values, "saler") ?? "";
  const limit = intOption(ctx.values, "limit", 20, 1, 100_000);
  const found: Order[] = [];
  let pageToken = str(ctx.values, "page") ?? "";
  do {
    const page = await call("merchant", ctx.services.addresses, () =>
      ctx.services.merchant.listOrders({
        orderType: type === undefined ? MerchantOrderType.UNSPECIFIED : MERCHANT_ORDER_TYPES[type],
        state,
        salerId,
        pageSize: Math.min(1000, limit - found.length),
        pageToken,
      }),
    );
    found.push(...page.orders);
    pageToken = page.nextPageToken;
  } while (pageToken !== "" && found.length < limit);
  const text =
    found.length === 0
      ? "No orders match.\n"
      : table(
          ["request_id", "type", "saler_id", "amount", "state", "response_id", zoned("request_time"), "response_msg"],
          found.map((o) => [o.requestId, merchantTypeName(o.orderType), o.salerId, o.amount, o.state, o.responseId || "-", o.requestTime, o.responseMsg || "-"]),
        ) + (pageToken !== "" ? `(${found.length} shown; next page: --page ${pageToken})\n` : "");
  return { text, json: { orders: found.map((o) => json(OrderSchema, o)), next_page_token: pageToken }, exitCode: EXIT.ok };
}

// --- reconciliation and audit -------------------------------------------------------------------

async function diffRows(ctx: CommandContext, runId: string, limit: number): Promise<DiffRow[]> {
  const rows: DiffRow[] = [];
  for (const diffType of ["F113", "F114", "F115"]) {
    if (rows.length >= limit) break;
    const abort = new AbortController();
    try {
      await call("recon", ctx.services.addresses, async () => {
        for await (const batch of ctx.services.recon.streamDiffRows({ runId, diffType }, { signal: abort.signal })) {
          rows.push(...batch.rows.slice(0, limit - rows.length));
          if (rows.length >= limit) break;
        }
      });
    } finally {
      abort.abort();
    }
  }
  return rows;
}

async function failedAuditRows(ctx: CommandContext, runId: string, limit: number): Promise<AuditRow[]> {
  const rows: AuditRow[] = [];
  if (limit === 0) return rows;
  const abort = new AbortController();
  try {
    await call("recon", ctx.services.addresses, async () => {
      for await (const batch of ctx.services.recon.streamAuditRows({ runId, result: "FAIL" }, { signal: abort.signal })) {
        rows.push(...batch.rows.slice(0, limit - rows.length));
        if (rows.length >= limit) break;
      }
    });
  } finally {
    abort.abort();
  }
  return rows;
}

function runHeader(run: Run): string {
  const kind = run.kind === RunKind.AUDIT ? "Audit" : "Reconciliation";
  return record([
    [`${kind} run`, run.runId],
    [zoned("created"), run.createdTime],
    [zoned("cut-off"), run.cutoffTime || "-"],
    ...(run.kind === RunKind.AUDIT ? [] : ([["key", keyName(run.key)]] as [string, Cell][])),
    ["source", run.source],
    ["directory", run.directory],
    ["took", ms(run.durationMs)],
  ]);
}

function diffSummaryTable(run: Run): string {
  return table(
    ["type", "merchant rows", "payment rows", "F000", "F000 fen", "F113", "F113 fen", "F114", "F114 fen", "F115", "F115 fen"],
    run.diffs.map((d) => [
      reconTypeName(d.orderType),
      d.merchantRows,
      d.paymentRows,
      d.f000Count,
      d.f000Amount,
      d.f113Count,
      d.f113Amount,
      d.f114Count,
      d.f114Amount,
      d.f115Count,
      d.f115Amount,
    ]),
  );
}

function auditSummaryTable(run: Run): string {
  const a = run.audit;
  return record([
    ["accounts", a?.accounts ?? 0n],
    ["SUCCESS", a?.success ?? 0n],
    ["FAIL", a?.fail ?? 0n],
    ["merchant only", a?.merchantOnly ?? 0n],
    ["payment only", a?.paymentOnly ?? 0n],
  ]);
}

const DIFF_MEANING = "F113 only in the payment system, F114 only in the merchant system, F115 amounts differ";

async function renderReconciliation(ctx: CommandContext, run: Run, limit: number): Promise<{ text: string; rows: DiffRow[] }> {
  const differences = run.diffs.reduce((n, d) => n + d.f113Count + d.f114Count + d.f115Count, 0n);
  const parts = [runHeader(run), diffSummaryTable(run)];
  let rows: DiffRow[] = [];
  if (run.balanced) parts.push("BALANCED: every order is F000 (on both sides, same amount).\n");
  else {
    parts.push(`NOT BALANCED: ${differences} difference(s) (${DIFF_MEANING}).\n`);
    rows = limit > 0 ? await diffRows(ctx, run.runId, limit) : [];
    if (rows.length > 0) {
      parts.push(
        table(
          ["type", "diff_type", "request_id", "response_id", "saler_id", "merchant_amount", "payment_amount"],
          rows.map((r) => [reconTypeName(r.orderType), r.diffType, r.requestId, r.responseId, r.salerId, r.merchantAmount, r.paymentAmount]),
        ) + (BigInt(rows.length) < differences ? `(first ${rows.length} of ${differences}; --rows shows more, the CSV files have all)\n` : ""),
      );
    }
  }
  return { text: parts.join("\n"), rows };
}

async function renderAudit(ctx: CommandContext, run: Run, limit: number): Promise<{ text: string; rows: AuditRow[] }> {
  const parts = [runHeader(run), auditSummaryTable(run)];
  let rows: AuditRow[] = [];
  if (run.balanced) parts.push("PASS: every account's balance equals the merchant's payments minus withdrawals.\n");
  else {
    const fail = run.audit?.fail ?? 0n;
    parts.push(`FAIL: ${fail} account(s) do not match.\n`);
    rows = await failedAuditRows(ctx, run.runId, limit);
    if (rows.length > 0) {
      parts.push(
        table(
          ["saler_id", "balance", "result", "audit_amount", "difference", "in merchant", "in payment"],
          rows.map((r) => [r.salerId, r.balance, r.result, r.auditAmount, r.balance - r.auditAmount, r.inMerchant, r.inPayment]),
        ) + (BigInt(rows.length) < fail ? `(first ${rows.length} of ${fail}; --rows shows more)\n` : ""),
      );
    }
  }
  return { text: parts.join("\n"), rows };
}

export async function reconcile(ctx: CommandContext): Promise<Output> {
  const v = ctx.values;
  const limit = intOption(v, "rows", 20, 0, 1_000_000);
  const key = keyOption(v);
  const merchantFile = await csvSource(v, "merchant-file");
  const paymentFile = await csvSource(v, "payment-file");
  let run: Run | undefined;
  if (merchantFile || paymentFile) {
    if (!merchantFile || !paymentFile) throw new UsageError("--merchant-file and --payment-file go together");
    const type = orderTypeOption(v, "type") ?? "payment";
    ({ run } = await call("recon", ctx.services.addresses, () =>
      ctx.services.recon.reconcileFiles({
        orderType: RECON_ORDER_TYPES[type],
        key,
        merchant: merchantFile,
        payment: paymentFile,
      }),
    ));
  } else {
    const cutoffTime = cutoffOption(v);
    ({ run } = await call("recon", ctx.services.addresses, () =>
      ctx.services.recon.reconcile({ key, cutoffTime, resolveUnknown: v["resolve-unknown"] === true }),
    ));
  }
  const { text, rows } = await renderReconciliation(ctx, run!, limit);
  return {
    text,
    json: { run: json(RunSchema, run!), differences: rows.map((r) => json(DiffRowSchema, r)) },
    exitCode: run!.balanced ? EXIT.ok : EXIT.businessFailure,
  };
}

export async function audit(ctx: CommandContext): Promise<Output> {
  const v = ctx.values;
  const limit = intOption(v, "rows", 20, 0, 1_000_000);
  const files = {
    merchantPayments: await csvSource(v, "payments-file"),
    merchantWithdrawals: await csvSource(v, "withdrawals-file"),
    balances: await csvSource(v, "balances-file"),
  };
  let run: Run | undefined;
  if (files.merchantPayments || files.merchantWithdrawals || files.balances) {
    if (!files.balances || !files.merchantPayments) throw new UsageError("an audit of files needs --payments-file and --balances-file (and --withdrawals-file when there are withdrawals)");
    ({ run } = await call("recon", ctx.services.addresses, () => ctx.services.recon.auditFiles(files)));
  } else {
    const cutoffTime = cutoffOption(v);
    ({ run } = await call("recon", ctx.services.addresses, () => ctx.services.recon.audit({ cutoffTime, resolveUnknown: v["resolve-unknown"] === true })));
  }
  const { text, rows } = await renderAudit(ctx, run!, limit);
  return {
    text,
    json: { run: json(RunSchema, run!), failures: rows.map((r) => json(AuditRowSchema, r)) },
    exitCode: run!.balanced ? EXIT.ok : EXIT.businessFailure,
  };
}

function runSummary(run: Run): string {
  if (run.kind === RunKind.AUDIT) {
    const a = run.audit;
    return `${a?.accounts ?? 0n} accounts, ${a?.fail ?? 0n} FAIL`;
  }
  const n = (f: (d: Run["diffs"][number]) => bigint) => run.diffs.reduce((t, d) => t + f(d), 0n);
  return `F000 ${n((d) => d.f000Count)}, F113 ${n((d) => d.f113Count)}, F114 ${n((d) => d.f114Count)}, F115 ${n((d) => d.f115Count)}`;
}

export async function runsList(ctx: CommandContext): Promise<Output> {
  const kindRaw = str(ctx.values, "kind");
  const kind = kindRaw === undefined ? RunKind.UNSPECIFIED : kindRaw === "audit" ? RunKind.AUDIT : RunKind.RECONCILIATION;
  const limit = intOption(ctx.values, "limit", 20, 1, 1000);
  const res = await call("recon", ctx.services.addresses, () => ctx.services.recon.listRuns({ kind, pageSize: limit }));
  const text =
    res.runs.length === 0
      ? "No runs yet.\n"
      : table(
          ["run_id", "kind", zoned("created"), zoned("cut-off"), "source", "result", "summary", "took"],
          res.runs.map((r) => [
            r.runId,
            r.kind === RunKind.AUDIT ? "audit" : "reconciliation",
            r.createdTime,
            r.cutoffTime || "-",
            r.source,
            r.balanced ? (r.kind === RunKind.AUDIT ? "PASS" : "BALANCED") : r.kind === RunKind.AUDIT ? "FAIL" : "NOT BALANCED",
            runSummary(r),
            ms(r.durationMs),
          ]),
        );
  return { text, json: res.runs.map((r) => json(RunSchema, r)), exitCode: EXIT.ok };
}

/** One run; exit 1 when it is not balanced (differences found, or an audit FAIL). */
export async function runsShow(ctx: CommandContext): Promise<Output> {
  const [runId] = ctx.positionals;
  if (!runId) throw new UsageError("runs show needs a run id (see `runs list`)");
  const limit = intOption(ctx.values, "rows", 20, 0, 1_000_000);
  const { run } = await call("recon", ctx.services.addresses, () => ctx.services.recon.getRun({ runId }));
  const body = run!.kind === RunKind.AUDIT ? await renderAudit(ctx, run!, limit) : await renderReconciliation(ctx, run!, limit);
  const files = run!.files.length > 0 ? "\n" + table(["file", "rows", "path"], run!.files.map((f) => [f.name, f.rows, f.path])) : "";
  return { text: body.text + files, json: json(RunSchema, run!), exitCode: run!.balanced ? EXIT.ok : EXIT.businessFailure };
}
