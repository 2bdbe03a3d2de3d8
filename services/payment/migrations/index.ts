import type { Migration } from "../../shared/storage/database.js";
import * as m0001 from "./20261125_0001_payment_orders_and_accounts.js";
import * as m0002 from "./20261129_0002_balance_ceiling.js";
import * as m0003 from "./20261129_0003_refunds.js";

/** The payment system's migrations, applied in name order. */
export const paymentMigrations: Record<string, Migration> = {
  "20261125_0001_payment_orders_and_accounts": m0001,
  "20261129_0002_balance_ceiling": m0002,
  "20261129_0003_refunds": m0003,
};
