/**
 * The load of a fault run: workers paying and withdrawing through the merchant's gRPC API, each
 * with its own seeded sequence, and a sampler of balances.
 */
import { ConnectError } from "@connectrpc/connect";
import { sleep } from "./processes.js";
import { Random } from "../support/random.js";
import { ACCOUNTS, FaultPlatform } from "./platform.js";

interface Acknowledged {
  type: "PAYMENT" | "WITHDRAWAL";
  salerId: string;
  amount: bigint;
  state: "SUCCESS" | "FAIL";
}

/**
 * Workers that pay and withdraw through the merchant's gRPC API until stopped. What the
 * merchant answered is kept: a SUCCESS or FAIL it returned is a promise the end state must keep.
 */
export class Load {
  readonly acknowledged = new Map<string, Acknowledged>();
  calls = 0;
  successes = 0;
  unknownAnswers = 0;
  noAnswer = 0;
  /** When each call that ended without SUCCESS or FAIL ended (ms since the epoch), and how. */
  readonly failures: { at: number; what: string }[] = [];
  private stopped = false;
  private paused = false;
  private inFlight = 0;
  private workers: Promise<void>[] = [];

  constructor(
    private readonly platform: FaultPlatform,
    private readonly seed: number,
    private readonly concurrency = 4,
  ) {}

  start(): void {
    this.workers = Array.from({ length: this.concurrency }, (_, i) => this.worker(i, Random.derive(this.seed, `worker${i}`)));
  }

  private async worker(index: number, rng: Random): Promise<void> {
    let oneOff = 0;
    while (!this.stopped) {
      if (this.paused) {
        await sleep(20);
        continue;
      }
      const pay = rng.next() < 0.7;
      // Some payments go to an account nothing else ever pays: a buffered credit of such an
      // account that Redis loses is not picked up by a later payment to the same account.
      const salerId = pay && rng.next() < 0.25 ? `once${index}x${oneOff++}` : ACCOUNTS[rng.int(0, ACCOUNTS.length - 1)]!;
      const amount = BigInt(pay ? rng.int(1, 5_000) : rng.int(1, 8_000));
      this.calls++;
      this.inFlight++;
      const merchants = this.platform.merchantClients.length > 0 ? this.platform.merchantClients : [this.platform.merchantClient];
      const merchant = merchants[index % merchants.length]!;
      try {
        const { order } = pay
          ? await merchant.pay({ salerId, totalFee: amount }, { timeoutMs: 10_000 })
          : await merchant.withdraw({ salerId, withdrawMoney: amount }, { timeoutMs: 10_000 });
        if (!order) throw new Error("merchant answered without an order");
        if (order.state === "SUCCESS" || order.state === "FAIL") {
          this.acknowledged.set(order.requestId, { type: pay ? "PAYMENT" : "WITHDRAWAL", salerId, amount, state: order.state });
          if (order.state === "SUCCESS") this.successes++;
        } else {
          this.unknownAnswers++;
          this.failures.push({ at: Date.now(), what: `${order.state}: ${order.responseMsg}` });
          await sleep(100);
        }
      } catch (err) {
        if (!(err instanceof ConnectError)) throw err;
        // The merchant is down, or failed before it could answer: nothing was promised.
        this.noAnswer++;
        this.failures.push({ at: Date.now(), what: `error ${err.code}: ${err.rawMessage}` });
        await sleep(100);
      } finally {
        this.inFlight--;
      }
    }
  }

  /** Stops sending new orders; resolves when none is in flight. */
  async pause(): Promise<void> {
    this.paused = true;
    while (this.inFlight > 0) await sleep(5);
  }

  resume(): void {
    this.paused = false;
  }

  /** Waits until one more order succeeds end to end than `after`; false if none within the time given. */
  async successAfter(after: number, withinMs: number): Promise<boolean> {
    const until = Date.now() + withinMs;
    while (this.successes <= after) {
      if (Date.now() > until) return false;
      await sleep(20);
    }
    return true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.workers);
  }
}

/** Reads every account's settled balance now and then, straight from the payment database. */
export class BalanceSampler {
  samples = 0;
  negative: string[] = [];
  minimum: bigint | undefined;
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();

  constructor(private readonly platform: FaultPlatform) {}

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        try {
          const rows = await this.platform.query<{ saler_id: string; balance: string }>("payment", "SELECT saler_id, balance FROM accounts");
          this.samples++;
          for (const r of rows) {
            const b = BigInt(r.balance);
            if (this.minimum === undefined || b < this.minimum) this.minimum = b;
            if (b < 0n && this.negative.length < 20) this.negative.push(`${r.saler_id}=${b}`);
          }
        } catch {
          // The database is down or not created yet.
        }
        await sleep(100);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}
