/**
 * The Node.js flags the merchant and payment systems run with, wherever they are started:
 * package.json's start scripts, the Dockerfile, docker-compose.yml and the benchmarks
 * (test/compose.test.ts checks that they agree).
 *
 * `--max-semi-space-size=32`: V8's young generation may grow to two semi-spaces of 32 MB instead
 * of 16 MB. Every call allocates short-lived objects (the request and response, the SQL bindings,
 * the promises of a batch) that die young; a larger young generation collects them in fewer
 * scavenges. It costs at most 32 MB more memory per process. The reconciliation system alone does
 * not take it: its large work is DuckDB's, outside V8's heap, within RECON_MEMORY_LIMIT.
 */
export const SERVICE_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=32"];

/** The services started with SERVICE_NODE_FLAGS when they run in a process of their own. */
export const FLAGGED_SERVICES: readonly string[] = ["payment", "merchant"];
