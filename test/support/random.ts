/** Seeded randomness for tests that must replay: the same seed gives the same run everywhere. */

export type Rng = () => number;

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export function seededRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seeded generator with integer draws and generators derived by label. */
export class Random {
  private readonly rng: Rng;

  constructor(seed: number) {
    this.rng = seededRng(seed);
  }

  /** A number in [0, 1). */
  next(): number {
    return this.rng();
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** A generator of its own, derived from this seed and a label. */
  static derive(seed: number, label: string): Random {
    let h = 0x811c9dc5 ^ (seed >>> 0);
    for (const ch of `${seed}:${label}`) {
      h ^= ch.charCodeAt(0);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return new Random(h);
  }
}
