import type { Migration } from "../../shared/database.js";
import * as m0001 from "./20261125_0001_merchant_orders.js";

/** The merchant system's migrations, applied in name order. */
export const merchantMigrations: Record<string, Migration> = {
  "20261125_0001_merchant_orders": m0001,
};
