import type { Migration } from "../../shared/database.js";
import * as m0001 from "./20261125_0001_payment_orders_and_accounts.js";

/** The payment system's migrations, applied in name order. */
export const paymentMigrations: Record<string, Migration> = {
  "20261125_0001_payment_orders_and_accounts": m0001,
};
