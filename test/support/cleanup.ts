/** What a test leaves behind on the shared MariaDB and Redis, removed. */
import mysql from "mysql2/promise";
import { Redis } from "ioredis";

/** Deletes every key under one hash-tagged prefix (`{prefix}:*`), scanning, never KEYS. */
export async function deleteRedisKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `{${prefix}}:*`, "COUNT", 500);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}

/** Drops these databases of the MySQL server at `serverUrl` (any database path in it is ignored). */
export async function dropDatabases(serverUrl: string, names: readonly string[]): Promise<void> {
  const server = new URL(serverUrl);
  server.pathname = "/";
  const conn = await mysql.createConnection(server.toString());
  try {
    for (const name of names) await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
  } finally {
    await conn.end();
  }
}
