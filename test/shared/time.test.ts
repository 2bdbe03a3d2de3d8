/**
 * Business time: formatted in the configured zone, for now and for instants around it, however
 * the calls interleave and however many distinct seconds are asked for.
 */
import { expect } from "chai";
import { BusinessClock, idPrefix, isBusinessTime } from "../../services/shared/orders/time.js";

describe("business time", () => {
  it("formats now, earlier and later instants in the zone, interleaved, across second boundaries", () => {
    let now = Date.UTC(2019, 7, 29, 9, 15, 20, 999); // 17:15:20.999 in Asia/Shanghai
    const clock = new BusinessClock("Asia/Shanghai", () => now);
    for (let i = 0; i < 3; i++) {
      expect(clock.current()).to.equal("2019-08-29 17:15:20");
      expect(clock.secondsAhead(300)).to.equal("2019-08-29 17:20:20");
      expect(clock.secondsAgo(2)).to.equal("2019-08-29 17:15:18");
    }
    now += 1;
    expect(clock.current()).to.equal("2019-08-29 17:15:21");
    expect(clock.secondsAhead(300)).to.equal("2019-08-29 17:20:21");
    // Far more distinct seconds than are kept formatted, across a year's end: each still right
    // (Asia/Shanghai is UTC+8 all year).
    const utc8 = (ms: number) => new Date(ms + 8 * 3600_000).toISOString().slice(0, 19).replace("T", " ");
    for (let s = 0; s < 100; s++) {
      const ms = Date.UTC(2019, 11, 31, 15, 59, 0) + s * 1000;
      expect(clock.at(ms)).to.equal(utc8(ms));
      expect(clock.current()).to.equal("2019-08-29 17:15:21");
    }
    expect(clock.at(Date.UTC(2019, 11, 31, 16, 0, 0))).to.equal("2020-01-01 00:00:00");
    expect(new BusinessClock("UTC", () => now).current()).to.equal("2019-08-29 09:15:21");
  });

  it("derives id prefixes and recognises real calendar times only", () => {
    expect(idPrefix("2019-08-29 17:15:20")).to.equal("20190829171520");
    expect(isBusinessTime("2024-02-29 23:59:59")).to.equal(true);
    expect(isBusinessTime("2023-02-29 00:00:00")).to.equal(false);
    expect(isBusinessTime("2019-08-29T17:15:20")).to.equal(false);
  });
});
