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
  await knex.schema.createTable("accounts", (t) => {
    binaryText(knex, t);
    t.string("saler_id", 64).primary();
    t.bigInteger("balance").notNullable().defaultTo(0);
    t.string("created_time", 19).notNullable();
    t.string("updated_time", 19).notNullable();
    t.check("?? >= 0", ["balance"], "accounts_balance_not_negative");
  });
  await knex.schema.createTable("payment_orders", (t) => {
    binaryText(knex, t);
    t.bigIncrements("id");
    t.string("request_id", 20).notNullable().unique("payment_orders_request_id");
    t.string("request_time", 19).notNullable();
    t.string("saler_id", 64).notNullable();
    t.bigInteger("total_fee").notNullable();
    t.string("response_id", 20).notNullable().unique("payment_orders_response_id");
    t.string("response_time", 19).notNullable();
    t.string("response_code", 8).notNullable();
    t.string("response_msg", 255).notNullable();
    // NULL while the credit is pending; the id of the settlement that credited it afterwards.
    t.bigInteger("settlement_id").nullable();
    t.index(["saler_id", "settlement_id"], "payment_orders_account_settlement");
    t.index(["settlement_id", "saler_id"], "payment_orders_settlement_account");
  });
  await knex.schema.createTable("withdrawal_orders", (t) => {
    binaryText(knex, t);
    t.bigIncrements("id");
    t.string("request_id", 20).notNullable().unique("withdrawal_orders_request_id");
    t.string("request_time", 19).notNullable();
    t.string("saler_id", 64).notNullable();
    t.bigInteger("withdraw_money").notNullable();
    t.string("response_id", 20).notNullable().unique("withdrawal_orders_response_id");
    t.string("response_time", 19).notNullable();
    t.string("response_code", 8).notNullable();
    t.string("response_msg", 255).notNullable();
    t.index(["saler_id"], "withdrawal_orders_account");
  });
  await knex.schema.createTable("settlements", (t) => {
    binaryText(knex, t);
    t.bigIncrements("id");
    t.string("started_time", 19).notNullable();
    t.string("finished_time", 19).nullable();
    t.integer("accounts").notNullable().defaultTo(0);
    t.bigInteger("credits").notNullable().defaultTo(0);
    t.bigInteger("amount").notNullable().defaultTo(0);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable("settlements");
  await knex.schema.dropTable("withdrawal_orders");
  await knex.schema.dropTable("payment_orders");
  await knex.schema.dropTable("accounts");
}
