import type { Knex } from "knex";

/**
 * Text compares byte for byte: "Saler1" and "saler1" are two accounts. Without this, MySQL gives
 * the tables the default (case-insensitive) collation of the connection's character set,
 * whatever the database was created with.
 */
function binaryText(knex: Knex, t: Knex.CreateTableBuilder): void {
  if (knex.client.dialect === "mysql") {
    t.charset("utf8mb4");
    t.collate("utf8mb4_bin");
  }
}

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("merchant_orders", (t) => {
    binaryText(knex, t);
    t.bigIncrements("id");
    t.string("request_id", 20).notNullable().unique("merchant_orders_request_id");
    // PAYMENT or WITHDRAWAL.
    t.string("order_type", 10).notNullable();
    t.string("saler_id", 64).notNullable();
    t.bigInteger("amount").notNullable();
    t.string("request_time", 19).notNullable();
    // INIT, SUCCESS, FAIL or UNKNOWN.
    t.string("state", 8).notNullable();
    t.string("response_id", 20).nullable().unique("merchant_orders_response_id");
    t.string("response_time", 19).nullable();
    t.string("response_code", 8).nullable();
    t.string("response_msg", 255).nullable();
    // Set on orders a simulation deliberately damaged: LOST_RESPONSE, TAMPERED_AMOUNT, MERCHANT_ONLY.
    t.string("fault", 20).nullable();
    t.string("simulation_id", 40).nullable();
    t.string("updated_time", 19).notNullable();
    t.index(["order_type", "state", "response_id"], "merchant_orders_export_by_response");
    t.index(["order_type", "state", "request_id"], "merchant_orders_export_by_request");
    t.index(["state", "request_time"], "merchant_orders_state");
    t.index(["saler_id", "id"], "merchant_orders_account");
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable("merchant_orders");
}
