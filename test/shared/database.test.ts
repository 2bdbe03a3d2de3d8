/**
 * The embedded SQLite database: a commit is on disk before the caller hears of it. WAL with
 * synchronous=FULL syncs the log on every commit; NORMAL would sync only at checkpoints, so a
 * power loss could take the last acknowledged payments with it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { openDatabase, type Database } from "../../services/shared/storage/database.js";
import { paymentMigrations } from "../../services/payment/migrations/index.js";
import { merchantMigrations } from "../../services/merchant/migrations/index.js";
import { backends, startPlatform } from "../harness.js";

async function pragma(db: Database, name: string): Promise<unknown> {
  const rows = (await db.knex.raw(`PRAGMA ${name}`)) as Record<string, unknown>[];
  return Object.values(rows[0]!)[0];
}

describe("embedded SQLite durability", () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), "sqlite-durability-"))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const [name, migrations] of [
    ["payment", paymentMigrations],
    ["merchant", merchantMigrations],
  ] as const) {
    it(`opens the ${name} database in WAL mode with synchronous=FULL`, async () => {
      const db = await openDatabase({ sqliteFile: join(dir, `${name}.sqlite`), poolSize: 1 }, migrations);
      try {
        expect(await pragma(db, "journal_mode")).to.equal("wal");
        // 2 is FULL (0 OFF, 1 NORMAL, 3 EXTRA).
        expect(Number(await pragma(db, "synchronous"))).to.equal(2);
      } finally {
        await db.close();
      }
    });
  }

  it("keeps FULL on the connection the running payment system writes through", async () => {
    const p = await startPlatform(backends()[0]!);
    try {
      expect(p.payment.db.dialect).to.equal("sqlite");
      expect(Number(await pragma(p.payment.db, "synchronous"))).to.equal(2);
      expect(Number(await pragma(p.merchant.db, "synchronous"))).to.equal(2);
    } finally {
      await p.close();
    }
  });
});
