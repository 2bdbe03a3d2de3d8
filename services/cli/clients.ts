/** Where the CLI finds the three services, and how their errors become exit codes. */
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { MerchantService } from "../../gen/merchant/v1/merchant_pb.js";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { ReconService } from "../../gen/recon/v1/recon_pb.js";
import { createGrpcClient, type GrpcClientHandle } from "../shared/rpc/grpcClient.js";
import { operatorHeaders } from "../shared/auth/authentication.js";

export const EXIT = {
  ok: 0,
  /** The work ran and the answer is a failure: a FAIL order, an unbalanced reconciliation, an audit FAIL. */
  businessFailure: 1,
  usage: 2,
  unreachable: 3,
} as const;

/** A mistake in the command line: exit code 2 with the message and the usage. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export interface Addresses {
  payment: string;
  merchant: string;
  recon: string;
}

type ServiceName = keyof Addresses;

const ADDRESS = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

export function checkAddress(flag: string, value: string): string {
  if (!ADDRESS.test(value)) throw new UsageError(`--${flag} must be host:port, got "${value}"`);
  return value;
}

/** Clients opened on first use and closed together at the end. */
export class Services {
  private readonly open: GrpcClientHandle<DescService>[] = [];
  private readonly cache = new Map<ServiceName, unknown>();

  constructor(readonly addresses: Addresses) {}

  private client<S extends DescService>(name: ServiceName, service: S): Client<S> {
    let c = this.cache.get(name) as Client<S> | undefined;
    if (!c) {
      // OPERATOR_TOKEN, when the services require one, goes with every call (settle, simulate, runs).
      const operator = operatorHeaders(process.env.OPERATOR_TOKEN || undefined);
      const handle = createGrpcClient(service, this.addresses[name], {
        channelOptions: { "grpc.max_receive_message_length": 64 * 1024 * 1024 },
        callHeaders: () => operator,
      });
      this.open.push(handle as unknown as GrpcClientHandle<DescService>);
      c = handle.client;
      this.cache.set(name, c);
    }
    return c;
  }

  get payment(): Client<typeof PaymentService> {
    return this.client("payment", PaymentService);
  }

  get merchant(): Client<typeof MerchantService> {
    return this.client("merchant", MerchantService);
  }

  get recon(): Client<typeof ReconService> {
    return this.client("recon", ReconService);
  }

  close(): void {
    for (const h of this.open) h.close();
  }
}

/** Wraps a call so that its error names the service it went to. */
export async function call<T>(service: ServiceName, addresses: Addresses, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new ServiceCallError(service, addresses[service], ConnectError.from(err));
  }
}

export class ServiceCallError extends Error {
  constructor(
    readonly service: ServiceName,
    readonly address: string,
    override readonly cause: ConnectError,
  ) {
    super(cause.rawMessage);
    this.name = "ServiceCallError";
  }

  get exitCode(): number {
    if (this.cause.code === Code.Unavailable) return EXIT.unreachable;
    if (this.cause.code === Code.InvalidArgument) return EXIT.usage;
    return EXIT.businessFailure;
  }

  describe(): string {
    const code = Code[this.cause.code] ?? String(this.cause.code);
    if (this.cause.code === Code.Unavailable) {
      const upstream = /^upstream (\w+) service at (\S+) is unreachable \((.*)\)$/s.exec(this.cause.rawMessage);
      if (upstream) {
        return `the ${this.service} service at ${this.address} answered, but cannot reach the ${upstream[1]} service at ${upstream[2]} (${upstream[3]}); start the ${upstream[1]} service, or point the ${this.service} service at it`;
      }
      const reason = this.cause.rawMessage.replace(/\s*Resolution note:\s*$/, "");
      return `cannot reach the ${this.service} service at ${this.address} (${reason}); start it, or pass --${this.service} host:port`;
    }
    if (this.cause.code === Code.InvalidArgument) return `the ${this.service} service refused the request: ${this.cause.rawMessage}`;
    return `the ${this.service} service answered ${code}: ${this.cause.rawMessage}`;
  }
}
