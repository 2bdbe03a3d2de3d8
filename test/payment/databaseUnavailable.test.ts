/**
 * A payment system whose database goes away (a killed or isolated MariaDB or Galera node, seen
 * through a TCP relay this test cuts): calls answer UNAVAILABLE "the database is unavailable;
 * retry", never INTERNAL and never SQL text; and once the database is back, the same requests
 * repeated get their outcome, each payment recorded once. Beside a second instance whose database
 * still answers, callers that balance over both never see it: the call goes to the other one.
 */
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import { expect } from "chai";
import { Code, ConnectError } from "@connectrpc/connect";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { createGrpcClient } from "../../services/shared/rpc/grpcClient.js";
import { startPaymentSystem, type PaymentSystem } from "../../services/payment/system.js";
import { startMerchantSystem } from "../../services/merchant/system.js";
import { MerchantService } from "../../gen/merchant/v1/merchant_pb.js";
import { backends, freshStore, merchantConfig, paymentConfig, silentLogger, uniqueName, type Store } from "../harness.js";
import { countRows, payRequest } from "./fixtures.js";
import { deleteRedisKeys } from "../support/cleanup.js";

/** A TCP relay to the database that can be cut (every connection dropped, new ones refused) and restored. */
class Relay {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async open(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => {});
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(this.port, "127.0.0.1", resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** A relay opened to the server of a MySQL URL, and that URL pointed at the relay. */
  static async to(mysqlUrl: string): Promise<{ relay: Relay; relayedUrl: string }> {
    const direct = new URL(mysqlUrl);
    const relay = new Relay({ host: direct.hostname, port: Number(direct.port || 3306) });
    await relay.open();
    const relayed = new URL(mysqlUrl);
    relayed.hostname = "127.0.0.1";
    relayed.port = String(relay.port);
    return { relay, relayedUrl: relayed.toString() };
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise((resolve) => server.close(resolve));
  }
}

for (const backend of backends().filter((b) => b.mysqlUrl)) {
  describe(`payment system whose database goes away [${backend.name}]`, function () {
    this.timeout(120_000);
    let store: Store;
    let prefix: string;
    let relay: Relay;
    let system: PaymentSystem | undefined;

    before(async () => {
      store = freshStore(backend, "payment");
      prefix = uniqueName("du");
      const { relay: r, relayedUrl } = await Relay.to(store.mysqlUrl!);
      relay = r;
      // Migrations run straight on the database; the service's pool then goes through the relay.
      await (await startPaymentSystem(paymentConfig(backend, store, prefix), silentLogger)).close();
      system = await startPaymentSystem(paymentConfig(backend, store, prefix, { database: { mysqlUrl: relayedUrl, sqliteFile: "", poolSize: 4 } }), silentLogger);
    });
    after(async () => {
      await relay?.cut();
      await system?.close().catch(() => {});
      await store?.drop();
      if (backend.redisUrl) await deleteRedisKeys(backend.redisUrl, prefix);
    });

    it("answers UNAVAILABLE while it is gone, and the same requests repeated afterwards are recorded once", async () => {
      const client = createGrpcClient(PaymentService, system!.server.grpcAddress);
      try {
        expect((await client.client.pay(payRequest("du1", 100n))).responseCode).to.equal("SUCCESS");
        await relay.cut();
        const cutOff = Array.from({ length: 8 }, (_, i) => payRequest("du1", BigInt(200 + i)));
        const errors = await Promise.all(
          cutOff.map((req) =>
            client.client.pay(req, { timeoutMs: 60_000 }).then(
              (r) => new Error(`answered ${r.responseCode} while the database was gone`),
              (err: unknown) => ConnectError.from(err),
            ),
          ),
        );
        for (const e of errors) {
          expect(e).to.be.instanceOf(ConnectError);
          const c = e as ConnectError;
          expect(Code[c.code], c.rawMessage).to.equal("Unavailable");
          expect(c.rawMessage).to.equal("the database is unavailable; retry");
        }
        const balance = await client.client.getBalance({ salerId: "du1" }).then(
          () => undefined,
          (err: unknown) => ConnectError.from(err),
        );
        expect(balance?.code).to.equal(Code.Unavailable);

        await relay.open();
        for (const req of cutOff) {
          let answer;
          for (let i = 0; ; i++) {
            try {
              answer = await client.client.pay(req, { timeoutMs: 60_000 });
              break;
            } catch (err) {
              // The pool may still be finding out that its old connections are gone.
              if (ConnectError.from(err).code !== Code.Unavailable || i > 20) throw err;
              await new Promise((resolve) => setTimeout(resolve, 250));
            }
          }
          expect(answer.responseCode, req.requestId).to.equal("SUCCESS");
          expect(answer.totalFee).to.equal(req.totalFee);
        }
        expect(await countRows(system!.db.knex, "payment_orders")).to.equal(1 + cutOff.length);
      } finally {
        client.close();
      }
    });
  });
  describe(`two payment instances, one whose database goes away [${backend.name}]`, function () {
    this.timeout(120_000);
    let store: Store;
    let merchantStore: Store;
    let prefix: string;
    let relay: Relay;
    const closers: (() => Promise<unknown>)[] = [];

    after(async () => {
      await relay?.cut();
      for (const close of closers.reverse()) await close().catch(() => {});
      await store?.drop();
      await merchantStore?.drop();
      if (backend.redisUrl) await deleteRedisKeys(backend.redisUrl, prefix);
    });

    it("callers balancing over both get every payment recorded once, through the instance that still reaches it", async () => {
      store = freshStore(backend, "payment");
      merchantStore = freshStore(backend, "merchant");
      prefix = uniqueName("du2");
      const { relay: r, relayedUrl } = await Relay.to(store.mysqlUrl!);
      relay = r;
      const healthy = await startPaymentSystem(paymentConfig(backend, store, prefix), silentLogger);
      closers.push(() => healthy.close());
      const cutOff = await startPaymentSystem(
        paymentConfig(backend, store, prefix, { database: { mysqlUrl: relayedUrl, sqliteFile: "", poolSize: 4 } }),
        silentLogger,
      );
      closers.push(() => cutOff.close());
      const both = `${cutOff.server.grpcAddress},${healthy.server.grpcAddress}`;
      const merchant = await startMerchantSystem(merchantConfig(merchantStore, both), silentLogger);
      closers.push(() => merchant.close());
      const payment = createGrpcClient(PaymentService, both);
      const viaMerchant = createGrpcClient(MerchantService, merchant.server.grpcAddress);
      closers.push(async () => payment.close(), async () => viaMerchant.close());

      // Both instances serve first: the calls are spread over them.
      for (let i = 0; i < 4; i++) expect((await payment.client.pay(payRequest("du2", 10n))).responseCode).to.equal("SUCCESS");
      await relay.cut();
      const cutAt = Date.now();
      // Waves of 10 payments every 100 ms for 3 s, straight and through the merchant: a call may
      // meet the cut-off instance on every attempt only until outlier detection ejects it.
      const failedAt: number[] = [];
      let paid = 0;
      for (let wave = 0; wave < 30; wave++) {
        const startedAt = Date.now() - cutAt;
        const answers = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            (i % 2 === 0
              ? payment.client.pay(payRequest("du2", BigInt(100 + i)), { timeoutMs: 30_000 }).then((r) => r.responseCode)
              : viaMerchant.client.pay({ salerId: "du2", totalFee: BigInt(200 + i) }).then((r) => r.order?.state ?? "")
            ).catch(() => "error"),
          ),
        );
        for (const a of answers) {
          if (a === "SUCCESS") paid++;
          else failedAt.push(startedAt);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      console.log(`      300 payments after the cut: ${paid} SUCCESS; others started at ${failedAt.join(", ") || "none"} ms after it`);
      expect(failedAt.filter((ms) => ms > 1500), "calls that failed more than 1.5 s after the cut").to.deep.equal([]);
      expect(paid).to.be.greaterThan(290);
      // Every SUCCESS recorded once; the merchant's failed ones (UNKNOWN) were never recorded.
      expect(await countRows(healthy.db.knex, "payment_orders")).to.equal(4 + paid);
      // The instance cut off from its database answers UNAVAILABLE when called alone.
      const alone = createGrpcClient(PaymentService, cutOff.server.grpcAddress);
      closers.push(async () => alone.close());
      const refused = await alone.client.pay(payRequest("du2", 1n)).then(
        () => undefined,
        (err: unknown) => ConnectError.from(err),
      );
      expect(refused?.code).to.equal(Code.Unavailable);
    });
  });
}
