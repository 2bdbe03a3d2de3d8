/**
 * The settlement lease: one settler at a time across every process that shares the credit
 * buffer. The holder renews it after every chunk; a settler that dies mid-run blocks settlement,
 * everywhere, until the lease expires (SETTLE_LEASE_MS).
 */
import { randomUUID } from "node:crypto";
import type { RedisClient } from "../shared/storage/redisClient.js";

export interface SettlementLease {
  /** Extends the lease; false when it was lost (expired and taken by another settler). */
  renew(): Promise<boolean>;
  release(): Promise<void>;
}

/** The lease of one process's in-process buffer. */
export class MemoryLease {
  private leased = false;

  acquire(): SettlementLease | undefined {
    if (this.leased) return undefined;
    this.leased = true;
    return {
      renew: async () => this.leased,
      release: async () => {
        this.leased = false;
      },
    };
  }
}

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * A lease held in one Redis key: SET NX with a random token and a TTL; renewing and releasing
 * touch the key only while it still holds this holder's token. The caller makes sure Redis is
 * connected first: a SET NX queued while Redis is away would run once it is back, after the
 * caller gave up on it, and leave a lease nobody holds, blocking settlement for its TTL.
 */
export async function acquireRedisLease(redis: RedisClient, key: string, ttlMs: number): Promise<SettlementLease | undefined> {
  const token = randomUUID();
  const ok = await redis.set(key, token, "PX", ttlMs, "NX");
  if (ok !== "OK") return undefined;
  return {
    renew: async () => (await redis.eval(RENEW, 1, key, token, String(ttlMs))) === 1,
    release: async () => {
      await redis.eval(RELEASE, 1, key, token);
    },
  };
}
