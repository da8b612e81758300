// SPDX-License-Identifier: Apache-2.0
// A real OTLP trace receiver for tests and the benchmark: a gRPC server on localhost implementing
// opentelemetry.proto.collector.trace.v1.TraceService from the official opentelemetry-proto
// definitions (the .proto files shipped in @opentelemetry/exporter-collector-grpc@0.25.0; their
// wire format is that of today's OTLP: ScopeSpans took InstrumentationLibrarySpans' field 2),
// loaded with @grpc/proto-loader and served with @grpc/grpc-js. It decodes what it receives and
// keeps every span, flattened, with its resource and links; it can be stopped and started on the
// same port.
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);
const protoRoot = join(
  dirname(require.resolve("@opentelemetry/exporter-collector-grpc/package.json")),
  "build",
  "protos",
);

export type AttributeType = "string" | "int" | "double" | "bool" | "array" | "bytes" | "kvlist";

export interface AttributeValue {
  type: AttributeType;
  /** int as bigint, arrays as arrays of their elements' values */
  value: unknown;
  /** for arrays: the type of each element */
  elementTypes?: AttributeType[];
}

export interface ReceivedEvent {
  name: string;
  timeNs: bigint;
  attributes: Record<string, AttributeValue>;
}

export interface ReceivedLink {
  traceId: string;
  spanId: string;
  attributes: Record<string, AttributeValue>;
}

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** "" for a root span */
  parentSpanId: string;
  name: string;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, AttributeValue>;
  events: ReceivedEvent[];
  links: ReceivedLink[];
  status: { code: number; message: string };
  resource: Record<string, AttributeValue>;
  scope: string;
}

interface AnyValueMessage {
  value?: string;
  stringValue?: string;
  intValue?: string;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: AnyValueMessage[] };
  bytesValue?: Buffer;
  kvlistValue?: unknown;
}
interface KeyValueMessage {
  key: string;
  value?: AnyValueMessage;
}

function decodeValue(v: AnyValueMessage | undefined): AttributeValue {
  switch (v?.value) {
    case "stringValue":
      return { type: "string", value: v.stringValue };
    case "intValue":
      return { type: "int", value: BigInt(v.intValue!) };
    case "doubleValue":
      return { type: "double", value: v.doubleValue };
    case "boolValue":
      return { type: "bool", value: v.boolValue };
    case "arrayValue": {
      const items = (v.arrayValue?.values ?? []).map(decodeValue);
      return {
        type: "array",
        value: items.map((i) => i.value),
        elementTypes: items.map((i) => i.type),
      };
    }
    case "bytesValue":
      return { type: "bytes", value: v.bytesValue };
    default:
      return { type: "kvlist", value: v?.kvlistValue };
  }
}

function decodeAttributes(list: KeyValueMessage[] | undefined): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const kv of list ?? []) out[kv.key] = decodeValue(kv.value);
  return out;
}

interface SpanMessage {
  traceId: Buffer;
  spanId: Buffer;
  parentSpanId: Buffer;
  name: string;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: KeyValueMessage[];
  events?: { name: string; timeUnixNano: string; attributes?: KeyValueMessage[] }[];
  links?: { traceId: Buffer; spanId: Buffer; attributes?: KeyValueMessage[] }[];
  status?: { code?: number | string; message?: string };
}
interface RequestMessage {
  resourceSpans?: {
    resource?: { attributes?: KeyValueMessage[] };
    instrumentationLibrarySpans?: {
      instrumentationLibrary?: { name?: string };
      spans?: SpanMessage[];
    }[];
  }[];
}

/** The TraceService definition from the official protos, loaded once. */
let definition: protoLoader.PackageDefinition | null = null;
function traceService(): protoLoader.PackageDefinition {
  definition ??= protoLoader.loadSync(
    "opentelemetry/proto/collector/trace/v1/trace_service.proto",
    {
      includeDirs: [protoRoot],
      longs: String,
      enums: Number,
      defaults: true,
      oneofs: true,
    },
  );
  return definition;
}

