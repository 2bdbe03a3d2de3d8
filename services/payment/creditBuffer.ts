/**
 * The credit buffer: the seed's two caches, "which accounts have pending credit" and "how much".
 * A payment adds its account and amount after the database has committed the order; settlement
 * drains the due accounts and credits what the orders table says they are owed.
 *
 * The buffer is never the source of truth. Crediting is exactly-once because settlement marks
 * the very order rows it credits in the same transaction as the balance update; the buffer only
 * says where to look. If it loses data (Redis restarted or flushed, a process died between
 * commit and buffer write) the set of due accounts is rebuilt from the orders table: `isIntact`
 * turns false when the epoch marker vanishes, and settlement sweeps the table periodically anyway.
 * On a Redis Cluster a failover can drop writes the lost master acknowledged but had not yet
 * replicated, while the epoch marker survives on the promoted replica: every process that sees a
 * node go away removes the marker once the cluster answers again, so the next settlement sweeps.
 */
import { connectRedis, type RedisClient, type RedisTarget } from "../shared/storage/redisClient.js";
import { acquireRedisLease, MemoryLease, type SettlementLease } from "./settlementLease.js";

export interface Credit {
  salerId: string;
  amount: bigint;
}

export interface CreditBuffer {
  /** Buffers a committed credit: the account becomes due for settlement. */
  add(salerId: string, amount: bigint): Promise<void>;
  /** Buffers several committed credits at once (one round trip). */
  addAll(credits: readonly Credit[]): Promise<void>;
  /**
   * Moves every due account into the settling set and returns the whole settling set, which
   * also holds the accounts of a settlement that died before finishing.
   */
  beginDrain(): Promise<string[]>;
  /** These accounts' credits are in balances now: drop them from settling, lower the amounts. */
  finishDrain(settled: ReadonlyMap<string, bigint>, accounts: readonly string[]): Promise<void>;
  /** False when the buffer lost its data since it was last marked rebuilt. */
  isIntact(): Promise<boolean>;
  /** The due set is being rebuilt from the orders table. */
  markRebuilt(): Promise<void>;
  /** The due set may be incomplete: the next settlement, in any process, sweeps the table. */
  invalidate(): Promise<void>;
  /** Buffered (not yet settled) amount of one account, as the buffer knows it. */
  buffered(salerId: string): Promise<bigint>;
  /** One settler at a time (settlementLease.ts); undefined when another holds the lease. */
  acquireLease(ttlMs: number): Promise<SettlementLease | undefined>;
  /** Accounts due or being settled, and the amount buffered for all accounts. */
  pending(): Promise<{ accounts: number; fen: bigint }>;
  /** Resolves when the buffer answers; rejects with the reason it does not. */
  check(): Promise<void>;
  close(): Promise<void>;
}

/** In-process buffer for the embedded default (one process). */
export class MemoryCreditBuffer implements CreditBuffer {
  private due = new Set<string>();
  private settling = new Set<string>();
  private amounts = new Map<string, bigint>();
  private rebuilt = false;
  private readonly lease = new MemoryLease();

  async add(salerId: string, amount: bigint): Promise<void> {
    this.due.add(salerId);
    this.amounts.set(salerId, (this.amounts.get(salerId) ?? 0n) + amount);
  }

  async addAll(credits: readonly Credit[]): Promise<void> {
    for (const c of credits) await this.add(c.salerId, c.amount);
  }

  async beginDrain(): Promise<string[]> {
    for (const a of this.due) this.settling.add(a);
    this.due.clear();
    return [...this.settling];
  }

  async finishDrain(settled: ReadonlyMap<string, bigint>, accounts: readonly string[]): Promise<void> {
    for (const a of accounts) this.settling.delete(a);
    for (const [a, sum] of settled) {
      const left = (this.amounts.get(a) ?? 0n) - sum;
      if (left > 0n) this.amounts.set(a, left);
      else this.amounts.delete(a);
    }
  }

