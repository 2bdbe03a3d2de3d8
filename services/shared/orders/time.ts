/**
 * Business time: "yyyy-MM-dd HH:mm:ss" in one configured IANA time zone, and the 14-digit
 * "yyyyMMddHHmmss" prefix that request and response ids start with.
 */
export const TIME_PATTERN = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/;

export class BusinessClock {
  private readonly format: Intl.DateTimeFormat;
  /**
   * Formatted seconds: formatting costs microseconds, and one call often asks for several
   * instants (now, and now plus or minus a window), so a single cached second would be
   * recomputed on every call.
   */
  private readonly cache = new Map<number, string>();

  constructor(readonly timeZone: string, private readonly now: () => number = Date.now) {
    this.format = new Intl.DateTimeFormat("en-CA", {
      timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
    });
  }

  /** The current business time, formatted once per second. */
  current(): string {
    return this.at(this.now());
  }

  /** Business time of an epoch-milliseconds instant. */
  at(epochMs: number): string {
    const second = Math.floor(epochMs / 1000);
    let text = this.cache.get(second);
    if (text === undefined) {
      const parts: Record<string, string> = {};
      for (const p of this.format.formatToParts(new Date(second * 1000))) parts[p.type] = p.value;
      text = `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}`;
      if (this.cache.size >= 16) this.cache.clear();
      this.cache.set(second, text);
    }
    return text;
  }

  /** The business time `seconds` before now. */
  secondsAgo(seconds: number): string {
    return this.at(this.now() - seconds * 1000);
  }

  /** The business time `seconds` after now. */
  secondsAhead(seconds: number): string {
    return this.at(this.now() + seconds * 1000);
  }
}

/** Throws a TimeZone-naming RangeError when the zone is unknown to this runtime. */
export function assertTimeZone(timeZone: string): void {
  new Intl.DateTimeFormat("en", { timeZone });
}

/**
 * Answers of isBusinessTime for texts of the right length seen lately: every order of one second
 * carries the same request_time, so nearly every check is a look-up.
 */
const recentTimes = new Map<string, boolean>();

/** True when text is "yyyy-MM-dd HH:mm:ss" and names a real calendar time. */
export function isBusinessTime(text: string): boolean {
  if (text.length !== 19) return false;
  let answer = recentTimes.get(text);
  if (answer === undefined) {
    answer = namesCalendarTime(text);
    if (recentTimes.size >= 64) recentTimes.clear();
    recentTimes.set(text, answer);
  }
  return answer;
}

function namesCalendarTime(text: string): boolean {
  const m = TIME_PATTERN.exec(text);
  if (!m) return false;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return false;
  const date = new Date(Date.UTC(y, mo - 1, d));
  return date.getUTCDate() === d && date.getUTCMonth() === mo - 1;
}

/** "2019-08-29 17:15:20" -> "20190829171520". */
export function idPrefix(businessTime: string): string {
  return (
    businessTime.slice(0, 4) +
    businessTime.slice(5, 7) +
    businessTime.slice(8, 10) +
    businessTime.slice(11, 13) +
    businessTime.slice(14, 16) +
    businessTime.slice(17, 19)
  );
}
