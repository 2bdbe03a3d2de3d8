/**
 * The outcome of comparing one order across the two systems (the seed's diff types): F000 the
 * same in both, F113 only in the payment system, F114 only in the merchant system, F115 in both
 * with different amounts.
 */
export const DIFF_TYPES = ["F000", "F113", "F114", "F115"] as const;
export type DiffType = (typeof DIFF_TYPES)[number];

export function isDiffType(text: string): text is DiffType {
  return (DIFF_TYPES as readonly string[]).includes(text);
}