  async isIntact(): Promise<boolean> {
    return this.rebuilt;
  }

  async markRebuilt(): Promise<void> {
    this.rebuilt = true;
  }

  async invalidate(): Promise<void> {
    this.rebuilt = false;
  }

  async buffered(salerId: string): Promise<bigint> {
    return this.amounts.get(salerId) ?? 0n;
  }

  async acquireLease(): Promise<SettlementLease | undefined> {
    return this.lease.acquire();
  }

  async pending(): Promise<{ accounts: number; fen: bigint }> {
    let fen = 0n;
    for (const v of this.amounts.values()) fen += v;
    return { accounts: new Set([...this.due, ...this.settling]).size, fen };
  }

  async check(): Promise<void> {}

  /** Forgets everything, as a restarted Redis would. */
  wipe(): void {
    this.due.clear();
    this.settling.clear();
    this.amounts.clear();
    this.rebuilt = false;
  }

  async close(): Promise<void> {}
}

const DRAIN = `
redis.call('SUNIONSTORE', KEYS[2], KEYS[2], KEYS[1])
redis.call('DEL', KEYS[1])
return redis.call('SMEMBERS', KEYS[2])`;

const LOWER = `
for i = 1, #ARGV, 2 do
  local left = redis.call('HINCRBY', KEYS[1], ARGV[i], -tonumber(ARGV[i + 1]))
  if left <= 0 then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return 1`;

const PENDING = `
return {redis.call('SCARD', KEYS[1]) + redis.call('SCARD', KEYS[2]) - #redis.call('SINTER', KEYS[1], KEYS[2]), redis.call('HVALS', KEYS[3])}`;

/**
 * Redis buffer. Every key carries the same hash tag, so the transactions and scripts that touch
 * several keys run on one Redis Cluster slot (a cluster refuses them with CROSSSLOT otherwise).
 */
