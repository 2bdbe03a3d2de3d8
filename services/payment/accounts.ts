/**
 * Accounts (one per saler_id): the settled balance, and what is pending for it in unsettled
 * payments. Credits reach a balance only through settlement (settlement.ts); withdrawals and
 * refunds take from it by one conditional UPDATE (`debit`), so a balance never goes below zero.
 * Data access takes a knex or a transaction.
 */
import type { Knex } from "knex";
import { Code, ConnectError } from "@connectrpc/connect";
import { changedRows, sqlInt, toFen, type Database } from "../shared/storage/database.js";
import { writeWithRetry } from "../shared/storage/contention.js";
import type { Logger } from "../shared/observability/logger.js";
import { pageSize, requireSalerId } from "../shared/orders/validation.js";

/** Creates the account with a zero balance unless it exists. */
export async function ensureAccount(db: Knex, salerId: string, now: string): Promise<void> {
  await writeWithRetry(db, () =>
    db("accounts").insert({ saler_id: salerId, balance: 0n, created_time: now, updated_time: now }).onConflict("saler_id").ignore(),
  );
}

const DEBIT = "UPDATE accounts SET balance = balance - ?, updated_time = ? WHERE saler_id = ? AND balance >= ?";

/** Debits the balance if it covers the amount; one statement, so it can never go below zero. */
export async function debit(db: Knex, salerId: string, amount: bigint, now: string): Promise<boolean> {
  return (await changedRows(db, DEBIT, [sqlInt(amount), now, salerId, sqlInt(amount)])) === 1;
}

export interface AccountView {
  salerId: string;
  balance: bigint;
  pending: bigint;
  pendingCount: bigint;
}

/** Settled balances plus pending credit, for a page of accounts in saler_id order. */
export async function accountViews(db: Knex, filter: { salerId?: string; after?: string; limit: number }): Promise<AccountView[]> {
  let q = db("accounts").select("saler_id", "balance").orderBy("saler_id").limit(filter.limit);
  if (filter.salerId !== undefined) q = q.where({ saler_id: filter.salerId });
  if (filter.after !== undefined) q = q.where("saler_id", ">", filter.after);
  const rows = (await q) as { saler_id: string; balance: unknown }[];
  if (rows.length === 0) return [];
  const pending = (await db("payment_orders")
    .select("saler_id")
    .sum({ pending: "total_fee" })
    .count({ n: "*" })
    .whereIn(
      "saler_id",
      rows.map((r) => r.saler_id),
    )
    .whereNull("settlement_id")
    .groupBy("saler_id")) as { saler_id: string; pending: unknown; n: unknown }[];
  const bySaler = new Map(pending.map((p) => [p.saler_id, p]));
  return rows.map((r) => {
    const p = bySaler.get(r.saler_id);
    return { salerId: r.saler_id, balance: toFen(r.balance), pending: toFen(p?.pending), pendingCount: toFen(p?.n) };
  });
}

/** GetBalance: one account, or NOT_FOUND naming saler_id. */
export async function balanceOf(db: Knex, salerId: string): Promise<AccountView> {
  requireSalerId("saler_id", salerId);
  const [view] = await accountViews(db, { salerId, limit: 1 });
  if (!view) throw new ConnectError(`saler_id: account ${salerId} does not exist`, Code.NotFound);
  return view;
}

/** ListAccounts: a page of accounts in saler_id order; the next page starts after the last saler_id. */
export async function accountPage(
  db: Knex,
  req: { pageSize: number; pageToken: string },
): Promise<{ accounts: AccountView[]; nextPageToken: string }> {
  const limit = pageSize("page_size", req.pageSize, 100, 1000);
  if (req.pageToken !== "") requireSalerId("page_token", req.pageToken);
  const views = await accountViews(db, { limit: limit + 1, ...(req.pageToken ? { after: req.pageToken } : {}) });
  const page = views.slice(0, limit);
  return {
    accounts: page,
    nextPageToken: views.length > limit ? page[page.length - 1]!.salerId : "",
  };
}

/**
 * The accounts this process has already made sure exist, so that a payment to a known account
 * costs no extra statement.
 */
export class KnownAccounts {
  private readonly known = new Set<string>();

  constructor(
    private readonly db: Database,
    private readonly logger: Logger,
  ) {}

  /** After the order committed: a failure here is logged, never the caller's answer. */
  async remember(salerId: string, now: string): Promise<void> {
    if (this.known.has(salerId)) return;
    try {
      await ensureAccount(this.db.knex, salerId, now);
    } catch (err) {
      this.logger.warn({ err, salerId }, "account not created yet; the first settlement of its credit creates it");
      return;
    }
    if (this.known.size > 100_000) this.known.clear();
    this.known.add(salerId);
  }
}
