/**
 * A TCP relay on loopback that stands between a client and a server (the payment system, Redis)
 * so that a test can break the network the way production breaks it:
 * - `dropping`: whatever the server sends back is thrown away; requests still arrive and are
 *   executed, answers never come (a lost response);
 * - `cut()`: every connection is closed and new ones are refused until `restore()` (the server
 *   is down or unreachable);
 * - without a target, a black hole that accepts connections and never answers.
 */
import * as net from "node:net";
import type { AddressInfo } from "node:net";

export class Relay {
  dropping = false;
  private isCut = false;
  private readonly sockets = new Set<net.Socket>();
  private readonly server: net.Server;

  private constructor(target: { host: string; port: number } | undefined) {
    this.server = net.createServer((client) => {
      if (this.isCut) {
        client.destroy();
        return;
      }
      this.sockets.add(client);
      client.on("error", () => {});
      client.on("close", () => this.sockets.delete(client));
      if (!target) return;
      const upstream = net.connect(target.port, target.host);
      this.sockets.add(upstream);
      upstream.on("error", () => client.destroy());
      upstream.on("close", () => {
        this.sockets.delete(upstream);
        client.destroy();
      });
      client.on("close", () => upstream.destroy());
      client.on("data", (chunk) => upstream.write(chunk));
      upstream.on("data", (chunk) => {
        if (!this.dropping) client.write(chunk);
      });
    });
  }

  /** Relays to host:port, or is a black hole without a target. */
  static async start(targetAddress?: string): Promise<Relay> {
    let target: { host: string; port: number } | undefined;
    if (targetAddress) {
      const i = targetAddress.lastIndexOf(":");
      target = { host: targetAddress.slice(0, i), port: Number(targetAddress.slice(i + 1)) };
    }
    const relay = new Relay(target);
    await new Promise<void>((resolve) => relay.server.listen(0, "127.0.0.1", resolve));
    return relay;
  }

  get address(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  cut(): void {
    this.isCut = true;
    for (const s of this.sockets) s.destroy();
  }

  restore(): void {
    this.isCut = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
