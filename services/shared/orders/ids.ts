import { randomInt } from "node:crypto";
import { idPrefix } from "./time.js";

/**
 * Makes 20-digit order ids: the 14-digit time, then a 6-digit sequence. Each instance starts its
 * sequence at a random point every second and counts up, so ids never repeat within an instance
 * and rarely across instances; the unique index on the id column settles the rare clash, and the
 * caller asks for another id.
 */
export class OrderIdSequence {
  private second = "";
  private next = 0;
  private issued = 0;

  /** A fresh id for the given business time, or undefined when this second's ids are used up. */
  idFor(businessTime: string): string | undefined {
    const prefix = idPrefix(businessTime);
    if (prefix !== this.second) {
      this.second = prefix;
      this.next = randomInt(0, 1_000_000);
      this.issued = 0;
    }
    if (this.issued >= 1_000_000) return undefined;
    const seq = this.next;
    this.next = (this.next + 1) % 1_000_000;
    this.issued++;
    return prefix + String(seq).padStart(6, "0");
  }
}

export const ORDER_ID_PATTERN = /^\d{20}$/;
