/**
 * The final accounting of a fault run: every acknowledged answer kept, no credit lost or doubled,
 * no order stuck, reconciliation balanced.
 */
import { join } from "node:path";
import { type Run } from "../../gen/recon/v1/recon_pb.js";
import { sleep } from "./processes.js";
import { trace } from "./schedule.js";
import { FaultPlatform } from "./platform.js";
import { Load, BalanceSampler } from "./load.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";

export interface FaultReport {
  scenario: string;
  seed: number;
  crashPoints: number;
  crashPointsByKind: Record<string, number>;
  /** Kills that left the settlement lease behind: the process died inside a settlement run. */
  killedInSettlement: number;
  restarts: number;
  restartsSurvived: number;
  calls: number;
  acknowledged: number;
  paymentsRecorded: number;
  withdrawalsSucceeded: number;
  /**
   * Credits missing: acknowledged payments the payment system has no success for, recorded
   * payments still uncredited at the end, and accounts holding less than they are owed.
   */
  creditsLost: number;
  amountLost: bigint;
  /** Credits applied twice: settlement-ledger credits beyond the rows stamped, and accounts holding more than they are owed. */
  creditsDoubled: number;
  amountDoubled: bigint;
  stuckOrders: number;
  processesCrashed: number;
  balanceSamples: number;
  negativeBalances: number;
  /** Reconciliation all F000 and the audit all SUCCESS. */
  reconBalanced: boolean;
  /** Every broken promise, described (at most a few dozen). */
  problems: string[];
  notes: string[];
}

export function describeReport(r: FaultReport): string {
  const kinds = Object.entries(r.crashPointsByKind)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
  return [
    `[fault report] ${r.scenario} seed=${r.seed}`,
    `  crash points tried ${r.crashPoints} (${kinds}; inside a settlement run ${r.killedInSettlement})`,
    `  restarts ${r.restarts}, survived ${r.restartsSurvived}`,
    `  calls ${r.calls}, acknowledged ${r.acknowledged}, payments recorded ${r.paymentsRecorded}, withdrawals succeeded ${r.withdrawalsSucceeded}`,
    `  credits lost ${r.creditsLost} (${r.amountLost} fen), credits doubled ${r.creditsDoubled} (${r.amountDoubled} fen), stuck orders ${r.stuckOrders}`,
    `  processes crashed unexpectedly ${r.processesCrashed}, balance samples ${r.balanceSamples} (negative ${r.negativeBalances}), reconciliation ${r.reconBalanced ? "all F000, audit all SUCCESS" : "NOT balanced"}`,
    ...r.notes.map((n) => `  note: ${n}`),
    ...r.problems.slice(0, 30).map((p) => `  PROBLEM: ${p}`),
  ].join("\n");
}

type PaymentRow = { request_id: string; response_id: string; saler_id: string; total_fee: string; response_code: string; settlement_id: string | null };
type WithdrawalRow = { request_id: string; response_id: string; saler_id: string; withdraw_money: string; response_code: string };
type MerchantRow = { request_id: string; order_type: "PAYMENT" | "WITHDRAWAL"; saler_id: string; amount: string; state: string; response_id: string | null };

async function retrying<T>(what: string, attempts: number, fn: () => Promise<T>): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts) throw new Error(`${what} failed ${attempts} times: ${err instanceof Error ? err.message : String(err)}`);
      await sleep(500);
    }
  }
}

/**
 * Ends a run: stops the load, lets the merchant resolve its open orders, settles, reconciles,
 * and compares what was promised with what the databases hold.
 */
