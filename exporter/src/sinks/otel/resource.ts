// SPDX-License-Identifier: Apache-2.0
// The OpenTelemetry resource of a run's spans: the profiled process, its host, its llama.cpp
// build and its model, all from the run header and notes (so replay gives the same resource).
import type { Attributes } from "@opentelemetry/api";
import {
  defaultResource,
  envDetector,
  resourceFromAttributes,
  type Resource,
} from "@opentelemetry/resources";
import { basename } from "node:path";
import { UserError } from "../../errors.js";
import type { Run } from "../../trace/types.js";
import type { RunNote } from "../../trace/notes.js";
import type { ResourceIdentity, RunHeader } from "../../trace/header.js";
import * as C from "@profinfer/contract";
import { notedModels, modelNameOfRun } from "../../trace/modelName.js";

/**
 * The resource a user asks for, as OpenTelemetry's SDKs read it: `--service-name`, else
 * OTEL_SERVICE_NAME, else service.name among OTEL_RESOURCE_ATTRIBUTES (comma-separated key=value,
 * percent-encoded), whose other attributes join the resource. Read with the SDK's own env
 * detector; a list it cannot read is an error here (the detector would drop it silently).
 */
export function resourceIdentity(serviceNameOption?: string, model?: string): ResourceIdentity {
  const detected = envDetector.detect().attributes ?? {};
  const attributes: Record<string, string> = {};
  for (const [key, value] of Object.entries(detected)) {
    if (key !== C.RES_SERVICE_NAME && value !== undefined) attributes[key] = String(value);
  }
  const raw = process.env.OTEL_RESOURCE_ATTRIBUTES?.trim();
  const listed = raw ? raw.split(",").filter((a) => a.trim() !== "").length : 0;
  const fromList =
    Object.keys(attributes).length + (raw?.includes(`${C.RES_SERVICE_NAME}=`) ? 1 : 0);
  if (listed > 0 && fromList === 0) {
    throw new UserError(
      `OTEL_RESOURCE_ATTRIBUTES='${raw}' cannot be read: write key=value pairs separated by commas, with ',' and '=' inside a key or value percent-encoded (%2C, %3D), e.g. deployment.environment.name=staging,service.namespace=llm`,
    );
  }
  const name = serviceNameOption ?? detected[C.RES_SERVICE_NAME];
  return {
    ...(name !== undefined && String(name) !== "" ? { serviceName: String(name) } : {}),
    attributes,
    ...(model !== undefined ? { model } : {}),
  };
}

/** service.name when none is given: the profiled program's name ("llama-server"). */
export function defaultServiceName(header: RunHeader): string {
  const program = header.target.executable ?? header.target.command[0];
  return program ? basename(program) : "llama.cpp";
}

/**
 * The resource's attributes: the SDK's defaults (telemetry.sdk.*), under the user's (from the
 * run header: what OTEL_RESOURCE_ATTRIBUTES said when it was recorded), under profinfer's own.
 * From the header and notes alone, so that a replay elsewhere sends the same; `serviceName`
 * (replay's --service-name) overrides the recorded one.
 */
export function resourceAttributes(
  header: RunHeader,
  notes: readonly RunNote[],
  serviceName?: string,
): Attributes {
  return defaultResource()
    .merge(resourceFromAttributes(header.resource?.attributes ?? {}))
    .merge(
      resourceFromAttributes(
        ownAttributes(header, notes, serviceName ?? header.resource?.serviceName),
      ),
    ).attributes;
}

function ownAttributes(
  header: RunHeader,
  notes: readonly RunNote[],
  serviceName?: string,
): Attributes {
  const pid = header.target.pid;
  const realtimeNs = header.clock.realtimeNs;
  const host = header.host ?? {};
  const attributes: Attributes = {
    [C.RES_SERVICE_NAME]: serviceName ?? defaultServiceName(header),
    [C.RES_PROFINFER_VERSION]: header.profinfer,
    [C.RES_PROFINFER_LEVEL]: header.level,
    [C.RES_RUN_ID]: `${pid}-${realtimeNs}`,
    [C.RES_PROCESS_PID]: pid,
  };
  const command = header.target.command ?? [];
  if (command.length > 0) {
    const executable = header.target.executable ?? command[0]!;
    attributes[C.RES_PROCESS_EXECUTABLE_NAME] = basename(executable);
    attributes[C.RES_PROCESS_EXECUTABLE_PATH] = executable;
    attributes[C.RES_PROCESS_COMMAND_ARGS] = [...command];
  }
  if (typeof host.hostname === "string") attributes[C.RES_HOST_NAME] = host.hostname;
  if (typeof host.cpuModel === "string") attributes[C.RES_HOST_CPU_MODEL_NAME] = host.cpuModel;
  if (typeof host.cpus === "number") attributes[C.RES_HOST_CPU_COUNT] = host.cpus;
  if (typeof host.kernel === "string") {
    attributes[C.RES_OS_TYPE] = "linux";
    attributes[C.RES_OS_VERSION] = host.kernel;
  }
  if (typeof host.arch === "string") attributes[C.RES_HOST_ARCH] = host.arch;
  const libraries = Object.entries(header.target.libraries ?? {});
  const llama = libraries.find(([, roles]) => roles.llama)?.[0];
  if (llama) attributes[C.RES_LLAMA_CPP_LIBRARY] = llama;
  const layout = header.layout;
  if (typeof layout?.ggmlVersion === "string") attributes[C.RES_GGML_VERSION] = layout.ggmlVersion;
  if (typeof layout?.commit === "string") attributes[C.RES_GGML_COMMIT] = layout.commit;
  const model = notedModels(notes)[0];
  if (model) {
    attributes[C.RES_MODEL_FILE] = model.path;
    attributes[C.RES_MODEL_NAME] = modelNameOfRun(header, notes)!;
    if (typeof model.architecture === "string")
      attributes[C.RES_MODEL_ARCHITECTURE] = model.architecture;
    if (typeof model.sizeBytes === "number") attributes[C.RES_MODEL_SIZE_BYTES] = model.sizeBytes;
  }
  return attributes;
}

export function runResource(run: Run, serviceName?: string): Resource {
  return resourceFromAttributes(
    resourceAttributes(
      run.header,
      run.notes.map((n) => n.note),
      serviceName,
    ),
  );
}
