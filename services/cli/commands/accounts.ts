/** The payment system's side: settlement and account balances. */
import { AccountSchema, SettleResponseSchema, type Account } from "../../../gen/payment/v1/payment_pb.js";
import { call, EXIT } from "../clients.js";
import { record, table } from "../table.js";
import { json, ms } from "./format.js";
import { str, type CommandContext, type Output } from "./options.js";

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