export async function finishRun(
  platform: FaultPlatform,
  load: Load,
  sampler: BalanceSampler,
  fault: { crashPointsByKind: Record<string, number>; killedInSettlement: number; restarts: number; restartsSurvived: number; notes?: string[] },
  options: { resolveBy: "rpc" | "schedule" } = { resolveBy: "rpc" },
): Promise<FaultReport> {
  await load.stop();
  trace("load stopped");
  const problems: string[] = [];
  const notes = [...(fault.notes ?? [])];
  for (const p of platform.processes) if (!p.running) await p.start();

  // Open orders: INIT ones left by a killed merchant, UNKNOWN ones from calls that broke. Those
  // the payment system never recorded are closed once older than CLOSE_UNKNOWN_AFTER_SECONDS.
  const openCount = async () =>
    Number((await platform.query<{ n: string }>("merchant", "SELECT COUNT(*) AS n FROM merchant_orders WHERE state IN ('INIT','UNKNOWN')"))[0]!.n);
  const openAtEnd = await retrying("counting open orders", 20, openCount);
  notes.push(`open merchant orders when the load stopped: ${openAtEnd}`);
  if (options.resolveBy === "schedule") {
    // The merchant's own scheduled resolver, nothing else, closes them.
    const until = Date.now() + 60_000;
    while ((await retrying("counting open orders", 20, openCount)) > 0 && Date.now() < until) await sleep(500);
  } else {
    await sleep(4_000);
    for (let i = 0; i < 20 && (await openCount()) > 0; i++) {
      await retrying("ResolveUnknownOrders", 20, () => platform.merchantClient.resolveUnknownOrders({ initOlderThanSeconds: 1 }, { timeoutMs: 60_000 }));
      if ((await openCount()) > 0) await sleep(1_000);
    }
  }
  const stuckOrders = await openCount();
  trace(`open orders resolved (${stuckOrders} left)`);
  if (stuckOrders > 0) problems.push(`${stuckOrders} merchant orders still INIT or UNKNOWN after resolution`);

  // The scheduled settlement alone must credit every recorded payment: nobody asks it for a
  // full sweep, and periodic sweeps are off (SETTLE_SWEEP_EVERY), so credits the buffer lost
  // come back only because the payment system noticed the loss.
  const pendingCount = async () =>
    Number((await platform.query<{ n: string }>("payment", "SELECT COUNT(*) AS n FROM payment_orders WHERE settlement_id IS NULL"))[0]!.n);
  const settleBy = Date.now() + 30_000;
  while ((await retrying("counting pending credits", 20, pendingCount)) > 0 && Date.now() < settleBy) await sleep(250);
  const [uncredited] = await platform.query<{ n: string; amount: string | null }>(
    "payment",
    "SELECT COUNT(*) AS n, CAST(SUM(total_fee) AS CHAR) AS amount FROM payment_orders WHERE settlement_id IS NULL",
  );
  let creditsLost = Number(uncredited!.n);
  let amountLost = BigInt(uncredited!.amount ?? "0");
  if (creditsLost > 0) problems.push(`${creditsLost} payments (${amountLost} fen) still uncredited 30 s after the load stopped`);
  // Settle asked for by hand now finds nothing left to credit.
  const extra = await retrying("Settle", 60, async () => {
    const r = await platform.paymentClient.settle({}, { timeoutMs: 30_000 });
    if (!r.ran) throw new Error("another settler holds the lease");
    return r;
  });
  if (creditsLost === 0 && extra.creditsApplied !== 0n) {
    problems.push(`a settlement after every credit was applied credited ${extra.creditsApplied} payments (${extra.amountSettled} fen) more`);
  }
  trace("settled");
  const recon = await retrying("Reconcile", 10, () =>
    platform.reconClient.reconcile({ resolveUnknown: true, cutoffTime: platform.clock.current() }, { timeoutMs: 60_000 }),
  );
  const run = recon.run as Run;
  // The audit: each account's balance against the merchant's own successful orders.
  const audit = (await retrying("Audit", 10, () => platform.reconClient.audit({ cutoffTime: platform.clock.current() }, { timeoutMs: 60_000 })))
    .run as Run;
  trace("reconciled and audited");

  const payments = await platform.query<PaymentRow>(
    "payment",
    "SELECT request_id, response_id, saler_id, CAST(total_fee AS CHAR) AS total_fee, response_code, CAST(settlement_id AS CHAR) AS settlement_id FROM payment_orders",
  );
  const withdrawals = await platform.query<WithdrawalRow>(
    "payment",
    "SELECT request_id, response_id, saler_id, CAST(withdraw_money AS CHAR) AS withdraw_money, response_code FROM withdrawal_orders",
  );
  const accounts = await platform.query<{ saler_id: string; balance: string }>("payment", "SELECT saler_id, CAST(balance AS CHAR) AS balance FROM accounts");
  const [ledger] = await platform.query<{ credits: string | null; amount: string | null }>(
    "payment",
    "SELECT CAST(SUM(credits) AS CHAR) AS credits, CAST(SUM(amount) AS CHAR) AS amount FROM settlements",
  );
  const merchantOrders = await platform.query<MerchantRow>(
    "merchant",
    "SELECT request_id, order_type, saler_id, CAST(amount AS CHAR) AS amount, state, response_id FROM merchant_orders",
  );

  let creditsDoubled = 0;
  let amountDoubled = 0n;

  // The bank invariant, account by account, from the payment system's own orders.
  const owed = new Map<string, bigint>();
  const add = (a: string, v: bigint) => owed.set(a, (owed.get(a) ?? 0n) + v);
  let pendingRows = 0;
  let stampedRows = 0;
  let stampedAmount = 0n;
  const pending = new Map<string, bigint>();
  for (const p of payments) {
    if (p.response_code !== "SUCCESS") continue;
    add(p.saler_id, BigInt(p.total_fee));
    if (p.settlement_id === null) {
      pendingRows++;
      pending.set(p.saler_id, (pending.get(p.saler_id) ?? 0n) + BigInt(p.total_fee));
    } else {
      stampedRows++;
      stampedAmount += BigInt(p.total_fee);
    }
  }
  for (const w of withdrawals) if (w.response_code === "SUCCESS") add(w.saler_id, -BigInt(w.withdraw_money));
  const balances = new Map(accounts.map((a) => [a.saler_id, BigInt(a.balance)]));
  for (const salerId of new Set([...owed.keys(), ...balances.keys()])) {
    const expected = owed.get(salerId) ?? 0n;
    const actual = (balances.get(salerId) ?? 0n) + (pending.get(salerId) ?? 0n);
    if (actual < expected) {
      creditsLost++;
      amountLost += expected - actual;
      problems.push(`${salerId}: balance ${balances.get(salerId) ?? 0n} + pending ${pending.get(salerId) ?? 0n} < payments − withdrawals ${expected}`);
    } else if (actual > expected) {
      creditsDoubled++;
      amountDoubled += actual - expected;
      problems.push(`${salerId}: balance ${balances.get(salerId) ?? 0n} + pending ${pending.get(salerId) ?? 0n} > payments − withdrawals ${expected}`);
    }
    if ((balances.get(salerId) ?? 0n) < 0n) problems.push(`${salerId}: negative balance ${balances.get(salerId)}`);
  }
  if (pendingRows > 0) problems.push(`${pendingRows} payments still uncredited after a settlement asked for by hand`);
  // The settlements ledger credits each stamped row once: more credits than rows is a double.
  const ledgerCredits = BigInt(ledger?.credits ?? "0");
  const ledgerAmount = BigInt(ledger?.amount ?? "0");
  if (ledgerCredits > BigInt(stampedRows)) {
    creditsDoubled += Number(ledgerCredits - BigInt(stampedRows));
    amountDoubled += ledgerAmount - stampedAmount;
    problems.push(`settlements credited ${ledgerCredits} payments (${ledgerAmount} fen), but ${stampedRows} (${stampedAmount} fen) are stamped`);
  } else if (ledgerCredits < BigInt(stampedRows) || ledgerAmount !== stampedAmount) {
    problems.push(`settlements credited ${ledgerCredits} payments (${ledgerAmount} fen), but ${stampedRows} (${stampedAmount} fen) are stamped`);
  }

  // What the merchant promised the load must hold in the payment system.
  const paymentById = new Map(payments.map((p) => [p.request_id, p]));
  const withdrawalById = new Map(withdrawals.map((w) => [w.request_id, w]));
  for (const [requestId, ack] of load.acknowledged) {
    const row = ack.type === "PAYMENT" ? paymentById.get(requestId) : withdrawalById.get(requestId);
    const amount = row ? BigInt("total_fee" in row ? row.total_fee : row.withdraw_money) : undefined;
    if (ack.state === "SUCCESS") {
      if (!row || row.response_code !== "SUCCESS" || amount !== ack.amount || row.saler_id !== ack.salerId) {
        if (ack.type === "PAYMENT") creditsLost++;
        problems.push(`acknowledged ${ack.type} ${requestId} (${ack.salerId}, ${ack.amount}) is ${row ? `${row.response_code} ${amount}` : "missing"} in the payment system`);
      }
    } else if (row && row.response_code === "SUCCESS") {
      problems.push(`${ack.type} ${requestId} answered FAIL to the merchant's caller is SUCCESS in the payment system`);
    }
  }

  // Both sides agree order by order: merchant SUCCESS ⇔ payment SUCCESS, same amount and ids.
  const paymentSuccess = new Map<string, { type: string; salerId: string; amount: bigint; responseId: string }>();
  for (const p of payments) if (p.response_code === "SUCCESS") paymentSuccess.set(p.request_id, { type: "PAYMENT", salerId: p.saler_id, amount: BigInt(p.total_fee), responseId: p.response_id });
  for (const w of withdrawals) if (w.response_code === "SUCCESS") paymentSuccess.set(w.request_id, { type: "WITHDRAWAL", salerId: w.saler_id, amount: BigInt(w.withdraw_money), responseId: w.response_id });
  const merchantSuccess = new Set<string>();
  for (const m of merchantOrders) {
    if (m.state !== "SUCCESS") continue;
    merchantSuccess.add(m.request_id);
    const p = paymentSuccess.get(m.request_id);
    if (!p || p.type !== m.order_type || p.amount !== BigInt(m.amount) || p.salerId !== m.saler_id || p.responseId !== m.response_id) {
      problems.push(`merchant SUCCESS ${m.order_type} ${m.request_id} (${m.saler_id}, ${m.amount}) has ${p ? `${p.type} ${p.amount} ${p.responseId}` : "no success"} in the payment system`);
      if (!p && m.order_type === "PAYMENT") creditsLost++;
    }
  }
  for (const [requestId, p] of paymentSuccess) {
    if (!merchantSuccess.has(requestId)) problems.push(`payment system SUCCESS ${p.type} ${requestId} (${p.salerId}, ${p.amount}) is not SUCCESS at the merchant`);
  }

  // Reconciliation over the same data: every order F000, and as many as each side holds.
  const expectedRows = {
    [OrderType.PAYMENT]: BigInt(payments.filter((p) => p.response_code === "SUCCESS").length),
    [OrderType.WITHDRAWAL]: BigInt(withdrawals.filter((w) => w.response_code === "SUCCESS").length),
  } as Record<number, bigint>;
  for (const d of run.diffs) {
    // An order type the load never sends (none but payments and withdrawals) has no rows.
    const expected = expectedRows[d.orderType] ?? 0n;
    if (d.f113Count !== 0n || d.f114Count !== 0n || d.f115Count !== 0n || d.f000Count !== expected) {
      problems.push(
        `reconciliation ${OrderType[d.orderType]}: F000 ${d.f000Count} of ${expected}, F113 ${d.f113Count}, F114 ${d.f114Count}, F115 ${d.f115Count}`,
      );
    }
  }
  for (const type of [OrderType.PAYMENT, OrderType.WITHDRAWAL]) {
    if (!run.diffs.some((d) => d.orderType === type)) problems.push(`reconciliation compared no ${OrderType[type]} orders`);
  }
  const a = audit.audit;
  if (!audit.balanced || !a || a.fail !== 0n || a.success !== a.accounts || a.accounts !== BigInt(balances.size)) {
    problems.push(`audit: ${a?.success} of ${a?.accounts} accounts SUCCESS, ${a?.fail} FAIL (the payment system has ${balances.size} accounts)`);
  }

  const crashed = platform.crashes();
  for (const c of crashed) problems.push(`${c.process} exited by itself (code ${c.code}, signal ${c.signal}):\n${c.output.slice(-2000)}`);
  if (sampler.negative.length > 0) problems.push(`negative balances sampled: ${sampler.negative.join(", ")}`);

  return {
    scenario: platform.options.scenario,
    seed: platform.options.seed,
    crashPoints: Object.values(fault.crashPointsByKind).reduce((a, b) => a + b, 0),
    crashPointsByKind: fault.crashPointsByKind,
    killedInSettlement: fault.killedInSettlement,
    restarts: fault.restarts,
    restartsSurvived: fault.restartsSurvived,
    calls: load.calls,
    acknowledged: load.acknowledged.size,
    paymentsRecorded: payments.length,
    withdrawalsSucceeded: withdrawals.filter((w) => w.response_code === "SUCCESS").length,
    creditsLost,
    amountLost,
    creditsDoubled,
    amountDoubled,
    stuckOrders,
    processesCrashed: crashed.length,
    balanceSamples: sampler.samples,
    negativeBalances: sampler.negative.length,
    reconBalanced: run.balanced && audit.balanced,
    problems,
    notes,
  };
}
