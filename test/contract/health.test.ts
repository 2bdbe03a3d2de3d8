/**
 * Health: the standard grpc.health.v1 service on every gRPC port (through grpc-js with
 * grpc-health-check's proto, and through buf curl), and GET /healthz on every HTTP port.
 */
import { expect } from "chai";
import { Code, ConnectError } from "@connectrpc/connect";
import { backends } from "../harness.js";
import { bufCurl, grpcHealthCheck, HEALTH_PROTO } from "./clients.js";
import { startContractPlatform, TARGET_NAMES, type ContractPlatform } from "./targets.js";

for (const backend of backends()) {
  describe(`contract: health [${backend.name}]`, () => {
    let cp: ContractPlatform;
    before(async () => {
      cp = await startContractPlatform(backend);
    });
    after(async () => cp?.close());

    for (const name of TARGET_NAMES) {
      describe(name, () => {
        const target = () => cp.targets.find((t) => t.name === name)!;

        it("reports SERVING for the server and for its service over grpc.health.v1", async () => {
          const t = target();
          expect(await grpcHealthCheck(t.server.grpcAddress, "")).to.equal("SERVING");
          expect(await grpcHealthCheck(t.server.grpcAddress, t.service.typeName)).to.equal("SERVING");
        });

        it("answers NOT_FOUND for a service it does not serve", async () => {
          const err = await grpcHealthCheck(target().server.grpcAddress, "no.such.v1.Service").then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(err).to.be.instanceOf(ConnectError);
          expect((err as ConnectError).code).to.equal(Code.NotFound);
        });

        it("answers buf curl's health check with the standard health proto as schema", async () => {
          const t = target();
          const res = await bufCurl([
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            "--schema",
            HEALTH_PROTO,
            "--data",
            JSON.stringify({ service: t.service.typeName }),
            `http://${t.server.grpcAddress}/grpc.health.v1.Health/Check`,
          ]);
          expect(res.exitCode, res.stderr).to.equal(0);
          expect(JSON.parse(res.stdout)).to.deep.equal({ status: "SERVING" });
        });

        it("answers GET /healthz on the HTTP port", async () => {
          const t = target();
          const res = await fetch(`${t.server.httpUrl}/healthz`);
          expect(res.status).to.equal(200);
          expect(await res.json()).to.deep.equal({ status: "SERVING", service: name });
        });
      });
    }
  });
}
