/**
 * A free loopback port for a server a test starts (and may restart on the same port).
 *
 * Ports come from below the kernel's ephemeral range (ip_local_port_range), where the system
 * never puts the local end of an outgoing connection: a port handed out here stays free while a
 * killed server is being restarted, however many connections the rest of the machine opens.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

const FIRST = 20_000;

function ephemeralStart(): number {
  try {
    return Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || 32_768;
  } catch {
    return 32_768;
  }
}

function listensOn(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

export async function freePort(): Promise<number> {
  const end = Math.max(FIRST + 1_000, ephemeralStart());
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = FIRST + Math.floor(Math.random() * (end - FIRST));
    if (await listensOn(port)) return port;
  }
  throw new Error(`no free port between ${FIRST} and ${end}`);
}