export class RedisCreditBuffer implements CreditBuffer {
  private readonly keys;
  private lastError = "";
  private nodeLost = false;
  private invalidating: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly redis: RedisClient, prefix: string) {
    redis.on("error", (err: Error) => (this.lastError = err.message));
    redis.on("ready", () => (this.lastError = ""));
    const tag = `{${prefix}}`;
    this.keys = {
      due: `${tag}:due`,
      settling: `${tag}:settling`,
      amounts: `${tag}:amounts`,
      epoch: `${tag}:epoch`,
      lease: `${tag}:settlement-lease`,
    };
  }

  /**
   * Resolves once connected: at once when ready, after the first connection when it is still
   * being made (up to `ms`); rejects while Redis is away (reconnecting, closed).
   */
  private async untilConnected(ms: number): Promise<void> {
    const status = this.redis.status;
    if (status === "ready") return;
    if (status !== "wait" && status !== "connecting" && status !== "connect") throw new Error(`credit buffer unavailable (${status})`);
    let timer: NodeJS.Timeout | undefined;
    let onReady: (() => void) | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        onReady = resolve;
        this.redis.once("ready", onReady);
        timer = setTimeout(() => reject(new Error(`credit buffer unavailable (${this.redis.status})`)), ms);
      });
    } finally {
      clearTimeout(timer);
      if (onReady) this.redis.off("ready", onReady);
    }
  }

  /** Calls `listener` on every error of the Redis connection (it reconnects by itself). */
  onError(listener: (err: Error) => void): void {
    this.redis.on("error", listener);
  }

  static connect(target: RedisTarget, prefix: string): RedisCreditBuffer {
    let buffer: RedisCreditBuffer | undefined = undefined;
    const redis = connectRedis(target, { onNodeLost: () => buffer?.nodeWentAway() });
    buffer = new RedisCreditBuffer(redis, prefix);
    return buffer;
  }

  /** Every key this buffer writes (all under its one hash tag). */
  allKeys(): string[] {
    return Object.values(this.keys);
  }

  /**
   * A cluster node went away: once the cluster answers again (a replica promoted), the due set
   * is marked incomplete. Retried every half second for up to two minutes.
   */
  private nodeWentAway(): void {
    this.nodeLost = true;
    this.invalidating ??= (async () => {
      for (let attempt = 0; this.nodeLost && !this.closed && attempt < 240; attempt++) {
        this.nodeLost = false;
        try {
          await this.invalidate();
        } catch {
          this.nodeLost = true;
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
      }
    })().finally(() => (this.invalidating = undefined));
  }

  async add(salerId: string, amount: bigint): Promise<void> {
    // A payment is never held up by Redis: the caller falls back on a sweep of the orders table.
    if (this.redis.status !== "ready") throw new Error(`credit buffer unavailable (${this.redis.status})`);
    await this.redis
      .multi()
      .sadd(this.keys.due, salerId)
      .hincrby(this.keys.amounts, salerId, amount.toString())
      .exec();
  }

  async addAll(credits: readonly Credit[]): Promise<void> {
    if (this.redis.status !== "ready") throw new Error(`credit buffer unavailable (${this.redis.status})`);
    const sums = new Map<string, bigint>();
    for (const c of credits) sums.set(c.salerId, (sums.get(c.salerId) ?? 0n) + c.amount);
    const multi = this.redis.multi().sadd(this.keys.due, ...sums.keys());
    for (const [salerId, amount] of sums) multi.hincrby(this.keys.amounts, salerId, amount.toString());
    await multi.exec();
  }

  async beginDrain(): Promise<string[]> {
    return (await this.redis.eval(DRAIN, 2, this.keys.due, this.keys.settling)) as string[];
  }

  async finishDrain(settled: ReadonlyMap<string, bigint>, accounts: readonly string[]): Promise<void> {
    const pipeline = this.redis.pipeline();
    if (accounts.length > 0) pipeline.srem(this.keys.settling, ...accounts);
    const args: string[] = [];
    for (const [a, sum] of settled) args.push(a, sum.toString());
    if (args.length > 0) pipeline.eval(LOWER, 1, this.keys.amounts, ...args);
    await pipeline.exec();
  }

  async isIntact(): Promise<boolean> {
    return (await this.redis.exists(this.keys.epoch)) === 1;
  }

  async markRebuilt(): Promise<void> {
    await this.redis.set(this.keys.epoch, new Date().toISOString());
  }

  async invalidate(): Promise<void> {
    await this.redis.del(this.keys.epoch);
  }

  async buffered(salerId: string): Promise<bigint> {
    const v = await this.redis.hget(this.keys.amounts, salerId);
    return v === null ? 0n : BigInt(v);
  }

  async acquireLease(ttlMs: number): Promise<SettlementLease | undefined> {
    // Never queued while Redis is away (settlementLease.ts).
    await this.untilConnected(2000);
    return acquireRedisLease(this.redis, this.keys.lease, ttlMs);
  }

  async pending(): Promise<{ accounts: number; fen: bigint }> {
    const [accounts, amounts] = (await this.redis.eval(PENDING, 3, this.keys.due, this.keys.settling, this.keys.amounts)) as [number, string[]];
    let fen = 0n;
    for (const v of amounts) fen += BigInt(v);
    return { accounts, fen };
  }

  async check(): Promise<void> {
    // Still making its first connection: the ping waits for it (commandTimeout bounds the wait).
    if (this.redis.status === "reconnecting" || this.redis.status === "close" || this.redis.status === "end") {
      throw new Error(`Redis is ${this.redis.status}${this.lastError ? ` (${this.lastError})` : ""}`);
    }
    try {
      await this.redis.ping();
    } catch (err) {
      throw new Error(`Redis does not answer: ${err instanceof Error ? err.message : String(err)}${this.lastError ? ` (${this.lastError})` : ""}`);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.invalidating;
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
