import type { Knex } from "knex";

/**
 * Refunds (退款): an order table of their own, and on each payment the sum of its successful
 * refunds, so that one conditional UPDATE of the payment row decides whether a refund still fits
 * in what is left of it, whatever runs concurrently.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("refund_orders", (t) => {
    if (knex.client.dialect === "mysql") {
      t.charset("utf8mb4");
      t.collate("utf8mb4_bin");
    }
    t.bigIncrements("id");
    t.string("request_id", 20).notNullable().unique("refund_orders_request_id");
    t.string("request_time", 19).notNullable();
    t.string("saler_id", 64).notNullable();
    t.string("payment_response_id", 20).notNullable();
    t.bigInteger("refund_fee").notNullable();
    t.string("response_id", 20).notNullable().unique("refund_orders_response_id");
    t.string("response_time", 19).notNullable();
    t.string("response_code", 8).notNullable();
    t.string("response_msg", 255).notNullable();
    t.index(["payment_response_id"], "refund_orders_payment");
    t.index(["saler_id"], "refund_orders_account");
  });
  await knex.schema.alterTable("payment_orders", (t) => {
    t.bigInteger("refunded").notNullable().defaultTo(0);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable("payment_orders", (t) => {
    t.dropColumn("refunded");
  });
  await knex.schema.dropTable("refund_orders");
}
