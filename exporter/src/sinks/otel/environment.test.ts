// SPDX-License-Identifier: Apache-2.0
// The standard OpenTelemetry environment (service name, resource attributes, timeouts) as record
// reads it, what the run keeps of it, and --help's defaults read back by their own parsers.
import assert from "node:assert/strict";
import { test } from "node:test";
import { fixtureHeader } from "../../../../test/support/fixtures.js";
import { UserError } from "../../errors.js";
import * as C from "@profinfer/contract";
import { timeoutFrom } from "./options.js";
import { resourceAttributes, resourceIdentity } from "./resource.js";
import { formatOpSampling, parseOpSampling } from "./spans.js";

/** Runs `fn` with `vars` in process.env (undefined: unset), then puts the environment back. */
function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const put = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  put(vars);
  try {
    return fn();
  } finally {
    put(saved);
  }
}

const noOtelEnv = { OTEL_SERVICE_NAME: undefined, OTEL_RESOURCE_ATTRIBUTES: undefined };

test("OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES: read as the SDK reads them, --service-name first", () => {
  const env = {
    OTEL_SERVICE_NAME: "my-llm",
    OTEL_RESOURCE_ATTRIBUTES:
      "deployment.environment.name=staging,service.namespace=llm,k8s.pod.name=pod%2C1",
  };
  const identity = withEnv(env, () => resourceIdentity());
  assert.equal(identity.serviceName, "my-llm");
  assert.deepEqual(identity.attributes, {
    "deployment.environment.name": "staging",
    "service.namespace": "llm",
    "k8s.pod.name": "pod,1",
  });
  assert.equal(withEnv(env, () => resourceIdentity("override")).serviceName, "override");
  const fromList = withEnv(
    { OTEL_SERVICE_NAME: undefined, OTEL_RESOURCE_ATTRIBUTES: "service.name=listed,team=a" },
    () => resourceIdentity(),
  );
  assert.equal(fromList.serviceName, "listed", "service.name among the attributes");
  assert.deepEqual(fromList.attributes, { team: "a" });
  const none = withEnv(noOtelEnv, () => resourceIdentity(undefined, "Qwen3 0.6B"));
  assert.deepEqual(none, { attributes: {}, model: "Qwen3 0.6B" });
});

test("an OTEL_RESOURCE_ATTRIBUTES the SDK cannot read is an error that says how to write it", () => {
  assert.throws(
    () => withEnv({ ...noOtelEnv, OTEL_RESOURCE_ATTRIBUTES: "staging" }, () => resourceIdentity()),
    (e: unknown) => e instanceof UserError && /key=value pairs separated by commas/.test(e.message),
  );
});

test("the run's resource: the recorded attributes under profinfer's own, the recorded service name unless replay names one", () => {
  const header = fixtureHeader({
    resource: {
      serviceName: "my-llm",
      attributes: { "deployment.environment.name": "staging", [C.RES_SERVICE_NAME]: "ignored" },
    },
  });
  const attributes = resourceAttributes(header, []);
  assert.equal(attributes[C.RES_SERVICE_NAME], "my-llm");
  assert.equal(attributes["deployment.environment.name"], "staging");
  assert.equal(attributes["telemetry.sdk.language"], "nodejs", "the SDK's defaults stay");
  assert.equal(attributes[C.RES_PROCESS_PID], header.target.pid, "profinfer's own stay");
  assert.equal(resourceAttributes(header, [], "replayed")[C.RES_SERVICE_NAME], "replayed");
  const bare = resourceAttributes(fixtureHeader(), []);
  assert.equal(bare[C.RES_SERVICE_NAME], "llama-simple", "the program's name when none is given");
  assert.equal(bare["deployment.environment.name"], undefined);
});

test("the export timeout: --otlp-timeout in seconds, else the OTLP timeout variables in ms", () => {
  assert.equal(timeoutFrom(2.5, 5000, {}), 2500);
  assert.equal(timeoutFrom(undefined, 5000, {}), 5000);
  assert.equal(timeoutFrom(undefined, 5000, { OTEL_EXPORTER_OTLP_TIMEOUT: "12000" }), 12000);
  assert.equal(
    timeoutFrom(undefined, 5000, {
      OTEL_EXPORTER_OTLP_TIMEOUT: "12000",
      OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: "3000",
    }),
    3000,
    "the traces variable first",
  );
  assert.equal(timeoutFrom(1, 5000, { OTEL_EXPORTER_OTLP_TIMEOUT: "12000" }), 1000);
  for (const bad of ["10s", "-1", "0"]) {
    assert.throws(
      () => timeoutFrom(undefined, 5000, { OTEL_EXPORTER_OTLP_TIMEOUT: bad }),
      (e: unknown) => e instanceof UserError && /in milliseconds/.test(e.message),
      bad,
    );
  }
});

test("--otlp-op-sample: what --help shows as the default is a spec the option reads back", () => {
  for (const spec of ["all", "none", "every:16", "first:3"])
    assert.equal(formatOpSampling(parseOpSampling(spec)), spec);
});
