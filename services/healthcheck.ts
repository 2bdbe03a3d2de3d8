/**
 * The Docker image's HEALTHCHECK: GET /healthz on the HTTP ports of this container's services.
 * The image runs one service or all three, so every service's port is tried (from
 * PAYMENT_HTTP_PORT, MERCHANT_HTTP_PORT, RECON_HTTP_PORT or their defaults): healthy when at least
 * one answers 200 and none answers anything else; a port nobody listens on is another
 * container's. HEALTHCHECK_URL, when set, is the one URL asked instead.
 */
const host = "127.0.0.1";
const ports = [
  ["PAYMENT_HTTP_PORT", 8081],
  ["MERCHANT_HTTP_PORT", 8082],
  ["RECON_HTTP_PORT", 8083],
] as const;
const urls = process.env.HEALTHCHECK_URL ? [process.env.HEALTHCHECK_URL] : ports.map(([v, d]) => `http://${host}:${process.env[v] || d}/healthz`);

const answers = await Promise.all(
  urls.map((url) =>
    fetch(url, { signal: AbortSignal.timeout(2500) }).then(
      (r) => ({ url, status: r.status }),
      () => ({ url, status: 0 }),
    ),
  ),
);
const answered = answers.filter((a) => a.status !== 0);
const healthy = answered.length > 0 && answered.every((a) => a.status === 200);
if (!healthy) process.stderr.write(`unhealthy: ${answers.map((a) => `${a.url} ${a.status || "no answer"}`).join(", ")}\n`);
process.exit(healthy ? 0 : 1);
