import { expect } from "chai";
import { backends, startPlatform, type Platform } from "./harness.js";

for (const backend of backends()) {
  describe(`smoke [${backend.name}]`, () => {
    let p: Platform;
    before(async () => {
      p = await startPlatform(backend);
    });
    after(async () => p?.close());

    it("pays through the merchant, settles, and shows the balance", async () => {
      const { order } = await p.merchantClient.pay({ salerId: "saler1", totalFee: 100n });
      expect(order?.state).to.equal("SUCCESS");
      const s = await p.paymentClient.settle({});
      expect(s.amountSettled).to.equal(100n);
      const { account } = await p.paymentClient.getBalance({ salerId: "saler1" });
      expect(account?.balance).to.equal(100n);
      expect(account?.pending).to.equal(0n);
    });
  });
}
