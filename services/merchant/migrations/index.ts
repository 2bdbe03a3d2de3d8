import type { Migration } from "../../shared/storage/database.js";
import * as m0001 from "./20261125_0001_merchant_orders.js";
import * as m0002 from "./20261129_0002_refunds.js";

/** The merchant system's migrations, applied in name order. */
export const merchantMigrations: Record<string, Migration> = {
  "20261125_0001_merchant_orders": m0001,
  "20261129_0002_refunds": m0002,
};
