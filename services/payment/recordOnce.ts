/**
 * One order per request_id, on every instance: the loop that Pay, Withdraw, Refund and
 * CloseOrder share. An order is written with a fresh response_id; the unique request_id index
 * decides whether it is new. A request_id seen before fails as a duplicate and the stored answer
 * is replayed: no look-up first, since nearly every request is new. A duplicate with nothing
 * stored under the request_id was a response_id that clashed with another instance's: the order
 * is written again with another.
 */
import type { CallStop } from "../shared/rpc/callPolicy.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { isDuplicateKeyError } from "../shared/errors.js";
import { OrderIdSequence } from "../shared/orders/ids.js";
import type { BusinessClock } from "../shared/orders/time.js";

export const MSG_OK = "OK";

/** How many response_ids an order may try before its duplicate-key error is the answer. */
const ID_ATTEMPTS = 8;

/** The response_id and response_time of this instance's new orders. */
export class OrderStamps {
  private readonly ids = new OrderIdSequence();

  constructor(readonly clock: BusinessClock) {}

  /** The business time now and a response_id of that second. */
  next(): { now: string; responseId: string } {
    const now = this.clock.current();
    const responseId = this.ids.idFor(now);
    if (responseId === undefined) throw new ConnectError("too many orders this second; retry", Code.ResourceExhausted);
    return { now, responseId };
  }
}

export function abandoned(): ConnectError {
  return new ConnectError("the caller stopped waiting before the order was recorded", Code.DeadlineExceeded);
}

export interface RecordSteps<O, A> {
  /**
   * A caller that gave up (deadline passed, call cancelled) has recorded the order as UNKNOWN and
   * will ask later; an order not yet written is then not written at all, so a request cannot land
   * long after the merchant stopped waiting for it. Absent for CloseOrder, which is that asking.
   */
  signal?: CallStop | undefined;
  /** The order to write, stamped with this attempt's response_id and time. */
  order(stamp: { now: string; responseId: string }): O;
  /** Writes the order; rejects with the database's duplicate-key error when a unique index refuses it. */
  write(order: O): Promise<O>;
  /** The answer already stored under the request_id, if any. */
  replay(): Promise<A | undefined>;
}

/** Records the order once, or answers what its request_id already holds. */
export async function recordOnce<O, A>(stamps: OrderStamps, steps: RecordSteps<O, A>): Promise<{ recorded: O } | { replayed: A }> {
  for (let attempt = 1; ; attempt++) {
    const order = steps.order(stamps.next());
    if (steps.signal?.aborted) throw abandoned();
    try {
      return { recorded: await steps.write(order) };
    } catch (err) {
      if (!isDuplicateKeyError(err)) throw err;
      const existing = await steps.replay();
      if (existing !== undefined) return { replayed: existing };
      if (attempt >= ID_ATTEMPTS) throw err;
    }
  }
}

/** A request_id already used for another body. */
export function conflict(requestId: string): ConnectError {
  return new ConnectError(`request_id: ${requestId} was already used for a request with a different body`, Code.AlreadyExists);
}
