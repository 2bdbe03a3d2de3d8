/**
 * One Redis, or a Redis Cluster. REDIS_URL names a single server; REDIS_CLUSTER_NODES
 * ("host:port,host:port,...", any reachable subset of the cluster's nodes) makes the client an
 * ioredis Cluster, which learns the slot map from those nodes and follows failovers.
 *
 * On a cluster every command that names several keys must name keys of one hash slot; callers
 * give all their keys one hash tag ("{tag}:...") for that.
 */
import { Cluster, Redis } from "ioredis";
import { ConfigError } from "../errors.js";

export type RedisClient = Redis | Cluster;

export interface ClusterNode {
  host: string;
  port: number;
}

/** Where the credit buffer lives: one server, or the seed nodes of a cluster. */
export type RedisTarget = { url: string } | { clusterNodes: ClusterNode[] };

/** Parses "host:port,host:port" (IPv6 hosts in brackets); a bad entry names the variable. */
export function parseClusterNodes(variable: string, text: string): ClusterNode[] {
  const nodes: ClusterNode[] = [];
  for (const raw of text.split(",")) {
    const entry = raw.trim();
    const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/.exec(entry);
    const port = m ? Number(m[2]) : NaN;
    if (!m || port < 1 || port > 65535) throw new ConfigError(variable, `must be a comma-separated list of host:port, got "${entry}"`);
    nodes.push({ host: m[1]!.replace(/^\[|\]$/g, ""), port });
  }
  return nodes;
}

/** REDIS_URL or REDIS_CLUSTER_NODES (not both). */
export function readRedisTarget(env: { url(name: string, protocols: string[]): string | undefined; optional(name: string): string | undefined }): {
  redisUrl: string | undefined;
  redisClusterNodes: ClusterNode[] | undefined;
} {
  const url = env.url("REDIS_URL", ["redis", "rediss"]);
  const nodes = env.optional("REDIS_CLUSTER_NODES");
  if (url !== undefined && nodes !== undefined) throw new ConfigError("REDIS_CLUSTER_NODES", "cannot be set together with REDIS_URL");
  return { redisUrl: url, redisClusterNodes: nodes === undefined ? undefined : parseClusterNodes("REDIS_CLUSTER_NODES", nodes) };
}

/** Bounds shared by both kinds of client: a call never waits out a reconnection back-off. */
const COMMAND_OPTIONS = {
  maxRetriesPerRequest: 2,
  connectTimeout: 5000,
  commandTimeout: 2000,
} as const;

/**
 * A connected client. `onNodeLost` is called when a cluster node the client was connected to
 * goes away (killed, partitioned): writes it acknowledged may not have reached the replica that
 * takes over, because Redis replicates asynchronously.
 */
export function connectRedis(target: RedisTarget, options: { onNodeLost?: () => void } = {}): RedisClient {
  let client: RedisClient;
  if ("url" in target) {
    client = new Redis(target.url, { ...COMMAND_OPTIONS, enableOfflineQueue: true });
  } else {
    const cluster = new Cluster(target.clusterNodes, {
      redisOptions: COMMAND_OPTIONS,
      enableOfflineQueue: true,
      // Commands that meet a slot in failover (CLUSTERDOWN, TRYAGAIN, a MOVED to a promoted
      // replica) are retried after a refresh of the slot map, within maxRetriesPerRequest.
      retryDelayOnClusterDown: 200,
      retryDelayOnTryAgain: 200,
      retryDelayOnMoved: 50,
      slotsRefreshTimeout: 2000,
      clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
    });
    // While connecting, the client drops the seed connections it does not need (replicas): only
    // a node lost by a ready client can have taken acknowledged writes with it.
    cluster.on("-node", () => {
      if (cluster.status === "ready") options.onNodeLost?.();
    });
    client = cluster;
  }
  // Connection errors surface on the calls that fail; the client reconnects by itself.
  client.on("error", () => {});
  return client;
}
