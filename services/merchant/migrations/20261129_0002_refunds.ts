import type { Knex } from "knex";

/** Refund orders: each names the merchant's payment it refunds. */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable("merchant_orders", (t) => {
    t.string("payment_request_id", 20).nullable();
    t.index(["payment_request_id"], "merchant_orders_refunds");
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable("merchant_orders", (t) => {
    t.dropIndex(["payment_request_id"], "merchant_orders_refunds");
    t.dropColumn("payment_request_id");
  });
}
