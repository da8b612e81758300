// SPDX-License-Identifier: Apache-2.0
// The real observability stack the tests start: the OpenTelemetry Collector, Jaeger v2 and their
// configurations, from the binaries set-up builds from test/stack/ (see scripts/setup.mjs).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { freePort, repoRoot, stack } from "./targets.js";

/**
 * The collector configuration users run (provisioning/otel-collector/config.yaml), parsed: free
 * YAML, which the tests edit as the collector's own schema has it.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function provisionedCollectorConfig(): Record<string, any> {
  const path = join(repoRoot, "provisioning", "otel-collector", "config.yaml");
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return parse(readFileSync(path, "utf8")) as Record<string, any>;
}

/** A stack program started with a configuration file; its log is kept for failures. */
export class StackProcess {
  private exited = false;
  log = "";
  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    const keep = (d: Buffer) => (this.log = (this.log + d.toString()).slice(-20_000));
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    child.on("exit", () => (this.exited = true));
  }

  static async start(
    name: string,
    binary: string,
    config: unknown,
    dir: string,
    ready: () => Promise<boolean>,
    args: readonly string[] = [],
  ): Promise<StackProcess> {
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, stringify(config));
    const proc = new StackProcess(
      name,
      spawn(binary, [`--config=file:${file}`, ...args], { stdio: ["ignore", "pipe", "pipe"] }),
    );
    const until = Date.now() + 30_000;
    while (!(await ready().catch(() => false))) {
      if (proc.exited) throw new Error(`${name} exited at start:\n${proc.log}`);
      if (Date.now() > until) {
        await proc.stop();
        throw new Error(`${name} did not become ready in 30 s:\n${proc.log}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return proc;
  }

  stop(): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((resolveStop) => {
      this.child.once("exit", () => resolveStop());
      this.child.kill("SIGTERM");
    });
  }
}

/** Does something accept TCP connections on 127.0.0.1:port? */
async function listening(port: number): Promise<boolean> {
  const { connect } = await import("node:net");
  return new Promise((resolveListening) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolveListening(true);
    });
    s.once("error", () => resolveListening(false));
  });
}

// the stack's own telemetry would bind fixed ports (8888) and make two instances collide
const quietTelemetry = { metrics: { level: "none" }, logs: { level: "warn" } };

/** Jaeger v2 with in-memory storage: OTLP gRPC in, its HTTP query API out. */
export class Jaeger {
  private constructor(
    private readonly proc: StackProcess,
    /** the OTLP gRPC endpoint, http://127.0.0.1:N */
    readonly otlpEndpoint: string,
    readonly otlpPort: number,
    /** the query API's base URL */
    readonly queryUrl: string,
  ) {}

  static async start(dir: string): Promise<Jaeger> {
    const [otlpPort, httpPort, grpcPort] = [await freePort(), await freePort(), await freePort()];
    const config = {
      service: {
        extensions: ["jaeger_storage", "jaeger_query"],
        pipelines: {
          traces: { receivers: ["otlp"], exporters: ["jaeger_storage_exporter"] },
        },
        telemetry: quietTelemetry,
      },
      extensions: {
        jaeger_query: {
          storage: { traces: "memstore" },
          http: { endpoint: `127.0.0.1:${httpPort}` },
          grpc: { endpoint: `127.0.0.1:${grpcPort}` },
        },
        jaeger_storage: { backends: { memstore: { memory: { max_traces: 100_000 } } } },
      },
      receivers: { otlp: { protocols: { grpc: { endpoint: `127.0.0.1:${otlpPort}` } } } },
      exporters: { jaeger_storage_exporter: { trace_storage: "memstore" } },
    };
    const queryUrl = `http://127.0.0.1:${httpPort}`;
    const proc = await StackProcess.start(
      "jaeger",
      stack("jaeger"),
      config,
      dir,
      async () => (await fetch(`${queryUrl}/api/services`)).ok && (await listening(otlpPort)),
    );
    return new Jaeger(proc, `http://127.0.0.1:${otlpPort}`, otlpPort, queryUrl);
  }

  /** The query API's trace search (what Jaeger's UI asks): the traces with a matching span. */
  async findTraces(query: {
    service: string;
    operation?: string;
    tags?: Record<string, string>;
    minDuration?: string;
    limit?: number;
  }): Promise<JaegerTrace[]> {
    const params = new URLSearchParams({ service: query.service });
    if (query.operation) params.set("operation", query.operation);
    if (query.tags) params.set("tags", JSON.stringify(query.tags));
    if (query.minDuration) params.set("minDuration", query.minDuration);
    params.set("limit", String(query.limit ?? 100_000));
    const response = await fetch(`${this.queryUrl}/api/traces?${params}`);
    const body = (await response.json()) as { data: JaegerTrace[] | null; errors: unknown };
    if (!response.ok || body.errors) {
      throw new Error(`jaeger query ${params} failed: ${JSON.stringify(body.errors)}`);
    }
    return body.data ?? [];
  }

  async services(): Promise<string[]> {
    const body = (await (await fetch(`${this.queryUrl}/api/services`)).json()) as {
      data: string[] | null;
    };
    return body.data ?? [];
  }

  get log(): string {
    return this.proc.log;
  }

  stop(): Promise<void> {
    return this.proc.stop();
  }
}

export interface JaegerTrace {
  traceID: string;
  spans: {
    traceID: string;
    spanID: string;
    operationName: string;
    /** µs */
    duration: number;
    startTime: number;
    references: { refType: string; traceID: string; spanID: string }[];
    tags: { key: string; type: string; value: unknown }[];
    processID: string;
  }[];
  processes: Record<string, { serviceName: string; tags: { key: string; value: unknown }[] }>;
}

/**
 * The collector with the provisioning's configuration: its receivers, processors and pipeline
 * as users run them, with the endpoints moved to free local ports, the Tempo exporter pointed at
 * `forwardTo` (Jaeger here), and a file exporter beside it that writes what passed through.
 */
export class Collector {
  private constructor(
    private readonly proc: StackProcess,
    readonly grpcPort: number,
    readonly httpPort: number,
    /** OTLP JSON lines, one per batch the collector exported */
    readonly outFile: string,
  ) {}

  get grpcEndpoint(): string {
    return `http://127.0.0.1:${this.grpcPort}`;
  }

  static async start(
    dir: string,
    forwardTo: string,
    ports: { grpc?: number } = {},
  ): Promise<Collector> {
    const config = provisionedCollectorConfig();
    const grpcPort = ports.grpc ?? (await freePort());
    const httpPort = await freePort();
    config.receivers.otlp.protocols.grpc.endpoint = `127.0.0.1:${grpcPort}`;
    // OTLP/HTTP too, for posting traces.otlp.jsonl's lines (the OTLP JSON encoding) back in
    config.receivers.otlp.protocols.http = { endpoint: `127.0.0.1:${httpPort}` };
    const outFile = join(dir, "collector-out.jsonl");
    const pipeline = config.service.pipelines.traces as { exporters: string[] };
    for (const name of pipeline.exporters) {
      if (name.startsWith("otlp"))
        config.exporters[name].endpoint = forwardTo.replace(/^\w+:\/\//, "");
    }
    config.exporters.file = { path: outFile };
    pipeline.exporters.push("file");
    config.service.telemetry = quietTelemetry;
    const proc = await StackProcess.start("otelcol", stack("otelcol"), config, dir, () =>
      listening(grpcPort).then(async (up) => up && (await listening(httpPort))),
    );
    return new Collector(proc, grpcPort, httpPort, outFile);
  }

  /** Posts OTLP JSON (one ExportTraceServiceRequest) to the OTLP/HTTP receiver. */
  async postJson(body: string): Promise<void> {
    const response = await fetch(`http://127.0.0.1:${this.httpPort}/v1/traces`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    if (!response.ok) {
      throw new Error(
        `collector refused OTLP/HTTP JSON: ${response.status} ${await response.text()}`,
      );
    }
  }

  get log(): string {
    return this.proc.log;
  }

  stop(): Promise<void> {
    return this.proc.stop();
  }
}

/**
 * The collector taking OTLP profiles (the profiles signal is behind a feature gate) and writing
 * each request it gets to a file, as OTLP JSON lines.
 */
export class ProfilesCollector {
  private constructor(
    private readonly proc: StackProcess,
    readonly grpcPort: number,
    readonly outFile: string,
  ) {}

  get grpcEndpoint(): string {
    return `http://127.0.0.1:${this.grpcPort}`;
  }

  static async start(dir: string): Promise<ProfilesCollector> {
    const grpcPort = await freePort();
    const outFile = join(dir, "profiles-out.jsonl");
    const config = {
      receivers: { otlp: { protocols: { grpc: { endpoint: `127.0.0.1:${grpcPort}` } } } },
      exporters: { file: { path: outFile } },
      service: {
        telemetry: quietTelemetry,
        pipelines: { profiles: { receivers: ["otlp"], exporters: ["file"] } },
      },
    };
    const proc = await StackProcess.start(
      "otelcol-profiles",
      stack("otelcol"),
      config,
      dir,
      () => listening(grpcPort),
      ["--feature-gates=service.profilesSupport"],
    );
    return new ProfilesCollector(proc, grpcPort, outFile);
  }

  get log(): string {
    return this.proc.log;
  }

  stop(): Promise<void> {
    return this.proc.stop();
  }
}

/** One span of OTLP JSON, as traces.otlp.jsonl and the collector's file exporter write it. */
export interface OtlpJsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: { key: string; value: Record<string, unknown> }[];
  [field: string]: unknown;
}

/** The spans of an OTLP JSON lines file with their resource's attributes. */
export function otlpJsonSpans(
  text: string,
): { span: OtlpJsonSpan; resource: { key: string; value: Record<string, unknown> }[] }[] {
  const out: ReturnType<typeof otlpJsonSpans> = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const request = JSON.parse(line) as {
      resourceSpans: {
        resource?: { attributes?: { key: string; value: Record<string, unknown> }[] };
        scopeSpans: { spans?: OtlpJsonSpan[] }[];
      }[];
    };
    for (const rs of request.resourceSpans) {
      for (const ss of rs.scopeSpans) {
        for (const span of ss.spans ?? [])
          out.push({ span, resource: rs.resource?.attributes ?? [] });
      }
    }
  }
  return out;
}
