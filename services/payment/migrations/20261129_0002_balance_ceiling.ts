import type { Knex } from "knex";

/**
 * A balance has a ceiling of 10^15 fen (10 trillion yuan), far below the int64 limit, enforced
 * by the database on both backends, so no sum of credits can overflow a balance (MySQL would
 * refuse the statement, SQLite would silently turn the value into a float). Pay refuses what
 * would pass it (payments.ts), and settlement skips an account that would (settlement.ts).
 * On SQLite a balance must also stay an integer.
 *
 * The pending credit of an account is summed from the index alone: saler_id, settlement_id and
 * total_fee in one index, which replaces the (saler_id, settlement_id) one.
 *
 * The ceiling is written out here, not imported: a migration stays as it was applied.
 */
const CEILING = "1000000000000000";

export async function up(knex: Knex): Promise<void> {
  if (knex.client.dialect === "mysql") {
    await knex.raw(`ALTER TABLE accounts ADD CONSTRAINT accounts_balance_ceiling CHECK (balance <= ${CEILING})`);
  } else {
    // SQLite cannot add a CHECK to a table: the table is rebuilt with it, rows copied as they are.
    await knex.raw(
      "CREATE TABLE `accounts_rebuilt` (`saler_id` varchar(64), `balance` bigint not null default '0', " +
        "`created_time` varchar(19) not null, `updated_time` varchar(19) not null, primary key (`saler_id`), " +
        "constraint accounts_balance_not_negative check (`balance` >= 0), " +
        `constraint accounts_balance_ceiling check (\`balance\` <= ${CEILING}), ` +
        "constraint accounts_balance_integer check (typeof(`balance`) = 'integer'))",
    );
    await knex.raw("INSERT INTO accounts_rebuilt (saler_id, balance, created_time, updated_time) SELECT saler_id, balance, created_time, updated_time FROM accounts");
    await knex.raw("DROP TABLE accounts");
    await knex.raw("ALTER TABLE accounts_rebuilt RENAME TO accounts");
  }
  await knex.schema.alterTable("payment_orders", (t) => {
    t.index(["saler_id", "settlement_id", "total_fee"], "payment_orders_account_pending");
  });
  await knex.schema.alterTable("payment_orders", (t) => {
    t.dropIndex(["saler_id", "settlement_id"], "payment_orders_account_settlement");
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable("payment_orders", (t) => {
    t.index(["saler_id", "settlement_id"], "payment_orders_account_settlement");
  });
  await knex.schema.alterTable("payment_orders", (t) => {
    t.dropIndex(["saler_id", "settlement_id", "total_fee"], "payment_orders_account_pending");
  });
  if (knex.client.dialect === "mysql") {
    await knex.raw("ALTER TABLE accounts DROP CONSTRAINT accounts_balance_ceiling");
  } else {
    await knex.raw(
      "CREATE TABLE `accounts_rebuilt` (`saler_id` varchar(64), `balance` bigint not null default '0', " +
        "`created_time` varchar(19) not null, `updated_time` varchar(19) not null, primary key (`saler_id`), " +
        "constraint accounts_balance_not_negative check (`balance` >= 0))",
    );
    await knex.raw("INSERT INTO accounts_rebuilt (saler_id, balance, created_time, updated_time) SELECT saler_id, balance, created_time, updated_time FROM accounts");
    await knex.raw("DROP TABLE accounts");
    await knex.raw("ALTER TABLE accounts_rebuilt RENAME TO accounts");
  }
}