/** The spans of an ExportTraceServiceRequest, flattened with their resource and scope. */
function spansOf(request: RequestMessage): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of request.resourceSpans ?? []) {
    const resource = decodeAttributes(rs.resource?.attributes);
    for (const ss of rs.instrumentationLibrarySpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: s.traceId.toString("hex"),
          spanId: s.spanId.toString("hex"),
          parentSpanId: s.parentSpanId.toString("hex"),
          name: s.name,
          startNs: BigInt(s.startTimeUnixNano),
          endNs: BigInt(s.endTimeUnixNano),
          attributes: decodeAttributes(s.attributes),
          events: (s.events ?? []).map((e) => ({
            name: e.name,
            timeNs: BigInt(e.timeUnixNano),
            attributes: decodeAttributes(e.attributes),
          })),
          links: (s.links ?? []).map((l) => ({
            traceId: l.traceId.toString("hex"),
            spanId: l.spanId.toString("hex"),
            attributes: decodeAttributes(l.attributes),
          })),
          status: { code: Number(s.status?.code ?? 0), message: s.status?.message ?? "" },
          resource,
          scope: ss.instrumentationLibrary?.name ?? "",
        });
      }
    }
  }
  return out;
}

export class OtlpCollector {
  /** The spans of an encoded ExportTraceServiceRequest, read as the receiver reads them. */
  static decode(bytes: Uint8Array): ReceivedSpan[] {
    const method = (
      traceService()["opentelemetry.proto.collector.trace.v1.TraceService"] as Record<
        string,
        protoLoader.MethodDefinition<RequestMessage, unknown>
      >
    )["Export"]!;
    return spansOf(method.requestDeserialize(Buffer.from(bytes)));
  }

  readonly spans: ReceivedSpan[] = [];
  /** export calls received, with the number of spans in each and their metadata */
  readonly requests: { spans: number; metadata: Record<string, string> }[] = [];
  private server: grpc.Server | null = null;
  private readonly service: grpc.ServiceDefinition;
  /** answer every export with this gRPC status (e.g. UNAVAILABLE) instead of taking it */
  refuseWith: grpc.status | null = null;

  private constructor(
    readonly port: number,
    service: grpc.ServiceDefinition,
    private readonly tls: { key: Buffer; cert: Buffer } | null,
  ) {
    this.service = service;
  }

  /** Binds 127.0.0.1:`port` (0: a free port) and serves, over TLS with `tls`'s key and cert. */
  static async start(
    port = 0,
    tls: { key: Buffer; cert: Buffer } | null = null,
  ): Promise<OtlpCollector> {
    const loaded = grpc.loadPackageDefinition(traceService()) as unknown as {
      opentelemetry: {
        proto: {
          collector: {
            trace: { v1: { TraceService: { service: grpc.ServiceDefinition } } };
          };
        };
      };
    };
    const service = loaded.opentelemetry.proto.collector.trace.v1.TraceService.service;
    const collector = new OtlpCollector(port, service, tls);
    await collector.listen(port);
    return collector;
  }

  get url(): string {
    return `${this.tls ? "https" : "http"}://127.0.0.1:${this.port}`;
  }

  private async listen(port: number): Promise<void> {
    const server = new grpc.Server();
    server.addService(this.service, {
      Export: (
        call: grpc.ServerUnaryCall<RequestMessage, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        if (this.refuseWith !== null) {
          callback({ code: this.refuseWith, details: "refused by the test" });
          return;
        }
        const received = this.take(call.request);
        const metadata: Record<string, string> = {};
        for (const [k, v] of Object.entries(call.metadata.getMap())) metadata[k] = String(v);
        this.requests.push({ spans: received, metadata });
        callback(null, {});
      },
    });
    const bound = await new Promise<number>((resolve, reject) =>
      server.bindAsync(
        `127.0.0.1:${port}`,
        this.tls
          ? grpc.ServerCredentials.createSsl(null, [
              { private_key: this.tls.key, cert_chain: this.tls.cert },
            ])
          : grpc.ServerCredentials.createInsecure(),
        (e, p) => (e ? reject(e) : resolve(p)),
      ),
    );
    (this as { port: number }).port = bound;
    this.server = server;
  }

  private take(request: RequestMessage): number {
    const spans = spansOf(request);
    this.spans.push(...spans);
    return spans.length;
  }

  /** Stops taking connections, letting calls in flight finish (a collector shutting down). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  }

  /** Serves again on the same port. */
  async restart(): Promise<void> {
    if (!this.server) await this.listen(this.port);
  }
}
