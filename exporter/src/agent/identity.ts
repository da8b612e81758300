// SPDX-License-Identifier: Apache-2.0
// The OpenTelemetry identity the host agent gives a process: service.name (the process's own
// OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES, else its program's name) and service.instance.id,
// built from what stays the same when the process restarts with the same command line (its host
// or pod, its program, a digest of its arguments), so that a restart continues its series instead
// of adding new ones, while two servers that differ in a flag (a port, a model) stay apart. The
// pid is not part of it: it is on the process info series only.
import { createHash } from "node:crypto";
import { basename } from "node:path";
import { RES_SERVICE_NAME } from "@profinfer/contract";
import type { ProcessInfo } from "./processInfo.js";

export interface InstanceIdentity {
  serviceName: string;
  instanceId: string;
  /** the program's file name, the `executable` label */
  executable: string;
}

/** service.name in an OTEL_RESOURCE_ATTRIBUTES value (key=value pairs, percent-encoded). */
function serviceNameOfAttributes(list: string | undefined): string | null {
  for (const pair of (list ?? "").split(",")) {
    const at = pair.indexOf("=");
    if (at > 0 && pair.slice(0, at).trim() === RES_SERVICE_NAME) {
      try {
        return decodeURIComponent(pair.slice(at + 1).trim()) || null;
      } catch {
        return null;
      }
    }
  }
  return null;
}

/** The program's file name: its executable's, else its command's first word's. */
export function executableName(info: Pick<ProcessInfo, "executable" | "command">): string {
  return basename(info.executable || info.command[0] || "unknown");
}

/** The identity of `info` on host `hostname` (pure: /proc was read before). */
export function instanceIdentity(info: ProcessInfo, hostname: string): InstanceIdentity {
  const executable = executableName(info);
  const serviceName =
    info.environment.get("OTEL_SERVICE_NAME") ||
    serviceNameOfAttributes(info.environment.get("OTEL_RESOURCE_ATTRIBUTES")) ||
    executable;
  const where = info.pod
    ? `${info.pod.namespace ?? "default"}/${info.pod.name ?? info.pod.uid}`
    : info.container
      ? `${hostname}/${info.container.id.slice(0, 12)}`
      : hostname;
  const args = createHash("sha256").update(info.command.slice(1).join("\0")).digest("hex");
  return { serviceName, executable, instanceId: `${where}/${executable}/${args.slice(0, 8)}` };
}
