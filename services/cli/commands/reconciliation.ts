/** Reconciliation and audit runs: start one, list them, show one with its differences. */
import { AuditRowSchema, DiffRowSchema, RunKind, RunSchema, type AuditRow, type DiffRow, type Run } from "../../../gen/recon/v1/recon_pb.js";
import { call, EXIT, UsageError } from "../clients.js";
import { record, table, type Cell } from "../table.js";
import { json, keyName, ms, orderTypeName, zoned } from "./format.js";
import { csvSource, cutoffOption, intOption, keyOption, orderTypeOption, ORDER_TYPES, str, type CommandContext, type Output } from "./options.js";

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
      orderTypeName(d.orderType),
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
          rows.map((r) => [orderTypeName(r.orderType), r.diffType, r.requestId, r.responseId, r.salerId, r.merchantAmount, r.paymentAmount]),
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
        orderType: ORDER_TYPES[type],
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
